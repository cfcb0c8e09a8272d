//! Real OpenCV decoding of the fixture footage and frames (made by tools/make_fixtures.py).

use std::path::PathBuf;

use vigil_capture::{open, CaptureError, FrameSource, Timing};

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(rel)
}

/// Reads a source to its end, returning (frame indices, media times, errors).
fn drain(src: &mut dyn FrameSource) -> (Vec<u64>, Vec<f64>, Vec<CaptureError>) {
    let (mut seqs, mut ts, mut errs) = (vec![], vec![], vec![]);
    loop {
        match src.next_frame() {
            Ok(Some(f)) => {
                seqs.push(f.seq);
                ts.push(f.t);
            }
            Ok(None) => break,
            Err(e) if e.is_recoverable() => errs.push(e),
            Err(e) => panic!("unexpected fatal error: {e}"),
        }
        assert!(seqs.len() + errs.len() < 10_000, "source never ends");
    }
    (seqs, ts, errs)
}

#[test]
fn mjpeg_mkv_yields_every_frame_with_container_timestamps() {
    let mut src = open(&fixture("footage/normal.mkv"), Timing::Media).unwrap();
    let (seqs, ts, errs) = drain(src.as_mut());
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(seqs, (0..24).collect::<Vec<_>>());
    // 1 fps container: frame n at n seconds.
    for (i, t) in ts.iter().enumerate() {
        assert!((t - i as f64).abs() < 0.01, "frame {i} at {t}");
    }
}

#[test]
fn h264_mp4_decodes_to_640x480_frames() {
    let mut src = open(&fixture("footage/normal.mp4"), Timing::Media).unwrap();
    let f = src.next_frame().unwrap().unwrap();
    assert_eq!((f.image.width(), f.image.height()), (640, 480));
    let (seqs, _, errs) = drain(src.as_mut());
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(seqs.len(), 23);
}

#[test]
fn interval_timing_spaces_frames_by_the_given_seconds() {
    let mut src = open(&fixture("footage/spaghetti.mkv"), Timing::Interval(10.0)).unwrap();
    let (_, ts, _) = drain(src.as_mut());
    assert_eq!(ts[3], 30.0);
    assert_eq!(ts.len(), 24);
}

#[test]
fn a_folder_is_read_in_name_order() {
    let mut src = open(&fixture("frames"), Timing::Interval(5.0)).unwrap();
    assert_eq!(src.len_hint(), Some(8));
    let (seqs, ts, errs) = drain(src.as_mut());
    assert!(errs.is_empty());
    assert_eq!(seqs, (0..8).collect::<Vec<_>>());
    assert_eq!(ts[7], 35.0);
}

#[test]
fn a_corrupt_jpeg_in_a_folder_is_skipped_and_named() {
    let mut src = open(&fixture("bad/frames"), Timing::Media).unwrap();
    let (seqs, _, errs) = drain(src.as_mut());
    assert_eq!(seqs, vec![0, 1, 3, 4]);
    assert_eq!(errs.len(), 1);
    let msg = errs[0].to_string();
    assert!(msg.contains("frame-002.jpg") && msg.contains("frame 2"), "{msg}");
}

#[test]
fn a_frame_the_decoder_cannot_read_leaves_a_reported_gap() {
    let mut src = open(&fixture("bad/corrupt-frame.mkv"), Timing::Media).unwrap();
    let (seqs, _, errs) = drain(src.as_mut());
    assert!(!seqs.contains(&5), "frame 5 was destroyed: {seqs:?}");
    assert_eq!(seqs.len() + errs.len(), 24, "every index is either read or reported: {seqs:?} {errs:?}");
    assert!(errs.iter().any(|e| matches!(e, CaptureError::CorruptFrame { seq: 5, .. })), "{errs:?}");
}

#[test]
fn a_truncated_video_reports_how_far_it_got() {
    let mut src = open(&fixture("bad/truncated.mkv"), Timing::Media).unwrap();
    let (seqs, _, errs) = drain(src.as_mut());
    assert!(!seqs.is_empty() && seqs.len() < 24, "{}", seqs.len());
    // The container's header may not declare a count once cut; when it does, the truncation is reported.
    for e in &errs {
        assert!(e.to_string().contains("truncated.mkv"), "{e}");
    }
}

#[test]
fn a_file_that_is_not_a_video_is_a_clear_open_error() {
    let err = open(&fixture("bad/not-a-video.mkv"), Timing::Media).err().expect("must fail");
    assert!(matches!(err, CaptureError::Open { .. }), "{err}");
    assert!(err.to_string().contains("not-a-video.mkv"));
}

#[test]
fn a_missing_path_is_a_clear_open_error() {
    let err = open(&fixture("does/not/exist.mkv"), Timing::Media).err().expect("must fail");
    assert!(err.to_string().contains("exist.mkv") && err.to_string().contains("no such file"), "{err}");
}
