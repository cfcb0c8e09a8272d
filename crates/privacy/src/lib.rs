//! `vigil-privacy` enforces the rules of the maker's user-experience improvement programme on every byte that
//! leaves the printer. The pipeline talks to a [`PrivacyGate`]: it checks the owner's consent
//! ([`ConsentStore`], off by default, persisted atomically, re-read within one frame of a change), applies
//! the purpose rules ([`SnapshotSelector`]: only frames after a `failure` event, at most N in a window of W
//! seconds, S seconds apart, at most M events per print and per day), and runs each selected frame through
//! the [`Scrubber`] (orientation, region of interest, privacy masks, faces filled solid with the CenterFace
//! model, downscale, re-encode from pixels, segment [`strip`] and [`verify`], identifier search), stamps the
//! result with a pseudonymous [`device_id`] (an HMAC of MAC and serial under a per-device key made at opt-in
//! and replaced at opt-out) and its storage [`Region`] (mainland China -> CN, everything else -> US), hands
//! it to a [`SnapshotSink`] and records what it kept, dropped and handed on in the append-only [`AuditLog`].
//! Everything is configured by one [`PrivacyConfig`]. Any failure drops the snapshot: nothing is passed on
//! unredacted, without consent, or without a region.

pub mod audit;
pub mod config;
pub mod consent;
pub mod faces;
mod fsutil;
pub mod gate;
pub mod identity;
pub mod region;
pub mod scrub;
pub mod segments;
pub mod selector;

pub use audit::{AuditAction, AuditError, AuditLog};
pub use config::{
    ConfigError, EventKind, FaceConfig, InputLimits, MinimiseConfig, PrivacyConfig, PurposeConfig,
};
pub use consent::{ConsentError, ConsentState, ConsentStore};
pub use faces::{CenterFace, FaceBox, FaceDetector, FaceError, CENTERFACE_SHA256};
pub use gate::{opt_in, opt_out, DirSink, FrameOutcome, GateError, PrivacyGate, Snapshot, SnapshotSink};
pub use identity::{device_id, DeviceKey, HardwareIds, IdentityError};
pub use region::{Region, RegionError};
pub use scrub::{decode_limited, DropReason, InputError, Scrubbed, Scrubber};
pub use segments::{strip, verify, Dropped, SegmentError, SegmentReport, Stripped};
pub use selector::{EventDecision, FrameDecision, SnapshotSelector};
