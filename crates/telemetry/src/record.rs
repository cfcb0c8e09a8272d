//! What a bundle carries: the event record, the snapshots and the deletion request, and the region rule.

use serde::{Deserialize, Serialize};

use crate::TelemetryError;

/// Longest accepted device id, snapshot name or event id, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Most snapshots one bundle may carry.
pub const MAX_SNAPSHOTS: usize = 32;
/// Largest accepted snapshot, in bytes.
pub const MAX_SNAPSHOT_BYTES: usize = 16 * 1024 * 1024;

/// Which of the maker's ingest regions a bundle belongs to. Mainland China is [`Region::Cn`]; every other
/// region (Hong Kong, Macao and Taiwan included) is [`Region::Us`]. A bundle is only ever sent to the
/// endpoint of its own region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// Everything outside mainland China.
    Us,
    /// Mainland China.
    Cn,
}

impl Region {
    /// The region for an ISO 3166-1 alpha-2 country code: `CN` gives [`Region::Cn`], anything else
    /// (including `HK`, `MO`, `TW` and unknown codes) gives [`Region::Us`].
    pub fn from_country_code(code: &str) -> Region {
        if code.trim().eq_ignore_ascii_case("CN") {
            Region::Cn
        } else {
            Region::Us
        }
    }

    /// `"us"` or `"cn"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Us => "us",
            Region::Cn => "cn",
        }
    }
}

impl std::str::FromStr for Region {
    type Err = TelemetryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "us" => Ok(Region::Us),
            "cn" => Ok(Region::Cn),
            other => Err(TelemetryError::Invalid(format!("unknown region {other:?} (expected us or cn)"))),
        }
    }
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One privacy-approved snapshot: a file name (`[A-Za-z0-9._-]`, at most 64 bytes, not starting with a dot)
/// and the JPEG bytes, stored in the bundle as they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// File name inside the bundle, e.g. `after-000.jpg`.
    pub name: String,
    /// The JPEG file, starting with the SOI marker `FF D8 FF`.
    pub jpeg: Vec<u8>,
}

/// One point of the detector's score trace around the event.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorePoint {
    /// Media time of the scored frame, in milliseconds.
    pub media_ms: u64,
    /// Failure score in `[0, 1]`.
    pub score: f32,
}

/// What happened, as the event record in a bundle. It holds no raw identifier (no MAC address, no serial
/// number): `device_id` is the pseudonymous id the privacy stage derives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRecord {
    /// Unique id of this event on this device (pseudonymous, e.g. a counter or random hex).
    pub event_id: String,
    /// Kind of failure, e.g. `spaghetti`, `detachment`, `layer_shift`.
    pub event_type: String,
    /// Scores around the event, oldest first.
    pub score_trace: Vec<ScorePoint>,
    /// Version of the detection model that raised the event.
    pub model_version: String,
    /// Printer model as the printer reports it.
    pub printer_model: String,
    /// Printer firmware version.
    pub firmware: String,
    /// Region the device is registered in; decides the endpoint.
    pub region: Region,
    /// Pseudonymous device id, `[A-Za-z0-9._-]`, at most 64 bytes (it is a path segment of the upload URL).
    pub device_id: String,
    /// Media time of the first frame that counted towards the event, in milliseconds.
    pub media_start_ms: u64,
    /// Media time at which the event was raised, in milliseconds.
    pub media_event_ms: u64,
    /// Wall-clock time of the event (Unix seconds) when the clock was known to be right, else absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_time_unix: Option<i64>,
}

/// Why a deletion request was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeletionReason {
    /// The owner left the user-experience programme.
    OptOut,
    /// `vigil spool purge` was run.
    Purge,
}

/// Asks the maker to delete everything received from one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletionRequest {
    /// Pseudonymous device id whose data is to be deleted.
    pub device_id: String,
    /// Region of that device.
    pub region: Region,
    /// Why.
    pub reason: DeletionReason,
    /// Wall-clock time of the request (Unix seconds) when the clock was known to be right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_unix: Option<i64>,
}

/// True for a name made of `[A-Za-z0-9._-]`, 1 to 64 bytes, not starting with a dot.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

impl EventRecord {
    /// Checks the fields a bundle depends on: the device id and event id are safe names.
    pub fn validate(&self) -> Result<(), TelemetryError> {
        if !is_safe_name(&self.device_id) {
            return Err(TelemetryError::Invalid(format!(
                "device id {:?} is not a safe name",
                self.device_id
            )));
        }
        if !is_safe_name(&self.event_id) {
            return Err(TelemetryError::Invalid(format!("event id {:?} is not a safe name", self.event_id)));
        }
        Ok(())
    }
}

/// Checks a list of snapshots: count, names (safe, unique), size, JPEG start marker.
pub fn validate_snapshots(snapshots: &[Snapshot]) -> Result<(), TelemetryError> {
    if snapshots.len() > MAX_SNAPSHOTS {
        return Err(TelemetryError::Invalid(format!(
            "{} snapshots (at most {MAX_SNAPSHOTS})",
            snapshots.len()
        )));
    }
    for (i, s) in snapshots.iter().enumerate() {
        if !is_safe_name(&s.name) {
            return Err(TelemetryError::Invalid(format!("snapshot name {:?} is not a safe name", s.name)));
        }
        if snapshots[..i].iter().any(|o| o.name == s.name) {
            return Err(TelemetryError::Invalid(format!("snapshot name {:?} appears twice", s.name)));
        }
        if s.jpeg.len() > MAX_SNAPSHOT_BYTES {
            return Err(TelemetryError::Invalid(format!("snapshot {:?} is larger than 16 MiB", s.name)));
        }
        if !s.jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) {
            return Err(TelemetryError::Invalid(format!("snapshot {:?} is not a JPEG", s.name)));
        }
    }
    Ok(())
}
