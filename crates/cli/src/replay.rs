//! `vigil replay PATH`: recorded footage through the whole pipeline.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use vigil_capture::Timing;
use vigil_detect::{Judge, OnnxModel, PreparedModel};
use vigil_pipeline::{
    detect_stage, judge_stage, read_stage, snapshot_stage, Config, Counters, Pacing, RecordInfo, SpoolSink,
};
use vigil_privacy::{HardwareIds, PrivacyGate};

#[derive(clap::Args)]
pub struct Args {
    /// A video file (MJPEG .mkv/.avi, H.264 .mp4, ...), a folder of JPEG/PNG frames, /dev/videoN, an http(s)
    /// MJPEG stream URL, a snapshot URL (with --poll) or an rtsp:// URL.
    path: PathBuf,
    /// Fetch PATH as a snapshot URL every SECONDS.
    #[arg(long, value_name = "SECONDS")]
    poll: Option<f64>,
    /// Seconds between frames in real time, for timelapse footage (frame n is at n * S).
    #[arg(long, value_name = "S")]
    interval: Option<f64>,
    /// Also write each event as one JSON line to FILE.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Write every analysed frame's score as one JSON line to FILE: {"frame": N, "t": s, "score": x}, each
    /// line as soon as its frame is judged.
    #[arg(long, value_name = "FILE")]
    scores: Option<PathBuf>,
    /// Write the summary as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    summary: Option<PathBuf>,
    /// Release frames at their media time instead of as fast as possible.
    #[arg(long)]
    realtime: bool,
}

pub fn run(args: Args, cfg: Config, model: Option<PathBuf>) -> Result<ExitCode> {
    let interval = args.interval.or(cfg.pipeline.interval_s);
    if let Some(s) = interval {
        anyhow::ensure!(s > 0.0 && s.is_finite(), "--interval must be a positive number of seconds, got {s}");
    }
    let timing = interval.map(Timing::Interval).unwrap_or_default();
    let spec =
        vigil_capture::SourceSpec::parse(&args.path.to_string_lossy(), args.poll.or(cfg.source.poll_s))
            .map_err(anyhow::Error::msg)?;
    let stop = Arc::new(AtomicBool::new(false));
    let model_path = crate::model_path(model, &cfg)?;
    let model = OnnxModel::load(&model_path, cfg.detector_threads())?;
    // JPEG frames are decoded at the reduced DCT scale the model's input allows (unless the config turns
    // that off), as `vigil run` does; a file is still read frame by frame, none dropped.
    let model_input = model.info().input_size;
    let source = if spec.is_live() {
        let mut opts = cfg.source.live_options(model_input);
        opts.stop = Some(stop.clone());
        vigil_capture::open_spec(&spec, timing, &opts)?
    } else {
        vigil_capture::open_scaled(&args.path, timing, cfg.source.reduced_decode.then_some(model_input))?
    };
    let detector = model.detector()?;
    let mut events_out = create(args.events.as_ref(), "events file")?;
    let mut scores_out = create(args.scores.as_ref(), "scores file")?;

    {
        let stop = stop.clone();
        // A second handler cannot be installed (e.g. in tests calling twice); replay still works without it.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed));
    }
    let progress = progress_bar(source.len_hint());
    let counters = Arc::new(Counters::default());
    let pacing = if args.realtime { Pacing::Realtime } else { Pacing::Fast };
    let started = Instant::now();

    let frames = read_stage(source, pacing, stop.clone(), counters.clone());
    let scored = detect_stage(frames, detector, counters.clone());
    let judged = judge_stage(scored, Judge::new(cfg.judge.clone()), counters.clone());
    let judged = snapshot_stage(
        judged,
        privacy_gate(&cfg, &model, &counters)?,
        args.path.display().to_string(),
        counters.clone(),
    );

    let mut stdout = std::io::stdout().lock();
    for j in judged {
        progress.inc(1);
        if let Some(out) = scores_out.as_mut() {
            let f = &j.scored.frame;
            let line = ScoreLine { frame: f.seq, t: f.t, score: j.scored.detection.score };
            serde_json::to_writer(&mut *out, &line)?;
            writeln!(out).context("cannot write the scores file")?;
            // Written through as each frame is judged, so the file can be followed while a replay runs.
            out.flush().context("cannot write the scores file")?;
        }
        let Some(event) = j.event else { continue };
        let line = format!(
            "{:<8} frame {:>6}  t {:>9.1} s  score {:.3}  regions {}",
            serde_json::to_value(event.kind)?.as_str().unwrap_or("event"),
            event.frame,
            event.t,
            event.score,
            event.regions.len()
        );
        progress.suspend(|| writeln!(stdout, "{line}"))?;
        if let Some(out) = events_out.as_mut() {
            serde_json::to_writer(&mut *out, &event)?;
            out.write_all(b"\n")?;
            out.flush().context("cannot write the events file")?;
        }
    }
    progress.finish_and_clear();
    if let Some(out) = scores_out.as_mut() {
        out.flush().context("cannot write the scores file")?;
    }
    let s = counters.summary(started.elapsed());
    writeln!(
        stdout,
        "summary: {}\n  frames read {}, analysed {}, dropped {}, corrupt {}\n  \
         detector {:.2} ms/frame (model {:.2} ms; p50 {:.2}, p99 {:.2}), {:.1} frames/s over {:.2} s, \
         peak memory {:.1} MiB\n  events {} (model {}, version {})",
        args.path.display(),
        s.read,
        s.analysed,
        s.dropped,
        s.corrupt,
        s.ms_per_frame,
        s.infer_ms_per_frame,
        s.ms_p50,
        s.ms_p99,
        s.fps,
        s.wall_s,
        s.peak_rss_mb,
        s.events,
        model_path.display(),
        model.info().version,
    )?;
    if s.snapshots_kept + s.snapshots_dropped + s.bundles + s.bundle_errors > 0 {
        writeln!(
            stdout,
            "  snapshots kept {}, dropped {}; bundles spooled {}, refused {}",
            s.snapshots_kept, s.snapshots_dropped, s.bundles, s.bundle_errors
        )?;
    }
    if let Some(p) = &args.summary {
        std::fs::write(p, serde_json::to_vec_pretty(&s)?)
            .with_context(|| format!("cannot write summary {}", p.display()))?;
    }
    if let Some(fatal) = counters.fatal() {
        anyhow::bail!("reading stopped early: {fatal}");
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of `--scores`.
#[derive(serde::Serialize)]
struct ScoreLine {
    frame: u64,
    t: f64,
    score: f32,
}

/// The privacy filter and the spool behind it. It acts only while the owner is in the programme.
fn privacy_gate(cfg: &Config, model: &OnnxModel, counters: &Arc<Counters>) -> Result<PrivacyGate<SpoolSink>> {
    let privacy = crate::scrub::privacy_config(cfg)?;
    let info = RecordInfo {
        printer_model: cfg.device.printer_model.clone(),
        firmware: cfg.device.firmware.clone(),
        model_version: model.info().version.clone(),
    };
    let sink = SpoolSink::new(cfg.telemetry.clone(), info, privacy.purpose.window_s, counters.clone());
    let ids = HardwareIds { mac: cfg.device.mac(), serial: cfg.device.serial.clone() };
    Ok(PrivacyGate::new(&privacy, ids, sink))
}

fn create(path: Option<&PathBuf>, what: &str) -> Result<Option<BufWriter<File>>> {
    path.map(|p| {
        File::create(p).map(BufWriter::new).with_context(|| format!("cannot create {what} {}", p.display()))
    })
    .transpose()
}

fn progress_bar(len: Option<u64>) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} frames {per_sec} eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}
