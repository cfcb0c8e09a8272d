//! Source specs: what the user types after `vigil replay` / `vigil run` (or puts in `[source] spec`), and
//! the options live sources are opened with.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::mjpeg::stopped;
use crate::{
    open_scaled, Backoff, CaptureError, FrameSource, MjpegStream, Reconnecting, RtspStream, SnapshotPoller,
    Timing, V4l2Camera,
};

/// Where frames come from.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    /// A video file or a folder of frames.
    Path(PathBuf),
    /// A V4L2 camera device such as `/dev/video0`.
    V4l2 { device: PathBuf },
    /// An MJPEG stream over HTTP(S) (multipart/x-mixed-replace).
    Mjpeg { url: String },
    /// A URL answering one JPEG per request, fetched every `interval_s` seconds.
    Snapshot { url: String, interval_s: f64 },
    /// An RTSP stream (`rtsp://` or `rtsps://`), read through FFmpeg.
    Rtsp { url: String },
}

impl SourceSpec {
    /// Parses a spec: `/dev/videoN` (or any path under /dev), `http(s)://...` (an MJPEG stream, or with
    /// `poll_s` a snapshot URL fetched every `poll_s` seconds), `rtsp://...`, otherwise a file or folder.
    pub fn parse(spec: &str, poll_s: Option<f64>) -> Result<Self, String> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err("empty source".into());
        }
        if let Some(p) = poll_s {
            if !(p > 0.0 && p.is_finite() && p <= 3600.0) {
                return Err(format!("--poll {p}: the interval must be in (0, 3600] seconds"));
            }
        }
        let lower = spec.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Ok(match poll_s {
                Some(interval_s) => SourceSpec::Snapshot { url: spec.into(), interval_s },
                None => SourceSpec::Mjpeg { url: spec.into() },
            });
        }
        if poll_s.is_some() {
            return Err(format!("--poll applies to an http(s) snapshot URL, not to {spec}"));
        }
        if lower.starts_with("rtsp://") || lower.starts_with("rtsps://") {
            return Ok(SourceSpec::Rtsp { url: spec.into() });
        }
        if let Some((scheme, _)) = spec.split_once("://") {
            return Err(format!(
                "unsupported source scheme {scheme}:// (use a path, /dev/videoN, http(s):// or rtsp://)"
            ));
        }
        if spec.starts_with("/dev/") {
            return Ok(SourceSpec::V4l2 { device: spec.into() });
        }
        Ok(SourceSpec::Path(spec.into()))
    }

    /// True for cameras and streams.
    pub fn is_live(&self) -> bool {
        !matches!(self, SourceSpec::Path(_))
    }

    /// The spec as shown in messages and frames: URLs without their user and password.
    pub fn display_id(&self) -> String {
        match self {
            SourceSpec::Path(p) => p.display().to_string(),
            SourceSpec::V4l2 { device } => device.display().to_string(),
            SourceSpec::Mjpeg { url } | SourceSpec::Snapshot { url, .. } | SourceSpec::Rtsp { url } => {
                redact(url)
            }
        }
    }
}

/// A URL without `user:password@`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// Pixel format asked of a V4L2 camera.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum V4l2Format {
    /// Compressed frames (lets vigil decode at reduced scale; most USB cameras give their larger sizes and
    /// higher rates only this way).
    #[default]
    Mjpeg,
    /// Uncompressed 4:2:2.
    Yuyv,
}

impl V4l2Format {
    /// The V4L2 FourCC.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            V4l2Format::Mjpeg => *b"MJPG",
            V4l2Format::Yuyv => *b"YUYV",
        }
    }

    /// The FourCC as the integer V4L2 uses (little-endian characters).
    pub fn fourcc_code(self) -> i32 {
        i32::from_le_bytes(self.fourcc())
    }

    /// Reads back a FourCC integer as text (e.g. "MJPG").
    pub fn fourcc_text(code: i32) -> String {
        code.to_le_bytes().iter().map(|b| if b.is_ascii_graphic() { *b as char } else { '?' }).collect()
    }
}

/// How live sources are opened and kept alive.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Time allowed to connect. Default 5 s.
    pub connect_timeout: Duration,
    /// A connection that delivers nothing for this long is taken as lost. Default 5 s.
    pub stall_timeout: Duration,
    /// Delay between reconnection attempts.
    pub backoff: Backoff,
    /// Decode JPEG frames (live sources, and MJPEG video files opened through [`open_spec`]) at the reduced
    /// DCT scale that keeps the shorter side at least this many pixels (the model input size); `None`
    /// decodes at full size.
    pub decode_min_side: Option<u32>,
    /// V4L2 pixel format, frame size and rate to ask for (the camera may give the nearest it has).
    pub v4l2_format: V4l2Format,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<u32>,
    /// Undecodable frames in a row after which the source is reconnected. Default 10.
    pub max_corrupt_run: u32,
    /// When the first connection fails: true keeps trying (a daemon), false fails at once.
    pub retry_first: bool,
    /// Set by the pipeline to stop: sources check it while waiting.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for LiveOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(5),
            backoff: Backoff::default(),
            decode_min_side: None,
            v4l2_format: V4l2Format::Mjpeg,
            width: None,
            height: None,
            fps: None,
            max_corrupt_run: 10,
            retry_first: false,
            stop: None,
        }
    }
}

/// Opens any source. Files and folders as [`crate::open_scaled`] does (with `opts.decode_min_side`); live sources wrapped in a [`Reconnecting`] source.
/// Unless `opts.retry_first` is set, a live source whose first connection fails is a [`CaptureError::Open`].
pub fn open_spec(
    spec: &SourceSpec,
    timing: Timing,
    opts: &LiveOptions,
) -> Result<Box<dyn FrameSource>, CaptureError> {
    let id = spec.display_id();
    let connect: Box<dyn FnMut() -> Result<Box<dyn FrameSource>, CaptureError> + Send> = match spec.clone() {
        SourceSpec::Path(p) => return open_scaled(&p, timing, opts.decode_min_side),
        SourceSpec::V4l2 { device } => {
            let o = opts.clone();
            Box::new(move || Ok(Box::new(V4l2Camera::open(&device, &o)?) as Box<dyn FrameSource>))
        }
        SourceSpec::Mjpeg { url } => {
            let o = opts.clone();
            Box::new(move || Ok(Box::new(MjpegStream::connect(&url, &o)?) as Box<dyn FrameSource>))
        }
        SourceSpec::Snapshot { url, interval_s } => {
            let o = opts.clone();
            let interval = Duration::from_secs_f64(interval_s);
            Box::new(move || {
                Ok(Box::new(SnapshotPoller::connect(&url, interval, &o)?) as Box<dyn FrameSource>)
            })
        }
        SourceSpec::Rtsp { url } => {
            let o = opts.clone();
            Box::new(move || Ok(Box::new(RtspStream::open(&url, &o)?) as Box<dyn FrameSource>))
        }
    };
    let mut source = Reconnecting::new(id.clone(), connect, opts.clone());
    if !opts.retry_first {
        source.connect_now().map_err(|e| CaptureError::Open {
            path: Path::new(&id).to_path_buf(),
            reason: match e {
                CaptureError::Disconnected { reason, .. } => reason,
                CaptureError::Open { reason, .. } => reason,
                other => other.to_string(),
            },
        })?;
    }
    Ok(Box::new(source))
}

/// Sleeps for `d` in short steps, returning early (false) once `stop` is set.
pub(crate) fn sleep_unless_stopped(d: Duration, stop: &Option<Arc<AtomicBool>>) -> bool {
    let deadline = std::time::Instant::now() + d;
    loop {
        if stopped(stop) {
            return false;
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_spec_is_recognised() {
        let p = |s: &str| SourceSpec::parse(s, None).unwrap();
        assert_eq!(p("fixtures/clip.mkv"), SourceSpec::Path("fixtures/clip.mkv".into()));
        assert_eq!(p("/dev/video0"), SourceSpec::V4l2 { device: "/dev/video0".into() });
        assert_eq!(
            p("http://127.0.0.1:8080/stream"),
            SourceSpec::Mjpeg { url: "http://127.0.0.1:8080/stream".into() }
        );
        assert_eq!(
            p("rtsp://127.0.0.1:8554/cam"),
            SourceSpec::Rtsp { url: "rtsp://127.0.0.1:8554/cam".into() }
        );
        assert_eq!(
            SourceSpec::parse("https://cam.local/snapshot", Some(2.5)).unwrap(),
            SourceSpec::Snapshot { url: "https://cam.local/snapshot".into(), interval_s: 2.5 }
        );
        assert!(p("rtsp://x/y").is_live() && !p("a.mp4").is_live());
    }

    #[test]
    fn bad_specs_are_refused_with_a_reason() {
        assert!(SourceSpec::parse("", None).is_err());
        assert!(SourceSpec::parse("ftp://x/y", None).unwrap_err().contains("ftp://"));
        assert!(SourceSpec::parse("clip.mkv", Some(5.0)).unwrap_err().contains("--poll"));
        assert!(SourceSpec::parse("http://x/s", Some(0.0)).is_err());
        assert!(SourceSpec::parse("http://x/s", Some(f64::NAN)).is_err());
    }

    #[test]
    fn credentials_never_appear_in_the_source_id() {
        let s = SourceSpec::parse("rtsp://admin:secret@127.0.0.1:554/live?x=1", None).unwrap();
        assert_eq!(s.display_id(), "rtsp://127.0.0.1:554/live?x=1");
        assert_eq!(redact("http://127.0.0.1/a@b"), "http://127.0.0.1/a@b");
    }

    #[test]
    fn fourcc_codes_match_v4l2() {
        // V4L2_PIX_FMT_MJPEG = v4l2_fourcc('M','J','P','G') = 0x47504A4D; YUYV = 0x56595559.
        assert_eq!(V4l2Format::Mjpeg.fourcc_code(), 0x4750_4A4D);
        assert_eq!(V4l2Format::Yuyv.fourcc_code(), 0x5659_5559);
        assert_eq!(V4l2Format::fourcc_text(0x5659_5559), "YUYV");
    }
}
