//! Klipper through Moonraker's HTTP API: `/printer/objects/query?print_stats` for the state,
//! `/server/webcams/list` for the cameras, `/printer/print/pause` to pause.

use std::time::Duration;

use serde_json::Value;

use crate::{http_error, json, resolve_url, HostClient, PrintState, Printer, PrinterError, Status, Webcam};

/// A Moonraker instance.
pub struct Moonraker {
    http: HostClient,
}

impl Moonraker {
    pub fn new(base: &str, api_key: Option<String>, timeout: Duration) -> Self {
        Self { http: HostClient::new(base, api_key, timeout) }
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.http.request(method, path)
    }

    fn protocol(&self, what: &str, reason: &str) -> PrinterError {
        PrinterError::Protocol { host: self.http.base.clone(), what: what.into(), reason: reason.into() }
    }
}

/// Maps Klipper's `print_stats.state`.
pub(crate) fn state_of(s: &str) -> PrintState {
    match s {
        "printing" => PrintState::Printing,
        "paused" => PrintState::Paused,
        "complete" => PrintState::Complete,
        "cancelled" => PrintState::Cancelled,
        "error" => PrintState::Error,
        _ => PrintState::Standby,
    }
}

impl Printer for Moonraker {
    fn host(&self) -> &str {
        &self.http.base
    }

    fn status(&mut self) -> Result<Status, PrinterError> {
        const WHAT: &str = "/printer/objects/query?print_stats";
        let resp = match self.request("GET", "/printer/objects/query?print_stats").call() {
            Ok(r) => r,
            // Moonraker runs but Klippy is not connected (503) or not ready (404 for printer objects).
            Err(ureq::Error::Status(404 | 503, _)) => {
                return Ok(Status { state: PrintState::Offline, job: None })
            }
            Err(e) => return Err(http_error(&self.http.base, WHAT, e)),
        };
        let v = json(&self.http.base, WHAT, resp)?;
        let ps = &v["result"]["status"]["print_stats"];
        let state =
            ps["state"].as_str().ok_or_else(|| self.protocol(WHAT, "no result.status.print_stats.state"))?;
        let job = ps["filename"].as_str().filter(|f| !f.is_empty()).map(str::to_string);
        Ok(Status { state: state_of(state), job })
    }

    fn webcams(&mut self) -> Result<Vec<Webcam>, PrinterError> {
        const WHAT: &str = "/server/webcams/list";
        let resp = self.request("GET", WHAT).call().map_err(|e| http_error(&self.http.base, WHAT, e))?;
        let v = json(&self.http.base, WHAT, resp)?;
        let list =
            v["result"]["webcams"].as_array().ok_or_else(|| self.protocol(WHAT, "no result.webcams list"))?;
        let url = |c: &Value, k: &str| {
            c[k].as_str().filter(|s| !s.trim().is_empty()).map(|s| resolve_url(&self.http.base, s, false))
        };
        Ok(list
            .iter()
            .filter(|c| c["enabled"].as_bool() != Some(false))
            .map(|c| Webcam {
                name: c["name"].as_str().unwrap_or("").to_string(),
                stream_url: url(c, "stream_url"),
                snapshot_url: url(c, "snapshot_url"),
            })
            .collect())
    }

    fn pause(&mut self) -> Result<(), PrinterError> {
        const WHAT: &str = "/printer/print/pause";
        let resp = self.request("POST", WHAT).call().map_err(|e| http_error(&self.http.base, WHAT, e))?;
        let v = json(&self.http.base, WHAT, resp)?;
        match v["result"].as_str() {
            Some("ok") => Ok(()),
            _ => Err(self.protocol(WHAT, &format!("expected result \"ok\", got {v}"))),
        }
    }
}
