//! Channel policies and shutdown of the stages. The source and detector here are in-memory stand-ins (the
//! real file source and ONNX Runtime detector run in the `vigil` binary's end-to-end tests); they exist to
//! control timing exactly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vigil_capture::{CaptureError, FrameSource};
use vigil_detect::{DetectError, Detection, Detector, Judge, JudgeConfig};
use vigil_frame::{Frame, Image, PixelFormat};
use vigil_pipeline::{detect_stage, judge_stage, read_stage, Counters, Pacing};

struct Synthetic {
    n: u64,
    next: u64,
    live: bool,
    corrupt_at: Option<u64>,
}

impl FrameSource for Synthetic {
    fn id(&self) -> &str {
        "synthetic"
    }
    fn is_live(&self) -> bool {
        self.live
    }
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if self.next >= self.n {
            return Ok(None);
        }
        let seq = self.next;
        self.next += 1;
        if Some(seq) == self.corrupt_at {
            return Err(CaptureError::CorruptFrame {
                source_id: "synthetic".into(),
                seq,
                reason: "test".into(),
            });
        }
        Ok(Some(Frame::new(
            seq,
            seq as f64,
            "synthetic".into(),
            Image::filled(8, 8, PixelFormat::Gray8, seq as u8),
        )))
    }
}

/// Scores a frame by its pixel value / 100, after a delay.
struct Slow(Duration);

impl Detector for Slow {
    fn detect(&mut self, image: &Image) -> Result<Detection, DetectError> {
        std::thread::sleep(self.0);
        Ok(Detection { score: (image.data()[0] as f32 / 100.0).min(1.0), ..Default::default() })
    }
}

#[test]
fn from_a_file_every_frame_is_analysed_even_when_detection_is_slow() {
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let src = Box::new(Synthetic { n: 30, next: 0, live: false, corrupt_at: Some(7) });
    let frames = read_stage(src, Pacing::Fast, stop, counters.clone());
    let scored = detect_stage(frames, Box::new(Slow(Duration::from_millis(2))), counters.clone());
    let seqs: Vec<u64> = scored.iter().map(|s| s.frame.seq).collect();
    let expected: Vec<u64> = (0..30).filter(|&s| s != 7).collect();
    assert_eq!(seqs, expected);
    let s = counters.summary(Duration::from_secs(1));
    assert_eq!((s.read, s.analysed, s.dropped, s.corrupt), (29, 29, 0, 1));
}

#[test]
fn from_a_live_source_the_newest_frame_wins_and_drops_are_counted() {
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let src = Box::new(Synthetic { n: 200, next: 0, live: true, corrupt_at: None });
    let frames = read_stage(src, Pacing::Fast, stop, counters.clone());
    let scored = detect_stage(frames, Box::new(Slow(Duration::from_millis(5))), counters.clone());
    let seqs: Vec<u64> = scored.iter().map(|s| s.frame.seq).collect();
    let s = counters.summary(Duration::from_secs(1));
    assert!(s.dropped > 0, "a slow detector must cause drops");
    assert_eq!(s.read, 200);
    assert_eq!(s.analysed + s.dropped, 200, "every frame read is analysed or counted as dropped");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "order is kept");
    assert_eq!(seqs.last(), Some(&199), "the newest frame is never the one dropped");
}

#[test]
fn setting_stop_ends_the_pipeline_cleanly() {
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let src = Box::new(Synthetic { n: u64::MAX, next: 0, live: false, corrupt_at: None });
    let frames = read_stage(src, Pacing::Fast, stop.clone(), counters.clone());
    let scored = detect_stage(frames, Box::new(Slow(Duration::from_millis(1))), counters.clone());
    let judged = judge_stage(scored, Judge::new(JudgeConfig::default()), counters.clone());
    let mut n = 0;
    for _ in judged.iter() {
        n += 1;
        if n == 10 {
            stop.store(true, Ordering::Relaxed);
        }
    }
    assert!((10..1000).contains(&n), "{n}");
}

#[test]
fn the_judge_stage_raises_events_from_held_scores() {
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    // Pixel value = frame index, score = index / 100 capped at 1: frames 95.. are above the default
    // failure threshold (0.95) and stay there.
    let src = Box::new(Synthetic { n: 110, next: 0, live: false, corrupt_at: None });
    let frames = read_stage(src, Pacing::Fast, stop, counters.clone());
    let scored = detect_stage(frames, Box::new(Slow(Duration::ZERO)), counters.clone());
    let judged = judge_stage(scored, Judge::new(JudgeConfig::default()), counters.clone());
    let events: Vec<_> = judged.iter().filter_map(|j| j.event).collect();
    let failures: Vec<_> = events.iter().filter(|e| e.kind == vigil_detect::EventKind::Failure).collect();
    assert_eq!(failures.len(), 1, "{events:?}");
    assert!(
        (95..98).contains(&failures[0].frame),
        "within 3 frames of the score passing 0.95: {:?}",
        failures[0]
    );
    assert_eq!(counters.summary(Duration::from_secs(1)).events as usize, events.len());
}
