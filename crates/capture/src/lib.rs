//! `vigil-capture` reads frames. A [`FrameSource`] yields [`vigil_frame::Frame`]s in order, each with its
//! 0-based index in the source and its media time; [`open`] / [`open_scaled`] pick the source for a path: a
//! [`VideoFile`] or a [`FrameFolder`] (JPEG/PNG files in name order). MJPEG in Matroska (`.mkv`) is demuxed
//! in-process by a small EBML reader; every other video (H.264 `.mp4`, AVI, ...) is read through an `ffmpeg`
//! child process that writes frames to a pipe. [`open_spec`] also opens live sources from a [`SourceSpec`]:
//! a V4L2 camera ([`V4l2Camera`], MJPEG or YUYV, through `ffmpeg -f v4l2`), an MJPEG stream over HTTP
//! ([`MjpegStream`], multipart/x-mixed-replace as ustreamer and mjpg-streamer serve it), a snapshot URL
//! polled at an interval ([`SnapshotPoller`]) and an RTSP stream ([`RtspStream`], through `ffmpeg`); each
//! live source is wrapped in a [`Reconnecting`] source that reports an outage ([`CaptureError::Outage`])
//! and reconnects with exponential backoff while the pipeline keeps running. JPEG is decoded by
//! libjpeg-turbo's TurboJPEG API ([`JpegDecoder`], [`decode_jpeg`]), at a reduced DCT scale when the model
//! input is much smaller than the frame; PNG by the `image` crate. A frame that cannot be decoded is
//! reported as [`CaptureError::CorruptFrame`], naming the source and frame, and reading goes on; a source
//! that cannot be opened at all is a [`CaptureError::Open`].

mod decode;
mod ffmpeg;
mod folder;
mod mjpeg;
mod mkv;
mod reconnect;
mod rtsp;
mod snapshot;
mod spec;
mod turbo;
mod v4l2;
mod video;

pub(crate) use decode::decode_image;
pub use decode::{decode_jpeg, jpeg_size, reduction_for, JpegDecoder};
pub use folder::FrameFolder;
pub use mjpeg::{MjpegStream, MultipartReader};
pub use reconnect::{Backoff, Reconnecting};
pub use rtsp::RtspStream;
pub use snapshot::SnapshotPoller;
pub use spec::{open_spec, LiveOptions, SourceSpec, V4l2Format};
pub use turbo::Compressor as JpegEncoder;
pub use v4l2::V4l2Camera;
pub use video::{mjpeg_packets, VideoFile};

use std::path::{Path, PathBuf};
use vigil_frame::{Frame, Image};

/// Errors from sources.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The source cannot be opened: reading stops.
    #[error("cannot open {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    /// One frame could not be decoded: it is skipped and reading goes on.
    #[error("{source_id}: frame {seq} skipped: {reason}")]
    CorruptFrame { source_id: String, seq: u64, reason: String },
    /// The source stopped early (e.g. a truncated file): frames read so far stand.
    #[error("{source_id}: ended after frame {last_seq} of {declared} declared frames: {reason}")]
    Truncated { source_id: String, last_seq: u64, declared: u64, reason: String },
    /// A live source was lost (connection refused or closed, stalled, garbage): a [`Reconnecting`] source
    /// turns this into an [`CaptureError::Outage`] and reconnects; a bare live source stops.
    #[error("{source_id}: disconnected: {reason}")]
    Disconnected { source_id: String, reason: String },
    /// A live source went away and is being reconnected with backoff: reading goes on (the next call blocks
    /// until the source is back or the pipeline stops).
    #[error("{source_id}: outage: {reason}; reconnecting")]
    Outage { source_id: String, reason: String },
}

impl CaptureError {
    /// True when reading may go on after this error: a skipped frame, or a truncation (the next call then
    /// reports the end).
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            CaptureError::CorruptFrame { .. } | CaptureError::Truncated { .. } | CaptureError::Outage { .. }
        )
    }
}

/// How media time is derived.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Timing {
    /// From the container's timestamps (video) or one second per frame (folders).
    #[default]
    Media,
    /// Frame `n` is at `n * seconds`, for timelapse footage whose frames are seconds apart in real time.
    Interval(f64),
}

/// A source of frames, read in order.
pub trait FrameSource: Send {
    /// A short name for the source (its path or URL), used in frames and messages.
    fn id(&self) -> &str;
    /// Live sources (cameras, streams) may drop frames when detection is behind; files never do.
    fn is_live(&self) -> bool {
        false
    }
    /// The next frame; `Ok(None)` at the end. After a recoverable error ([`CaptureError::is_recoverable`])
    /// call again for the next frame.
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError>;
    /// Frames the source says it holds, if it knows.
    fn len_hint(&self) -> Option<u64> {
        None
    }
}

/// Opens a video file or a folder of frames, decoded at full size.
pub fn open(path: &Path, timing: Timing) -> Result<Box<dyn FrameSource>, CaptureError> {
    open_scaled(path, timing, None)
}

/// Opens a video file or a folder of frames. With `decode_min_side` (the model input size), JPEG frames of
/// a video (MJPEG) are decoded at the reduced DCT scale that keeps their shorter side at least that many
/// pixels; folders are always read at full size.
pub fn open_scaled(
    path: &Path,
    timing: Timing,
    decode_min_side: Option<u32>,
) -> Result<Box<dyn FrameSource>, CaptureError> {
    if path.is_dir() {
        Ok(Box::new(FrameFolder::open(path, timing)?))
    } else {
        Ok(Box::new(VideoFile::open_scaled(path, timing, decode_min_side)?))
    }
}

/// Reads one still image (JPEG or PNG); the error names the file.
pub fn read_image(path: &Path) -> Result<Image, CaptureError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CaptureError::Open { path: path.to_path_buf(), reason: e.to_string() })?;
    decode_image(&bytes, &path.display().to_string(), 0)
}

pub(crate) fn frame(seq: u64, t: f64, id: &std::sync::Arc<str>, image: Image) -> Frame {
    Frame::new(seq, t, id.clone(), image)
}
