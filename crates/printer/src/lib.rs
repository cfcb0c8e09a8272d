//! `vigil-printer` talks to the printer's host software so that detection runs only while a print is running
//! and a failure can pause it. A [`Printer`] reports its [`Status`] (a [`PrintState`] and the job's file),
//! lists its [`Webcam`]s and pauses the print; [`Moonraker`] (Klipper) and [`OctoPrint`] implement it over
//! their HTTP APIs. [`PauseGuard`] is the pure rule deciding whether a failure may pause: at most once per
//! print, never while printing has not started, and never within the cooldown after the user resumed.
//! [`Webhook`] posts an event (and, where consent allows, the scrubbed snapshot) to a configured URL.
//! [`PrinterConfig`] is the `[printer]` table of the configuration file.

mod config;
mod guard;
mod moonraker;
mod octoprint;
mod webhook;

pub use config::{Action, PrinterConfig, PrinterKind};
pub use guard::{PauseGuard, Refusal};
pub use moonraker::Moonraker;
pub use octoprint::OctoPrint;
pub use webhook::{base64, Webhook};

use std::time::Duration;

/// Errors talking to the printer's host.
#[derive(Debug, thiserror::Error)]
pub enum PrinterError {
    /// The host cannot be reached (refused, timed out, name not resolved).
    #[error("{host}: unreachable: {reason}")]
    Unreachable { host: String, reason: String },
    /// The host answered with an error status.
    #[error("{host}: {what} answered HTTP {status}: {body}")]
    Status { host: String, what: String, status: u16, body: String },
    /// The host answered something that is not what its API documents.
    #[error("{host}: {what}: unexpected answer: {reason}")]
    Protocol { host: String, what: String, reason: String },
    /// The configuration cannot be used.
    #[error("printer config: {0}")]
    Config(String),
}

/// What the printer is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrintState {
    /// Connected, not printing.
    Standby,
    /// A print is running (or resuming).
    Printing,
    /// A print is paused (or pausing).
    Paused,
    /// The last print finished.
    Complete,
    /// The last print was cancelled.
    Cancelled,
    /// The printer reports an error.
    Error,
    /// The host runs but the printer (Klippy, the serial link) is not connected.
    Offline,
}

/// The printer's state and the job it is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub state: PrintState,
    /// The job's file name, when there is a job.
    pub job: Option<String>,
}

/// A camera the printer's host knows of. URLs are absolute (relative ones are resolved against the host).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Webcam {
    pub name: String,
    pub stream_url: Option<String>,
    pub snapshot_url: Option<String>,
}

/// The printer's host software.
pub trait Printer: Send {
    /// The host's base URL, for messages.
    fn host(&self) -> &str;
    /// Current state and job.
    fn status(&mut self) -> Result<Status, PrinterError>;
    /// Cameras configured on the host.
    fn webcams(&mut self) -> Result<Vec<Webcam>, PrinterError>;
    /// Pauses the running print.
    fn pause(&mut self) -> Result<(), PrinterError>;
}

/// Opens the adapter the config names; `None` for `type = "none"`.
pub fn connect(cfg: &PrinterConfig) -> Result<Option<Box<dyn Printer>>, PrinterError> {
    let timeout = Duration::from_secs_f64(cfg.timeout_s);
    let key = cfg.api_key()?;
    Ok(match cfg.kind {
        PrinterKind::None => None,
        PrinterKind::Moonraker => Some(Box::new(Moonraker::new(&cfg.url, key, timeout))),
        PrinterKind::Octoprint => Some(Box::new(OctoPrint::new(&cfg.url, key, timeout))),
    })
}

/// Makes a URL from the host absolute: `/webcam/?action=stream` on `http://printer:7125` becomes
/// `http://printer/webcam/?action=stream` when `same_port` is false (Moonraker's webcam paths are served by
/// the web server in front, on the default port), `http://printer:5000/...` when true.
pub fn resolve_url(base: &str, url: &str, same_port: bool) -> String {
    let url = url.trim();
    if url.contains("://") || url.is_empty() {
        return url.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let authority = rest.split('/').next().unwrap_or("");
    let host = if same_port {
        authority.to_string()
    } else {
        // Drop the port, keeping an IPv6 literal whole.
        match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => authority[..i].to_string(),
            _ => authority.to_string(),
        }
    };
    if let Some(stripped) = url.strip_prefix("//") {
        return format!("{scheme}://{stripped}");
    }
    let sep = if url.starts_with('/') { "" } else { "/" };
    format!("{scheme}://{host}{sep}{url}")
}

pub(crate) fn agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new().timeout_connect(timeout).timeout(timeout * 2).build()
}

/// The HTTP side shared by the printer hosts: a base URL, an optional `X-Api-Key` and a client.
pub(crate) struct HostClient {
    pub(crate) base: String,
    key: Option<String>,
    agent: ureq::Agent,
}

impl HostClient {
    pub(crate) fn new(base: &str, api_key: Option<String>, timeout: Duration) -> Self {
        Self { base: base.trim_end_matches('/').to_string(), key: api_key, agent: agent(timeout) }
    }

    /// A request for `path` (starting with `/`) on the host, with the API key when there is one.
    pub(crate) fn request(&self, method: &str, path: &str) -> ureq::Request {
        let r = self.agent.request(method, &format!("{}{path}", self.base));
        match &self.key {
            Some(k) => r.set("X-Api-Key", k),
            None => r,
        }
    }
}

/// Maps a ureq error to ours.
pub(crate) fn http_error(host: &str, what: &str, e: ureq::Error) -> PrinterError {
    match e {
        ureq::Error::Status(status, resp) => {
            let body = resp.into_string().unwrap_or_default();
            PrinterError::Status {
                host: host.into(),
                what: what.into(),
                status,
                body: body.chars().take(200).collect(),
            }
        }
        ureq::Error::Transport(t) => PrinterError::Unreachable { host: host.into(), reason: t.to_string() },
    }
}

/// Reads a JSON answer.
pub(crate) fn json(host: &str, what: &str, resp: ureq::Response) -> Result<serde_json::Value, PrinterError> {
    use std::io::Read;
    let mut body = Vec::new();
    resp.into_reader()
        .take(4 * 1024 * 1024)
        .read_to_end(&mut body)
        .map_err(|e| PrinterError::Unreachable { host: host.into(), reason: e.to_string() })?;
    serde_json::from_slice(&body).map_err(|e| PrinterError::Protocol {
        host: host.into(),
        what: what.into(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_webcam_urls_are_made_absolute() {
        assert_eq!(
            resolve_url("http://printer.local:7125", "/webcam/?action=stream", false),
            "http://printer.local/webcam/?action=stream"
        );
        assert_eq!(
            resolve_url("http://127.0.0.1:5000/", "/webcam/?action=snapshot", true),
            "http://127.0.0.1:5000/webcam/?action=snapshot"
        );
        assert_eq!(resolve_url("http://h:7125", "http://cam:8080/stream", false), "http://cam:8080/stream");
        assert_eq!(resolve_url("http://[::1]:7125", "/s", false), "http://[::1]/s");
        assert_eq!(resolve_url("https://h", "//cam/x", false), "https://cam/x");
    }
}
