//! Real decoding of the fixture footage and frames (made by tools/make_fixtures.py) and of the shared
//! footage in ../shared/data/footage when it is present: MJPEG Matroska through the in-process demuxer and
//! TurboJPEG, everything else through an ffmpeg child process.

use std::path::{Path, PathBuf};
use std::process::Command;

use vigil_capture::{open, open_scaled, CaptureError, FrameSource, Timing, VideoFile};

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

fn shared_footage(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/footage").join(rel);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: {} is absent (the shared data set is not checked out beside the repository)",
            p.display()
        );
        None
    }
}

/// Reads a source to its end, returning (frame sizes, media times, errors).
fn drain_sizes(src: &mut dyn FrameSource) -> (Vec<(u32, u32)>, Vec<f64>, Vec<CaptureError>) {
    let (mut sizes, mut ts, mut errs) = (vec![], vec![], vec![]);
    loop {
        match src.next_frame() {
            Ok(Some(f)) => {
                sizes.push((f.image.width(), f.image.height()));
                ts.push(f.t);
            }
            Ok(None) => break,
            Err(e) if e.is_recoverable() => errs.push(e),
            Err(e) => panic!("unexpected fatal error: {e}"),
        }
        assert!(sizes.len() + errs.len() < 100_000, "source never ends");
    }
    (sizes, ts, errs)
}

#[test]
fn the_scythe_mjpeg_clip_decodes_every_frame_at_half_scale_for_a_192_pixel_model() {
    let Some(path) = shared_footage("scythe/normal-print-10s.mkv") else { return };
    let mut src = open_scaled(&path, Timing::Media, Some(192)).unwrap();
    let declared = src.len_hint();
    let (sizes, ts, errs) = drain_sizes(src.as_mut());
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(sizes.len(), 327);
    assert!(declared.is_none_or(|d| d.abs_diff(327) <= 1), "{declared:?}");
    assert!(sizes.iter().all(|s| *s == (320, 240)), "{:?}", &sizes[..3]);
    assert!(ts.windows(2).all(|w| w[1] > w[0]), "media times increase");
    // Full size for comparison.
    let mut full = open(&path, Timing::Media).unwrap();
    let f = full.next_frame().unwrap().unwrap();
    assert_eq!((f.image.width(), f.image.height()), (640, 480));
}

#[test]
fn a_reduced_scale_fixture_clip_keeps_every_frame_and_its_timestamps() {
    let mut src = open_scaled(&fixture("footage/normal.mkv"), Timing::Media, Some(192)).unwrap();
    assert_eq!(src.len_hint(), Some(24));
    let (sizes, ts, errs) = drain_sizes(src.as_mut());
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(sizes, vec![(320, 240); 24]);
    assert!((ts[23] - 23.0).abs() < 0.01, "{}", ts[23]);
}

#[test]
fn h264_frames_come_through_ffmpeg_with_their_media_times() {
    let mut src = open(&fixture("footage/normal.mp4"), Timing::Media).unwrap();
    assert_eq!(src.len_hint(), Some(24));
    let (sizes, ts, errs) = drain_sizes(src.as_mut());
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(sizes, vec![(640, 480); 24]);
    for (i, t) in ts.iter().enumerate() {
        assert!((t - i as f64).abs() < 0.01, "frame {i} at {t}");
    }
}

#[test]
fn the_cut_fixture_mkv_gives_the_frames_before_the_cut_then_truncated() {
    let mut src = open(&fixture("bad/truncated.mkv"), Timing::Media).unwrap();
    let (seqs, ts, errs) = drain(src.as_mut());
    assert!(!seqs.is_empty() && seqs.len() < 24, "{}", seqs.len());
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    assert!((ts[ts.len() - 1] - (seqs.len() - 1) as f64).abs() < 0.01);
    match errs.as_slice() {
        [CaptureError::Truncated { last_seq, declared, source_id, .. }] => {
            assert_eq!((*last_seq, *declared), (seqs.len() as u64 - 1, 24));
            assert!(source_id.contains("truncated.mkv"));
        }
        other => panic!("expected one Truncated error, got {other:?}"),
    }
}

/// Writes `bytes` of `src` (or all but the last `cut` bytes) to a temporary file named `name`.
fn cut_copy(src: &Path, keep: usize, dir: &Path, name: &str) -> PathBuf {
    let bytes = std::fs::read(src).unwrap();
    let out = dir.join(name);
    std::fs::write(&out, &bytes[..keep.min(bytes.len())]).unwrap();
    out
}

#[test]
fn a_mkv_cut_in_the_middle_of_a_frame_gives_the_frames_before_it_then_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::metadata(fixture("footage/normal.mkv")).unwrap().len() as usize;
    let path = cut_copy(&fixture("footage/normal.mkv"), full / 2 + 1234, dir.path(), "half.mkv");
    let mut src = open_scaled(&path, Timing::Media, Some(192)).unwrap();
    let (seqs, _, errs) = drain(src.as_mut());
    assert!(seqs.len() >= 10 && seqs.len() < 14, "{seqs:?}");
    assert!(matches!(errs.as_slice(), [CaptureError::Truncated { declared: 24, .. }]), "{errs:?}");
}

#[test]
fn a_truncated_mp4_gives_the_frames_before_the_cut_then_truncated() {
    let dir = tempfile::tempdir().unwrap();
    // The index (moov) first, so that a cut file still says how many frames it should hold.
    let faststart = dir.path().join("faststart.mp4");
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(fixture("footage/normal.mp4"))
        .args(["-c", "copy", "-movflags", "+faststart"])
        .arg(&faststart)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let len = std::fs::metadata(&faststart).unwrap().len() as usize;
    let cut = cut_copy(&faststart, len * 6 / 10, dir.path(), "cut.mp4");
    let mut src = open(&cut, Timing::Media).unwrap();
    let (seqs, _, errs) = drain(src.as_mut());
    assert!(!seqs.is_empty() && seqs.len() < 24, "{seqs:?}");
    match errs.last() {
        Some(CaptureError::Truncated { declared: 24, source_id, .. }) => {
            assert!(source_id.contains("cut.mp4"))
        }
        other => panic!("expected Truncated at the end, got {other:?} ({errs:?})"),
    }
    // With the index at the end, the cut file has no index at all: a clear open error naming it.
    let cut = cut_copy(&fixture("footage/normal.mp4"), len / 2, dir.path(), "no-index.mp4");
    let err = open(&cut, Timing::Media).err().expect("must fail");
    assert!(matches!(err, CaptureError::Open { .. }) && err.to_string().contains("no-index.mp4"), "{err}");
}

/// Rewrites the payload of the `n`th SimpleBlock of a Matroska file (0-based) with `f`, keeping its size.
fn damage_block(bytes: &mut [u8], n: usize, f: impl FnOnce(&mut [u8])) {
    // Each frame's JPEG starts right after its 4-byte block header: find the n-th SOI behind a block header.
    let starts: Vec<usize> = bytes
        .windows(6)
        .enumerate()
        .filter(|(_, w)| w[0] == 0x81 && w[3] == 0x80 && w[4..] == [0xFF, 0xD8])
        .map(|(i, _)| i + 4)
        .collect();
    let start = starts[n];
    // Its end of image marker (FF D9 appears nowhere else in a JPEG's entropy-coded data).
    let end = start + bytes[start..].windows(2).position(|w| w == [0xFF, 0xD9]).unwrap() + 2;
    f(&mut bytes[start..end]);
}

#[test]
fn a_damaged_jpeg_packet_is_a_corrupt_frame_with_its_index_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixture("footage/normal.mkv")).unwrap();
    // Frame 3: garbage in the middle of its entropy-coded data.
    damage_block(&mut bytes, 3, |b| {
        let mid = b.len() / 2;
        for (i, x) in b[mid..mid + 300].iter_mut().enumerate() {
            *x = if i % 2 == 0 { 0xFF } else { 0xC9 };
        }
    });
    // Frame 7: cut in the middle (the rest of the block zeroed, as a camera dropping data would leave it).
    damage_block(&mut bytes, 7, |b| {
        let mid = b.len() / 2;
        let end = b.len() - 2;
        b[mid..end].fill(0);
    });
    let path = dir.path().join("damaged.mkv");
    std::fs::write(&path, &bytes).unwrap();
    for min_side in [None, Some(192)] {
        let mut src = open_scaled(&path, Timing::Media, min_side).unwrap();
        let (seqs, _, errs) = drain(src.as_mut());
        let bad: Vec<u64> = errs
            .iter()
            .map(|e| match e {
                CaptureError::CorruptFrame { seq, source_id, .. } => {
                    assert!(source_id.contains("damaged.mkv"));
                    *seq
                }
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(bad, vec![3, 7], "{errs:?}");
        assert_eq!(seqs.len(), 22);
    }
}

/// A minimal Matroska file: one MJPEG track, one cluster holding `frames` as SimpleBlocks 100 ms apart.
fn tiny_mkv(frames: &[&[u8]]) -> Vec<u8> {
    fn el(id: &[u8], body: &[u8]) -> Vec<u8> {
        let mut v = id.to_vec();
        v.push(0x01); // an 8-byte size
        v.extend_from_slice(&(body.len() as u64).to_be_bytes()[1..]);
        v.extend_from_slice(body);
        v
    }
    let ebml = el(&[0x1A, 0x45, 0xDF, 0xA3], &el(&[0x42, 0x82], b"matroska"));
    let mut track = el(&[0xD7], &[1]);
    track.extend(el(&[0x83], &[1]));
    track.extend(el(&[0x86], b"V_MJPEG"));
    let tracks = el(&[0x16, 0x54, 0xAE, 0x6B], &el(&[0xAE], &track));
    let mut cluster = el(&[0xE7], &[0]);
    for (i, f) in frames.iter().enumerate() {
        let mut block = vec![0x81];
        block.extend_from_slice(&((i as i16) * 100).to_be_bytes());
        block.push(0x80);
        block.extend_from_slice(f);
        cluster.extend(el(&[0xA3], &block));
    }
    let mut segment = tracks;
    segment.extend(el(&[0x1F, 0x43, 0xB6, 0x75], &cluster));
    let mut out = ebml;
    out.extend(el(&[0x18, 0x53, 0x80, 0x67], &segment));
    out
}

#[test]
fn a_zero_length_packet_is_a_corrupt_frame_between_good_ones() {
    let good = std::fs::read(fixture("frames/frame-000.jpg")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty-packet.mkv");
    std::fs::write(&path, tiny_mkv(&[&good, &[], &good])).unwrap();
    let mut src = VideoFile::open(&path, Timing::Media).unwrap();
    let (seqs, ts, errs) = drain(&mut src);
    assert_eq!(seqs, vec![0, 2]);
    assert!((ts[1] - 0.2).abs() < 1e-9, "{ts:?}");
    assert!(matches!(errs.as_slice(), [CaptureError::CorruptFrame { seq: 1, .. }]), "{errs:?}");
}

#[test]
fn mjpeg_in_avi_comes_through_ffmpeg_at_reduced_scale() {
    let dir = tempfile::tempdir().unwrap();
    let avi = dir.path().join("clip.avi");
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(fixture("footage/normal.mkv"))
        .args(["-c", "copy"])
        .arg(&avi)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let mut src = open_scaled(&avi, Timing::Media, Some(192)).unwrap();
    let (sizes, ts, errs) = drain_sizes(src.as_mut());
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(sizes, vec![(320, 240); 24]);
    assert!((ts[5] - 5.0).abs() < 0.01, "{ts:?}");
}
