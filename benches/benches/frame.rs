//! Per-frame costs side by side on the same 640x480 fixture frame: JPEG decoding at full and at reduced DCT
//! scale, preprocessing alone, preprocessing + model (what the detect stage does per frame), heat-map regions
//! and the temporal rule, and the zstd compression of an event record's head. `tools/bench.py` puts the
//! whole program next to bare inference and the Python baseline.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use vigil_detect::{Judge, JudgeConfig, OnnxModel, PreparedModel, Preprocessor};

fn per_frame(c: &mut Criterion) {
    let Some(frame) = vigil_benches::fixture_frame("footage/spaghetti.mkv") else {
        eprintln!("skipped: fixtures/footage/spaghetti.mkv cannot be read");
        return;
    };
    let model_path = vigil_benches::root().join("models/failure.onnx");
    let model = match OnnxModel::load(&model_path, 1) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let size = model.info().input_size;
    let mut group = c.benchmark_group("per_frame_640x480");
    let jpeg = {
        let img = &frame.image;
        vigil_capture::JpegEncoder::new()
            .and_then(|mut e| {
                e.encode(img.data(), img.width(), img.height(), img.format(), 95).map(<[u8]>::to_vec)
            })
            .ok()
    };
    if let Some(jpeg) = &jpeg {
        group.bench_function("decode_jpeg_full", |b| {
            b.iter(|| black_box(vigil_capture::decode_jpeg(jpeg, "bench", 0, None).map(|i| i.width())))
        });
        group.bench_function("decode_jpeg_reduced", |b| {
            b.iter(|| black_box(vigil_capture::decode_jpeg(jpeg, "bench", 0, Some(192)).map(|i| i.width())))
        });
    }
    let mut pre = Preprocessor::new(size);
    group.bench_function("preprocess", |b| {
        b.iter(|| black_box(pre.run(&frame.image).map(|t| t[[0, 0, 0, 0]])))
    });
    let mut det = match model.detector() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    group.bench_function("preprocess+infer", |b| {
        b.iter(|| black_box(det.detect(&frame.image).map(|d| d.score)))
    });
    let heat = [0.1f32; 36];
    group.bench_function("regions_cold", |b| {
        b.iter(|| black_box(vigil_detect::regions(black_box(&heat), (6, 6), 640.0, 480.0).len()))
    });
    let head = br#"{"event_id":"1-1000","event_type":"failure","score_trace":[],"model_version":"c5da01cdcc9d1f5a"}"#;
    group.bench_function("zstd_record_head", |b| {
        b.iter(|| black_box(vigil_telemetry::bundle::compress_head(head).map(|v| v.len())))
    });
    let mut judge = Judge::new(JudgeConfig::default());
    let mut t = 0.0;
    group.bench_function("judge", |b| {
        b.iter(|| {
            t += 1.0;
            black_box(judge.observe(t as u64, t, 0.5, &[]))
        })
    });
    group.finish();
}

/// Preprocessing alone at the sizes frames arrive in: full-size 640x480 and 1080p, and the reduced DCT
/// scales live JPEG sources are decoded at (1/2 of 640x480, 1/4 of 1080p).
fn preprocess_sizes(c: &mut Criterion) {
    use vigil_frame::{Image, PixelFormat};
    let mut group = c.benchmark_group("preprocess_to_192");
    for (w, h, format) in [
        (640, 480, PixelFormat::Gray8),
        (640, 480, PixelFormat::Bgr8),
        (1920, 1080, PixelFormat::Gray8),
        (1920, 1080, PixelFormat::Bgr8),
        (320, 240, PixelFormat::Gray8),
        (480, 270, PixelFormat::Bgr8),
    ] {
        let len = (w * h) as usize * format.channels();
        let data = (0..len).map(|i| (i * 7 + i / 640 * 13) as u8).collect();
        let Ok(image) = Image::new(w, h, format, data) else { continue };
        let mut pre = Preprocessor::new(192);
        group.bench_function(format!("{w}x{h}_{format:?}"), |b| {
            b.iter(|| black_box(pre.run(black_box(&image)).map(|t| t[[0, 0, 0, 0]])))
        });
    }
    group.finish();
}

criterion_group!(benches, per_frame, preprocess_sizes);
criterion_main!(benches);
