//! `[telemetry]` configuration section, assembled by the pipeline from the one TOML file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::record::Region;
use crate::TelemetryError;

/// What happens to finished bundles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// vigil uploads bundles itself over HTTP(S). The default.
    #[default]
    Upload,
    /// Finished bundles are moved atomically into `outbox_dir` for the printer firmware's own uploader.
    Handoff,
}

/// Ingest endpoints, one per region. A bundle goes only to its own region's endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Endpoints {
    /// Endpoint for every region but mainland China. Default: `https://ingest-us.vigil.invalid/v1/bundles`
    /// (a placeholder that never resolves: set the maker's real endpoint).
    pub us: String,
    /// Endpoint for mainland China. Default: `https://ingest-cn.vigil.invalid/v1/bundles` (placeholder).
    pub cn: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            us: "https://ingest-us.vigil.invalid/v1/bundles".into(),
            cn: "https://ingest-cn.vigil.invalid/v1/bundles".into(),
        }
    }
}

impl Endpoints {
    /// The endpoint for `region`.
    pub fn for_region(&self, region: Region) -> &str {
        match region {
            Region::Us => &self.us,
            Region::Cn => &self.cn,
        }
    }
}

/// Upload rate limit: at most `max_uploads` requests in any `per_secs` window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    /// Requests per window, 1..=10000. Default: 10.
    pub max_uploads: u32,
    /// Window length in seconds, 1..=86400. Default: 60.
    pub per_secs: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit { max_uploads: 10, per_secs: 60 }
    }
}

/// Exponential backoff after failures: `initial_ms * 2^(failures-1)`, capped at `max_ms`, of which the
/// fraction `jitter` is randomised (the delay is drawn from `[d*(1-jitter), d]`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    /// First delay, 10 ms..=`max_ms`. Default: 2000 ms.
    pub initial_ms: u64,
    /// Largest delay, at most one day. Default: 900000 ms (15 minutes).
    pub max_ms: u64,
    /// Randomised fraction of each delay, 0..=1. Default: 0.5.
    pub jitter: f64,
    /// Longest `Retry-After` honoured, in seconds (longer values are cut to this), 1..=86400.
    /// Default: 3600.
    pub max_retry_after_secs: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial_ms: 2000, max_ms: 900_000, jitter: 0.5, max_retry_after_secs: 3600 }
    }
}

/// HTTP timeouts. There is deliberately no whole-request limit: a slow but moving upload on a poor link
/// is allowed to finish; a stalled one is cut by `io_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// TCP (and TLS) connect timeout, 1..=600000 ms. Default: 10000 ms.
    pub connect_ms: u64,
    /// Longest wait for any single read or write (a stalled server), 1..=600000 ms. Default: 30000 ms.
    pub io_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { connect_ms: 10_000, io_ms: 30_000 }
    }
}

/// The telemetry section. Every field has a default; `validate` checks the bounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Spool folder (created if missing). Default: `/var/lib/vigil/spool`.
    pub spool_dir: PathBuf,
    /// Most bytes of event bundles kept, 64 KiB..=16 GiB; oldest evicted first. Default: 33554432 (32 MiB).
    pub max_bytes: u64,
    /// Most event bundles kept, 1..=100000; oldest evicted first. Default: 200.
    pub max_bundles: u32,
    /// Free space the spool's filesystem must keep: a write that would go below it is refused (nothing is
    /// purged to make room), 0..=1 TiB. Default: 67108864 (64 MiB).
    pub min_free_bytes: u64,
    /// Bundles older than this many days are deleted, online or not, 1..=3650. Default: 14.
    pub retention_days: u32,
    /// Ingest endpoints per region.
    pub endpoints: Endpoints,
    /// Upload rate limit.
    pub rate_limit: RateLimit,
    /// Backoff after failures.
    pub backoff: Backoff,
    /// `upload` (default) or `handoff`.
    pub mode: Mode,
    /// Outbox folder for `handoff` mode (required there, must differ from the spool). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox_dir: Option<PathBuf>,
    /// HTTP timeouts. There is deliberately no whole-request limit: a slow but moving upload on a poor link
    /// is allowed to finish; a stalled one is cut by `io_ms`.
    pub timeouts: Timeouts,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            spool_dir: PathBuf::from("/var/lib/vigil/spool"),
            max_bytes: 32 * 1024 * 1024,
            max_bundles: 200,
            min_free_bytes: 64 * 1024 * 1024,
            retention_days: 14,
            endpoints: Endpoints::default(),
            rate_limit: RateLimit::default(),
            backoff: Backoff::default(),
            mode: Mode::Upload,
            outbox_dir: None,
            timeouts: Timeouts::default(),
        }
    }
}

fn check(ok: bool, what: &str) -> Result<(), TelemetryError> {
    if ok {
        Ok(())
    } else {
        Err(TelemetryError::Config(what.to_string()))
    }
}

/// Checks that `url` is `http://` or `https://` with a host.
pub fn check_endpoint(url: &str) -> Result<(), TelemetryError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| TelemetryError::Config(format!("endpoint {url:?} is not http:// or https://")))?;
    let host = rest.split('/').next().unwrap_or("");
    check(
        !host.is_empty() && !url.contains(['?', '#', ' ']),
        &format!("endpoint {url:?} needs a host and no query"),
    )
}

impl TelemetryConfig {
    /// Parses a `[telemetry]` section body from TOML text and validates it.
    pub fn from_toml(text: &str) -> Result<Self, TelemetryError> {
        let c: TelemetryConfig = toml_de(text)?;
        c.validate()?;
        Ok(c)
    }

    /// Reads the `[telemetry]` table of vigil's configuration file (every other table is ignored; no table
    /// means all defaults) and validates it.
    pub fn from_config_file(path: &std::path::Path) -> Result<Self, TelemetryError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TelemetryError::Config(format!("reading {}: {e}", path.display())))?;
        let mut doc: toml::Table =
            toml::from_str(&text).map_err(|e| TelemetryError::Config(format!("{}: {e}", path.display())))?;
        let c: TelemetryConfig = match doc.remove("telemetry") {
            Some(v) => v.try_into().map_err(|e| TelemetryError::Config(format!("[telemetry]: {e}")))?,
            None => TelemetryConfig::default(),
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks every bound named in the field docs.
    pub fn validate(&self) -> Result<(), TelemetryError> {
        const MS: u64 = 600_000;
        check(!self.spool_dir.as_os_str().is_empty(), "spool_dir is empty")?;
        check((64 * 1024..=16 << 30).contains(&self.max_bytes), "max_bytes must be 64 KiB..=16 GiB")?;
        check((1..=100_000).contains(&self.max_bundles), "max_bundles must be 1..=100000")?;
        check(self.min_free_bytes <= 1 << 40, "min_free_bytes must be at most 1 TiB")?;
        check((1..=3650).contains(&self.retention_days), "retention_days must be 1..=3650")?;
        check(
            (1..=10_000).contains(&self.rate_limit.max_uploads),
            "rate_limit.max_uploads must be 1..=10000",
        )?;
        check((1..=86_400).contains(&self.rate_limit.per_secs), "rate_limit.per_secs must be 1..=86400")?;
        let b = &self.backoff;
        check(b.max_ms <= 86_400_000, "backoff.max_ms must be at most one day")?;
        check(b.initial_ms >= 10 && b.initial_ms <= b.max_ms, "backoff.initial_ms must be 10..=max_ms")?;
        check((0.0..=1.0).contains(&b.jitter), "backoff.jitter must be 0..=1")?;
        check(
            (1..=86_400).contains(&b.max_retry_after_secs),
            "backoff.max_retry_after_secs must be 1..=86400",
        )?;
        let t = &self.timeouts;
        for (v, name) in [(t.connect_ms, "connect_ms"), (t.io_ms, "io_ms")] {
            check((1..=MS).contains(&v), &format!("timeouts.{name} must be 1..=600000"))?;
        }
        if self.mode == Mode::Upload {
            check_endpoint(&self.endpoints.us)?;
            check_endpoint(&self.endpoints.cn)?;
        }
        match (&self.mode, &self.outbox_dir) {
            (Mode::Handoff, None) => check(false, "mode handoff needs outbox_dir")?,
            (Mode::Handoff, Some(o)) => check(o != &self.spool_dir, "outbox_dir must differ from spool_dir")?,
            _ => {}
        }
        Ok(())
    }
}

fn toml_de(text: &str) -> Result<TelemetryConfig, TelemetryError> {
    toml::from_str(text).map_err(|e| TelemetryError::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(TelemetryConfig::default().validate().is_ok());
    }

    #[test]
    fn a_full_section_parses_and_unknown_fields_are_rejected() {
        let c = TelemetryConfig::from_toml(
            r#"
            spool_dir = "/data/spool"
            max_bytes = 1048576
            max_bundles = 50
            min_free_bytes = 0
            retention_days = 7
            mode = "handoff"
            outbox_dir = "/data/outbox"
            [endpoints]
            us = "https://us.example.invalid/v1"
            cn = "https://cn.example.invalid/v1"
            [rate_limit]
            max_uploads = 5
            [backoff]
            initial_ms = 500
            [timeouts]
            io_ms = 5000
            "#,
        )
        .expect("valid");
        assert_eq!(c.mode, Mode::Handoff);
        assert_eq!(c.rate_limit, RateLimit { max_uploads: 5, per_secs: 60 });
        assert_eq!(c.backoff.initial_ms, 500);
        assert_eq!(c.endpoints.for_region(Region::Cn), "https://cn.example.invalid/v1");
        assert!(TelemetryConfig::from_toml("spool_dri = \"/x\"").is_err());
        assert!(TelemetryConfig::from_toml("[backoff]\nmax = 3").is_err());
    }

    #[test]
    fn out_of_bounds_values_are_rejected() {
        for bad in [
            "max_bytes = 10",
            "max_bundles = 0",
            "retention_days = 0",
            "[rate_limit]\nper_secs = 0",
            "[backoff]\njitter = 1.5",
            "[backoff]\ninitial_ms = 5",
            "[timeouts]\nio_ms = 0",
            "[endpoints]\nus = \"ftp://x\"",
            "[endpoints]\ncn = \"https://\"",
            "mode = \"handoff\"",
            "mode = \"handoff\"\noutbox_dir = \"/var/lib/vigil/spool\"",
        ] {
            assert!(matches!(TelemetryConfig::from_toml(bad), Err(TelemetryError::Config(_))), "{bad}");
        }
    }

    #[test]
    fn the_telemetry_table_is_read_from_the_whole_config_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("vigil.toml");
        std::fs::write(&p, "[privacy]\nanything = 1\n[telemetry]\nspool_dir = \"/s\"\n").expect("write");
        assert_eq!(TelemetryConfig::from_config_file(&p).expect("ok").spool_dir, PathBuf::from("/s"));
        std::fs::write(&p, "[detector]\nx = 1\n").expect("write");
        assert_eq!(TelemetryConfig::from_config_file(&p).expect("ok"), TelemetryConfig::default());
    }

    #[test]
    fn mainland_china_is_cn_and_every_other_region_us() {
        assert_eq!(Region::from_country_code("CN"), Region::Cn);
        assert_eq!(Region::from_country_code(" cn "), Region::Cn);
        for other in ["US", "DE", "HK", "MO", "TW", "JP", ""] {
            assert_eq!(Region::from_country_code(other), Region::Us, "{other}");
        }
    }
}
