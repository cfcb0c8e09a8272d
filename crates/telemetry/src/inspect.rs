//! What `vigil spool ls|show|purge` do, as library functions returning printable reports; the CLI only
//! parses arguments and prints.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::bundle::{self, Body, BundleKind};
use crate::clock::Clock;
use crate::fsutil::TEMP_PREFIX;
use crate::record::{is_safe_name, DeletionReason};
use crate::spool::{ErasureReport, Spool, SpoolLimits, LOCK_FILE, QUARANTINE_DIR, STATE_FILE};
use crate::TelemetryError;

/// State of one file in a spool listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileStatus {
    /// A whole bundle.
    Bundle {
        /// Event or deletion request.
        kind: BundleKind,
        /// Sequence number.
        seq: u64,
        /// Region.
        region: String,
        /// Number of snapshots.
        snapshots: usize,
        /// Creation time (Unix seconds) if the clock was plausible then.
        created_unix: Option<i64>,
    },
    /// A bundle-named file that does not verify.
    Corrupt(String),
    /// An unfinished write (removed at the next start).
    Temp,
    /// In the quarantine.
    Quarantined,
    /// The spool's own bookkeeping (`state.json`, `lock`).
    Bookkeeping,
    /// Not the spool's.
    Foreign,
}

/// One line of `vigil spool ls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// Path relative to the spool (`quarantine/...` for quarantined files).
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// What it is.
    pub status: FileStatus,
}

fn status_of(path: &Path, name: &str) -> FileStatus {
    if name == STATE_FILE || name == LOCK_FILE {
        return FileStatus::Bookkeeping;
    }
    if name.starts_with(TEMP_PREFIX) {
        return FileStatus::Temp;
    }
    if bundle::parse_file_name(name).is_none() {
        return FileStatus::Foreign;
    }
    match fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|d| bundle::decode(&d).map_err(|e| e.to_string()))
    {
        Ok(b) => FileStatus::Bundle {
            kind: b.manifest.kind,
            seq: b.manifest.seq,
            region: b.manifest.region.to_string(),
            snapshots: b.manifest.files.len(),
            created_unix: b.manifest.created_unix,
        },
        Err(e) => FileStatus::Corrupt(e),
    }
}

/// Lists a spool without changing it (no rescan, no lock): every file with what it is.
pub fn list(dir: &Path) -> Result<Vec<Listing>, TelemetryError> {
    let mut out = Vec::new();
    let rd = fs::read_dir(dir).map_err(|source| TelemetryError::Io {
        context: format!("reading spool {}", dir.display()),
        source,
    })?;
    for item in rd.filter_map(|e| e.ok()) {
        let name = item.file_name().to_string_lossy().into_owned();
        let bytes = item.metadata().map(|m| m.len()).unwrap_or(0);
        if name == QUARANTINE_DIR {
            if let Ok(q) = fs::read_dir(item.path()) {
                for qi in q.filter_map(|e| e.ok()) {
                    out.push(Listing {
                        name: format!("{QUARANTINE_DIR}/{}", qi.file_name().to_string_lossy()),
                        bytes: qi.metadata().map(|m| m.len()).unwrap_or(0),
                        status: FileStatus::Quarantined,
                    });
                }
            }
            continue;
        }
        out.push(Listing { status: status_of(&item.path(), &name), name, bytes });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// `vigil spool ls` output: one line per file, then totals.
pub fn format_list(items: &[Listing]) -> String {
    let mut s = String::new();
    let (mut n, mut bytes) = (0u64, 0u64);
    for it in items {
        let what = match &it.status {
            FileStatus::Bundle { kind, seq, region, snapshots, created_unix } => {
                n += 1;
                bytes += it.bytes;
                let kind = match kind {
                    BundleKind::Event => "event",
                    BundleKind::DeletionRequest => "deletion-request",
                };
                let created = created_unix.map_or("undated".to_string(), |t| format!("unix {t}"));
                format!("{kind} seq={seq} region={region} snapshots={snapshots} {created}")
            }
            FileStatus::Corrupt(e) => format!("CORRUPT: {e}"),
            FileStatus::Temp => "unfinished write (removed at next start)".into(),
            FileStatus::Quarantined => "quarantined".into(),
            FileStatus::Bookkeeping => "spool state".into(),
            FileStatus::Foreign => "not a spool file (left alone)".into(),
        };
        let _ = writeln!(s, "{:<32} {:>10}  {what}", it.name, it.bytes);
    }
    let _ = writeln!(s, "{n} bundle(s), {bytes} bytes");
    s
}

/// `vigil spool show FILE`: the manifest and record (pretty JSON) and the snapshot list.
pub fn show(file: &Path) -> Result<String, TelemetryError> {
    let data = fs::read(file)
        .map_err(|source| TelemetryError::Io { context: format!("reading {}", file.display()), source })?;
    let b = bundle::decode(&data)?;
    let mut s = bundle::head_json_pretty(&b);
    s.push('\n');
    if let Body::Event { snapshots, .. } = &b.body {
        for snap in snapshots {
            let _ = writeln!(s, "snapshot {} ({} bytes)", snap.name, snap.jpeg.len());
        }
    }
    let _ = writeln!(s, "{} bytes on disk, verified", data.len());
    Ok(s)
}

/// `vigil spool show FILE --extract DIR`: writes `head.json` and each snapshot into `dir` (created if
/// needed). Returns the paths written.
pub fn extract(file: &Path, dir: &Path) -> Result<Vec<PathBuf>, TelemetryError> {
    let data = fs::read(file)
        .map_err(|source| TelemetryError::Io { context: format!("reading {}", file.display()), source })?;
    let b = bundle::decode(&data)?;
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| TelemetryError::Io { context: format!("writing {p}"), source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut written = Vec::new();
    let head = dir.join("head.json");
    fs::write(&head, bundle::head_json_pretty(&b)).map_err(io(&head))?;
    written.push(head);
    if let Body::Event { snapshots, .. } = &b.body {
        for snap in snapshots {
            if !is_safe_name(&snap.name) {
                return Err(TelemetryError::Corrupt(format!("unsafe snapshot name {:?}", snap.name)));
            }
            let p = dir.join(&snap.name);
            fs::write(&p, &snap.jpeg).map_err(io(&p))?;
            written.push(p);
        }
    }
    Ok(written)
}

/// `vigil spool purge`: deletes every pending bundle and the quarantine and leaves exactly one deletion
/// request (for the device the spool last wrote for). Fails with [`TelemetryError::Busy`] while a running
/// vigil holds the spool.
pub fn purge(dir: &Path, clock: Arc<dyn Clock>) -> Result<ErasureReport, TelemetryError> {
    erase(dir, clock, DeletionReason::Purge)
}

/// `vigil consent off` while no vigil holds the spool: like [`purge`], the deletion request giving the
/// opt-out as its reason.
pub fn opt_out(dir: &Path, clock: Arc<dyn Clock>) -> Result<ErasureReport, TelemetryError> {
    erase(dir, clock, DeletionReason::OptOut)
}

fn erase(dir: &Path, clock: Arc<dyn Clock>, reason: DeletionReason) -> Result<ErasureReport, TelemetryError> {
    let mut spool = Spool::open(dir, SpoolLimits::default(), clock)?;
    Ok(spool.erase(None, reason))
}

/// `vigil spool purge` output.
pub fn format_erasure(r: &ErasureReport) -> String {
    match (&r.deletion_request, &r.error) {
        (Some(id), _) => format!(
            "deleted {} file(s); deletion request {id} pending until the server accepts it\n",
            r.deleted
        ),
        (None, Some(e)) => format!("deleted {} file(s); no deletion request: {e}\n", r.deleted),
        (None, None) => format!("deleted {} file(s)\n", r.deleted),
    }
}
