//! kill -9 soak: starts the worker many times on one spool, kills it with SIGKILL at random points, and
//! checks every bundle whole or absent, none lost after it was stored or acknowledged, none stored twice.
//!
//! `cargo build -p vigil-telemetry --bins && target/.../vigil-telemetry-kill9 [ITERATIONS] [--handoff]`
//! Uploads to a throw-away nginx (`tools/setup.d/nginx.sh`); `--handoff` (or no nginx) uses an outbox.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use vigil_telemetry::testkit::{kill9, nginx_binary, Nginx, Target};

fn run() -> Result<bool, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let iterations: u64 = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or(Ok(1000), |a| a.parse())
        .map_err(|e| format!("{e}"))?;
    let handoff = args.iter().any(|a| a == "--handoff");
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let worker = me.with_file_name("vigil-telemetry-worker");
    if !worker.is_file() {
        return Err(format!("{} is missing: cargo build -p vigil-telemetry --bins", worker.display()));
    }
    let work = std::env::temp_dir().join(format!("vigil-kill9-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let nginx = match (handoff, nginx_binary()) {
        (false, Some(bin)) => Some(Nginx::start(&bin, &work).map_err(|e| format!("nginx: {e}"))?),
        (false, None) => {
            println!("nginx not found under .local/nginx (run tools/setup.d/nginx.sh): using hand-off mode");
            None
        }
        _ => None,
    };
    let target = match &nginx {
        Some(n) => Target::Upload { us: n.url("/us"), cn: n.url("/cn"), store: n.store.clone() },
        None => Target::Handoff(PathBuf::from(&work).join("outbox")),
    };
    let t0 = Instant::now();
    let seed = u64::from(std::process::id()) ^ 0x5eed;
    let r = kill9(&worker, &work, &target, iterations, Duration::from_millis(60), seed)
        .map_err(|e| e.to_string())?;
    println!(
        "{} mode, seed {seed:#x}: iterations {} (each killed with SIGKILL), stored {}, acknowledged uploads {}, \
         lost {}, corrupt {}, duplicated {}, wrong region {}, temp files seen {}, {:.1} s",
        if nginx.is_some() { "upload (nginx)" } else { "hand-off" },
        r.iterations,
        r.stored,
        r.acked,
        r.lost,
        r.corrupt,
        r.duplicated,
        r.wrong_region,
        r.temp_files_seen,
        t0.elapsed().as_secs_f64()
    );
    drop(nginx);
    let _ = std::fs::remove_dir_all(&work);
    Ok(r.lost == 0 && r.corrupt == 0 && r.duplicated == 0 && r.wrong_region == 0)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("vigil-telemetry-kill9: {e}");
            ExitCode::FAILURE
        }
    }
}
