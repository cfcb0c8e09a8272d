//! Per-frame costs side by side on the same 640x480 fixture frame: preprocessing alone, preprocessing + model
//! (what the detect stage does per frame), and the temporal rule.

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

criterion_group!(benches, per_frame);
criterion_main!(benches);
