//! The [`Uploader`] trait and its HTTP implementation (blocking `ureq`, rustls for `https://`).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{plausible, Clock};
use crate::config::Timeouts;
use crate::manager::Outcome;

/// One upload: `PUT {endpoint}/{device_id}/{bundle_id}.zst` with an `Idempotency-Key` header.
#[derive(Clone, Copy, Debug)]
pub struct UploadRequest<'a> {
    /// The region's endpoint (no trailing slash needed).
    pub endpoint: &'a str,
    /// Pseudonymous device id (a safe path segment).
    pub device_id: &'a str,
    /// Bundle id (a safe path segment).
    pub bundle_id: &'a str,
    /// Stable across retries and restarts, so a retried bundle is stored once.
    pub idempotency_key: &'a str,
    /// The bundle file.
    pub body: &'a [u8],
}

impl UploadRequest<'_> {
    /// `{endpoint}/{device_id}/{bundle_id}.zst`.
    pub fn url(&self) -> String {
        format!("{}/{}/{}.zst", self.endpoint.trim_end_matches('/'), self.device_id, self.bundle_id)
    }
}

/// The idempotency key of a bundle: `{device_id}.{bundle_id}` (the bundle id carries the sequence number
/// and a random nonce, so it never repeats).
pub fn idempotency_key(device_id: &str, bundle_id: &str) -> String {
    format!("{device_id}.{bundle_id}")
}

/// Does the network part of an upload. Implementations must not follow redirects (a redirect could send a
/// bundle to another region).
pub trait Uploader {
    /// Sends one bundle and reports how it went.
    fn upload(&mut self, req: &UploadRequest<'_>) -> Outcome;
}

/// Blocking HTTP(S) uploader.
pub struct HttpUploader {
    agent: ureq::Agent,
    clock: Arc<dyn Clock>,
}

impl HttpUploader {
    /// An uploader with these timeouts; `clock` converts an HTTP-date `Retry-After`.
    pub fn new(timeouts: &Timeouts, clock: Arc<dyn Clock>) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_millis(timeouts.connect_ms))
            .timeout_read(Duration::from_millis(timeouts.io_ms))
            .timeout_write(Duration::from_millis(timeouts.io_ms))
            .redirects(0)
            .user_agent(concat!("vigil-telemetry/", env!("CARGO_PKG_VERSION")))
            .build();
        HttpUploader { agent, clock }
    }
}

impl Uploader for HttpUploader {
    fn upload(&mut self, req: &UploadRequest<'_>) -> Outcome {
        let r = self
            .agent
            .put(&req.url())
            .set("Content-Type", "application/zstd")
            .set("Idempotency-Key", req.idempotency_key)
            .send_bytes(req.body);
        match r {
            Ok(resp) => {
                let code = resp.status();
                let retry_after = resp.header("Retry-After").and_then(|v| parse_retry_after(v, &*self.clock));
                let _ = resp.into_string();
                Outcome::Status { code, retry_after }
            }
            Err(ureq::Error::Status(code, resp)) => {
                let retry_after = resp.header("Retry-After").and_then(|v| parse_retry_after(v, &*self.clock));
                Outcome::Status { code, retry_after }
            }
            Err(ureq::Error::Transport(t)) => classify_transport(&t),
        }
    }
}

fn classify_transport(t: &ureq::Transport) -> Outcome {
    use std::error::Error as _;
    match t.kind() {
        ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns => {
            if io_kind(t.source()).is_some_and(is_timeout) {
                Outcome::Timeout
            } else {
                Outcome::Refused
            }
        }
        ureq::ErrorKind::Io => match io_kind(t.source()) {
            Some(k) if is_timeout(k) => Outcome::Timeout,
            Some(io::ErrorKind::ConnectionRefused) => Outcome::Refused,
            _ => Outcome::Failed(t.to_string()),
        },
        _ => Outcome::Failed(t.to_string()),
    }
}

fn is_timeout(k: io::ErrorKind) -> bool {
    matches!(k, io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
}

fn io_kind(mut e: Option<&(dyn std::error::Error + 'static)>) -> Option<io::ErrorKind> {
    while let Some(err) = e {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        e = err.source();
    }
    None
}

/// Parses `Retry-After`: delta-seconds, or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) converted with
/// `clock` when the clock is plausible.
pub fn parse_retry_after(value: &str, clock: &dyn Clock) -> Option<Duration> {
    let v = value.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = parse_imf_fixdate(v)?;
    let now = clock.now_unix();
    if !plausible(now) {
        return None;
    }
    Some(Duration::from_secs(u64::try_from(at - now).unwrap_or(0)))
}

fn parse_imf_fixdate(v: &str) -> Option<i64> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let p: Vec<&str> = v.split_whitespace().collect();
    if p.len() != 6 || p[5] != "GMT" {
        return None;
    }
    let day: i64 = p[1].parse().ok()?;
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| *m == p[2])? as i64 + 1;
    let year: i64 = p[3].parse().ok()?;
    let t: Vec<i64> = p[4].split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    if t.len() != 3 || !(1..=31).contains(&day) {
        return None;
    }
    // days from civil (Howard Hinnant)
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let clock = ManualClock::new(1_800_000_000);
        assert_eq!(parse_retry_after("7", &clock), Some(Duration::from_secs(7)));
        // 2027-01-15T08:00:00Z = 1_800_000_000 + 30 s  ->  1_800_000_030
        assert_eq!(parse_imf_fixdate("Fri, 15 Jan 2027 08:00:30 GMT"), Some(1_800_000_030));
        assert_eq!(parse_retry_after("Fri, 15 Jan 2027 08:00:30 GMT", &clock), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("soon", &clock), None);
    }

    #[test]
    fn http_date_retry_after_is_ignored_while_the_clock_is_at_1970() {
        let clock = ManualClock::new(60);
        assert_eq!(parse_retry_after("Fri, 15 Jan 2027 08:00:30 GMT", &clock), None);
    }

    #[test]
    fn upload_url_is_endpoint_device_bundle() {
        let r = UploadRequest {
            endpoint: "https://x.invalid/v1/",
            device_id: "dev-1",
            bundle_id: "e-000000000001-0000abcd",
            idempotency_key: "k",
            body: b"",
        };
        assert_eq!(r.url(), "https://x.invalid/v1/dev-1/e-000000000001-0000abcd.zst");
    }
}
