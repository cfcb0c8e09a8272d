//! `vigil-capture` reads frames. A [`FrameSource`] yields [`vigil_frame::Frame`]s in order, each with its
//! 0-based index in the source and its media time; [`open`] picks the source for a path: a [`VideoFile`]
//! (anything OpenCV's FFmpeg backend reads: MJPEG `.mkv`/`.avi`, H.264 `.mp4`, ...) or a [`FrameFolder`]
//! (JPEG/PNG files in name order). [`open_spec`] also opens live sources from a [`SourceSpec`]: a V4L2
//! camera ([`V4l2Camera`], MJPEG or YUYV), an MJPEG stream over HTTP ([`MjpegStream`], multipart/x-mixed-replace
//! as ustreamer and mjpg-streamer serve it), a snapshot URL polled at an interval ([`SnapshotPoller`]) and
//! an RTSP stream ([`RtspStream`]); each live source is wrapped in a [`Reconnecting`] source that reports an
//! outage ([`CaptureError::Outage`]) and reconnects with exponential backoff while the pipeline keeps
//! running. JPEG frames are decoded at a reduced DCT scale when the model input is much smaller than the
//! frame ([`decode_jpeg`]). A frame that cannot be decoded is reported as [`CaptureError::CorruptFrame`],
//! naming the source and frame, and reading goes on; a source that cannot be opened at all is a
//! [`CaptureError::Open`].

mod decode;
mod folder;
mod mjpeg;
mod reconnect;
mod rtsp;
mod snapshot;
mod spec;
mod v4l2;
mod video;

pub use decode::{decode_jpeg, jpeg_size, reduction_for};
pub use folder::FrameFolder;
pub use mjpeg::{MjpegStream, MultipartReader};
pub use reconnect::{Backoff, Reconnecting};
pub use rtsp::RtspStream;
pub use snapshot::SnapshotPoller;
pub use spec::{open_spec, LiveOptions, SourceSpec, V4l2Format};
pub use v4l2::V4l2Camera;
pub use video::VideoFile;

use std::path::{Path, PathBuf};
use vigil_frame::{Frame, Image, PixelFormat};

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
    #[error("OpenCV: {0}")]
    OpenCv(#[from] opencv::Error),
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

/// Opens a video file or a folder of frames.
pub fn open(path: &Path, timing: Timing) -> Result<Box<dyn FrameSource>, CaptureError> {
    if path.is_dir() {
        Ok(Box::new(FrameFolder::open(path, timing)?))
    } else {
        Ok(Box::new(VideoFile::open(path, timing)?))
    }
}

/// Copies a decoded 8-bit OpenCV image (1 or 3 channels, BGR) into an [`Image`].
pub fn image_from_mat(mat: &opencv::core::Mat) -> Result<Image, String> {
    use opencv::core::{MatTraitConst, MatTraitConstManual};
    let (format, w, h) = mat_layout(mat)?;
    let data = if mat.is_continuous() {
        mat.data_bytes().map_err(|e| e.to_string())?.to_vec()
    } else {
        let c = mat.try_clone().map_err(|e| e.to_string())?;
        c.data_bytes().map_err(|e| e.to_string())?.to_vec()
    };
    Image::new(w, h, format, data).map_err(|e| e.to_string())
}

/// The pixel format and size of a decoded 8-bit OpenCV image (1 or 3 channels, BGR); an error for any
/// other type or an empty image.
pub(crate) fn mat_layout(mat: &opencv::core::Mat) -> Result<(PixelFormat, u32, u32), String> {
    use opencv::core::{MatTraitConst, CV_8UC1, CV_8UC3};
    let format = match mat.typ() {
        t if t == CV_8UC3 => PixelFormat::Bgr8,
        t if t == CV_8UC1 => PixelFormat::Gray8,
        t => return Err(format!("unsupported pixel type {t}")),
    };
    let (w, h) = (mat.cols(), mat.rows());
    if w <= 0 || h <= 0 {
        return Err("empty image".into());
    }
    Ok((format, w as u32, h as u32))
}

/// Reads one still image (JPEG or PNG); the error names the file.
pub fn read_image(path: &Path) -> Result<Image, CaptureError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CaptureError::Open { path: path.to_path_buf(), reason: e.to_string() })?;
    decode_image(&bytes, &path.display().to_string(), 0)
}

/// Decodes an encoded JPEG or PNG frame; errors are [`CaptureError::CorruptFrame`] naming `source_id` and `seq`.
pub(crate) fn decode_image(bytes: &[u8], source_id: &str, seq: u64) -> Result<Image, CaptureError> {
    decode_with_flags(bytes, source_id, seq, opencv::imgcodecs::IMREAD_COLOR)
}

/// Decodes with OpenCV's `imdecode` flags (full size or one of the `IMREAD_REDUCED_COLOR_*` scales).
pub(crate) fn decode_with_flags(
    bytes: &[u8],
    source_id: &str,
    seq: u64,
    flags: i32,
) -> Result<Image, CaptureError> {
    use opencv::core::{MatTraitConst, Vector};
    let corrupt =
        |reason: String| CaptureError::CorruptFrame { source_id: source_id.to_string(), seq, reason };
    let mat = opencv::imgcodecs::imdecode(&Vector::<u8>::from_slice(bytes), flags)
        .map_err(|e| corrupt(e.to_string()))?;
    if mat.empty() {
        return Err(corrupt("not a decodable JPEG or PNG image".into()));
    }
    image_from_mat(&mat).map_err(corrupt)
}

pub(crate) fn frame(seq: u64, t: f64, id: &std::sync::Arc<str>, image: Image) -> Frame {
    Frame::new(seq, t, id.clone(), image)
}
