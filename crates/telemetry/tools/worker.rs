//! Writer/uploader process for the kill -9 tests: submits generated events to a spool and uploads them
//! (or hands them off), printing `STORED n` once an event is durably spooled and `ACK id` once a server
//! answered 2xx. Its first line, `START`, says it is running. The harness kills it with SIGKILL at random
//! points after that.
//!
//! `vigil-telemetry-worker --spool DIR (--us URL --cn URL | --outbox DIR) --start N --events K`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use vigil_telemetry::testkit::worker_event;
use vigil_telemetry::{
    Backoff, Endpoints, HttpUploader, Mode, RateLimit, Step, SystemClock, Telemetry, TelemetryConfig,
    Timeouts, Verdict,
};

fn run() -> Result<(), String> {
    let out = std::io::stdout();
    let _ = writeln!(out.lock(), "START");
    let mut spool = None;
    let (mut us, mut cn, mut outbox) = (None, None, None);
    let (mut start, mut events) = (0u64, 0u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--spool" => spool = Some(PathBuf::from(v()?)),
            "--us" => us = Some(v()?),
            "--cn" => cn = Some(v()?),
            "--outbox" => outbox = Some(PathBuf::from(v()?)),
            "--start" => start = v()?.parse().map_err(|e| format!("--start: {e}"))?,
            "--events" => events = v()?.parse().map_err(|e| format!("--events: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let spool_dir = spool.ok_or("--spool is required")?;
    let config = TelemetryConfig {
        spool_dir,
        min_free_bytes: 0,
        max_bytes: 1 << 30,
        max_bundles: 100_000,
        endpoints: Endpoints {
            us: us.clone().unwrap_or_else(|| "http://127.0.0.1:9/us".into()),
            cn: cn.unwrap_or_else(|| "http://127.0.0.1:9/cn".into()),
        },
        rate_limit: RateLimit { max_uploads: 10_000, per_secs: 1 },
        backoff: Backoff { initial_ms: 10, max_ms: 100, jitter: 0.5, max_retry_after_secs: 1 },
        mode: if outbox.is_some() { Mode::Handoff } else { Mode::Upload },
        outbox_dir: outbox,
        timeouts: Timeouts { connect_ms: 2000, io_ms: 5000 },
        ..TelemetryConfig::default()
    };
    let handoff = config.mode == Mode::Handoff;
    let mut uploader = HttpUploader::new(&config.timeouts, Arc::new(SystemClock));
    let t = loop {
        match Telemetry::open(config.clone(), Arc::new(SystemClock), true) {
            Ok(t) => break t,
            // The previous (killed) worker's lock is released by the kernel; wait for it.
            Err(vigil_telemetry::TelemetryError::Busy(_)) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let pump = |t: &Telemetry, uploader: &mut HttpUploader| -> Result<(), String> {
        if handoff {
            t.handoff().map_err(|e| e.to_string())?;
            return Ok(());
        }
        for _ in 0..1000 {
            match t.step(uploader).map_err(|e| e.to_string())? {
                Step::Idle => return Ok(()),
                Step::Wait(d) => std::thread::sleep(d.min(Duration::from_millis(50))),
                Step::Sent { id, verdict: Verdict::Delivered } => {
                    let _ = writeln!(out.lock(), "ACK {id}");
                }
                Step::Sent { .. } => {}
            }
        }
        Err("could not drain the spool".into())
    };
    for n in start..start + events {
        let (rec, snaps) = worker_event(n);
        t.submit(&rec, &snaps).map_err(|e| e.to_string())?;
        let _ = writeln!(out.lock(), "STORED {n}");
        pump(&t, &mut uploader)?;
    }
    pump(&t, &mut uploader)?;
    let _ = writeln!(out.lock(), "DONE");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-telemetry-worker: {e}");
            ExitCode::FAILURE
        }
    }
}
