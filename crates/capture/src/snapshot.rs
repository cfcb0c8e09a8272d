//! A snapshot URL (ustreamer's `/snapshot`, mjpg-streamer's `?action=snapshot`, a camera's still-image
//! endpoint) fetched at a fixed interval.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_frame::Frame;

use crate::spec::{redact, sleep_unless_stopped, LiveOptions};
use crate::{decode_jpeg, frame, CaptureError, FrameSource};

/// Largest snapshot accepted.
const MAX_SNAPSHOT: u64 = 16 * 1024 * 1024;

/// Fetches one JPEG per interval. A request that fails (refused, timed out, an HTTP error status) ends the
/// source with [`CaptureError::Disconnected`]; a body that is not an image is a corrupt frame.
pub struct SnapshotPoller {
    id: Arc<str>,
    url: String,
    agent: ureq::Agent,
    interval: Duration,
    opts: LiveOptions,
    next_due: Instant,
    started: Instant,
    seq: u64,
}

impl SnapshotPoller {
    /// Fetches the first snapshot's headers to check the URL answers, then polls every `interval`.
    pub fn connect(url: &str, interval: Duration, opts: &LiveOptions) -> Result<Self, CaptureError> {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(opts.connect_timeout)
            .timeout_read(opts.stall_timeout)
            .build();
        let now = Instant::now();
        Ok(Self {
            id: redact(url).into(),
            url: url.to_string(),
            agent,
            interval,
            opts: opts.clone(),
            next_due: now,
            started: now,
            seq: 0,
        })
    }

    fn fetch(&self) -> Result<Vec<u8>, String> {
        let resp = self.agent.get(&self.url).call().map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        resp.into_reader().take(MAX_SNAPSHOT).read_to_end(&mut body).map_err(|e| e.to_string())?;
        Ok(body)
    }
}

impl FrameSource for SnapshotPoller {
    fn id(&self) -> &str {
        &self.id
    }

    fn is_live(&self) -> bool {
        true
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        let wait = self.next_due.saturating_duration_since(Instant::now());
        if !sleep_unless_stopped(wait, &self.opts.stop) {
            return Ok(None);
        }
        self.next_due = Instant::now() + self.interval;
        let body = self
            .fetch()
            .map_err(|reason| CaptureError::Disconnected { source_id: self.id.to_string(), reason })?;
        let seq = self.seq;
        self.seq += 1;
        let t = self.started.elapsed().as_secs_f64();
        let image = decode_jpeg(&body, &self.id, seq, self.opts.decode_min_side)?;
        Ok(Some(frame(seq, t, &self.id, image)))
    }
}
