//! `vigil-perf`: the measurements `tools/bench.py` puts side by side, each printed as one JSON object.
//!
//! - `limit`: bare ONNX Runtime inference of the model on tensors made beforehand from the same frames (the
//!   fastest vigil could possibly go);
//! - `stages`: the cost of each stage on the same frames (decode at full and reduced DCT scale, preprocess,
//!   infer, score, redact + encode, zstd, spool write);
//! - `soak`: the pipeline over a file looped for N frames, sampling resident memory, then checking counters.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use serde_json::json;
use vigil_detect::judge::FrameQuality;
use vigil_detect::runtime::{self, ort};
use vigil_detect::{Judge, JudgeConfig, OnnxModel, PreparedModel, Preprocessor};
use vigil_pipeline::{detect_stage, judge_stage, read_stage, rss_kb, Counters, Pacing};

#[derive(Parser)]
#[command(name = "vigil-perf", about = "vigil's side-by-side measurements (driven by tools/bench.py)")]
struct Cli {
    /// Model file.
    #[arg(long, global = true, default_value = "models/failure.onnx")]
    model: PathBuf,
    /// Intra-op threads.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bare inference on pre-made tensors: `--frames` runs over the first 32 frames of PATH in turn.
    Limit {
        path: PathBuf,
        #[arg(long, default_value_t = 300)]
        frames: u64,
    },
    /// Mean cost of each stage over the first `--frames` frames of PATH (an MJPEG file gives its JPEGs).
    Stages {
        path: PathBuf,
        #[arg(long, default_value_t = 100)]
        frames: usize,
    },
    /// The read, detect and judge stages over PATH looped for `--frames` frames.
    Soak {
        path: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        frames: u64,
        /// Print a resident-memory sample every this many frames.
        #[arg(long, default_value_t = 10_000)]
        every: u64,
    },
}

fn main() -> Result<()> {
    // As `vigil` does, so the soak's memory figures are the daemon's.
    vigil_pipeline::limit_allocator();
    let cli = Cli::parse();
    match &cli.command {
        Command::Limit { path, frames } => limit(&cli, path, *frames),
        Command::Stages { path, frames } => stages(&cli, path, *frames),
        Command::Soak { path, frames, every } => soak(&cli, path, *frames, *every),
    }
}

fn limit(cli: &Cli, path: &Path, n: u64) -> Result<()> {
    let frames = vigil_benches::frames(path, 32)?;
    if frames.is_empty() {
        bail!("{}: no frames", path.display());
    }
    let model = OnnxModel::load(&cli.model, cli.threads)?;
    let tensors = vigil_benches::premade_tensors(&frames, model.info().input_size)?;
    let mut session = runtime::session_from_file(&cli.model, cli.threads)?;
    let started = Instant::now();
    let mut sum = 0f32;
    for i in 0..n {
        let t = &tensors[i as usize % tensors.len()];
        let input = ort::value::TensorRef::from_array_view(t)?;
        let out = session.run(ort::inputs!["image" => input])?;
        let (_, score) = out["score"].try_extract_tensor::<f32>()?;
        sum += score.first().copied().unwrap_or(0.0);
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"what": "limit", "frames": n, "wall_s": wall, "ms_per_frame": wall * 1e3 / n as f64,
               "threads": cli.threads, "checksum": sum, "peak_rss_mb": vigil_pipeline::peak_rss_kb() as f64 / 1024.0})
    );
    Ok(())
}

/// Mean milliseconds of `f` over `items`, after one warm-up call.
fn mean_ms<T>(items: &[T], mut f: impl FnMut(&T) -> Result<()>) -> Result<f64> {
    if let Some(first) = items.first() {
        f(first)?;
    }
    let started = Instant::now();
    for it in items {
        f(it)?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e3 / items.len().max(1) as f64)
}

/// Reads up to `max` frames of `path`, decoded at the reduced scale for a `min_side` model input or at full
/// size; the count.
fn read_scaled(path: &Path, max: usize, min_side: Option<u32>) -> Result<usize> {
    let mut src = vigil_capture::open_scaled(path, vigil_capture::Timing::Media, min_side)?;
    let mut read = 0;
    while read < max {
        match src.next_frame() {
            Ok(Some(f)) => {
                std::hint::black_box(f);
                read += 1;
            }
            Ok(None) => break,
            Err(e) if e.is_recoverable() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(read)
}

fn stages(cli: &Cli, path: &Path, n: usize) -> Result<()> {
    let frames = vigil_benches::frames(path, n)?;
    if frames.is_empty() {
        bail!("{}: no frames", path.display());
    }
    let model = OnnxModel::load(&cli.model, cli.threads)?;
    let size = model.info().input_size;
    let (w, h) = (frames[0].image.width(), frames[0].image.height());
    let mut out = serde_json::Map::new();
    out.insert("what".into(), json!("stages"));
    out.insert("frames".into(), json!(frames.len()));
    out.insert("size".into(), json!(format!("{w}x{h}")));
    out.insert("threads".into(), json!(cli.threads));

    // Decode: the video file as vigil reads it (full size, and at the reduced DCT scale for the model's
    // input), each frame dropped once read as the pipeline does, then the stored JPEGs alone at full and at
    // reduced DCT scale.
    for (key, min_side) in [("decode_video_ms", None), ("decode_video_reduced_ms", Some(size))] {
        let started = Instant::now();
        let read = read_scaled(path, n, min_side)?;
        out.insert(key.into(), json!(started.elapsed().as_secs_f64() * 1e3 / read.max(1) as f64));
    }
    let jpegs = vigil_capture::mjpeg_packets(path, n)?;
    if !jpegs.is_empty() {
        let full = mean_ms(&jpegs, |b| Ok(vigil_capture::decode_jpeg(b, "bench", 0, None).map(drop)?))?;
        let reduced =
            mean_ms(&jpegs, |b| Ok(vigil_capture::decode_jpeg(b, "bench", 0, Some(size)).map(drop)?))?;
        let factor =
            vigil_capture::jpeg_size(&jpegs[0]).map(|(w, h)| vigil_capture::reduction_for(w, h, size));
        out.insert("decode_jpeg_full_ms".into(), json!(full));
        out.insert("decode_jpeg_reduced_ms".into(), json!(reduced));
        out.insert("decode_jpeg_reduction".into(), json!(factor));
    }

    let mut pre = Preprocessor::new(size);
    out.insert("preprocess_ms".into(), json!(mean_ms(&frames, |f| Ok(pre.run(&f.image).map(drop)?))?));
    let mut det = model.detector()?;
    let mut infer = 0.0;
    let mut detections = Vec::new();
    let total = mean_ms(&frames, |f| {
        let d = det.detect(&f.image)?;
        infer += d.infer_ms;
        detections.push(d);
        Ok(())
    })?;
    // The warm-up call counted its inference too; it is one of frames.len() + 1 calls.
    out.insert("infer_ms".into(), json!(infer / (frames.len() + 1) as f64));
    out.insert("detect_ms".into(), json!(total));
    // As the judge stage does: regions, the frame's quality for the gate, the judge.
    let mut judge = Judge::new(JudgeConfig::default());
    let mut i = 0u64;
    let pairs: Vec<_> = frames.iter().zip(&detections).collect();
    out.insert(
        "score_ms".into(),
        json!(mean_ms(&pairs, |(f, d)| {
            i += 1;
            let cells = d.heatmap.cells();
            let regions = vigil_detect::regions(cells, d.heatmap.grid(), w as f32, h as f32);
            let quality = FrameQuality::measure(&f.image);
            std::hint::black_box(judge.observe_frame(i, i as f64, d.score, &regions, Some(&quality)));
            Ok(())
        })?),
    );

    // Snapshot path (after a failure only): privacy filter (ROI, masks, faces, re-encode, verify), zstd of the
    // record, and the spool write.
    let mut privacy = vigil_privacy::PrivacyConfig::default();
    let dev_faces = vigil_benches::root().join(".local/models/centerface.onnx");
    if !privacy.faces.model.exists() && dev_faces.exists() {
        privacy.faces.model = dev_faces;
    }
    let mut scrubber = vigil_privacy::Scrubber::from_config(&privacy);
    let few = &frames[..frames.len().min(10)];
    let mut jpeg = None;
    if scrubber.face_model_ready() {
        let ms = mean_ms(few, |f| {
            jpeg = scrubber.scrub_image(&f.image).ok().map(|s| s.jpeg);
            Ok(())
        })?;
        out.insert("redact_encode_ms".into(), json!(ms));
    }
    let jpeg = match jpeg {
        Some(j) => j,
        None => {
            let img = &frames[0].image;
            vigil_capture::JpegEncoder::new()
                .and_then(|mut e| e.encode(img.data(), w, h, img.format(), 90).map(<[u8]>::to_vec))
                .map_err(anyhow::Error::msg)?
        }
    };
    let record = vigil_telemetry::EventRecord {
        event_id: "1-1000".into(),
        event_type: "failure".into(),
        score_trace: (0..32)
            .map(|i| vigil_telemetry::ScorePoint { media_ms: i * 10_000, score: 0.1 })
            .collect(),
        model_version: model.info().version.clone(),
        printer_model: "K1 Max".into(),
        firmware: "1.3.3.5".into(),
        region: vigil_telemetry::Region::Us,
        device_id: "0123456789abcdef0123456789abcdef".into(),
        media_start_ms: 1000,
        media_event_ms: 1000,
        wall_time_unix: None,
    };
    let head = serde_json::to_vec(&record)?;
    let reps: Vec<()> = vec![(); 50];
    out.insert(
        "zstd_record_ms".into(),
        json!(mean_ms(&reps, |_| Ok(vigil_telemetry::bundle::compress_head(&head).map(drop)?))?),
    );
    let dir = tempfile::tempdir()?;
    let config =
        vigil_telemetry::TelemetryConfig { spool_dir: dir.path().join("spool"), ..Default::default() };
    let telemetry = vigil_telemetry::Telemetry::open(config, Arc::new(vigil_telemetry::SystemClock), true)?;
    let snaps: Vec<_> = (0..3)
        .map(|i| vigil_telemetry::Snapshot { name: format!("after-{i:03}.jpg"), jpeg: jpeg.clone() })
        .collect();
    let bundles: Vec<()> = vec![(); 10];
    out.insert(
        "spool_write_bundle_ms".into(),
        json!(mean_ms(&bundles, |_| Ok(telemetry.submit(&record, &snaps).map(drop)?))?),
    );
    out.insert("snapshot_jpeg_bytes".into(), json!(jpeg.len()));
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}

fn soak(cli: &Cli, path: &Path, n: u64, every: u64) -> Result<()> {
    let model = OnnxModel::load(&cli.model, cli.threads)?;
    // Decoded as `vigil replay` decodes it: JPEG frames at the reduced DCT scale the model input allows.
    let source = vigil_benches::LoopingSource::open_scaled(path, n, Some(model.info().input_size))?;
    let detector = model.detector()?;
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let frames = read_stage(Box::new(source), Pacing::Fast, stop, counters.clone());
    let scored = detect_stage(frames, detector, counters.clone());
    let judged = judge_stage(scored, Judge::new(JudgeConfig::default()), counters.clone());
    let mut got = 0u64;
    let mut last_seq = None;
    let mut out_of_order = 0u64;
    let mut samples = Vec::new();
    for j in judged {
        got += 1;
        let seq = j.scored.frame.seq;
        if last_seq.is_some_and(|l| seq <= l) {
            out_of_order += 1;
        }
        last_seq = Some(seq);
        if got % every == 0 {
            let rss = rss_kb();
            samples.push((got, rss));
            eprintln!(
                "soak: {got} frames, RSS {:.1} MiB, {:.1} frames/s",
                rss as f64 / 1024.0,
                got as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let s = counters.summary(started.elapsed());
    // Growth: the last sample against the first sample after the warm-up (10 % of the run).
    let warm = samples.iter().find(|(f, _)| *f >= n / 10).or(samples.first()).map(|x| x.1).unwrap_or(0);
    let end = samples.last().map(|x| x.1).unwrap_or(0);
    let growth = if warm > 0 { end as f64 / warm as f64 - 1.0 } else { 0.0 };
    let consistent = s.read == n
        && s.analysed + s.detect_errors == s.read
        && got == s.analysed
        && s.dropped == 0
        && out_of_order == 0;
    println!(
        "{}",
        json!({"what": "soak", "frames": n, "read": s.read, "analysed": s.analysed, "judged": got,
               "detect_errors": s.detect_errors, "dropped": s.dropped, "corrupt": s.corrupt, "events": s.events,
               "out_of_order": out_of_order, "counters_consistent": consistent,
               "rss_after_warmup_mb": warm as f64 / 1024.0, "rss_end_mb": end as f64 / 1024.0,
               "rss_growth": growth, "peak_rss_mb": s.peak_rss_mb, "wall_s": s.wall_s, "fps": s.fps,
               "threads": cli.threads,
               "samples": samples.iter().map(|(f, r)| json!([f, *r as f64 / 1024.0])).collect::<Vec<_>>()})
    );
    if !consistent {
        bail!("counters are not consistent");
    }
    Ok(())
}
