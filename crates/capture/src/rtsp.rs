//! RTSP streams (H.264, H.265, MJPEG over RTP) through an `ffmpeg` child process: RTP over TCP, FFmpeg's
//! socket timeout so a dead server never blocks it, and vigil's own stall timeout on the frames it writes.

use std::ffi::OsString;
use std::sync::Arc;

use vigil_frame::Frame;

use crate::ffmpeg::{FfmpegLive, Output};
use crate::spec::{redact, LiveOptions};
use crate::{CaptureError, FrameSource};

/// Time allowed for FFmpeg to probe a stream after connecting.
const PROBE_ALLOWANCE: std::time::Duration = std::time::Duration::from_secs(5);

/// The `ffmpeg` arguments reading `url` into PPM pictures on standard output.
pub(crate) fn ffmpeg_args(url: &str, opts: &LiveOptions) -> Vec<OsString> {
    // FFmpeg's socket I/O timeout, in microseconds: the connection itself may take connect_timeout.
    let timeout_us = opts.connect_timeout.max(opts.stall_timeout).as_micros().max(1).to_string();
    let mut args: Vec<OsString> = [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-rtsp_transport",
        "tcp",
        "-timeout",
        &timeout_us,
        "-fflags",
        "nobuffer",
        "-i",
        url,
        "-map",
        "0:v:0",
        "-an",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.extend(Output::Ppm.args().into_iter().map(OsString::from));
    args
}

/// One RTSP session. Ends with [`CaptureError::Disconnected`] when no frame arrives within the stall timeout
/// or the server closes the session.
pub struct RtspStream {
    id: Arc<str>,
    live: FfmpegLive,
}

impl RtspStream {
    pub fn open(url: &str, opts: &LiveOptions) -> Result<Self, CaptureError> {
        let id: Arc<str> = redact(url).into();
        let lost = |reason: String| CaptureError::Disconnected { source_id: id.to_string(), reason };
        // Opening includes FFmpeg probing the stream, about 2 s for RTP/JPEG: allow for it on top of the
        // connection itself.
        let live = FfmpegLive::start(
            id.clone(),
            &ffmpeg_args(url, opts),
            Output::Ppm,
            Some((url.to_string(), id.to_string())),
            opts.connect_timeout + PROBE_ALLOWANCE,
            opts.stall_timeout,
            opts.decode_min_side,
            opts.stop.clone(),
        )
        .map_err(|reason| lost(format!("cannot read the stream: {reason}")))?;
        Ok(Self { id, live })
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
        self.live.next_frame()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtsp_is_read_over_tcp_with_a_socket_timeout() {
        let opts = LiveOptions::default();
        let args: Vec<String> = ffmpeg_args("rtsp://127.0.0.1:8554/cam", &opts)
            .iter()
            .map(|a| a.to_string_lossy().into())
            .collect();
        let joined = args.join(" ");
        assert!(joined.contains("-rtsp_transport tcp -timeout 5000000"), "{joined}");
        assert!(joined.contains("-i rtsp://127.0.0.1:8554/cam"), "{joined}");
        assert!(joined.ends_with("pipe:1"), "{joined}");
    }
}
