//! The configuration file: one TOML document, one section per part of the program. Unknown keys are errors,
//! every value has a documented default and range.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_detect::JudgeConfig;
use vigil_privacy::PrivacyConfig;
use vigil_telemetry::TelemetryConfig;

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("config {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Which detector runs and how. Default: the ONNX Runtime backend with the bundled model.
    pub detector: DetectorConfig,
    /// The temporal rule that turns scores into events.
    pub judge: JudgeConfig,
    /// Stage settings.
    pub pipeline: PipelineConfig,
    /// What the printer is; goes into event records (pseudonymised).
    pub device: DeviceConfig,
    /// The improvement programme's rules: consent, purpose, minimisation, region (see crates/privacy).
    pub privacy: PrivacyConfig,
    /// Spool and upload of scrubbed snapshots (see crates/telemetry).
    pub telemetry: TelemetryConfig,
}

/// What the printer is. MAC and serial never leave the device: they only feed the pseudonymous device id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceConfig {
    /// Printer model, e.g. "K1 Max". Default: empty.
    pub printer_model: String,
    /// Printer firmware version. Default: empty.
    pub firmware: String,
    /// MAC address. Default: the first non-loopback interface's address from /sys/class/net.
    pub mac: Option<String>,
    /// Serial number. Default: empty.
    pub serial: String,
}

impl DeviceConfig {
    /// The configured MAC, else the first non-loopback interface's address, else empty.
    pub fn mac(&self) -> String {
        if let Some(m) = &self.mac {
            return m.clone();
        }
        let Ok(dir) = std::fs::read_dir("/sys/class/net") else { return String::new() };
        let mut names: Vec<_> = dir.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        names.sort();
        names
            .iter()
            .filter(|p| p.file_name().is_some_and(|n| n != "lo"))
            .filter_map(|p| std::fs::read_to_string(p.join("address")).ok())
            .map(|s| s.trim().to_string())
            .find(|s| !s.is_empty() && s != "00:00:00:00:00:00")
            .unwrap_or_default()
    }
}

/// The detector backends, selected by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum DetectorConfig {
    /// ONNX Runtime on the CPU.
    Onnx {
        /// Model file. Default: `models/failure.onnx` of the installation.
        #[serde(default)]
        model: Option<PathBuf>,
        /// Intra-op threads per inference. Default: half the cores, at least 1, leaving the rest to the
        /// printer's own software. Range 1..=64.
        #[serde(default)]
        threads: Option<usize>,
    },
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig::Onnx { model: None, threads: None }
    }
}

/// Stage settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Seconds between frames for timelapse footage (overrides container timestamps). Default: none.
    pub interval_s: Option<f64>,
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
        Self::parse(&text, path)
    }

    /// Parses and checks config text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid { path: path.to_path_buf(), reason };
        let cfg: Config = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        cfg.validate().map_err(invalid)?;
        Ok(cfg)
    }

    /// Checks every bound.
    pub fn validate(&self) -> Result<(), String> {
        self.judge.validate().map_err(|e| e.to_string())?;
        self.privacy.validate().map_err(|e| e.to_string())?;
        self.telemetry.validate().map_err(|e| e.to_string())?;
        let DetectorConfig::Onnx { threads, .. } = &self.detector;
        if let Some(t) = threads {
            if !(1..=64).contains(t) {
                return Err(format!("detector.threads = {t} is out of range 1..=64"));
            }
        }
        if let Some(s) = self.pipeline.interval_s {
            if !(s > 0.0 && s.is_finite()) {
                return Err(format!("pipeline.interval_s = {s} must be a positive number of seconds"));
            }
        }
        Ok(())
    }

    /// Intra-op threads the detector uses: the configured number, else half the cores (at least 1).
    pub fn detector_threads(&self) -> usize {
        let DetectorConfig::Onnx { threads, .. } = &self.detector;
        threads
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() / 2).unwrap_or(1).max(1))
    }

    /// The configured model file, if one is set.
    pub fn model_path(&self) -> Option<&Path> {
        let DetectorConfig::Onnx { model, .. } = &self.detector;
        model.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg, Config::default());
        assert_eq!(cfg.judge.thresholds(), (0.70, 0.95, 0.40));
        assert!(cfg.detector_threads() >= 1);
    }

    #[test]
    fn a_full_file_is_read() {
        let cfg = parse(
            "[detector]\ntype = \"onnx\"\nmodel = \"m.onnx\"\nthreads = 2\n[judge]\nsensitivity = \"high\"\nfailure_threshold = 0.9\n[pipeline]\ninterval_s = 10.0\n",
        )
        .unwrap();
        assert_eq!(cfg.model_path(), Some(Path::new("m.onnx")));
        assert_eq!(cfg.detector_threads(), 2);
        assert_eq!(cfg.judge.thresholds(), (0.55, 0.9, 0.30));
        assert_eq!(cfg.pipeline.interval_s, Some(10.0));
    }

    #[test]
    fn unknown_keys_are_refused_and_named() {
        let err = parse("[judge]\nsensitivty = \"high\"\n").unwrap_err().to_string();
        assert!(err.contains("sensitivty") && err.contains("test.toml"), "{err}");
        assert!(parse("[detector]\ntype = \"onnx\"\nmodle = \"x\"\n").is_err());
        assert!(parse("[detector]\ntype = \"tpu\"\n").is_err());
    }

    #[test]
    fn privacy_and_telemetry_sections_are_read_and_checked() {
        let cfg = parse("[privacy]\ncountry = \"CN\"\n[telemetry]\nretention_days = 7\n[device]\nprinter_model = \"K1\"\n")
            .unwrap();
        assert_eq!(cfg.privacy.country, "CN");
        assert_eq!(cfg.telemetry.retention_days, 7);
        assert_eq!(cfg.device.printer_model, "K1");
        assert!(parse("[telemetry]\nretention_days = 0\n").is_err());
        assert!(parse("[privacy]\nconsent = true\n").is_err());
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert!(parse("[detector]\ntype = \"onnx\"\nthreads = 0\n").is_err());
        assert!(parse("[judge]\nfailure_threshold = 2.0\n").is_err());
        assert!(parse("[pipeline]\ninterval_s = -1.0\n").is_err());
    }
}
