//! The stage threads.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use tracing::{error, info, warn};
use vigil_capture::{CaptureError, FrameSource};
use vigil_detect::judge::FrameQuality;
use vigil_detect::{Detection, Detector, Event, Judge};
use vigil_frame::Frame;

use crate::perf::{peak_rss_kb, Histogram};

/// What each stage has done so far. Shared by the stages and read by whoever prints the summary.
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames the source delivered.
    pub read: AtomicU64,
    /// Frames the source could not decode (skipped, named in a warning).
    pub corrupt: AtomicU64,
    /// Sources that ended before their declared length.
    pub truncated: AtomicU64,
    /// Frames dropped because detection was behind (live sources only).
    pub dropped: AtomicU64,
    /// Frames the detector scored.
    pub analysed: AtomicU64,
    /// Frames the detector failed on (named in a warning).
    pub detect_errors: AtomicU64,
    /// Events raised.
    pub events: AtomicU64,
    /// Total time in the detector (preprocessing and inference), microseconds.
    pub detect_us: AtomicU64,
    /// Total time in the model alone, microseconds.
    pub infer_us: AtomicU64,
    /// Scrubbed snapshots handed on to telemetry (consent on only).
    pub snapshots_kept: AtomicU64,
    /// Snapshots the privacy filter dropped (named in a warning).
    pub snapshots_dropped: AtomicU64,
    /// Event bundles written to the spool.
    pub bundles: AtomicU64,
    /// Event bundles the spool refused (full disk, quota, ...).
    pub bundle_errors: AtomicU64,
    /// Times a live source was lost (dropped, stalled, garbage) and reconnection began.
    pub outages: AtomicU64,
    /// Total time live sources were down, microseconds (outages that ended).
    pub outage_us: AtomicU64,
    /// True while a live source is down.
    pub source_down: AtomicBool,
    /// The last frame's score (f32 bits).
    pub last_score_bits: AtomicU32,
    /// The last frame's model time, microseconds.
    pub last_infer_us: AtomicU64,
    /// Detector time per frame (preprocessing and inference).
    pub detect_time: Histogram,
    /// Time between one frame leaving the detector and the next: the whole pipeline's cost per frame when
    /// detection is the bottleneck (as it is on one core).
    pub frame_interval: Histogram,
    fatal: Mutex<Option<String>>,
}

impl Counters {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_snapshot_kept(&self) {
        Self::add(&self.snapshots_kept, 1);
    }

    pub(crate) fn add_snapshot_dropped(&self) {
        Self::add(&self.snapshots_dropped, 1);
    }

    pub(crate) fn add_bundle(&self) {
        Self::add(&self.bundles, 1);
    }

    pub(crate) fn add_bundle_error(&self) {
        Self::add(&self.bundle_errors, 1);
    }

    /// The last analysed frame's score (0 before the first).
    pub fn last_score(&self) -> f32 {
        f32::from_bits(self.last_score_bits.load(Ordering::Relaxed))
    }

    /// The error that stopped the source early, if one did.
    pub fn fatal(&self) -> Option<String> {
        self.fatal.lock().ok().and_then(|g| g.clone())
    }

    fn set_fatal(&self, msg: String) {
        if let Ok(mut g) = self.fatal.lock() {
            g.get_or_insert(msg);
        }
    }

    /// A snapshot of the counters.
    pub fn summary(&self, wall: Duration) -> Summary {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let analysed = get(&self.analysed);
        let per = |us: u64| if analysed == 0 { 0.0 } else { us as f64 / 1e3 / analysed as f64 };
        Summary {
            read: get(&self.read),
            analysed,
            dropped: get(&self.dropped),
            corrupt: get(&self.corrupt),
            truncated: get(&self.truncated),
            detect_errors: get(&self.detect_errors),
            events: get(&self.events),
            snapshots_kept: get(&self.snapshots_kept),
            snapshots_dropped: get(&self.snapshots_dropped),
            bundles: get(&self.bundles),
            bundle_errors: get(&self.bundle_errors),
            outages: get(&self.outages),
            ms_per_frame: per(get(&self.detect_us)),
            infer_ms_per_frame: per(get(&self.infer_us)),
            ms_p50: self.detect_time.quantile_ms(0.5),
            ms_p99: self.detect_time.quantile_ms(0.99),
            interval_ms_p50: self.frame_interval.quantile_ms(0.5),
            interval_ms_p99: self.frame_interval.quantile_ms(0.99),
            peak_rss_mb: peak_rss_kb() as f64 / 1024.0,
            wall_s: wall.as_secs_f64(),
            fps: if wall.as_secs_f64() > 0.0 { analysed as f64 / wall.as_secs_f64() } else { 0.0 },
        }
    }
}

/// The run's figures, printed at the end and written as JSON by `vigil replay --summary`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub read: u64,
    pub analysed: u64,
    pub dropped: u64,
    pub corrupt: u64,
    pub truncated: u64,
    pub detect_errors: u64,
    pub events: u64,
    pub snapshots_kept: u64,
    pub snapshots_dropped: u64,
    pub bundles: u64,
    pub bundle_errors: u64,
    /// Live source outages (reconnected with backoff).
    #[serde(default)]
    pub outages: u64,
    /// Detector time per analysed frame (preprocessing + inference), milliseconds.
    pub ms_per_frame: f64,
    /// Model time per analysed frame, milliseconds.
    pub infer_ms_per_frame: f64,
    /// Median and 99th percentile of the detector time per frame, milliseconds.
    pub ms_p50: f64,
    pub ms_p99: f64,
    /// Median and 99th percentile of the time between consecutive frames leaving the detector (the whole
    /// pipeline's cost per frame when detection is the bottleneck), milliseconds.
    pub interval_ms_p50: f64,
    pub interval_ms_p99: f64,
    /// Peak resident memory of the process so far, MiB.
    pub peak_rss_mb: f64,
    /// Wall-clock time of the run, seconds.
    pub wall_s: f64,
    /// Analysed frames per second of wall-clock time.
    pub fps: f64,
}

/// How fast a recorded source is replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Pacing {
    /// As fast as the machine allows.
    #[default]
    Fast,
    /// Frames are released at their media time, as a camera would deliver them.
    Realtime,
}

/// A frame with the detector's verdict.
#[derive(Clone, Debug)]
pub struct Scored {
    pub frame: Frame,
    pub detection: Detection,
}

/// A scored frame and the event it raised, if any.
#[derive(Clone, Debug)]
pub struct Judged {
    pub scored: Scored,
    pub event: Option<Event>,
}

/// Capacity of the channel out of a file source: the reader waits when it is full.
const FILE_QUEUE: usize = 4;
/// Capacity between later stages: they block when it is full.
const STAGE_QUEUE: usize = 4;

/// Reads `source` on its own thread until it ends or `stop` is set. Files: every frame is passed on (the
/// reader waits). Live sources: a one-frame queue where the newest frame replaces an unread one (counted in
/// [`Counters::dropped`]).
pub fn read_stage(
    mut source: Box<dyn FrameSource>,
    pacing: Pacing,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) -> Receiver<Frame> {
    let live = source.is_live();
    let (tx, rx) = bounded(if live { 1 } else { FILE_QUEUE });
    let spare_rx = rx.clone();
    thread::Builder::new()
        .name("read".into())
        .spawn(move || {
            let started = Instant::now();
            let mut first_t = None;
            let mut down_since: Option<Instant> = None;
            while !stop.load(Ordering::Relaxed) {
                let frame = match source.next_frame() {
                    Ok(Some(f)) => {
                        if let Some(at) = down_since.take() {
                            let down = at.elapsed();
                            Counters::add(&counters.outage_us, down.as_micros() as u64);
                            counters.source_down.store(false, Ordering::Relaxed);
                            info!("{}: frames again after {:.1} s", source.id(), down.as_secs_f64());
                        }
                        f
                    }
                    Ok(None) => break,
                    Err(e) => {
                        match &e {
                            CaptureError::CorruptFrame { .. } => Counters::add(&counters.corrupt, 1),
                            CaptureError::Truncated { .. } => Counters::add(&counters.truncated, 1),
                            CaptureError::Outage { .. } => {
                                Counters::add(&counters.outages, 1);
                                counters.source_down.store(true, Ordering::Relaxed);
                                down_since.get_or_insert_with(Instant::now);
                            }
                            _ => {}
                        }
                        if e.is_recoverable() {
                            warn!("{e}");
                            continue;
                        }
                        error!("{e}");
                        counters.set_fatal(e.to_string());
                        break;
                    }
                };
                Counters::add(&counters.read, 1);
                if pacing == Pacing::Realtime {
                    let t0 = *first_t.get_or_insert(frame.t);
                    let due = Duration::from_secs_f64((frame.t - t0).max(0.0));
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        thread::sleep(wait);
                    }
                }
                if !send(&tx, &spare_rx, frame, live, &counters) {
                    break;
                }
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| error!("cannot start the read thread: {e}"));
    rx
}

/// Sends one frame; false when the receiving side is gone.
fn send(
    tx: &Sender<Frame>,
    spare_rx: &Receiver<Frame>,
    frame: Frame,
    live: bool,
    counters: &Counters,
) -> bool {
    if !live {
        return tx.send(frame).is_ok();
    }
    let mut frame = frame;
    loop {
        match tx.try_send(frame) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(f)) => {
                // Latest frame wins: take out the unread one and count it.
                if spare_rx.try_recv().is_ok() {
                    Counters::add(&counters.dropped, 1);
                }
                frame = f;
            }
        }
    }
}

/// Scores every frame with `detector` on its own thread. A frame the detector fails on is named in a
/// warning, counted and passed over.
pub fn detect_stage(
    rx: Receiver<Frame>,
    mut detector: Box<dyn Detector>,
    counters: Arc<Counters>,
) -> Receiver<Scored> {
    let (tx, out) = bounded(STAGE_QUEUE);
    thread::Builder::new()
        .name("detect".into())
        .spawn(move || {
            let mut last_done: Option<Instant> = None;
            for frame in rx {
                let started = Instant::now();
                match detector.detect(&frame.image) {
                    Ok(detection) => {
                        let done = Instant::now();
                        let took = done - started;
                        Counters::add(&counters.detect_us, took.as_micros() as u64);
                        counters.detect_time.record(took);
                        if let Some(last) = last_done.replace(done) {
                            counters.frame_interval.record(done - last);
                        }
                        Counters::add(&counters.infer_us, (detection.infer_ms * 1e3) as u64);
                        Counters::add(&counters.analysed, 1);
                        counters.last_score_bits.store(detection.score.to_bits(), Ordering::Relaxed);
                        counters.last_infer_us.store((detection.infer_ms * 1e3) as u64, Ordering::Relaxed);
                        if tx.send(Scored { frame, detection }).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        last_done = None;
                        Counters::add(&counters.detect_errors, 1);
                        warn!("{}: frame {}: {e}", frame.source, frame.seq);
                    }
                }
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| error!("cannot start the detect thread: {e}"));
    out
}

/// Runs the temporal rule over scored frames on its own thread.
pub fn judge_stage(rx: Receiver<Scored>, mut judge: Judge, counters: Arc<Counters>) -> Receiver<Judged> {
    let (tx, out) = bounded(STAGE_QUEUE);
    thread::Builder::new()
        .name("judge".into())
        .spawn(move || {
            for scored in rx {
                let d = &scored.detection;
                let quality = FrameQuality::measure(&scored.frame.image);
                let event = judge.observe_frame(
                    scored.frame.seq,
                    scored.frame.t,
                    d.score,
                    &d.regions,
                    Some(&quality),
                );
                if event.is_some() {
                    Counters::add(&counters.events, 1);
                }
                if tx.send(Judged { scored, event }).is_err() {
                    break;
                }
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| error!("cannot start the judge thread: {e}"));
    out
}
