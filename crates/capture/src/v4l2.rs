//! V4L2 cameras (`/dev/videoN`) through OpenCV's V4L2 backend: the pixel format (MJPEG or YUYV), frame size
//! and rate are asked for when the device is opened, and what the driver actually gave is read back and
//! logged. MJPEG frames are taken undecoded from the driver and decoded by vigil, at reduced DCT scale when
//! the model input is much smaller than the frame.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use opencv::core::{Mat, MatTraitConst, MatTraitConstManual, Vector, CV_8UC1};
use opencv::prelude::{VideoCaptureTrait, VideoCaptureTraitConst};
use opencv::videoio::{self, VideoCapture};
use tracing::{info, warn};
use vigil_frame::Frame;

use crate::mjpeg::stopped;
use crate::spec::{LiveOptions, V4l2Format};
use crate::{decode_jpeg, frame, image_from_mat, CaptureError, FrameSource};

/// What the driver agreed to.
#[derive(Clone, Debug, PartialEq)]
pub struct Negotiated {
    pub fourcc: String,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
}

/// The `VideoCapture` open parameters asking for `opts`' format, size and rate.
pub(crate) fn open_params(opts: &LiveOptions) -> Vec<i32> {
    let mut p = vec![videoio::CAP_PROP_FOURCC, opts.v4l2_format.fourcc_code()];
    if let Some(w) = opts.width {
        p.extend([videoio::CAP_PROP_FRAME_WIDTH, w as i32]);
    }
    if let Some(h) = opts.height {
        p.extend([videoio::CAP_PROP_FRAME_HEIGHT, h as i32]);
    }
    if let Some(f) = opts.fps {
        p.extend([videoio::CAP_PROP_FPS, f as i32]);
    }
    if opts.v4l2_format == V4l2Format::Mjpeg {
        // Hand over the compressed frame so it can be decoded at reduced scale.
        p.extend([videoio::CAP_PROP_CONVERT_RGB, 0]);
    }
    p
}

/// A V4L2 camera.
pub struct V4l2Camera {
    id: Arc<str>,
    cap: VideoCapture,
    mat: Mat,
    opts: LiveOptions,
    negotiated: Negotiated,
    started: Instant,
    seq: u64,
}

impl V4l2Camera {
    pub fn open(device: &Path, opts: &LiveOptions) -> Result<Self, CaptureError> {
        let id: Arc<str> = device.display().to_string().into();
        let lost = |reason: String| CaptureError::Disconnected { source_id: id.to_string(), reason };
        if !device.exists() {
            return Err(lost("no such device".into()));
        }
        let params = Vector::<i32>::from_slice(&open_params(opts));
        let cap = VideoCapture::from_file_with_params(device.as_os_str(), videoio::CAP_V4L2, &params)
            .map_err(|e| lost(e.to_string()))?;
        if !cap.is_opened().map_err(|e| lost(e.to_string()))? {
            return Err(lost("not a V4L2 capture device, or busy".into()));
        }
        let get = |p| cap.get(p).unwrap_or(0.0);
        let negotiated = Negotiated {
            fourcc: V4l2Format::fourcc_text(get(videoio::CAP_PROP_FOURCC) as i32),
            width: get(videoio::CAP_PROP_FRAME_WIDTH) as u32,
            height: get(videoio::CAP_PROP_FRAME_HEIGHT) as u32,
            fps: get(videoio::CAP_PROP_FPS),
        };
        let asked = std::str::from_utf8(&opts.v4l2_format.fourcc()).unwrap_or("?").to_string();
        if negotiated.fourcc != asked
            || opts.width.is_some_and(|w| w != negotiated.width)
            || opts.height.is_some_and(|h| h != negotiated.height)
        {
            warn!(
                "{id}: asked for {asked} {:?}x{:?}, the driver gave {negotiated:?}",
                opts.width, opts.height
            );
        } else {
            info!("{id}: {negotiated:?}");
        }
        Ok(Self {
            id,
            cap,
            mat: Mat::default(),
            opts: opts.clone(),
            negotiated,
            started: Instant::now(),
            seq: 0,
        })
    }

    /// The format, size and rate the driver gave.
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
        if stopped(&self.opts.stop) {
            return Ok(None);
        }
        let lost = |reason: String| CaptureError::Disconnected { source_id: self.id.to_string(), reason };
        if !self.cap.read(&mut self.mat).map_err(|e| lost(e.to_string()))? || self.mat.empty() {
            return Err(lost("the device gave no frame (unplugged or stalled)".into()));
        }
        let seq = self.seq;
        self.seq += 1;
        let t = self.started.elapsed().as_secs_f64();
        // A single row of bytes is the undecoded MJPEG frame; otherwise OpenCV converted it to BGR.
        let image = if self.mat.typ() == CV_8UC1 && self.mat.rows() == 1 {
            let bytes = self.mat.data_bytes().map_err(|e| lost(e.to_string()))?.to_vec();
            decode_jpeg(&bytes, &self.id, seq, self.opts.decode_min_side)?
        } else {
            image_from_mat(&self.mat).map_err(|reason| CaptureError::CorruptFrame {
                source_id: self.id.to_string(),
                seq,
                reason,
            })?
        };
        Ok(Some(frame(seq, t, &self.id, image)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_parameters_ask_for_format_size_and_rate() {
        let opts =
            LiveOptions { width: Some(1280), height: Some(720), fps: Some(15), ..LiveOptions::default() };
        let p = open_params(&opts);
        let pairs: Vec<(i32, i32)> = p.chunks(2).map(|c| (c[0], c[1])).collect();
        assert!(pairs.contains(&(videoio::CAP_PROP_FOURCC, 0x4750_4A4D)));
        assert!(pairs.contains(&(videoio::CAP_PROP_FRAME_WIDTH, 1280)));
        assert!(pairs.contains(&(videoio::CAP_PROP_FRAME_HEIGHT, 720)));
        assert!(pairs.contains(&(videoio::CAP_PROP_FPS, 15)));
        assert!(pairs.contains(&(videoio::CAP_PROP_CONVERT_RGB, 0)));
        let yuyv = open_params(&LiveOptions { v4l2_format: V4l2Format::Yuyv, ..LiveOptions::default() });
        assert_eq!(yuyv, vec![videoio::CAP_PROP_FOURCC, 0x5659_5559]);
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
