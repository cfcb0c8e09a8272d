//! [`AuditLog`]: an append-only local record (JSON lines) of what the privacy filter kept, dropped (with the
//! reason) and handed on, and of consent changes. It holds no pixels and no identifiers: only event
//! numbers, media times, sizes, regions and reasons.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Errors from the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot append to audit log {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AuditAction {
    /// The owner joined or left the programme.
    Consent { on: bool },
    /// An event opened a snapshot window.
    Event { event_id: u64, kind: String, media_t: f64 },
    /// An event was refused (kind not allowed, cap reached, ...).
    EventRefused { kind: String, media_t: f64, reason: String },
    /// A frame was selected and scrubbed.
    Kept { event_id: u64, index: u32, offset_s: f64, bytes: usize, segments_dropped: usize },
    /// A selected frame or a still was dropped.
    Dropped { event_id: Option<u64>, source: Option<String>, reason: String },
    /// A scrubbed snapshot was handed to the uploader.
    HandedOn { event_id: u64, index: u32, bytes: usize, region: String },
}

#[derive(Serialize, Deserialize)]
struct Line {
    ts: u64,
    #[serde(flatten)]
    action: AuditAction,
}

/// The append-only audit log. Every record is one `write` on a file opened with `O_APPEND`, followed by a
/// data sync; the log is never truncated or rewritten by this crate.
pub struct AuditLog {
    path: PathBuf,
    file: File,
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl AuditLog {
    /// Opens (creating it and its directory if needed) the log for appending.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new().append(true).create(true).open(path).map_err(io)?;
        Ok(Self { path: path.to_path_buf(), file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record stamped with the current Unix time.
    pub fn record(&mut self, action: AuditAction) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(&Line { ts: now_unix(), action })
            .map_err(|e| AuditError::Io { path: self.path.clone(), source: std::io::Error::other(e) })?;
        line.push(b'\n');
        let io = |source| AuditError::Io { path: self.path.clone(), source };
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(io)
    }

    /// Reads every well-formed record of a log with its timestamp (malformed lines are skipped).
    pub fn read_all(path: &Path) -> Result<Vec<(u64, AuditAction)>, AuditError> {
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(AuditError::Io { path: path.to_path_buf(), source }),
        };
        let mut out = Vec::new();
        for line in std::io::BufReader::new(f).lines() {
            let line = line.map_err(|source| AuditError::Io { path: path.to_path_buf(), source })?;
            if let Ok(l) = serde_json::from_str::<Line>(&line) {
                out.push((l.ts, l.action));
            }
        }
        Ok(out)
    }

    /// How many events opened a snapshot window on UTC day `day` (days since the Unix epoch), so the per-day
    /// cap survives a restart.
    pub fn events_on_day(path: &Path, day: u64) -> Result<u32, AuditError> {
        Ok(Self::read_all(path)?
            .iter()
            .filter(|(ts, a)| ts / 86_400 == day && matches!(a, AuditAction::Event { .. }))
            .count() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_appended_as_json_lines_and_never_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&p).unwrap();
        log.record(AuditAction::Consent { on: true }).unwrap();
        let first = std::fs::read(&p).unwrap();
        drop(log);
        let mut log = AuditLog::open(&p).unwrap();
        log.record(AuditAction::Dropped {
            event_id: Some(1),
            source: None,
            reason: "face model missing".into(),
        })
        .unwrap();
        let all = std::fs::read(&p).unwrap();
        assert!(all.starts_with(&first), "earlier records are kept byte for byte");
        let text = String::from_utf8(all).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("\"action\":\"consent\"") && lines[0].contains("\"on\":true"));
        assert!(lines[1].contains("\"action\":\"dropped\"") && lines[1].contains("face model missing"));
        assert_eq!(AuditLog::read_all(&p).unwrap().len(), 2);
    }
}
