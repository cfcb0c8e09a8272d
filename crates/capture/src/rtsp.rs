//! RTSP streams (H.264, H.265, MJPEG over RTP) through OpenCV's FFmpeg backend, with FFmpeg's own open and
//! read timeouts so a dead server never blocks the reader.

use std::sync::Arc;
use std::time::Instant;

use opencv::core::{Mat, MatTraitConst, Vector};
use opencv::prelude::{VideoCaptureTrait, VideoCaptureTraitConst};
use opencv::videoio::{self, VideoCapture};
use vigil_frame::Frame;

use crate::mjpeg::stopped;
use crate::spec::{redact, LiveOptions};
use crate::{frame, image_from_mat, CaptureError, FrameSource};

/// Time allowed for FFmpeg to probe a stream after connecting.
const PROBE_ALLOWANCE: std::time::Duration = std::time::Duration::from_secs(5);

/// One RTSP session. Ends with [`CaptureError::Disconnected`] when no frame arrives within the stall timeout
/// or the server closes the session.
pub struct RtspStream {
    id: Arc<str>,
    cap: VideoCapture,
    mat: Mat,
    opts: LiveOptions,
    started: Instant,
    seq: u64,
}

impl RtspStream {
    pub fn open(url: &str, opts: &LiveOptions) -> Result<Self, CaptureError> {
        let id: Arc<str> = redact(url).into();
        let lost = |reason: String| CaptureError::Disconnected { source_id: id.to_string(), reason };
        // Opening includes FFmpeg probing the stream, about 2 s for RTP/JPEG: allow for it on top of the
        // connection itself (a timeout that fires during probing leaves the session unreadable).
        let open_ms = (opts.connect_timeout + PROBE_ALLOWANCE).as_millis().min(i32::MAX as u128) as i32;
        let params = Vector::<i32>::from_slice(&[
            videoio::CAP_PROP_OPEN_TIMEOUT_MSEC,
            open_ms,
            videoio::CAP_PROP_READ_TIMEOUT_MSEC,
            opts.stall_timeout.as_millis().min(i32::MAX as u128) as i32,
        ]);
        let cap = VideoCapture::from_file_with_params(url, videoio::CAP_FFMPEG, &params)
            .map_err(|e| lost(e.to_string()))?;
        if !cap.is_opened().map_err(|e| lost(e.to_string()))? {
            return Err(lost("FFmpeg could not open the stream (refused, not found or timed out)".into()));
        }
        Ok(Self { id, cap, mat: Mat::default(), opts: opts.clone(), started: Instant::now(), seq: 0 })
    }
}

impl FrameSource for RtspStream {
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
        let ok = self.cap.read(&mut self.mat).map_err(|e| CaptureError::Disconnected {
            source_id: self.id.to_string(),
            reason: e.to_string(),
        })?;
        if !ok || self.mat.empty() {
            return Err(CaptureError::Disconnected {
                source_id: self.id.to_string(),
                reason: "no frame within the stall timeout, or the server ended the session".into(),
            });
        }
        let seq = self.seq;
        self.seq += 1;
        let image = image_from_mat(&self.mat).map_err(|reason| CaptureError::CorruptFrame {
            source_id: self.id.to_string(),
            seq,
            reason,
        })?;
        Ok(Some(frame(seq, self.started.elapsed().as_secs_f64(), &self.id, image)))
    }
}
