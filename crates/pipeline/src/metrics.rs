//! Prometheus text metrics over plain HTTP on a loopback port: a small `TcpListener` loop answering
//! `GET /metrics` with whatever the renderer returns, one connection at a time.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, error};

use crate::stages::Counters;

/// Produces the metrics text.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `render()` at `GET /metrics` on `addr` (which must be loopback) until `stop` is set. Returns the
/// bound address (port 0 picks a free one).
pub fn serve_metrics(addr: SocketAddr, render: Render, stop: Arc<AtomicBool>) -> std::io::Result<SocketAddr> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "metrics listen only on loopback"));
    }
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = answer(stream, &render) {
                        debug!("metrics client: {e}");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    error!("metrics listener: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    })?;
    Ok(bound)
}

fn answer(mut stream: std::net::TcpStream, render: &Render) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 2048];
    let mut got = 0;
    // Read the request head (bounded).
    while got < buf.len() {
        let n = stream.read(&mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
        if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..got]);
    let mut first = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let (status, ctype, body) = if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?")) {
        ("200 OK", "text/plain; version=0.0.4; charset=utf-8", render())
    } else {
        ("404 Not Found", "text/plain", "try /metrics\n".to_string())
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

/// Appends one metric (HELP, TYPE and value) to `out`.
pub fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}

/// The pipeline's counters as Prometheus metrics.
pub fn render_counters(c: &Counters, out: &mut String) {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    metric(out, "vigil_frames_read_total", "counter", "Frames delivered by the source.", get(&c.read));
    metric(out, "vigil_frames_analysed_total", "counter", "Frames the detector scored.", get(&c.analysed));
    metric(
        out,
        "vigil_frames_dropped_total",
        "counter",
        "Live frames dropped because detection was behind.",
        get(&c.dropped),
    );
    metric(
        out,
        "vigil_frames_corrupt_total",
        "counter",
        "Frames that could not be decoded.",
        get(&c.corrupt),
    );
    metric(
        out,
        "vigil_detect_errors_total",
        "counter",
        "Frames the detector failed on.",
        get(&c.detect_errors),
    );
    metric(
        out,
        "vigil_inference_ms_sum",
        "counter",
        "Model time summed over analysed frames, milliseconds.",
        get(&c.infer_us) / 1e3,
    );
    metric(
        out,
        "vigil_inference_ms_count",
        "counter",
        "Analysed frames the inference time is summed over.",
        get(&c.analysed),
    );
    metric(
        out,
        "vigil_detect_ms_sum",
        "counter",
        "Detector time (preprocessing and model) summed, milliseconds.",
        get(&c.detect_us) / 1e3,
    );
    metric(
        out,
        "vigil_inference_ms_last",
        "gauge",
        "Model time of the last analysed frame, milliseconds.",
        get(&c.last_infer_us) / 1e3,
    );
    metric(out, "vigil_score", "gauge", "Failure score of the last analysed frame.", c.last_score() as f64);
    metric(out, "vigil_events_total", "counter", "Failure and warning events raised.", get(&c.events));
    metric(
        out,
        "vigil_snapshots_kept_total",
        "counter",
        "Scrubbed snapshots handed to telemetry.",
        get(&c.snapshots_kept),
    );
    metric(
        out,
        "vigil_bundles_spooled_total",
        "counter",
        "Event bundles written to the spool.",
        get(&c.bundles),
    );
    metric(
        out,
        "vigil_source_outages_total",
        "counter",
        "Times the live source was lost and reconnection began.",
        get(&c.outages),
    );
    metric(
        out,
        "vigil_source_outage_seconds_total",
        "counter",
        "Seconds the live source was down (ended outages).",
        get(&c.outage_us) / 1e6,
    );
    let up = if c.source_down.load(Ordering::Relaxed) { 0.0 } else { 1.0 };
    metric(out, "vigil_source_up", "gauge", "1 while the source delivers, 0 during an outage.", up);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_served_on_loopback_only() {
        let counters = Arc::new(Counters::default());
        counters.read.store(7, Ordering::Relaxed);
        let c = counters.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let render: Render = Arc::new(move || {
            let mut s = String::new();
            render_counters(&c, &mut s);
            s
        });
        let addr = serve_metrics("127.0.0.1:0".parse().unwrap(), render.clone(), stop.clone()).unwrap();
        let get = |path: &str| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            text
        };
        let text = get("/metrics");
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains("\nvigil_frames_read_total 7\n"), "{text}");
        assert!(text.contains("# TYPE vigil_source_up gauge\nvigil_source_up 1\n"), "{text}");
        assert!(get("/").starts_with("HTTP/1.1 404"));
        stop.store(true, Ordering::Relaxed);
        assert!(serve_metrics("0.0.0.0:0".parse().unwrap(), render, stop).is_err());
    }
}
