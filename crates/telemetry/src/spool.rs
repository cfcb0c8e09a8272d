//! The spool: a folder of finished bundles, written durably, bounded by count, bytes, free disk and age,
//! rescanned at start-up, and erasable.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::bundle::{self, BundleKind, Manifest};
use crate::clock::{plausible, Clock};
use crate::config::TelemetryConfig;
use crate::fsutil::{self, fault, FaultHook, FaultPoint, TEMP_PREFIX};
use crate::record::{is_safe_name, DeletionReason, DeletionRequest, EventRecord, Region, Snapshot};
use crate::TelemetryError;

/// Name of the spool's state file (sequence high-water mark and device identity).
pub const STATE_FILE: &str = "state.json";
/// Lock file: one process at a time owns a spool (`flock`, released when the process dies).
pub const LOCK_FILE: &str = "lock";
/// Sub-folder corrupt bundles are moved into.
pub const QUARANTINE_DIR: &str = "quarantine";
/// Most files kept in the quarantine; older ones are deleted.
pub const QUARANTINE_MAX: usize = 16;
/// Sequence numbers reserved per state write (a crash skips at most this many, never reuses one).
const SEQ_RESERVE: u64 = 64;
const DAY: i64 = 86_400;

/// The spool's bounds, from [`TelemetryConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpoolLimits {
    /// Most bytes of event bundles.
    pub max_bytes: u64,
    /// Most event bundles.
    pub max_bundles: u32,
    /// Free-disk floor.
    pub min_free_bytes: u64,
    /// Retention in days.
    pub retention_days: u32,
}

impl From<&TelemetryConfig> for SpoolLimits {
    fn from(c: &TelemetryConfig) -> Self {
        SpoolLimits {
            max_bytes: c.max_bytes,
            max_bundles: c.max_bundles,
            min_free_bytes: c.min_free_bytes,
            retention_days: c.retention_days,
        }
    }
}

impl Default for SpoolLimits {
    fn default() -> Self {
        SpoolLimits::from(&TelemetryConfig::default())
    }
}

/// What the spool has done, since it was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpoolCounters {
    /// Event bundles written.
    pub written: u64,
    /// Deletion requests written.
    pub deletion_requests_written: u64,
    /// Event bundles evicted (oldest first) to stay within max bytes / max bundles.
    pub evicted: u64,
    /// Bundles deleted by retention.
    pub expired: u64,
    /// Writes refused because free disk would fall below the floor.
    pub refused_low_disk: u64,
    /// Writes refused because the bundle alone exceeds max bytes.
    pub refused_too_large: u64,
    /// Writes that failed with an I/O error (disk full and read-only included).
    pub write_errors: u64,
    /// Of those, writes that failed because the disk was full.
    pub disk_full: u64,
    /// Of those, writes that failed because the spool is read-only.
    pub read_only: u64,
    /// Temp files removed by the start-up rescan.
    pub temp_removed: u64,
    /// Corrupt bundles moved into the quarantine.
    pub quarantined: u64,
    /// Files in the spool folder that are not the spool's (left alone).
    pub ignored: u64,
    /// Bundles deleted by an opt-out or purge.
    pub erased: u64,
    /// Deletions that failed (read-only spool, ...).
    pub delete_errors: u64,
    /// Undated bundles whose age count started when a plausible clock was first seen.
    pub restamped: u64,
    /// State file unreadable at start-up (sequence then continues after the highest bundle seen).
    pub state_errors: u64,
}

/// One bundle in the spool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Bundle id (file stem).
    pub id: String,
    /// Event or deletion request.
    pub kind: BundleKind,
    /// Sequence number.
    pub seq: u64,
    /// File size.
    pub bytes: u64,
    /// Device id from the manifest.
    pub device_id: String,
    /// Region from the manifest.
    pub region: Region,
    /// Time its age counts from (Unix seconds), when known.
    pub age_ref: Option<i64>,
}

impl Entry {
    /// `{id}.zst`.
    pub fn file_name(&self) -> String {
        format!("{}.zst", self.id)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    next_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<Region>,
}

/// What an opt-out or purge did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErasureReport {
    /// Event bundles (and quarantined files) deleted.
    pub deleted: u64,
    /// Id of the pending deletion request (new or already there); `None` if none could be written or no
    /// device identity is known.
    pub deletion_request: Option<String>,
    /// Why no deletion request is pending, if it is not.
    pub error: Option<String>,
}

/// A folder of bundles. See the crate docs for the rules it keeps.
pub struct Spool {
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    limits: SpoolLimits,
    entries: BTreeMap<u64, Entry>,
    next_seq: u64,
    reserved_until: u64,
    identity: Option<(String, Region)>,
    counters: SpoolCounters,
    faults: Option<FaultHook>,
    _lock: Option<fs::File>,
}

fn lock_spool(dir: &Path) -> Result<Option<fs::File>, TelemetryError> {
    use std::os::unix::io::AsRawFd;
    let path = dir.join(LOCK_FILE);
    let f = match fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path) {
        Ok(f) => f,
        // A read-only spool cannot hold a lock file; it cannot be written either, so there is nothing to guard.
        Err(_) => match fs::File::open(&path) {
            Ok(f) => f,
            Err(_) => return Ok(None),
        },
    };
    // A lock can be held for a moment after its owner closed it: a child process that any thread of this
    // process is starting holds a copy of every descriptor until it executes its program. Such a hold is
    // waited out; a lock still held after LOCK_WAIT belongs to a running owner.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        // SAFETY: flock on a valid open descriptor.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Some(f));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Ok(None);
        }
        if std::time::Instant::now() >= deadline {
            return Err(TelemetryError::Busy(dir.display().to_string()));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// How long opening a spool waits for a lock that is held for a moment only.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> TelemetryError {
    let context = context.into();
    move |source| TelemetryError::Io { context, source }
}

fn mtime_unix(meta: &fs::Metadata) -> Option<i64> {
    let t = meta.modified().ok()?;
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

impl Spool {
    /// Opens (creating if needed) the spool folder and rescans it: temp files are removed, corrupt bundles
    /// quarantined, foreign files counted and left alone. A read-only folder opens; writes then fail
    /// (counted).
    pub fn open(
        dir: impl Into<PathBuf>,
        limits: SpoolLimits,
        clock: Arc<dyn Clock>,
    ) -> Result<Spool, TelemetryError> {
        Spool::open_with_faults(dir, limits, clock, None)
    }

    /// [`Spool::open`] with a fault hook for tests.
    pub fn open_with_faults(
        dir: impl Into<PathBuf>,
        limits: SpoolLimits,
        clock: Arc<dyn Clock>,
        faults: Option<FaultHook>,
    ) -> Result<Spool, TelemetryError> {
        let dir = dir.into();
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(io_err(format!("creating spool {}", dir.display())))?;
        }
        let lock = lock_spool(&dir)?;
        let mut spool = Spool {
            _lock: lock,
            dir,
            clock,
            limits,
            entries: BTreeMap::new(),
            next_seq: 0,
            reserved_until: 0,
            identity: None,
            counters: SpoolCounters::default(),
            faults,
        };
        let state = spool.load_state();
        spool.rescan()?;
        let max_seen = spool.entries.keys().next_back().map_or(0, |s| s + 1);
        let max_q = spool.quarantine_max_seq().map_or(0, |s| s + 1);
        spool.next_seq = state.next_seq.max(max_seen).max(max_q);
        spool.reserved_until = spool.next_seq;
        if let (Some(d), Some(r)) = (state.device_id, state.region) {
            if is_safe_name(&d) {
                spool.identity = Some((d, r));
            }
        }
        Ok(spool)
    }

    fn load_state(&mut self) -> State {
        let path = self.dir.join(STATE_FILE);
        match fs::read(&path) {
            Ok(b) => match serde_json::from_slice::<State>(&b) {
                Ok(s) => s,
                Err(_) => {
                    self.counters.state_errors += 1;
                    State::default()
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
            Err(_) => {
                self.counters.state_errors += 1;
                State::default()
            }
        }
    }

    fn save_state(&mut self, reserved_until: u64) -> Result<(), TelemetryError> {
        let state = State {
            next_seq: reserved_until,
            device_id: self.identity.as_ref().map(|i| i.0.clone()),
            region: self.identity.as_ref().map(|i| i.1),
        };
        let bytes = serde_json::to_vec(&state).map_err(|e| TelemetryError::Invalid(e.to_string()))?;
        fsutil::write_atomic(&self.dir, STATE_FILE, &bytes, &self.faults)
            .map_err(|e| self.count_write_error(e))?;
        self.reserved_until = reserved_until;
        Ok(())
    }

    fn count_write_error(&mut self, e: io::Error) -> TelemetryError {
        self.counters.write_errors += 1;
        if fsutil::is_disk_full(&e) {
            self.counters.disk_full += 1;
        } else if fsutil::is_read_only(&e) {
            self.counters.read_only += 1;
        }
        TelemetryError::Io { context: format!("writing in spool {}", self.dir.display()), source: e }
    }

    fn rescan(&mut self) -> Result<(), TelemetryError> {
        let rd = fs::read_dir(&self.dir).map_err(io_err(format!("reading spool {}", self.dir.display())))?;
        for item in rd {
            let Ok(item) = item else { continue };
            let os_name = item.file_name();
            let Some(name) = os_name.to_str() else {
                self.counters.ignored += 1;
                continue;
            };
            let path = item.path();
            if name == STATE_FILE || name == QUARANTINE_DIR || name == LOCK_FILE {
                continue;
            }
            if name.starts_with(TEMP_PREFIX) {
                if fs::remove_file(&path).is_ok() {
                    self.counters.temp_removed += 1;
                } else {
                    self.counters.delete_errors += 1;
                }
                continue;
            }
            let Some((kind, seq)) = bundle::parse_file_name(name) else {
                self.counters.ignored += 1;
                continue;
            };
            match Self::check_file(&path, name) {
                Ok((manifest, meta)) => {
                    let id = manifest.id.clone();
                    // The earlier of the recorded creation time and the file time: a bundle dated in the
                    // future whose age count restarted (file time set) keeps the restarted count.
                    let mtime = mtime_unix(&meta).filter(|t| plausible(*t));
                    let age_ref = match (manifest.created_unix, mtime) {
                        (Some(c), Some(m)) => Some(c.min(m)),
                        (c, m) => c.or(m),
                    };
                    let entry = Entry {
                        id,
                        kind,
                        seq,
                        bytes: meta.len(),
                        device_id: manifest.device_id,
                        region: manifest.region,
                        age_ref,
                    };
                    if self.entries.insert(seq, entry).is_some() {
                        // Two files with one sequence number cannot come from this spool: keep the first.
                        self.quarantine(&path, name);
                    }
                }
                Err(_) => self.quarantine(&path, name),
            }
        }
        Ok(())
    }

    fn check_file(path: &Path, name: &str) -> Result<(Manifest, fs::Metadata), TelemetryError> {
        let meta = fs::symlink_metadata(path).map_err(io_err("stat"))?;
        if !meta.is_file() {
            return Err(TelemetryError::Corrupt("not a regular file".into()));
        }
        if meta.len() > bundle::MAX_BUNDLE_BYTES {
            return Err(TelemetryError::Corrupt("too large".into()));
        }
        let data = fs::read(path).map_err(io_err("read"))?;
        let b = bundle::decode(&data)?;
        if Some(b.manifest.id.as_str()) != name.strip_suffix(".zst") {
            return Err(TelemetryError::Corrupt("file name does not match the manifest id".into()));
        }
        Ok((b.manifest, meta))
    }

    fn quarantine_dir(&self) -> PathBuf {
        self.dir.join(QUARANTINE_DIR)
    }

    fn quarantine(&mut self, path: &Path, name: &str) {
        let qdir = self.quarantine_dir();
        if fs::create_dir_all(&qdir).is_err() {
            self.counters.delete_errors += 1;
            return;
        }
        let mut dest = qdir.join(name);
        let mut n = 1;
        while dest.exists() {
            dest = qdir.join(format!("{name}.{n}"));
            n += 1;
        }
        if fs::rename(path, &dest).is_ok() {
            self.counters.quarantined += 1;
            let _ = fsutil::sync_dir(&self.dir);
        } else {
            self.counters.delete_errors += 1;
        }
        let mut files: Vec<_> = match fs::read_dir(&qdir) {
            Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
            Err(_) => return,
        };
        if files.len() > QUARANTINE_MAX {
            files.sort_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok());
            let excess = files.len() - QUARANTINE_MAX;
            for p in files.into_iter().take(excess) {
                let _ = fs::remove_file(p);
            }
        }
    }

    fn quarantine_max_seq(&self) -> Option<u64> {
        let rd = fs::read_dir(self.quarantine_dir()).ok()?;
        rd.filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name().to_str().and_then(|n| bundle::parse_file_name(n.get(..25)?)).map(|x| x.1)
            })
            .max()
    }

    /// The spool folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the spool has done so far.
    pub fn counters(&self) -> &SpoolCounters {
        &self.counters
    }

    /// The limits in force.
    pub fn limits(&self) -> SpoolLimits {
        self.limits
    }

    /// The next sequence number to be given out.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The device identity of the last bundle written (kept across restarts), if any.
    pub fn identity(&self) -> Option<(&str, Region)> {
        self.identity.as_ref().map(|(d, r)| (d.as_str(), *r))
    }

    /// Bundles in the spool, in sequence order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Looks a bundle up by id.
    pub fn get(&self, id: &str) -> Option<&Entry> {
        let (_, seq) = bundle::parse_bundle_id(id)?;
        self.entries.get(&seq).filter(|e| e.id == id)
    }

    /// Bundles waiting to be sent, in send order: deletion requests first, then events oldest first.
    pub fn pending(&self) -> Vec<&Entry> {
        let mut v: Vec<&Entry> =
            self.entries.values().filter(|e| e.kind == BundleKind::DeletionRequest).collect();
        v.extend(self.entries.values().filter(|e| e.kind == BundleKind::Event));
        v
    }

    /// Total bytes and count of event bundles (the quota's measure; deletion requests are exempt).
    pub fn usage(&self) -> (u64, u32) {
        let ev = self.entries.values().filter(|e| e.kind == BundleKind::Event);
        ev.fold((0, 0), |(b, n), e| (b + e.bytes, n + 1))
    }

    fn alloc_seq(&mut self) -> Result<u64, TelemetryError> {
        let seq = self.next_seq;
        if seq >= self.reserved_until {
            self.save_state(seq + SEQ_RESERVE)?;
        }
        self.next_seq = seq + 1;
        Ok(seq)
    }

    fn set_identity(&mut self, device_id: &str, region: Region) -> Result<(), TelemetryError> {
        if self.identity.as_ref().map(|(d, r)| (d.as_str(), *r)) != Some((device_id, region)) {
            self.identity = Some((device_id.to_string(), region));
            let r = self.reserved_until.max(self.next_seq);
            self.save_state(r)?;
        }
        Ok(())
    }

    fn now_if_plausible(&self) -> Option<i64> {
        Some(self.clock.now_unix()).filter(|t| plausible(*t))
    }

    /// Writes an event bundle. Refuses (counted) if it alone exceeds max bytes or if free disk would fall
    /// below the floor; evicts the oldest event bundles (counted) to stay within max bytes and max bundles.
    /// Returns the bundle id.
    pub fn write_event(
        &mut self,
        record: &EventRecord,
        snapshots: &[Snapshot],
    ) -> Result<String, TelemetryError> {
        record.validate()?;
        crate::record::validate_snapshots(snapshots)?;
        self.set_identity(&record.device_id, record.region)?;
        let seq = self.alloc_seq()?;
        let id = bundle::bundle_id(BundleKind::Event, seq, fsutil::random_u32());
        let manifest = Manifest {
            format: bundle::FORMAT_VERSION,
            kind: BundleKind::Event,
            id: id.clone(),
            seq,
            device_id: record.device_id.clone(),
            region: record.region,
            created_unix: self.now_if_plausible(),
            files: Vec::new(),
        };
        let b = bundle::Bundle {
            manifest,
            body: bundle::Body::Event { record: record.clone(), snapshots: snapshots.to_vec() },
        };
        let data = bundle::encode(&b)?;
        let size = data.len() as u64;
        if size > self.limits.max_bytes {
            self.counters.refused_too_large += 1;
            return Err(TelemetryError::TooLarge { size, max: self.limits.max_bytes });
        }
        let free = fsutil::free_bytes(&self.dir).map_err(io_err("free space"))?;
        if free < size.saturating_add(self.limits.min_free_bytes) {
            self.counters.refused_low_disk += 1;
            return Err(TelemetryError::LowDisk { free, floor: self.limits.min_free_bytes });
        }
        loop {
            let (bytes, count) = self.usage();
            if bytes + size <= self.limits.max_bytes && count < self.limits.max_bundles {
                break;
            }
            let Some(oldest) = self.entries.values().find(|e| e.kind == BundleKind::Event).map(|e| e.seq)
            else {
                break;
            };
            if self.remove_seq(oldest)? {
                self.counters.evicted += 1;
            }
        }
        let name = format!("{id}.zst");
        fsutil::write_atomic(&self.dir, &name, &data, &self.faults).map_err(|e| self.count_write_error(e))?;
        self.counters.written += 1;
        let entry = Entry {
            id: id.clone(),
            kind: BundleKind::Event,
            seq,
            bytes: size,
            device_id: record.device_id.clone(),
            region: record.region,
            age_ref: b.manifest.created_unix,
        };
        self.entries.insert(seq, entry);
        Ok(id)
    }

    /// The pending deletion request, if one is.
    pub fn pending_deletion(&self) -> Option<&Entry> {
        self.entries.values().find(|e| e.kind == BundleKind::DeletionRequest)
    }

    /// Writes a deletion request unless one is already pending (then returns its id): exactly one is ever
    /// pending. Exempt from the quota and the free-disk floor.
    pub fn write_deletion(
        &mut self,
        device_id: &str,
        region: Region,
        reason: DeletionReason,
    ) -> Result<String, TelemetryError> {
        if let Some(e) = self.pending_deletion() {
            return Ok(e.id.clone());
        }
        if !is_safe_name(device_id) {
            return Err(TelemetryError::Invalid(format!("device id {device_id:?} is not a safe name")));
        }
        self.set_identity(device_id, region)?;
        let seq = self.alloc_seq()?;
        let id = bundle::bundle_id(BundleKind::DeletionRequest, seq, fsutil::random_u32());
        let created = self.now_if_plausible();
        let b = bundle::Bundle {
            manifest: Manifest {
                format: bundle::FORMAT_VERSION,
                kind: BundleKind::DeletionRequest,
                id: id.clone(),
                seq,
                device_id: device_id.to_string(),
                region,
                created_unix: created,
                files: Vec::new(),
            },
            body: bundle::Body::Deletion(DeletionRequest {
                device_id: device_id.to_string(),
                region,
                reason,
                requested_unix: created,
            }),
        };
        let data = bundle::encode(&b)?;
        let name = format!("{id}.zst");
        fsutil::write_atomic(&self.dir, &name, &data, &self.faults).map_err(|e| self.count_write_error(e))?;
        self.counters.deletion_requests_written += 1;
        self.entries.insert(
            seq,
            Entry {
                id: id.clone(),
                kind: BundleKind::DeletionRequest,
                seq,
                bytes: data.len() as u64,
                device_id: device_id.to_string(),
                region,
                age_ref: created,
            },
        );
        Ok(id)
    }

    /// Opt-out / purge: deletes every pending event bundle and the quarantine, and leaves exactly one
    /// deletion request pending (written first, so a crash in between never loses it; if it cannot be
    /// written, the bundles are deleted anyway and the write is tried once more). `identity` defaults to
    /// the spool's remembered device, then to the device of a pending bundle; with none known, only the
    /// deletion happens.
    pub fn erase(&mut self, identity: Option<(&str, Region)>, reason: DeletionReason) -> ErasureReport {
        let ident = identity
            .map(|(d, r)| (d.to_string(), r))
            .or_else(|| self.identity.clone())
            .or_else(|| self.entries.values().next().map(|e| (e.device_id.clone(), e.region)));
        let mut report = ErasureReport::default();
        let mut first = ident.as_ref().map(|(d, r)| self.write_deletion(d, *r, reason));
        let events: Vec<u64> =
            self.entries.values().filter(|e| e.kind == BundleKind::Event).map(|e| e.seq).collect();
        for seq in events {
            match self.remove_seq(seq) {
                Ok(true) => report.deleted += 1,
                _ => {
                    // Cannot unlink (read-only spool): forget it anyway so it is never sent.
                    self.entries.remove(&seq);
                }
            }
        }
        if let Ok(rd) = fs::read_dir(self.quarantine_dir()) {
            for e in rd.filter_map(|e| e.ok()) {
                if fs::remove_file(e.path()).is_ok() {
                    report.deleted += 1;
                } else {
                    self.counters.delete_errors += 1;
                }
            }
        }
        self.counters.erased += report.deleted;
        if matches!(first, Some(Err(_))) {
            if let Some((d, r)) = &ident {
                first = Some(self.write_deletion(d, *r, reason));
            }
        }
        match first {
            Some(Ok(id)) => report.deletion_request = Some(id),
            Some(Err(e)) => report.error = Some(e.to_string()),
            None => {
                report.error = Some("no device identity known: nothing to ask the server to delete".into())
            }
        }
        let _ = fsutil::sync_dir(&self.dir);
        report
    }

    fn remove_seq(&mut self, seq: u64) -> Result<bool, TelemetryError> {
        let Some(e) = self.entries.get(&seq) else { return Ok(false) };
        let path = self.dir.join(e.file_name());
        let r = fault(&self.faults, FaultPoint::Remove, &path).and_then(|_| fs::remove_file(&path));
        match r {
            Ok(()) => {
                self.entries.remove(&seq);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.entries.remove(&seq);
                Ok(false)
            }
            Err(e) => {
                self.counters.delete_errors += 1;
                Err(TelemetryError::Io { context: format!("deleting {}", path.display()), source: e })
            }
        }
    }

    /// Deletes a bundle by id (after delivery or rejection). `Ok(false)` if it was already gone.
    pub fn remove(&mut self, id: &str) -> Result<bool, TelemetryError> {
        match self.get(id).map(|e| e.seq) {
            Some(seq) => {
                let r = self.remove_seq(seq)?;
                let _ = fsutil::sync_dir(&self.dir);
                Ok(r)
            }
            None => Ok(false),
        }
    }

    /// Reads a bundle's bytes.
    pub fn read(&self, id: &str) -> Result<Vec<u8>, TelemetryError> {
        let e =
            self.get(id).ok_or_else(|| TelemetryError::Invalid(format!("no bundle {id} in the spool")))?;
        fs::read(self.dir.join(e.file_name())).map_err(io_err(format!("reading bundle {id}")))
    }

    /// Retention: with a plausible clock, deletes event bundles (and quarantined files) older than the
    /// configured days. A bundle written while the clock was not plausible (or dated in the future) starts
    /// its age count now: its file time is set to now, which persists across restarts. Without a plausible
    /// clock nothing is deleted. Returns how many were deleted.
    pub fn enforce_retention(&mut self) -> u64 {
        let Some(now) = self.now_if_plausible() else { return 0 };
        let max_age = i64::from(self.limits.retention_days) * DAY;
        let mut expired = Vec::new();
        let mut restamp = Vec::new();
        for e in self.entries.values() {
            if e.kind != BundleKind::Event {
                continue;
            }
            match e.age_ref {
                Some(t) if t <= now + DAY => {
                    if now - t > max_age {
                        expired.push(e.seq);
                    }
                }
                _ => restamp.push(e.seq),
            }
        }
        for seq in restamp {
            let Some(e) = self.entries.get_mut(&seq) else { continue };
            let path = self.dir.join(e.file_name());
            let t = UNIX_EPOCH + Duration::from_secs(now.unsigned_abs());
            let _ = fs::File::options().write(true).open(&path).and_then(|f| f.set_modified(t));
            e.age_ref = Some(now);
            self.counters.restamped += 1;
        }
        let mut n = 0;
        for seq in expired {
            if let Ok(true) = self.remove_seq(seq) {
                n += 1;
            }
        }
        if let Ok(rd) = fs::read_dir(self.quarantine_dir()) {
            for e in rd.filter_map(|e| e.ok()) {
                let old = e.metadata().ok().and_then(|m| mtime_unix(&m)).is_some_and(|t| now - t > max_age);
                if old && fs::remove_file(e.path()).is_ok() {
                    n += 1;
                }
            }
        }
        if n > 0 {
            let _ = fsutil::sync_dir(&self.dir);
        }
        self.counters.expired += n;
        n
    }

    /// Hand-off mode: moves every finished bundle (only deletion requests when `only_deletions`) (deletion requests first, then events in sequence order)
    /// into `outbox` atomically (rename; across filesystems a durable copy then unlink). A crash in between
    /// leaves the bundle in both places under one name, and the next hand-off overwrites it with the same
    /// bytes. Returns how many moved.
    pub fn handoff_to(&mut self, outbox: &Path, only_deletions: bool) -> Result<u64, TelemetryError> {
        fs::create_dir_all(outbox).map_err(io_err(format!("creating outbox {}", outbox.display())))?;
        let order: Vec<(u64, String)> = self
            .pending()
            .iter()
            .filter(|e| !only_deletions || e.kind == BundleKind::DeletionRequest)
            .map(|e| (e.seq, e.file_name()))
            .collect();
        let mut moved = 0;
        for (seq, name) in order {
            let src = self.dir.join(&name);
            match fs::rename(&src, outbox.join(&name)) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                    let data = fs::read(&src).map_err(io_err(format!("reading {}", src.display())))?;
                    fsutil::write_atomic(outbox, &name, &data, &self.faults)
                        .map_err(io_err(format!("writing into outbox {}", outbox.display())))?;
                    fs::remove_file(&src).map_err(io_err(format!("deleting {}", src.display())))?;
                }
                Err(e) => {
                    return Err(TelemetryError::Io {
                        context: format!("moving {name} to the outbox"),
                        source: e,
                    })
                }
            }
            self.entries.remove(&seq);
            moved += 1;
        }
        if moved > 0 {
            fsutil::sync_dir(outbox).map_err(io_err("fsync outbox"))?;
            fsutil::sync_dir(&self.dir).map_err(io_err("fsync spool"))?;
        }
        Ok(moved)
    }
}

/// Opt-out in hand-off mode also deletes event bundles still waiting in the outbox. Returns how many.
pub fn erase_outbox_events(outbox: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(outbox) else { return 0 };
    let mut n = 0;
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name();
        let is_event =
            name.to_str().and_then(bundle::parse_file_name).is_some_and(|(k, _)| k == BundleKind::Event);
        if is_event && fs::remove_file(e.path()).is_ok() {
            n += 1;
        }
    }
    if n > 0 {
        let _ = fsutil::sync_dir(outbox);
    }
    n
}
