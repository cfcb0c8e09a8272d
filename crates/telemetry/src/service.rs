//! [`Telemetry`]: the spool plus the upload manager behind one lock, with consent, opt-out and the upload
//! step that calls an [`Uploader`] without holding the lock.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::bundle::BundleKind;
use crate::clock::Clock;
use crate::config::{Mode, TelemetryConfig};
use crate::http::{idempotency_key, UploadRequest, Uploader};
use crate::manager::{Decision, Pending, UploadCounters, UploadManager, Verdict};
use crate::record::{DeletionReason, EventRecord, Region, Snapshot};
use crate::spool::{erase_outbox_events, ErasureReport, Spool, SpoolCounters, SpoolLimits};
use crate::TelemetryError;

/// What one [`Telemetry::step`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A bundle was sent; what became of it.
    Sent {
        /// Bundle id.
        id: String,
        /// The manager's verdict.
        verdict: Verdict,
    },
    /// Nothing may be sent for this long.
    Wait(Duration),
    /// Nothing to send.
    Idle,
}

/// Both sets of counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Spool counters.
    pub spool: SpoolCounters,
    /// Upload counters.
    pub upload: UploadCounters,
    /// Submissions refused because consent was off.
    pub refused_no_consent: u64,
    /// Delivered bundles whose local file could not be deleted (not re-sent by this process).
    pub acked_not_deleted: u64,
}

struct Inner {
    spool: Spool,
    manager: UploadManager,
    acked: HashSet<String>,
    refused_no_consent: u64,
    acked_not_deleted: u64,
}

/// The telemetry stage: accepts events while the owner consents, keeps them in the spool, and delivers
/// them (upload mode) or hands them off (handoff mode).
pub struct Telemetry {
    config: TelemetryConfig,
    inner: Mutex<Inner>,
    consent: AtomicBool,
    origin: Instant,
}

impl Telemetry {
    /// Opens the spool named in `config` (validated first). Consent starts as `consent`.
    pub fn open(
        config: TelemetryConfig,
        clock: Arc<dyn Clock>,
        consent: bool,
    ) -> Result<Self, TelemetryError> {
        config.validate()?;
        let spool = Spool::open(config.spool_dir.clone(), SpoolLimits::from(&config), clock)?;
        Ok(Telemetry::with_spool(config, spool, consent))
    }

    /// Wraps an already opened spool (tests use this to inject faults).
    pub fn with_spool(config: TelemetryConfig, spool: Spool, consent: bool) -> Self {
        let seed = u64::from(crate::fsutil::random_u32()) << 32 | u64::from(crate::fsutil::random_u32());
        let manager = UploadManager::new(config.rate_limit, config.backoff, seed);
        Telemetry {
            config,
            inner: Mutex::new(Inner {
                spool,
                manager,
                acked: HashSet::new(),
                refused_no_consent: 0,
                acked_not_deleted: 0,
            }),
            consent: AtomicBool::new(consent),
            origin: Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// The configuration in force.
    pub fn config(&self) -> &TelemetryConfig {
        &self.config
    }

    /// Whether the owner is in the programme.
    pub fn consent(&self) -> bool {
        self.consent.load(Ordering::SeqCst)
    }

    /// Joins the programme again (a pending deletion request is still sent, first).
    pub fn opt_in(&self) {
        self.consent.store(true, Ordering::SeqCst);
    }

    /// Stores an event bundle; refused (counted) without consent. Returns the bundle id.
    pub fn submit(&self, record: &EventRecord, snapshots: &[Snapshot]) -> Result<String, TelemetryError> {
        let mut inner = self.lock();
        if !self.consent() {
            inner.refused_no_consent += 1;
            return Err(TelemetryError::NoConsent);
        }
        inner.spool.enforce_retention();
        inner.spool.write_event(record, snapshots)
    }

    /// The owner left the programme: consent off at once (nothing more is accepted or sent but the deletion
    /// request), every pending bundle deleted (in hand-off mode also those still in the outbox), and exactly
    /// one deletion request left pending. An upload already in flight finishes or fails; its bundle is
    /// deleted here either way and the deletion request covers what the server may have received.
    pub fn opt_out(&self, device_id: &str, region: Region) -> ErasureReport {
        self.consent.store(false, Ordering::SeqCst);
        self.erase(Some((device_id, region)), DeletionReason::OptOut)
    }

    /// `vigil spool purge` on a running stage: like [`Telemetry::opt_out`] without changing consent.
    pub fn purge(&self) -> ErasureReport {
        self.erase(None, DeletionReason::Purge)
    }

    fn erase(&self, ident: Option<(&str, Region)>, reason: DeletionReason) -> ErasureReport {
        let mut inner = self.lock();
        let mut report = inner.spool.erase(ident, reason);
        if let (Mode::Handoff, Some(outbox)) = (self.config.mode, &self.config.outbox_dir) {
            report.deleted += erase_outbox_events(outbox);
        }
        report
    }

    /// Counters of the spool and the manager.
    pub fn counters(&self) -> Counters {
        let inner = self.lock();
        Counters {
            spool: inner.spool.counters().clone(),
            upload: inner.manager.counters().clone(),
            refused_no_consent: inner.refused_no_consent,
            acked_not_deleted: inner.acked_not_deleted,
        }
    }

    /// Runs `f` on the spool (for inspection and tests).
    pub fn with_spool_mut<R>(&self, f: impl FnOnce(&mut Spool) -> R) -> R {
        f(&mut self.lock().spool)
    }

    /// Hand-off mode: moves finished bundles into the outbox. Without consent only the deletion request
    /// moves.
    pub fn handoff(&self) -> Result<u64, TelemetryError> {
        let outbox: PathBuf = self
            .config
            .outbox_dir
            .clone()
            .ok_or_else(|| TelemetryError::Config("mode handoff needs outbox_dir".into()))?;
        let mut inner = self.lock();
        inner.spool.enforce_retention();
        let only_deletions = !self.consent();
        inner.spool.handoff_to(&outbox, only_deletions)
    }

    /// One upload step: retention, then the manager decides; if it says send, the bundle is read, the lock
    /// released, `uploader` called, and the verdict applied (2xx and final 4xx delete the file).
    pub fn step(&self, uploader: &mut dyn Uploader) -> Result<Step, TelemetryError> {
        let (id, kind, device, region, body) = {
            let mut guard = self.lock();
            let inner = &mut *guard;
            inner.spool.enforce_retention();
            let consent = self.consent();
            let pending: Vec<(Pending, String, Region)> = inner
                .spool
                .pending()
                .into_iter()
                .filter(|e| consent || e.kind == BundleKind::DeletionRequest)
                .filter(|e| !inner.acked.contains(&e.id))
                .map(|e| (Pending { id: e.id.clone(), kind: e.kind }, e.device_id.clone(), e.region))
                .collect();
            let list: Vec<Pending> = pending.iter().map(|p| p.0.clone()).collect();
            match inner.manager.decide(self.now(), &list) {
                Decision::Idle => return Ok(Step::Idle),
                Decision::Wait(d) => return Ok(Step::Wait(d)),
                Decision::Send(i) => {
                    let Some((p, device, region)) = pending.into_iter().nth(i) else { return Ok(Step::Idle) };
                    match inner.spool.read(&p.id) {
                        Ok(body) => (p.id, p.kind, device, region, body),
                        Err(_) => {
                            // Gone or unreadable (deleted by another process, damaged): forget it.
                            let _ = inner.spool.remove(&p.id);
                            inner.acked.insert(p.id);
                            return Ok(Step::Wait(Duration::ZERO));
                        }
                    }
                }
            }
        };
        let endpoint = self.config.endpoints.for_region(region);
        let key = idempotency_key(&device, &id);
        let req = UploadRequest {
            endpoint,
            device_id: &device,
            bundle_id: &id,
            idempotency_key: &key,
            body: &body,
        };
        let outcome = uploader.upload(&req);
        let mut inner = self.lock();
        let verdict = inner.manager.record(self.now(), kind, &outcome);
        match verdict {
            Verdict::Delivered | Verdict::Rejected(_) => {
                if inner.spool.remove(&id).is_err() {
                    inner.acked_not_deleted += 1;
                    inner.acked.insert(id.clone());
                }
            }
            Verdict::Retry(_) => {}
        }
        Ok(Step::Sent { id, verdict })
    }

    /// Sends until nothing is pending or the next send would have to wait longer than `max_wait`; returns
    /// the steps taken (for tools and tests; the pipeline runs [`Telemetry::step`] in its own loop).
    pub fn drain(
        &self,
        uploader: &mut dyn Uploader,
        max_wait: Duration,
    ) -> Result<Vec<Step>, TelemetryError> {
        let mut steps = Vec::new();
        loop {
            match self.step(uploader)? {
                Step::Idle => return Ok(steps),
                Step::Wait(d) if d > max_wait => {
                    steps.push(Step::Wait(d));
                    return Ok(steps);
                }
                Step::Wait(d) => std::thread::sleep(d),
                s @ Step::Sent { .. } => steps.push(s),
            }
        }
    }
}
