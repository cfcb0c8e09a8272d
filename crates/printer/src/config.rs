//! The `[printer]` table of the configuration file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::PrinterError;

/// Which host software runs the printer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrinterKind {
    /// No printer: detection runs all the time and no action is taken on the printer.
    #[default]
    None,
    /// Klipper through Moonraker.
    Moonraker,
    /// OctoPrint.
    Octoprint,
}

/// What a `failure` event does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Only log it (and write it to the events file).
    Log,
    /// Call the webhook with the event.
    #[default]
    Notify,
    /// Pause the print (once per print, never within the cooldown after a resume), and call the webhook
    /// if one is set.
    Pause,
}

/// The `[printer]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrinterConfig {
    /// `none`, `moonraker` or `octoprint`. Default `none`.
    #[serde(rename = "type")]
    pub kind: PrinterKind,
    /// The host's base URL. Default: `http://127.0.0.1:7125` for Moonraker, `http://127.0.0.1:5000` for
    /// OctoPrint.
    pub url: String,
    /// API key (OctoPrint: required; Moonraker: only when its authorization asks for one). Default: none.
    pub api_key: Option<String>,
    /// File holding the API key (first line), instead of `api_key`. Default: none.
    pub api_key_file: Option<PathBuf>,
    /// Seconds between print state queries. Default 5, range 0.2..=300.
    pub poll_s: f64,
    /// Seconds allowed for each request to the host. Default 5, range 0.5..=60.
    pub timeout_s: f64,
    /// `log`, `notify` or `pause`. Default `notify`.
    pub action: Action,
    /// URL the event is POSTed to as JSON (`notify`, and `pause` when set). Default: none.
    pub webhook: Option<String>,
    /// Attach the scrubbed snapshot of the failure to the webhook call, when the owner's consent allows.
    /// Default true.
    pub webhook_snapshot: bool,
    /// After the user resumes a print, no pause for this many seconds. Default 600, range 0..=86400.
    pub resume_cooldown_s: f64,
    /// Pauses per print at most. Default 1, range 1..=10.
    pub max_pauses_per_print: u32,
    /// Name of the host's webcam to watch when no source is given. Default: the first one listed.
    pub webcam: Option<String>,
}

impl Default for PrinterConfig {
    fn default() -> Self {
        Self {
            kind: PrinterKind::None,
            url: String::new(),
            api_key: None,
            api_key_file: None,
            poll_s: 5.0,
            timeout_s: 5.0,
            action: Action::Notify,
            webhook: None,
            webhook_snapshot: true,
            resume_cooldown_s: 600.0,
            max_pauses_per_print: 1,
            webcam: None,
        }
    }
}

impl PrinterConfig {
    /// The configured URL, else the default for the kind.
    pub fn base_url(&self) -> String {
        if !self.url.trim().is_empty() {
            return self.url.trim().trim_end_matches('/').to_string();
        }
        match self.kind {
            PrinterKind::Moonraker => "http://127.0.0.1:7125".into(),
            PrinterKind::Octoprint => "http://127.0.0.1:5000".into(),
            PrinterKind::None => String::new(),
        }
    }

    /// The same table with the derived defaults filled in (for `vigil config check`).
    pub fn effective(&self) -> Self {
        Self { url: self.base_url(), ..self.clone() }
    }

    /// The API key from `api_key` or `api_key_file`.
    pub fn api_key(&self) -> Result<Option<String>, PrinterError> {
        if let Some(k) = &self.api_key {
            return Ok(Some(k.trim().to_string()));
        }
        let Some(path) = &self.api_key_file else { return Ok(None) };
        let text = std::fs::read_to_string(path)
            .map_err(|e| PrinterError::Config(format!("api_key_file {}: {e}", path.display())))?;
        Ok(text.lines().next().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()))
    }

    /// Checks every bound.
    pub fn validate(&self) -> Result<(), String> {
        let range = |name: &str, v: f64, lo: f64, hi: f64| {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("printer.{name} = {v} is out of range {lo}..={hi}"))
            }
        };
        range("poll_s", self.poll_s, 0.2, 300.0)?;
        range("timeout_s", self.timeout_s, 0.5, 60.0)?;
        range("resume_cooldown_s", self.resume_cooldown_s, 0.0, 86400.0)?;
        if !(1..=10).contains(&self.max_pauses_per_print) {
            return Err(format!(
                "printer.max_pauses_per_print = {} is out of range 1..=10",
                self.max_pauses_per_print
            ));
        }
        let url = self.base_url();
        if self.kind != PrinterKind::None && !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("printer.url = {url:?} must start with http:// or https://"));
        }
        if let Some(w) = &self.webhook {
            if !(w.starts_with("http://") || w.starts_with("https://")) {
                return Err(format!("printer.webhook = {w:?} must start with http:// or https://"));
            }
        }
        if self.action == Action::Pause && self.kind == PrinterKind::None {
            return Err(
                "printer.action = \"pause\" needs printer.type = \"moonraker\" or \"octoprint\"".into()
            );
        }
        if self.api_key.is_some() && self.api_key_file.is_some() {
            return Err("set printer.api_key or printer.api_key_file, not both".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        let d = PrinterConfig::default();
        assert!(d.validate().is_ok());
        assert_eq!(d.base_url(), "");
        let m = PrinterConfig { kind: PrinterKind::Moonraker, ..d.clone() };
        assert_eq!(m.effective().url, "http://127.0.0.1:7125");
        let o =
            PrinterConfig { kind: PrinterKind::Octoprint, url: "http://octopi.local/".into(), ..d.clone() };
        assert_eq!(o.base_url(), "http://octopi.local");
        assert!(PrinterConfig { poll_s: 0.0, ..d.clone() }.validate().is_err());
        assert!(PrinterConfig { max_pauses_per_print: 0, ..d.clone() }.validate().is_err());
        assert!(PrinterConfig { action: Action::Pause, ..d.clone() }.validate().is_err());
        assert!(PrinterConfig { webhook: Some("ftp://x".into()), ..d.clone() }.validate().is_err());
        assert!(PrinterConfig { kind: PrinterKind::Moonraker, url: "printer:7125".into(), ..d }
            .validate()
            .is_err());
    }

    #[test]
    fn the_api_key_may_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, "ABC123\n").unwrap();
        let c = PrinterConfig { api_key_file: Some(p), ..PrinterConfig::default() };
        assert_eq!(c.api_key().unwrap().as_deref(), Some("ABC123"));
        let missing =
            PrinterConfig { api_key_file: Some(dir.path().join("nope")), ..PrinterConfig::default() };
        assert!(missing.api_key().is_err());
    }
}
