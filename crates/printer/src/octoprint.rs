//! OctoPrint's REST API: `GET /api/job` for the state, `POST /api/job {"command": "pause", "action":
//! "pause"}` to pause, `GET /api/settings` (`webcam`) for the cameras. Every request carries `X-Api-Key`.

use std::time::Duration;

use serde_json::Value;

use crate::{http_error, json, resolve_url, HostClient, PrintState, Printer, PrinterError, Status, Webcam};

/// An OctoPrint instance.
pub struct OctoPrint {
    http: HostClient,
}

impl OctoPrint {
    pub fn new(base: &str, api_key: Option<String>, timeout: Duration) -> Self {
        Self { http: HostClient::new(base, api_key, timeout) }
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.http.request(method, path)
    }
}

/// Maps OctoPrint's state text (`Operational`, `Printing`, `Printing from SD`, `Pausing`, `Paused`,
/// `Resuming`, `Finishing`, `Cancelling`, `Offline`, `Error: ...`, ...).
pub(crate) fn state_of(s: &str) -> PrintState {
    let s = s.to_ascii_lowercase();
    if s.starts_with("printing") || s.starts_with("resuming") || s.starts_with("finishing") {
        PrintState::Printing
    } else if s.starts_with("paus") {
        PrintState::Paused
    } else if s.starts_with("cancelling") {
        PrintState::Cancelled
    } else if s.starts_with("offline")
        || s.starts_with("closed")
        || s.starts_with("opening")
        || s.starts_with("connecting")
        || s.starts_with("detecting")
    {
        PrintState::Offline
    } else if s.starts_with("error") || s.contains("error") {
        PrintState::Error
    } else {
        PrintState::Standby
    }
}

impl Printer for OctoPrint {
    fn host(&self) -> &str {
        &self.http.base
    }

    fn status(&mut self) -> Result<Status, PrinterError> {
        const WHAT: &str = "/api/job";
        let resp = self.request("GET", WHAT).call().map_err(|e| http_error(&self.http.base, WHAT, e))?;
        let v = json(&self.http.base, WHAT, resp)?;
        let state = v["state"].as_str().ok_or_else(|| PrinterError::Protocol {
            host: self.http.base.clone(),
            what: WHAT.into(),
            reason: "no state".into(),
        })?;
        let job = v["job"]["file"]["name"].as_str().filter(|f| !f.is_empty()).map(str::to_string);
        Ok(Status { state: state_of(state), job })
    }

    fn webcams(&mut self) -> Result<Vec<Webcam>, PrinterError> {
        const WHAT: &str = "/api/settings";
        let resp = self.request("GET", WHAT).call().map_err(|e| http_error(&self.http.base, WHAT, e))?;
        let v = json(&self.http.base, WHAT, resp)?;
        let w = &v["webcam"];
        let url = |x: &Value| {
            x.as_str().filter(|s| !s.trim().is_empty()).map(|s| resolve_url(&self.http.base, s, false))
        };
        let mut cams: Vec<Webcam> = w["webcams"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|c| Webcam {
                        name: c["name"].as_str().unwrap_or("").to_string(),
                        stream_url: url(&c["compat"]["stream"]).or_else(|| url(&c["streamUrl"])),
                        snapshot_url: url(&c["compat"]["snapshot"]).or_else(|| url(&c["snapshotUrl"])),
                    })
                    .filter(|c| c.stream_url.is_some() || c.snapshot_url.is_some())
                    .collect()
            })
            .unwrap_or_default();
        if cams.is_empty() && (url(&w["streamUrl"]).is_some() || url(&w["snapshotUrl"]).is_some()) {
            cams.push(Webcam {
                name: "classic".into(),
                stream_url: url(&w["streamUrl"]),
                snapshot_url: url(&w["snapshotUrl"]),
            });
        }
        Ok(cams)
    }

    fn pause(&mut self) -> Result<(), PrinterError> {
        const WHAT: &str = "POST /api/job pause";
        self.request("POST", "/api/job")
            .set("Content-Type", "application/json")
            .send_string(r#"{"command": "pause", "action": "pause"}"#)
            .map_err(|e| http_error(&self.http.base, WHAT, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octoprint_states_are_mapped() {
        assert_eq!(state_of("Printing"), PrintState::Printing);
        assert_eq!(state_of("Printing from SD"), PrintState::Printing);
        assert_eq!(state_of("Pausing"), PrintState::Paused);
        assert_eq!(state_of("Paused"), PrintState::Paused);
        assert_eq!(state_of("Operational"), PrintState::Standby);
        assert_eq!(state_of("Offline"), PrintState::Offline);
        assert_eq!(state_of("Offline after error"), PrintState::Offline);
        assert_eq!(state_of("Error: Printer halted"), PrintState::Error);
        assert_eq!(crate::moonraker::state_of("printing"), PrintState::Printing);
        assert_eq!(crate::moonraker::state_of("standby"), PrintState::Standby);
    }
}
