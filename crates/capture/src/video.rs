//! Video files. MJPEG in Matroska (`.mkv`, what printer cameras record and vigil's footage uses) is demuxed
//! in-process ([`crate::mkv`]) and each JPEG decoded by TurboJPEG, at a reduced DCT scale when asked; media
//! time comes from the block timecodes. Anything else (H.264 `.mp4`, AVI, other codecs) is read through an
//! `ffmpeg` child process ([`crate::ffmpeg`]).

use std::path::Path;
use std::sync::Arc;

use vigil_frame::{Frame, ImagePool};

use crate::decode::JpegDecoder;
use crate::ffmpeg::FfmpegFile;
use crate::mkv::{looks_like_matroska, MkvReader, Next};
use crate::{CaptureError, FrameSource, Timing};

/// Pixel buffers kept for reuse: more than the frames the pipeline holds at once (its bounded queues and one
/// frame per stage), so that in the steady state no frame allocates.
const POOLED_FRAMES: usize = 24;

/// A video file. A frame that cannot be decoded keeps its index and is reported as
/// [`CaptureError::CorruptFrame`]; a file that ends before the frame count its header declares, or inside
/// a cluster, is reported as [`CaptureError::Truncated`] after the frames before the cut.
pub struct VideoFile {
    id: Arc<str>,
    inner: Inner,
    timing: Timing,
    next_seq: u64,
    finished: bool,
}

enum Inner {
    Mkv { demux: Box<MkvReader>, jpeg: JpegDecoder, pool: ImagePool, buf: Vec<u8> },
    Ffmpeg(Box<FfmpegFile>),
}

impl VideoFile {
    /// Opens a file, decoding frames at full size.
    pub fn open(path: &Path, timing: Timing) -> Result<Self, CaptureError> {
        Self::open_scaled(path, timing, None)
    }

    /// Opens a file; with `decode_min_side`, JPEG frames (MJPEG video) are decoded at the reduced DCT scale
    /// that keeps the shorter side at least that many pixels ([`crate::reduction_for`]).
    pub fn open_scaled(
        path: &Path,
        timing: Timing,
        decode_min_side: Option<u32>,
    ) -> Result<Self, CaptureError> {
        let open_err = |reason: String| CaptureError::Open { path: path.to_path_buf(), reason };
        if !path.is_file() {
            return Err(open_err("no such file".into()));
        }
        let mkv = looks_like_matroska(path).then(|| MkvReader::open(path)).and_then(Result::ok);
        let inner = match mkv {
            Some(demux) if demux.info.codec_id == "V_MJPEG" => Inner::Mkv {
                demux: Box::new(demux),
                jpeg: JpegDecoder::new(decode_min_side).map_err(open_err)?,
                pool: ImagePool::new(POOLED_FRAMES),
                buf: Vec::new(),
            },
            // Other codecs in Matroska, other containers, and Matroska files this reader does not follow.
            _ => Inner::Ffmpeg(Box::new(
                FfmpegFile::open(path, timing, decode_min_side)
                    .map_err(|e| open_err(format!("not a video ffmpeg can read: {e}")))?,
            )),
        };
        Ok(Self { id: path.display().to_string().into(), inner, timing, next_seq: 0, finished: false })
    }

    /// Frames per second the container declares (0 when unknown).
    pub fn fps(&self) -> f64 {
        match &self.inner {
            Inner::Mkv { demux, .. } => demux.info.fps(),
            Inner::Ffmpeg(f) => f.fps(),
        }
    }

    fn declared(&self) -> Option<u64> {
        match &self.inner {
            Inner::Mkv { demux, .. } => demux.info.declared_frames(),
            Inner::Ffmpeg(f) => f.declared(),
        }
    }

    fn truncated(&self, declared: Option<u64>, reason: String) -> CaptureError {
        CaptureError::Truncated {
            source_id: self.id.to_string(),
            last_seq: self.next_seq.saturating_sub(1),
            declared: declared.unwrap_or(self.next_seq + 1),
            reason,
        }
    }
}

impl FrameSource for VideoFile {
    fn id(&self) -> &str {
        &self.id
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if self.finished {
            return Ok(None);
        }
        let declared = self.declared();
        let Inner::Mkv { demux, jpeg, pool, buf } = &mut self.inner else {
            let Inner::Ffmpeg(f) = &mut self.inner else { return Ok(None) };
            return f.next_frame();
        };
        let next = demux.next_packet(buf);
        let (offset, t) = match next {
            Ok(Next::Packet { offset, t }) => (offset, t),
            Ok(Next::End) => {
                self.finished = true;
                // Containers round their declared count; one frame short is not a truncation.
                return match declared {
                    Some(d) if self.next_seq + 1 < d => Err(self
                        .truncated(declared, "the file ends before the frames its header declares".into())),
                    _ => Ok(None),
                };
            }
            Ok(Next::Cut { in_cluster, reason }) => {
                self.finished = true;
                let short = declared.is_some_and(|d| self.next_seq + 1 < d);
                return if in_cluster || short { Err(self.truncated(declared, reason)) } else { Ok(None) };
            }
            Err(reason) => {
                self.finished = true;
                return Err(self.truncated(declared, format!("unreadable container data: {reason}")));
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let t = match self.timing {
            Timing::Interval(s) => seq as f64 * s,
            Timing::Media => t,
        };
        let image = jpeg
            .decode_pooled(&buf[offset..], pool)
            .map_err(|reason| CaptureError::CorruptFrame { source_id: self.id.to_string(), seq, reason })?;
        Ok(Some(Frame::from_shared(seq, t, self.id.clone(), image)))
    }

    fn len_hint(&self) -> Option<u64> {
        self.declared()
    }
}

/// Up to `max` JPEG frames of an MJPEG Matroska file, as stored (for measuring decoding on its own); empty
/// for any other file.
pub fn mjpeg_packets(path: &Path, max: usize) -> Result<Vec<Vec<u8>>, CaptureError> {
    let open_err = |reason: String| CaptureError::Open { path: path.to_path_buf(), reason };
    if !looks_like_matroska(path) {
        return Ok(Vec::new());
    }
    let mut demux = MkvReader::open(path).map_err(open_err)?;
    if demux.info.codec_id != "V_MJPEG" {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while out.len() < max {
        match demux.next_packet(&mut buf).map_err(open_err)? {
            Next::Packet { offset, .. } => out.push(buf[offset..].to_vec()),
            Next::End | Next::Cut { .. } => break,
        }
    }
    Ok(out)
}
