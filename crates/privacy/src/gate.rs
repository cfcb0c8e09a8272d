//! [`PrivacyGate`]: the one object the pipeline talks to. It checks consent on every call, applies the
//! purpose rules, scrubs the selected frames, stamps them with the pseudonymous device id and the storage
//! region, hands them to a [`SnapshotSink`] and writes the audit log. While consent is off it writes nothing
//! at all and keeps nothing in memory beyond the selector's counters.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use vigil_frame::Frame;

use crate::audit::{AuditAction, AuditError, AuditLog};
use crate::config::{EventKind, PrivacyConfig};
use crate::consent::{ConsentError, ConsentStore};
use crate::fsutil::write_atomic;
use crate::identity::{DeviceKey, HardwareIds, IdentityError};
use crate::region::Region;
use crate::scrub::{DropReason, Scrubber};
use crate::selector::{EventDecision, FrameDecision, SnapshotSelector};

/// Errors that stop the gate from being built or the programme from being joined or left.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Consent(#[from] ConsentError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// A scrubbed snapshot with what the uploader needs to route it, and nothing else: no print name, no
/// wall-clock time, no MAC or serial.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// HMAC of MAC and serial under the per-device key (64 hex digits).
    pub device_id: String,
    /// Where the bundle must be stored.
    pub region: Region,
    /// The event kind that allowed it.
    pub event: EventKind,
    /// The event's number in this run of the pipeline.
    pub event_id: u64,
    /// 0-based index of the snapshot within its event.
    pub index: u32,
    /// Seconds of media time after the event.
    pub offset_s: f64,
    pub width: u32,
    pub height: u32,
    /// The scrubbed, verified JPEG.
    #[serde(skip)]
    pub jpeg: Vec<u8>,
}

/// Where scrubbed snapshots go (the telemetry uploader, or a directory).
pub trait SnapshotSink {
    fn hand_on(&mut self, snapshot: &Snapshot) -> Result<(), String>;
}

/// A sink that writes `<event>-<index>.jpg` and a `.json` manifest beside it into a directory, each atomically.
pub struct DirSink {
    dir: PathBuf,
}

impl DirSink {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl SnapshotSink for DirSink {
    fn hand_on(&mut self, s: &Snapshot) -> Result<(), String> {
        let stem = format!("{:06}-{:02}", s.event_id, s.index);
        let manifest = serde_json::to_vec_pretty(s).map_err(|e| e.to_string())?;
        write_atomic(&self.dir.join(format!("{stem}.jpg")), &s.jpeg, 0o644).map_err(|e| e.to_string())?;
        write_atomic(&self.dir.join(format!("{stem}.json")), &manifest, 0o644).map_err(|e| e.to_string())
    }
}

/// What happened to one frame offered to the gate.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameOutcome {
    /// Consent is off: the frame was not looked at.
    ConsentOff,
    /// Not selected by the purpose rules.
    NotSelected,
    /// Selected but dropped.
    Dropped(String),
    /// Scrubbed and handed on.
    HandedOn { event_id: u64, index: u32, bytes: usize },
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Joins the programme: makes a fresh device key, then persists consent on, then records it.
pub fn opt_in(cfg: &PrivacyConfig) -> Result<(), GateError> {
    DeviceKey::rotate(&cfg.device_key_file)?;
    ConsentStore::new(&cfg.consent_file).set(true)?;
    AuditLog::open(&cfg.audit_log)?.record(AuditAction::Consent { on: true })?;
    Ok(())
}

/// Leaves the programme: persists consent off first (a running pipeline stops at its next frame), then
/// replaces the device key so later ids cannot be linked to earlier ones, then records it.
pub fn opt_out(cfg: &PrivacyConfig) -> Result<(), GateError> {
    ConsentStore::new(&cfg.consent_file).set(false)?;
    DeviceKey::rotate(&cfg.device_key_file)?;
    AuditLog::open(&cfg.audit_log)?.record(AuditAction::Consent { on: false })?;
    Ok(())
}

/// The privacy filter between detection and telemetry.
pub struct PrivacyGate<S: SnapshotSink> {
    consent: ConsentStore,
    selector: SnapshotSelector,
    scrubber: Scrubber,
    audit_path: PathBuf,
    audit: Option<AuditLog>,
    region: Option<Region>,
    key_file: PathBuf,
    ids: HardwareIds,
    event_kind: Option<EventKind>,
    sink: S,
}

impl<S: SnapshotSink> PrivacyGate<S> {
    /// Builds the gate with CenterFace from the config. Opens nothing for writing yet: the audit log is
    /// opened at the first record, which is only ever made while consent is on.
    pub fn new(cfg: &PrivacyConfig, ids: HardwareIds, sink: S) -> Self {
        let scrubber = Scrubber::from_config(cfg);
        Self::with_scrubber(cfg, ids, scrubber, sink)
    }

    /// Builds the gate with a given scrubber.
    pub fn with_scrubber(cfg: &PrivacyConfig, ids: HardwareIds, scrubber: Scrubber, sink: S) -> Self {
        let today = unix_now() / 86_400;
        let used = AuditLog::events_on_day(&cfg.audit_log, today).unwrap_or(cfg.purpose.max_events);
        Self {
            consent: ConsentStore::new(&cfg.consent_file),
            selector: SnapshotSelector::new(cfg.purpose.clone()).with_day_count(today, used),
            scrubber: scrubber.forbid_identifiers(&ids),
            audit_path: cfg.audit_log.clone(),
            audit: None,
            region: Region::from_country(&cfg.country).ok(),
            key_file: cfg.device_key_file.clone(),
            ids,
            event_kind: None,
            sink,
        }
    }

    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The sink, e.g. to flush what it groups.
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Whether consent is on right now (one `stat`).
    pub fn consent_on(&self) -> bool {
        self.consent.is_on()
    }

    fn audit(&mut self, action: AuditAction) {
        if !self.consent.is_on() {
            return;
        }
        if self.audit.is_none() {
            self.audit = AuditLog::open(&self.audit_path).ok();
        }
        if let Some(log) = self.audit.as_mut() {
            // An audit write failure must not stop detection; the snapshot path checks it below.
            let _ = log.record(action);
        }
    }

    /// A detector event at media time `t` of print `print_id`. Ignored entirely while consent is off.
    pub fn on_event(&mut self, kind: EventKind, t: f64, print_id: &str) -> Option<EventDecision> {
        if !self.consent.is_on() {
            self.selector.close_window();
            return None;
        }
        let d = self.selector.on_event(kind, t, print_id, unix_now() / 86_400);
        match d {
            EventDecision::Opened { event_id } => {
                self.event_kind = Some(kind);
                self.audit(AuditAction::Event { event_id, kind: kind.as_str().into(), media_t: t });
            }
            other => {
                let reason = other.refusal().unwrap_or_default().to_string();
                self.audit(AuditAction::EventRefused { kind: kind.as_str().into(), media_t: t, reason });
            }
        }
        Some(d)
    }

    /// Offers one frame. Consent is checked first (and again before anything is handed on).
    pub fn on_frame(&mut self, frame: &Frame) -> FrameOutcome {
        if !self.consent.is_on() {
            self.selector.close_window();
            return FrameOutcome::ConsentOff;
        }
        let FrameDecision::Keep { event_id, index, offset_s } = self.selector.offer(frame.t) else {
            return FrameOutcome::NotSelected;
        };
        let result = self.snapshot(frame, event_id, index, offset_s);
        // Consent may have been withdrawn while the frame was being scrubbed.
        if !self.consent.is_on() {
            self.selector.close_window();
            return FrameOutcome::ConsentOff;
        }
        match result {
            Ok((snap, segments_dropped)) => {
                let bytes = snap.jpeg.len();
                self.audit(AuditAction::Kept { event_id, index, offset_s, bytes, segments_dropped });
                match self.sink.hand_on(&snap) {
                    Ok(()) => {
                        let region = snap.region.as_str().to_string();
                        self.audit(AuditAction::HandedOn { event_id, index, bytes, region });
                        FrameOutcome::HandedOn { event_id, index, bytes }
                    }
                    Err(e) => {
                        let reason = format!("sink refused: {e}");
                        self.audit(AuditAction::Dropped {
                            event_id: Some(event_id),
                            source: None,
                            reason: reason.clone(),
                        });
                        FrameOutcome::Dropped(reason)
                    }
                }
            }
            Err(reason) => {
                let text = format!("{}: {reason}", reason.code());
                self.audit(AuditAction::Dropped {
                    event_id: Some(event_id),
                    source: None,
                    reason: text.clone(),
                });
                FrameOutcome::Dropped(text)
            }
        }
    }

    fn snapshot(
        &mut self,
        frame: &Frame,
        event_id: u64,
        index: u32,
        offset_s: f64,
    ) -> Result<(Snapshot, usize), DropReason> {
        let region = self.region.ok_or(DropReason::NoRegion)?;
        let key = DeviceKey::load(&self.key_file).map_err(|e| DropReason::DeviceKey(e.to_string()))?;
        let s = self.scrubber.scrub_image(&frame.image)?;
        let snapshot = Snapshot {
            device_id: key.device_id(&self.ids),
            region,
            event: self.event_kind.unwrap_or(EventKind::Failure),
            event_id,
            index,
            offset_s,
            width: s.width,
            height: s.height,
            jpeg: s.jpeg,
        };
        Ok((snapshot, s.segments_dropped))
    }
}
