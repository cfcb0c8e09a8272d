//! `vigil-benches` measures vigil: the criterion benchmarks (`cargo bench -p vigil-benches`), the `vigil-perf`
//! tool that `tools/bench.py` drives (bare inference, per-stage costs, soak) and the allocation test. The
//! helpers here are what they share: the fixture frames, a [`LoopingSource`] that replays a file over and
//! over (for soaks) and [`premade_tensors`] (model inputs made once, for measuring bare inference).

use std::path::{Path, PathBuf};

use ndarray::Array4;
use vigil_capture::{CaptureError, FrameSource, Timing, VideoFile};
use vigil_detect::{PreprocessError, Preprocessor};
use vigil_frame::Frame;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The first frame of a fixture clip, decoded once.
pub fn fixture_frame(rel: &str) -> Option<vigil_frame::Frame> {
    let mut src =
        vigil_capture::open(&root().join("fixtures").join(rel), vigil_capture::Timing::Media).ok()?;
    src.next_frame().ok().flatten()
}

/// Up to `max` frames of a video file or folder, decoded (corrupt frames skipped).
pub fn frames(path: &Path, max: usize) -> Result<Vec<Frame>, CaptureError> {
    let mut src = vigil_capture::open(path, Timing::Media)?;
    let mut out = Vec::new();
    while out.len() < max {
        match src.next_frame() {
            Ok(Some(f)) => out.push(f),
            Ok(None) => break,
            Err(e) if e.is_recoverable() => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The model inputs for `frames`, made once with vigil's own preprocessing.
pub fn premade_tensors(frames: &[Frame], size: u32) -> Result<Vec<Array4<f32>>, PreprocessError> {
    let mut pre = Preprocessor::new(size);
    frames.iter().map(|f| pre.run(&f.image).cloned()).collect()
}

/// A video file read again from the start each time it ends, until `limit` frames were delivered. Sequence
/// numbers and media times keep increasing across rounds, as a camera's would.
pub struct LoopingSource {
    path: PathBuf,
    inner: VideoFile,
    id: String,
    limit: u64,
    delivered: u64,
    /// Sequence number and time of the first frame of the current round.
    seq_base: u64,
    t_base: f64,
    last: (u64, f64),
    /// Rounds started so far.
    pub rounds: u64,
    min_side: Option<u32>,
}

impl LoopingSource {
    /// `path` decoded at full size, looped until `limit` frames.
    pub fn open(path: &Path, limit: u64) -> Result<Self, CaptureError> {
        Self::open_scaled(path, limit, None)
    }

    /// `path` decoded as `vigil replay` decodes it for a model of input side `min_side` (JPEG frames at the
    /// reduced DCT scale), looped until `limit` frames.
    pub fn open_scaled(path: &Path, limit: u64, min_side: Option<u32>) -> Result<Self, CaptureError> {
        let inner = VideoFile::open_scaled(path, Timing::Media, min_side)?;
        Ok(Self {
            min_side,
            path: path.to_path_buf(),
            inner,
            id: format!("{} (looped)", path.display()),
            limit,
            delivered: 0,
            seq_base: 0,
            t_base: 0.0,
            last: (0, 0.0),
            rounds: 1,
        })
    }
}

impl FrameSource for LoopingSource {
    fn id(&self) -> &str {
        &self.id
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if self.delivered >= self.limit {
            return Ok(None);
        }
        let mut restarted = false;
        loop {
            match self.inner.next_frame() {
                Ok(Some(mut f)) => {
                    f.seq += self.seq_base;
                    f.t += self.t_base;
                    self.last = (f.seq, f.t);
                    self.delivered += 1;
                    return Ok(Some(f));
                }
                Ok(None) | Err(CaptureError::Truncated { .. }) if !restarted => {
                    restarted = true;
                    self.inner = VideoFile::open_scaled(&self.path, Timing::Media, self.min_side)?;
                    self.seq_base = self.last.0 + 1;
                    self.t_base = self.last.1 + 1.0;
                    self.rounds += 1;
                }
                Ok(None) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    fn len_hint(&self) -> Option<u64> {
        Some(self.limit)
    }
}
