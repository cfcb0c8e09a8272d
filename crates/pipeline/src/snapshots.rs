//! The privacy and telemetry end of the pipeline: while the owner is in the programme, the frames just after a
//! `failure` event go through the [`PrivacyGate`] (purpose rules, ROI, masks, faces, re-encode, verify) and
//! the scrubbed snapshots of one event are written to the telemetry spool as one bundle. While consent is off
//! nothing derived from a frame is written anywhere; when it is withdrawn mid-run, the bundle being gathered
//! is discarded and the spool is erased, leaving one deletion request.

use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver};
use tracing::{error, warn};
use vigil_detect::EventKind;
use vigil_privacy::{FrameOutcome, PrivacyGate, Snapshot as PrivateSnapshot, SnapshotSink};
use vigil_telemetry::{EventRecord, Region, ScorePoint, Snapshot, SystemClock, Telemetry, TelemetryConfig};

use crate::stages::{Counters, Judged};

/// Facts that go into every event record besides what the gate produces.
#[derive(Clone, Debug, Default)]
pub struct RecordInfo {
    pub printer_model: String,
    pub firmware: String,
    pub model_version: String,
}

struct Gathering {
    event_id: u64,
    device_id: String,
    region: Region,
    kind: EventKind,
    event_t: f64,
    trace: Vec<ScorePoint>,
    snapshots: Vec<Snapshot>,
}

/// Groups the snapshots of one event in memory and writes them to the spool as one bundle when the event's
/// window has passed (or at the end of the input). Nothing reaches the disk before that.
pub struct SpoolSink {
    config: TelemetryConfig,
    /// Opened at the first bundle or erasure, so a run without consent never touches the spool.
    telemetry: Option<Arc<Telemetry>>,
    info: RecordInfo,
    window_s: f64,
    /// Recent (media time, score) pairs, for the record's score trace.
    recent: Vec<ScorePoint>,
    open: Option<Gathering>,
    /// The last device id and region bundles were written for (for a deletion request at opt-out).
    last_identity: Option<(String, Region)>,
    pending_event: Option<(EventKind, f64)>,
    counters: Arc<Counters>,
}

const TRACE_POINTS: usize = 32;

impl SpoolSink {
    pub fn new(config: TelemetryConfig, info: RecordInfo, window_s: f64, counters: Arc<Counters>) -> Self {
        Self {
            config,
            telemetry: None,
            info,
            window_s,
            recent: Vec::new(),
            open: None,
            last_identity: None,
            pending_event: None,
            counters,
        }
    }

    /// A sink writing into an already open spool, shared with an upload thread (`vigil run`).
    pub fn with_telemetry(
        telemetry: Arc<Telemetry>,
        info: RecordInfo,
        window_s: f64,
        counters: Arc<Counters>,
    ) -> Self {
        let mut sink = Self::new(telemetry.config().clone(), info, window_s, counters);
        sink.telemetry = Some(telemetry);
        sink
    }

    fn telemetry(&mut self) -> Result<&Telemetry, vigil_telemetry::TelemetryError> {
        if self.telemetry.is_none() {
            self.telemetry =
                Some(Arc::new(Telemetry::open(self.config.clone(), Arc::new(SystemClock), true)?));
        }
        self.telemetry
            .as_deref()
            .ok_or_else(|| vigil_telemetry::TelemetryError::Config("spool not open".into()))
    }

    /// Counters of the spool and uploads, when it has been opened.
    pub fn telemetry_counters(&self) -> Option<vigil_telemetry::Counters> {
        self.telemetry.as_ref().map(|t| t.counters())
    }

    fn note_score(&mut self, t: f64, score: f32) {
        if self.recent.len() == TRACE_POINTS {
            self.recent.remove(0);
        }
        self.recent.push(ScorePoint { media_ms: ms(t), score });
        if let Some(g) = self.open.as_mut() {
            if g.trace.len() < 2 * TRACE_POINTS {
                g.trace.push(ScorePoint { media_ms: ms(t), score });
            }
        }
    }

    /// Writes the gathered bundle if its window has passed at media time `t` (always when `t` is `None`).
    fn flush_if_due(&mut self, t: Option<f64>) {
        let due = match (&self.open, t) {
            (Some(g), Some(t)) => t > g.event_t + self.window_s,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !due {
            return;
        }
        let Some(g) = self.open.take() else { return };
        let record = EventRecord {
            event_id: format!("{}-{}", g.event_id, ms(g.event_t)),
            event_type: match g.kind {
                EventKind::Failure => "failure".into(),
                EventKind::Warning => "warning".into(),
            },
            score_trace: g.trace,
            model_version: self.info.model_version.clone(),
            printer_model: self.info.printer_model.clone(),
            firmware: self.info.firmware.clone(),
            region: g.region,
            device_id: g.device_id.clone(),
            media_start_ms: ms(g.event_t),
            media_event_ms: ms(g.event_t),
            wall_time_unix: None,
        };
        match self.telemetry().and_then(|t| t.submit(&record, &g.snapshots)) {
            Ok(id) => {
                self.counters.add_bundle();
                tracing::info!("bundle {id} spooled with {} snapshot(s)", g.snapshots.len());
            }
            Err(e) => {
                self.counters.add_bundle_error();
                warn!("event bundle not spooled: {e}");
            }
        }
        self.last_identity = Some((g.device_id, g.region));
    }

    /// Consent was withdrawn: forget what was being gathered and erase the spool.
    fn withdraw(&mut self) {
        self.open = None;
        let identity = self.last_identity.take();
        let report = match self.telemetry() {
            Ok(t) => match &identity {
                Some((id, region)) => t.opt_out(id, *region),
                None => t.purge(),
            },
            Err(e) => {
                error!("consent withdrawn but the spool cannot be opened to erase it: {e}");
                return;
            }
        };
        tracing::info!("consent withdrawn: {} pending bundle(s) deleted", report.deleted);
    }
}

impl SnapshotSink for SpoolSink {
    fn hand_on(&mut self, s: &PrivateSnapshot) -> Result<(), String> {
        if self.open.as_ref().is_some_and(|g| g.event_id != s.event_id) {
            self.flush_if_due(None);
        }
        let region = match s.region {
            vigil_privacy::Region::Cn => Region::Cn,
            vigil_privacy::Region::Us => Region::Us,
        };
        let (kind, event_t) = self.pending_event.unwrap_or((EventKind::Failure, 0.0));
        let recent = self.recent.clone();
        let g = self.open.get_or_insert_with(|| Gathering {
            event_id: s.event_id,
            device_id: s.device_id.clone(),
            region,
            kind,
            event_t,
            trace: recent,
            snapshots: Vec::new(),
        });
        g.snapshots.push(Snapshot { name: format!("after-{:03}.jpg", s.index), jpeg: s.jpeg.clone() });
        Ok(())
    }
}

fn ms(t: f64) -> u64 {
    (t.max(0.0) * 1e3).round() as u64
}

/// Runs the gate over every judged frame on its own thread and passes the frames on unchanged.
/// `print_id` names the print (for the per-print event cap).
pub fn snapshot_stage(
    rx: Receiver<Judged>,
    mut gate: PrivacyGate<SpoolSink>,
    print_id: String,
    counters: Arc<Counters>,
) -> Receiver<Judged> {
    let (tx, out) = bounded(4);
    let spawned = std::thread::Builder::new().name("snapshots".into()).spawn(move || {
        let mut was_on = gate.consent_on();
        for j in rx {
            let f = &j.scored.frame;
            gate.sink_mut().note_score(f.t, j.scored.detection.score);
            gate.sink_mut().flush_if_due(Some(f.t));
            if let Some(e) = &j.event {
                let kind = match e.kind {
                    EventKind::Failure => vigil_privacy::EventKind::Failure,
                    EventKind::Warning => vigil_privacy::EventKind::Warning,
                };
                gate.sink_mut().pending_event = Some((e.kind, e.t));
                gate.on_event(kind, e.t, &print_id);
            }
            match gate.on_frame(f) {
                FrameOutcome::ConsentOff => {
                    if was_on {
                        gate.sink_mut().withdraw();
                    }
                    was_on = false;
                }
                FrameOutcome::Dropped(reason) => {
                    was_on = true;
                    counters.add_snapshot_dropped();
                    warn!("{}: frame {}: snapshot dropped: {reason}", f.source, f.seq);
                }
                FrameOutcome::HandedOn { .. } => {
                    was_on = true;
                    counters.add_snapshot_kept();
                }
                FrameOutcome::NotSelected => was_on = true,
            }
            if tx.send(j).is_err() {
                break;
            }
        }
        // End of input: write what the last event gathered, if consent still holds.
        if gate.consent_on() {
            gate.sink_mut().flush_if_due(None);
        } else if was_on {
            gate.sink_mut().withdraw();
        }
    });
    if let Err(e) = spawned {
        error!("cannot start the snapshot thread: {e}");
    }
    out
}
