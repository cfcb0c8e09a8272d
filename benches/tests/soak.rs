//! The short version of the soak (`vigil-perf soak` runs a million frames): the fixture clip looped through the
//! read, detect and judge stages; every frame read is analysed and judged once, in order, none dropped.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use vigil_detect::{Judge, JudgeConfig, OnnxModel, PreparedModel};
use vigil_pipeline::{detect_stage, judge_stage, read_stage, Counters, Pacing};

#[test]
fn a_looped_file_is_analysed_frame_by_frame_with_consistent_counters() {
    let root = vigil_benches::root();
    let model = match OnnxModel::load(&root.join("models/failure.onnx"), 1) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let n = 120;
    let source = vigil_benches::LoopingSource::open(&root.join("fixtures/footage/normal.mkv"), n).unwrap();
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let frames = read_stage(Box::new(source), Pacing::Fast, stop, counters.clone());
    let scored = detect_stage(frames, model.detector().unwrap(), counters.clone());
    let judged = judge_stage(scored, Judge::new(JudgeConfig::default()), counters.clone());
    let seqs: Vec<u64> = judged.iter().map(|j| j.scored.frame.seq).collect();
    let s = counters.summary(std::time::Duration::from_secs(1));
    assert_eq!(seqs.len() as u64, n);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "frames out of order");
    assert_eq!((s.read, s.analysed, s.dropped, s.detect_errors), (n, n, 0, 0));
    assert_eq!(counters.frame_interval.count(), n - 1);
}
