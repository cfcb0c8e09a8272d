//! The configuration file: one TOML document, one section per part of the program. Unknown keys are errors,
//! every value has a documented default and range.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_capture::{Backoff, LiveOptions, V4l2Format};
use vigil_detect::JudgeConfig;
use vigil_printer::PrinterConfig;
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
    /// Where `vigil run` takes frames from and how live sources are kept alive.
    pub source: SourceConfig,
    /// The printer's host (Moonraker or OctoPrint) and what a failure does.
    pub printer: PrinterConfig,
    /// The Prometheus metrics endpoint of `vigil run`.
    pub metrics: MetricsConfig,
}

/// The `[source]` table: the camera `vigil run` watches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// A source spec: a file, a folder, /dev/videoN, an http(s) MJPEG stream URL, a snapshot URL (with
    /// `poll_s`) or an rtsp:// URL. Default: none (the printer's first webcam, else an error).
    pub spec: Option<String>,
    /// Fetch `spec` as a snapshot URL every this many seconds. Default: none (a stream). Range (0, 3600].
    pub poll_s: Option<f64>,
    /// V4L2 pixel format: "mjpeg" or "yuyv". Default "mjpeg".
    pub format: V4l2Format,
    /// V4L2 frame width, height and rate to ask for. Default: the driver's.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<u32>,
    /// Seconds allowed to connect. Default 5, range 0.5..=60.
    pub connect_timeout_s: f64,
    /// A live source silent this long is taken as lost and reconnected. Default 5, range 0.5..=300.
    pub stall_timeout_s: f64,
    /// First delay before reconnecting; it doubles per failed attempt up to `backoff_max_s`.
    /// Default 0.5, range 0.05..=60.
    pub backoff_min_s: f64,
    /// Longest delay between reconnection attempts. Default 30, range backoff_min_s..=600.
    pub backoff_max_s: f64,
    /// Undecodable frames in a row after which the source is reconnected. Default 10, range 1..=1000.
    pub max_corrupt_run: u32,
    /// Decode JPEG frames at reduced DCT scale (1/2, 1/4, 1/8) when the model input is at most half the
    /// frame's shorter side. Default true.
    pub reduced_decode: bool,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            spec: None,
            poll_s: None,
            format: V4l2Format::Mjpeg,
            width: None,
            height: None,
            fps: None,
            connect_timeout_s: 5.0,
            stall_timeout_s: 5.0,
            backoff_min_s: 0.5,
            backoff_max_s: 30.0,
            max_corrupt_run: 10,
            reduced_decode: true,
        }
    }
}

impl SourceConfig {
    /// Live-source options; `model_input` is the model's input side (for reduced decoding).
    pub fn live_options(&self, model_input: u32) -> LiveOptions {
        LiveOptions {
            connect_timeout: std::time::Duration::from_secs_f64(self.connect_timeout_s),
            stall_timeout: std::time::Duration::from_secs_f64(self.stall_timeout_s),
            backoff: Backoff {
                min: std::time::Duration::from_secs_f64(self.backoff_min_s),
                max: std::time::Duration::from_secs_f64(self.backoff_max_s),
            },
            decode_min_side: self.reduced_decode.then_some(model_input),
            v4l2_format: self.format,
            width: self.width,
            height: self.height,
            fps: self.fps,
            max_corrupt_run: self.max_corrupt_run,
            retry_first: false,
            stop: None,
        }
    }

    fn validate(&self) -> Result<(), String> {
        let range = |name: &str, v: f64, lo: f64, hi: f64| {
            if v.is_finite() && v >= lo && v <= hi {
                Ok(())
            } else {
                Err(format!("source.{name} = {v} is out of range {lo}..={hi}"))
            }
        };
        range("connect_timeout_s", self.connect_timeout_s, 0.5, 60.0)?;
        range("stall_timeout_s", self.stall_timeout_s, 0.5, 300.0)?;
        range("backoff_min_s", self.backoff_min_s, 0.05, 60.0)?;
        range("backoff_max_s", self.backoff_max_s, self.backoff_min_s, 600.0)?;
        if let Some(p) = self.poll_s {
            if !(p > 0.0 && p <= 3600.0) {
                return Err(format!("source.poll_s = {p} is out of range (0, 3600]"));
            }
        }
        if !(1..=1000).contains(&self.max_corrupt_run) {
            return Err(format!(
                "source.max_corrupt_run = {} is out of range 1..=1000",
                self.max_corrupt_run
            ));
        }
        for (name, v, hi) in
            [("width", self.width, 16384), ("height", self.height, 16384), ("fps", self.fps, 240)]
        {
            if v.is_some_and(|v| v == 0 || v > hi) {
                return Err(format!("source.{name} = {} is out of range 1..={hi}", v.unwrap_or(0)));
            }
        }
        if let Some(spec) = &self.spec {
            vigil_capture::SourceSpec::parse(spec, self.poll_s).map_err(|e| format!("source.spec: {e}"))?;
        }
        Ok(())
    }
}

/// The `[metrics]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Loopback address and port of the Prometheus text endpoint (`GET /metrics`); empty turns it off.
    /// Default "127.0.0.1:9464". Only loopback addresses are accepted.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:9464".into() }
    }
}

impl MetricsConfig {
    /// The address to listen on, or `None` when turned off.
    pub fn addr(&self) -> Result<Option<std::net::SocketAddr>, String> {
        if self.listen.trim().is_empty() {
            return Ok(None);
        }
        let addr: std::net::SocketAddr =
            self.listen.trim().parse().map_err(|e| format!("metrics.listen = {:?}: {e}", self.listen))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "metrics.listen = {:?} must be a loopback address (127.0.0.1 or [::1])",
                self.listen
            ));
        }
        Ok(Some(addr))
    }
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
        self.source.validate()?;
        self.printer.validate()?;
        self.metrics.addr()?;
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

    /// The configuration with derived defaults filled in, as `vigil config check` prints it.
    pub fn effective(&self) -> Self {
        let mut c = self.clone();
        c.printer = c.printer.effective();
        let DetectorConfig::Onnx { threads, .. } = &mut c.detector;
        *threads = Some(self.detector_threads());
        c
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
    fn source_printer_and_metrics_sections_are_read_and_checked() {
        let cfg = parse(
            "[source]\nspec = \"http://127.0.0.1:8080/stream\"\nstall_timeout_s = 2.0\n[printer]\ntype = \"moonraker\"\n\
             action = \"pause\"\n[metrics]\nlisten = \"127.0.0.1:9999\"\n",
        )
        .unwrap();
        assert_eq!(cfg.source.stall_timeout_s, 2.0);
        assert_eq!(cfg.printer.effective().url, "http://127.0.0.1:7125");
        assert_eq!(cfg.metrics.addr().unwrap(), Some("127.0.0.1:9999".parse().unwrap()));
        let opts = cfg.source.live_options(192);
        assert_eq!(opts.decode_min_side, Some(192));
        assert!(parse("[metrics]\nlisten = \"0.0.0.0:9464\"\n")
            .unwrap_err()
            .to_string()
            .contains("loopback"));
        assert!(parse("[source]\nspec = \"ftp://x\"\n").is_err());
        assert!(parse("[source]\nbackoff_min_s = 5.0\nbackoff_max_s = 1.0\n").is_err());
        assert!(parse("[source]\nformat = \"h264\"\n").is_err());
        assert!(parse("[printer]\ntype = \"repetier\"\n").is_err());
        assert!(parse("[printer]\naction = \"pause\"\n").is_err(), "pause needs a printer");
        assert_eq!(parse("[metrics]\nlisten = \"\"\n").unwrap().metrics.addr().unwrap(), None);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert!(parse("[detector]\ntype = \"onnx\"\nthreads = 0\n").is_err());
        assert!(parse("[judge]\nfailure_threshold = 2.0\n").is_err());
        assert!(parse("[pipeline]\ninterval_s = -1.0\n").is_err());
    }
}
