//! `vigil-telemetry` keeps the scrubbed post-error snapshots of owners who joined the user-experience
//! programme and delivers them to the maker. A [`Spool`] holds finished bundles (one zstd file each: a
//! [`Manifest`], an [`EventRecord`] and the [`Snapshot`]s, format in `FORMAT.md`), written atomically with
//! sequence-numbered names and bounded by count, bytes, free disk and age; opt-out erases it and leaves one
//! deletion request. The [`UploadManager`] decides what to send and when (rate limit, backoff with jitter,
//! `Retry-After`) without any network code, an [`Uploader`] ([`HttpUploader`]: `PUT` with an idempotency
//! key, TLS for `https://`) does the I/O, and [`Telemetry`] ties them together under a
//! [`TelemetryConfig`]; in hand-off mode bundles move into an outbox for the firmware's own uploader
//! instead. Each bundle goes to its own [`Region`]'s endpoint only. [`inspect`] backs `vigil spool`.

pub mod bundle;
pub mod clock;
pub mod config;
pub mod fsutil;
pub mod http;
pub mod inspect;
pub mod manager;
pub mod record;
pub mod sample;
pub mod service;
pub mod spool;
pub mod testkit;
mod xxh64;

pub use bundle::{Body, Bundle, BundleKind, FileEntry, Manifest};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Backoff, Endpoints, Mode, RateLimit, TelemetryConfig, Timeouts};
pub use http::{HttpUploader, UploadRequest, Uploader};
pub use manager::{Decision, Outcome, Pending, UploadCounters, UploadManager, Verdict};
pub use record::{DeletionReason, DeletionRequest, EventRecord, Region, ScorePoint, Snapshot};
pub use service::{Counters, Step, Telemetry};
pub use spool::{Entry, ErasureReport, Spool, SpoolCounters, SpoolLimits};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// Input that cannot go into a bundle (unsafe name, not a JPEG, too many snapshots, ...).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A configuration value out of bounds.
    #[error("telemetry configuration: {0}")]
    Config(String),
    /// A bundle file that does not decode or verify.
    #[error("corrupt bundle: {0}")]
    Corrupt(String),
    /// zstd itself failed (not a data error).
    #[error("zstd: {0}")]
    Codec(String),
    /// An I/O error (disk full and read-only spool included; see [`SpoolCounters`]).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The bundle alone is larger than the spool's max bytes.
    #[error("bundle of {size} bytes exceeds the spool's max_bytes {max}")]
    TooLarge {
        /// Bundle size.
        size: u64,
        /// max_bytes.
        max: u64,
    },
    /// Writing would leave less free disk than the floor; nothing is purged to make room.
    #[error("free disk {free} bytes minus the bundle would fall below the floor of {floor} bytes")]
    LowDisk {
        /// Free bytes now.
        free: u64,
        /// The floor.
        floor: u64,
    },
    /// The owner is not in the programme.
    #[error("no consent: the owner is not in the user-experience programme")]
    NoConsent,
    /// Another process holds the spool.
    #[error("spool {0} is in use by another vigil process")]
    Busy(String),
}

impl TelemetryError {
    /// True when the underlying I/O error is "disk full".
    pub fn is_disk_full(&self) -> bool {
        matches!(self, TelemetryError::Io { source, .. } if fsutil::is_disk_full(source))
    }
}
