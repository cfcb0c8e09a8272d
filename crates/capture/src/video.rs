//! Video files through OpenCV's FFmpeg backend.

use std::path::Path;
use std::sync::Arc;

use opencv::core::{Mat, MatTraitConst, MatTraitConstManual};
use opencv::prelude::{VideoCaptureTrait, VideoCaptureTraitConst};
use opencv::videoio::{self, VideoCapture};
use vigil_frame::{Frame, Image, ImagePool};

use crate::{CaptureError, FrameSource, Timing};

/// Consecutive unreadable frames after which a file is taken to end.
const MAX_READ_RETRIES: u64 = 16;

/// Pixel buffers kept for reuse: more than the frames the pipeline holds at once (its bounded queues and one
/// frame per stage), so that in the steady state no frame allocates.
const POOLED_FRAMES: usize = 24;

/// A video file. A frame the decoder cannot read keeps its index and is reported as
/// [`CaptureError::CorruptFrame`]; a file that ends before the frame count its
/// header declares is reported as [`CaptureError::Truncated`].
pub struct VideoFile {
    id: Arc<str>,
    cap: VideoCapture,
    mat: Mat,
    pool: ImagePool,
    timing: Timing,
    fps: f64,
    declared: Option<u64>,
    /// Index the next frame should have.
    next_seq: u64,
    /// Frames known to be missing before the one held in `pending`.
    gap: Option<(u64, u64)>,
    pending: Option<Frame>,
    finished: bool,
}

impl VideoFile {
    pub fn open(path: &Path, timing: Timing) -> Result<Self, CaptureError> {
        let open_err = |reason: String| CaptureError::Open { path: path.to_path_buf(), reason };
        if !path.is_file() {
            return Err(open_err("no such file".into()));
        }
        let cap = VideoCapture::from_file(path.as_os_str(), videoio::CAP_FFMPEG)
            .map_err(|e| open_err(e.to_string()))?;
        if !cap.is_opened().map_err(|e| open_err(e.to_string()))? {
            return Err(open_err("not a video OpenCV can read".into()));
        }
        let fps = cap.get(videoio::CAP_PROP_FPS).unwrap_or(0.0);
        let count = cap.get(videoio::CAP_PROP_FRAME_COUNT).unwrap_or(0.0);
        let declared = (count.is_finite() && count >= 1.0).then_some(count as u64);
        Ok(Self {
            id: path.display().to_string().into(),
            cap,
            mat: Mat::default(),
            pool: ImagePool::new(POOLED_FRAMES),
            timing,
            fps,
            declared,
            next_seq: 0,
            gap: None,
            pending: None,
            finished: false,
        })
    }

    /// Frames per second the container declares (0 when unknown).
    pub fn fps(&self) -> f64 {
        self.fps
    }

    fn read_one(&mut self) -> Result<Option<Frame>, CaptureError> {
        // The FFmpeg backend gives up on a packet it cannot decode; the demuxer has moved on by then, so
        // retrying reads the frames after it. Stop after a run of failures (end of file or a broken tail).
        let mut failures = 0;
        loop {
            if self.cap.read(&mut self.mat)? && !self.mat.empty() {
                break;
            }
            failures += 1;
            let more_declared = self.declared.is_some_and(|d| self.next_seq + failures < d);
            if !more_declared || failures > MAX_READ_RETRIES {
                return Ok(None);
            }
        }
        // Each failed read before this frame was one frame the decoder could not read.
        let seq = self.next_seq + failures;
        let t = match self.timing {
            Timing::Interval(s) => seq as f64 * s,
            Timing::Media => {
                let ms = self.cap.get(videoio::CAP_PROP_POS_MSEC).unwrap_or(f64::NAN);
                if ms.is_finite() && ms >= 0.0 {
                    ms / 1e3
                } else if self.fps > 0.0 {
                    seq as f64 / self.fps
                } else {
                    seq as f64
                }
            }
        };
        let image = pooled_copy(&mut self.pool, &self.mat).map_err(|reason| CaptureError::CorruptFrame {
            source_id: self.id.to_string(),
            seq,
            reason,
        })?;
        Ok(Some(Frame::from_shared(seq, t, self.id.clone(), image)))
    }
}

/// Copies a decoded 8-bit BGR or gray `mat` into a buffer from `pool`.
fn pooled_copy(pool: &mut ImagePool, mat: &Mat) -> Result<Arc<Image>, String> {
    let (format, w, h) = crate::mat_layout(mat)?;
    if !mat.is_continuous() {
        let image = crate::image_from_mat(mat)?;
        return Ok(Arc::new(image));
    }
    let bytes = mat.data_bytes().map_err(|e| e.to_string())?;
    pool.fill(w, h, format, |dst| {
        if dst.len() != bytes.len() {
            return Err(format!("decoded {} bytes for a {w}x{h} frame", bytes.len()));
        }
        dst.copy_from_slice(bytes);
        Ok(())
    })
}

impl FrameSource for VideoFile {
    fn id(&self) -> &str {
        &self.id
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if let Some((from, to)) = self.gap {
            // Report each missing frame once, then hand out the frame read after the gap.
            if from < to {
                self.gap = Some((from + 1, to));
                return Err(CaptureError::CorruptFrame {
                    source_id: self.id.to_string(),
                    seq: from,
                    reason: "the decoder could not read this frame".into(),
                });
            }
            self.gap = None;
            let f = self.pending.take();
            if let Some(f) = &f {
                self.next_seq = f.seq + 1;
            }
            return Ok(f);
        }
        if self.finished {
            return Ok(None);
        }
        match self.read_one()? {
            Some(f) if f.seq > self.next_seq => {
                self.gap = Some((self.next_seq, f.seq));
                self.pending = Some(f);
                self.next_frame()
            }
            Some(f) => {
                self.next_seq = f.seq + 1;
                Ok(Some(f))
            }
            None => {
                self.finished = true;
                match self.declared {
                    // Containers round their declared count; one frame short is not a truncation.
                    Some(declared) if self.next_seq + 1 < declared => Err(CaptureError::Truncated {
                        source_id: self.id.to_string(),
                        last_seq: self.next_seq.saturating_sub(1),
                        declared,
                        reason: "the file ends early or the rest cannot be decoded".into(),
                    }),
                    _ => Ok(None),
                }
            }
        }
    }

    fn len_hint(&self) -> Option<u64> {
        self.declared
    }
}
