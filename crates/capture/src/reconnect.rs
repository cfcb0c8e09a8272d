//! Keeps a live source alive: when it drops, stalls or sends garbage, report one outage and reconnect with
//! exponential backoff until it is back or the pipeline stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info};
use vigil_frame::Frame;

use crate::mjpeg::stopped;
use crate::spec::{sleep_unless_stopped, LiveOptions};
use crate::{CaptureError, FrameSource};

/// Delay before each reconnection attempt: `min`, doubling after each failed attempt up to `max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { min: Duration::from_millis(500), max: Duration::from_secs(30) }
    }
}

impl Backoff {
    /// The delay after `delay`.
    pub fn next(&self, delay: Duration) -> Duration {
        (delay * 2).clamp(self.min, self.max.max(self.min))
    }
}

type Connect = Box<dyn FnMut() -> Result<Box<dyn FrameSource>, CaptureError> + Send>;

/// A live source that survives losing its connection. Frames are numbered across connections, and their
/// media time is wall-clock seconds since the source was created. When the connection is lost (or the first
/// one fails) `next_frame` returns one [`CaptureError::Outage`]; the following call blocks, trying again
/// after `backoff.min`, then doubling up to `backoff.max`, until a frame arrives or the stop flag is set.
pub struct Reconnecting {
    id: Arc<str>,
    connect: Connect,
    inner: Option<Box<dyn FrameSource>>,
    opts: LiveOptions,
    delay: Duration,
    lost_at: Option<Instant>,
    corrupt_run: u32,
    seq: u64,
    started: Instant,
    attempts: u64,
}

impl Reconnecting {
    pub fn new(id: impl Into<Arc<str>>, connect: Connect, opts: LiveOptions) -> Self {
        let delay = opts.backoff.min;
        Self {
            id: id.into(),
            connect,
            inner: None,
            opts,
            delay,
            lost_at: None,
            corrupt_run: 0,
            seq: 0,
            started: Instant::now(),
            attempts: 0,
        }
    }

    /// Connects now (used to fail fast on the first connection).
    pub fn connect_now(&mut self) -> Result<(), CaptureError> {
        self.attempts += 1;
        self.inner = Some((self.connect)()?);
        Ok(())
    }

    /// Connection attempts made so far.
    pub fn attempts(&self) -> u64 {
        self.attempts
    }

    fn lose(&mut self, reason: String) -> CaptureError {
        self.inner = None;
        self.corrupt_run = 0;
        self.lost_at = Some(Instant::now());
        self.delay = self.opts.backoff.min;
        CaptureError::Outage { source_id: self.id.to_string(), reason }
    }
}

impl FrameSource for Reconnecting {
    fn id(&self) -> &str {
        &self.id
    }

    fn is_live(&self) -> bool {
        true
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        loop {
            if stopped(&self.opts.stop) {
                return Ok(None);
            }
            let Some(inner) = self.inner.as_mut() else {
                if self.lost_at.is_some() {
                    if !sleep_unless_stopped(self.delay, &self.opts.stop) {
                        return Ok(None);
                    }
                    self.delay = self.opts.backoff.next(self.delay);
                }
                self.attempts += 1;
                match (self.connect)() {
                    Ok(s) => {
                        if let Some(at) = self.lost_at.take() {
                            info!("{}: reconnected after {:.1} s", self.id, at.elapsed().as_secs_f64());
                        }
                        self.delay = self.opts.backoff.min;
                        self.inner = Some(s);
                    }
                    Err(e) => {
                        if self.lost_at.is_none() {
                            return Err(self.lose(e.to_string()));
                        }
                        debug!(
                            "{}: still unavailable ({e}); next try in {:.1} s",
                            self.id,
                            self.delay.as_secs_f64()
                        );
                    }
                }
                continue;
            };
            match inner.next_frame() {
                Ok(Some(mut f)) => {
                    self.corrupt_run = 0;
                    f.seq = self.seq;
                    f.t = self.started.elapsed().as_secs_f64();
                    f.source = self.id.clone();
                    self.seq += 1;
                    return Ok(Some(f));
                }
                Ok(None) => return Err(self.lose("the stream ended".into())),
                Err(CaptureError::CorruptFrame { reason, .. }) => {
                    let seq = self.seq;
                    self.seq += 1;
                    self.corrupt_run += 1;
                    if self.corrupt_run >= self.opts.max_corrupt_run.max(1) {
                        let n = self.corrupt_run;
                        return Err(self.lose(format!("{n} undecodable frames in a row ({reason})")));
                    }
                    return Err(CaptureError::CorruptFrame { source_id: self.id.to_string(), seq, reason });
                }
                Err(CaptureError::Disconnected { reason, .. }) => return Err(self.lose(reason)),
                Err(e) => return Err(self.lose(e.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use vigil_frame::{Image, PixelFormat};

    /// A scripted connection: yields its frames and errors, then ends.
    struct Script(VecDeque<Result<Option<Frame>, CaptureError>>);

    impl FrameSource for Script {
        fn id(&self) -> &str {
            "script"
        }
        fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
            self.0.pop_front().unwrap_or(Ok(None))
        }
    }

    fn f() -> Result<Option<Frame>, CaptureError> {
        Ok(Some(Frame::new(99, 99.0, "x".into(), Image::filled(2, 2, PixelFormat::Gray8, 0))))
    }

    fn opts() -> LiveOptions {
        LiveOptions {
            backoff: Backoff { min: Duration::from_millis(10), max: Duration::from_millis(40) },
            max_corrupt_run: 3,
            ..LiveOptions::default()
        }
    }

    #[test]
    fn a_dropped_stream_is_one_outage_then_frames_go_on_with_continuous_numbers() {
        // Connection 1: two frames, then the stream ends. Attempt 2 fails, attempt 3 gives one frame.
        let plan = Mutex::new(VecDeque::from(vec![Some(vec![f(), f()]), None, Some(vec![f()])]));
        let connect: Connect = Box::new(move || match plan.lock().unwrap().pop_front().flatten() {
            Some(frames) => Ok(Box::new(Script(frames.into())) as Box<dyn FrameSource>),
            None => Err(CaptureError::Disconnected { source_id: "s".into(), reason: "refused".into() }),
        });
        let mut s = Reconnecting::new("cam", connect, opts());
        assert_eq!(s.next_frame().unwrap().unwrap().seq, 0);
        assert_eq!(s.next_frame().unwrap().unwrap().seq, 1);
        let e = s.next_frame().unwrap_err();
        assert!(matches!(e, CaptureError::Outage { .. }) && e.is_recoverable(), "{e}");
        let started = Instant::now();
        let f3 = s.next_frame().unwrap().unwrap();
        assert_eq!((f3.seq, &*f3.source), (2, "cam"));
        // Waited 10 ms, failed, waited 20 ms: at least 30 ms of backoff.
        assert!(started.elapsed() >= Duration::from_millis(30), "{:?}", started.elapsed());
        assert_eq!(s.attempts(), 3);
    }

    #[test]
    fn a_run_of_garbage_frames_forces_a_reconnect() {
        let corrupt =
            || Err(CaptureError::CorruptFrame { source_id: "x".into(), seq: 0, reason: "bad".into() });
        let mut conns = VecDeque::from(vec![vec![corrupt(), corrupt(), corrupt()], vec![f()]]);
        let connect: Connect = Box::new(move || {
            let frames = conns.pop_front().unwrap_or_default();
            Ok(Box::new(Script(frames.into())) as Box<dyn FrameSource>)
        });
        let mut s = Reconnecting::new("cam", connect, opts());
        assert!(matches!(s.next_frame(), Err(CaptureError::CorruptFrame { seq: 0, .. })));
        assert!(matches!(s.next_frame(), Err(CaptureError::CorruptFrame { seq: 1, .. })));
        let e = s.next_frame().unwrap_err();
        assert!(e.to_string().contains("3 undecodable frames in a row"), "{e}");
        assert_eq!(s.next_frame().unwrap().unwrap().seq, 3);
    }

    #[test]
    fn the_stop_flag_ends_the_wait_for_a_dead_source() {
        let stop = Arc::new(AtomicBool::new(false));
        let mut o = opts();
        o.backoff = Backoff { min: Duration::from_secs(5), max: Duration::from_secs(5) };
        o.stop = Some(stop.clone());
        let connect: Connect =
            Box::new(|| Err(CaptureError::Disconnected { source_id: "s".into(), reason: "refused".into() }));
        let mut s = Reconnecting::new("cam", connect, o);
        assert!(matches!(s.next_frame(), Err(CaptureError::Outage { .. })));
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            stop.store(true, Ordering::Relaxed);
        });
        let started = Instant::now();
        assert!(s.next_frame().unwrap().is_none());
        assert!(started.elapsed() < Duration::from_secs(2));
        t.join().unwrap();
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let b = Backoff { min: Duration::from_millis(500), max: Duration::from_secs(2) };
        assert_eq!(b.next(Duration::from_millis(500)), Duration::from_secs(1));
        assert_eq!(b.next(Duration::from_secs(1)), Duration::from_secs(2));
        assert_eq!(b.next(Duration::from_secs(2)), Duration::from_secs(2));
    }
}
