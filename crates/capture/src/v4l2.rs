//! V4L2 cameras (`/dev/videoN`) through an `ffmpeg` child process (`-f v4l2`): the pixel format (MJPEG or
//! YUYV), frame size and rate are asked for when the device is opened. MJPEG frames are passed through
//! undecoded (`-c:v copy`) and decoded by vigil, at reduced DCT scale when the model input is much smaller
//! than the frame; YUYV frames are converted by FFmpeg.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};
use vigil_frame::Frame;

use crate::ffmpeg::{FfmpegLive, Output};
use crate::spec::{LiveOptions, V4l2Format};
use crate::{CaptureError, FrameSource};

/// The character-device major number of video4linux devices.
const V4L2_MAJOR: u64 = 81;

/// Time allowed for FFmpeg to open the device and start streaming.
const START_ALLOWANCE: Duration = Duration::from_secs(3);

/// What the camera gave.
#[derive(Clone, Debug, PartialEq)]
pub struct Negotiated {
    pub fourcc: String,
    pub width: u32,
    pub height: u32,
    /// The rate asked for (0 when none was): FFmpeg does not report the driver's.
    pub fps: f64,
}

/// The `ffmpeg` input options asking for `opts`' format, size and rate, and the output it is read as.
pub(crate) fn ffmpeg_args(device: &Path, opts: &LiveOptions) -> (Vec<OsString>, Output) {
    let mut args: Vec<OsString> =
        ["-hide_banner", "-nostdin", "-loglevel", "error", "-f", "v4l2"].iter().map(OsString::from).collect();
    let input_format = match opts.v4l2_format {
        V4l2Format::Mjpeg => "mjpeg",
        V4l2Format::Yuyv => "yuyv422",
    };
    args.extend(["-input_format", input_format].iter().map(OsString::from));
    if let (Some(w), Some(h)) = (opts.width, opts.height) {
        args.extend(["-video_size".into(), format!("{w}x{h}").into()]);
    }
    if let Some(f) = opts.fps {
        args.extend(["-framerate".into(), f.to_string().into()]);
    }
    args.push("-i".into());
    args.push(device.as_os_str().to_owned());
    args.extend(["-map", "0:v:0"].iter().map(OsString::from));
    let output = match opts.v4l2_format {
        // Hand over the compressed frame so it can be decoded at reduced scale.
        V4l2Format::Mjpeg => Output::Mjpeg,
        V4l2Format::Yuyv => Output::Ppm,
    };
    args.extend(output.args().into_iter().map(OsString::from));
    (args, output)
}

/// Refuses a path that is not a video4linux character device.
fn check_device(device: &Path) -> Result<(), String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(device).map_err(|_| "no such device".to_string())?;
    let major = (meta.rdev() >> 8) & 0xfff;
    if !meta.file_type().is_char_device() || major != V4L2_MAJOR {
        return Err("not a V4L2 capture device".into());
    }
    Ok(())
}

/// A V4L2 camera.
pub struct V4l2Camera {
    id: Arc<str>,
    live: FfmpegLive,
    negotiated: Negotiated,
}

impl V4l2Camera {
    pub fn open(device: &Path, opts: &LiveOptions) -> Result<Self, CaptureError> {
        let id: Arc<str> = device.display().to_string().into();
        let lost = |reason: String| CaptureError::Disconnected { source_id: id.to_string(), reason };
        check_device(device).map_err(lost)?;
        let (args, output) = ffmpeg_args(device, opts);
        let live = FfmpegLive::start(
            id.clone(),
            &args,
            output,
            None,
            opts.connect_timeout + START_ALLOWANCE,
            opts.stall_timeout,
            opts.decode_min_side,
            opts.stop.clone(),
        )
        .map_err(|reason| lost(format!("not a V4L2 capture device, busy, or no frame: {reason}")))?;
        let (width, height) = live.first_size().unwrap_or((0, 0));
        let asked = std::str::from_utf8(&opts.v4l2_format.fourcc()).unwrap_or("?").to_string();
        let negotiated = Negotiated { fourcc: asked, width, height, fps: opts.fps.map_or(0.0, f64::from) };
        if opts.width.is_some_and(|w| w != width) || opts.height.is_some_and(|h| h != height) {
            warn!("{id}: asked for {:?}x{:?}, the camera gives {negotiated:?}", opts.width, opts.height);
        } else {
            info!("{id}: {negotiated:?}");
        }
        Ok(Self { id, live, negotiated })
    }

    /// The format, size and rate the camera gave.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }
}

impl FrameSource for V4l2Camera {
    fn id(&self) -> &str {
        &self.id
    }

    fn is_live(&self) -> bool {
        true
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        self.live.next_frame()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(args: &[OsString]) -> String {
        args.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn the_open_parameters_ask_for_format_size_and_rate() {
        let opts =
            LiveOptions { width: Some(1280), height: Some(720), fps: Some(15), ..LiveOptions::default() };
        let (args, output) = ffmpeg_args(Path::new("/dev/video0"), &opts);
        let t = text(&args);
        assert!(
            t.contains("-f v4l2 -input_format mjpeg -video_size 1280x720 -framerate 15 -i /dev/video0"),
            "{t}"
        );
        assert!(t.contains("-c:v copy -f mjpeg pipe:1"), "{t}");
        assert_eq!(output, Output::Mjpeg);
        let yuyv = LiveOptions { v4l2_format: V4l2Format::Yuyv, ..LiveOptions::default() };
        let (args, output) = ffmpeg_args(Path::new("/dev/video0"), &yuyv);
        let t = text(&args);
        assert!(t.contains("-input_format yuyv422 -i /dev/video0") && !t.contains("-video_size"), "{t}");
        assert_eq!(output, Output::Ppm);
    }

    #[test]
    fn a_missing_or_non_camera_device_is_refused_by_name() {
        let e = V4l2Camera::open(Path::new("/dev/video-none-here"), &LiveOptions::default()).err().unwrap();
        assert!(
            e.to_string().contains("/dev/video-none-here") && e.to_string().contains("no such device"),
            "{e}"
        );
        let e = V4l2Camera::open(Path::new("/dev/null"), &LiveOptions::default()).err().unwrap();
        assert!(matches!(e, CaptureError::Disconnected { .. }), "{e}");
    }
}
