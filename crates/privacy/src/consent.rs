//! [`ConsentStore`]: the owner's opt-in, persisted atomically and cheap to poll.
//!
//! The file holds one JSON object, `{"consent":"on","changed_unix":1700000000}`. A missing, unreadable or
//! malformed file means consent is off. [`ConsentStore::set`] replaces the file atomically (temporary file,
//! fsync, rename, fsync of the directory). [`ConsentStore::is_on`] costs one `stat` while nothing changes:
//! it re-reads the file only when its inode, size or modification time differ from the last read, so a
//! pipeline can call it for every frame and see a change made by another process (`vigil consent off`) at
//! the next frame, without a restart.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;

/// Errors from persisting consent.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    #[error("cannot write consent file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentRecord {
    consent: OnOff,
    changed_unix: u64,
}

#[derive(Serialize, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum OnOff {
    On,
    Off,
}

/// What the consent file says, with when it last changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentState {
    pub on: bool,
    /// Unix time of the last change; `None` when the file is missing or unreadable.
    pub changed_unix: Option<u64>,
}

/// The file's identity as seen by `stat`: a change in any of these means the file was replaced or edited.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

/// The persisted consent flag.
pub struct ConsentStore {
    path: PathBuf,
    cache: Mutex<Option<(Stamp, ConsentState)>>,
}

const OFF: ConsentState = ConsentState { on: false, changed_unix: None };

impl ConsentStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), cache: Mutex::new(None) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> ConsentState {
        let Ok(text) = std::fs::read(&self.path) else { return OFF };
        match serde_json::from_slice::<ConsentRecord>(&text) {
            Ok(r) => ConsentState { on: r.consent == OnOff::On, changed_unix: Some(r.changed_unix) },
            Err(_) => OFF,
        }
    }

    /// The current state, re-reading the file only if it changed since the last call.
    pub fn state(&self) -> ConsentState {
        let Ok(md) = std::fs::metadata(&self.path) else {
            if let Ok(mut c) = self.cache.lock() {
                *c = None;
            }
            return OFF;
        };
        let stamp = Stamp {
            dev: md.dev(),
            ino: md.ino(),
            len: md.len(),
            mtime: md.mtime(),
            mtime_nsec: md.mtime_nsec(),
        };
        let Ok(mut cache) = self.cache.lock() else { return self.read() };
        if let Some((s, state)) = *cache {
            if s == stamp {
                return state;
            }
        }
        let state = self.read();
        *cache = Some((stamp, state));
        state
    }

    /// Whether the owner has joined the programme right now.
    pub fn is_on(&self) -> bool {
        self.state().on
    }

    /// Persists `on` atomically.
    pub fn set(&self, on: bool) -> Result<(), ConsentError> {
        let changed_unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let rec = ConsentRecord { consent: if on { OnOff::On } else { OnOff::Off }, changed_unix };
        let mut bytes = serde_json::to_vec(&rec).unwrap_or_default();
        bytes.push(b'\n');
        write_atomic(&self.path, &bytes, 0o644)
            .map_err(|source| ConsentError::Write { path: self.path.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_is_off_until_set_and_garbage_reads_as_off() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("consent.json");
        let store = ConsentStore::new(&p);
        assert!(!store.is_on());
        std::fs::write(&p, b"{\"consent\":\"yes please\"}").unwrap();
        assert!(!store.is_on());
        store.set(true).unwrap();
        assert!(store.is_on());
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("{\"consent\":\"on\",\"changed_unix\":"), "{text}");
    }

    #[test]
    fn a_change_by_another_store_is_seen_at_the_next_call() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/consent.json");
        let pipeline = ConsentStore::new(&p);
        let cli = ConsentStore::new(&p);
        cli.set(true).unwrap();
        assert!(pipeline.is_on());
        for _ in 0..5 {
            cli.set(false).unwrap();
            assert!(!pipeline.is_on());
            cli.set(true).unwrap();
            assert!(pipeline.is_on());
        }
        std::fs::remove_file(&p).unwrap();
        assert!(!pipeline.is_on());
    }

    #[test]
    fn set_leaves_no_temporary_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = ConsentStore::new(dir.path().join("consent.json"));
        store.set(true).unwrap();
        store.set(false).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("consent.json")]);
    }
}
