//! The notification webhook: one JSON POST per event.

use std::time::Duration;

use serde::Serialize;

use crate::{agent, http_error, PrinterError};

/// A URL that receives events as `{"event": ..., "printer": ..., "action": ..., "snapshot_jpeg_base64": ...}`.
pub struct Webhook {
    url: String,
    agent: ureq::Agent,
}

#[derive(Serialize)]
struct Body<'a, E: Serialize> {
    event: &'a E,
    printer: &'a str,
    source: &'a str,
    action: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot_jpeg_base64: Option<String>,
}

impl Webhook {
    pub fn new(url: &str, timeout: Duration) -> Self {
        Self { url: url.to_string(), agent: agent(timeout) }
    }

    /// POSTs the event; `action` says what vigil did (`notify`, `paused`, `pause refused: ...`);
    /// `snapshot` is the scrubbed JPEG, only when consent allows it.
    pub fn notify<E: Serialize>(
        &self,
        event: &E,
        printer: &str,
        source: &str,
        action: &str,
        snapshot: Option<&[u8]>,
    ) -> Result<(), PrinterError> {
        let body = Body { event, printer, source, action, snapshot_jpeg_base64: snapshot.map(base64) };
        let json = serde_json::to_string(&body).map_err(|e| PrinterError::Config(e.to_string()))?;
        self.agent
            .post(&self.url)
            .set("Content-Type", "application/json")
            .send_string(&json)
            .map_err(|e| http_error(&self.url, "webhook", e))?;
        Ok(())
    }
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 { A[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if c.len() > 2 { A[n as usize & 63] as char } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn the_webhook_receives_the_event_as_json() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            let mut first = String::new();
            r.read_line(&mut first).unwrap();
            loop {
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                if l.trim().is_empty() {
                    break;
                }
                if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").unwrap();
            (first, body)
        });
        let hook = Webhook::new(&format!("http://127.0.0.1:{port}/hook"), Duration::from_secs(5));
        let event = serde_json::json!({"type": "failure", "frame": 7, "score": 0.9});
        hook.notify(&event, "http://127.0.0.1:7125", "cam", "paused", Some(b"\xFF\xD8jpeg")).unwrap();
        let (first, body) = server.join().unwrap();
        assert!(first.starts_with("POST /hook "), "{first}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["event"]["frame"], 7);
        assert_eq!(v["action"], "paused");
        assert_eq!(v["snapshot_jpeg_base64"], base64(b"\xFF\xD8jpeg"));
        let refused = Webhook::new(&format!("http://127.0.0.1:{port}/hook"), Duration::from_secs(1));
        assert!(matches!(
            refused.notify(&event, "p", "c", "notify", None),
            Err(PrinterError::Unreachable { .. })
        ));
    }
}
