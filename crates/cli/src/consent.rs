//! `vigil consent on|off|status`: joins or leaves the user-experience improvement programme, or shows
//! whether the printer is in it. A running pipeline sees the change at its next frame.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use vigil_privacy::{opt_in, opt_out, ConsentStore};
use vigil_telemetry::{inspect, SystemClock};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Action {
    /// Join: a fresh device key is made, then consent is stored.
    On,
    /// Leave: consent is withdrawn at once, then the device key is replaced.
    Off,
    /// Print `on` or `off`.
    Status,
}

#[derive(clap::Args)]
pub struct Args {
    action: Action,
}

pub fn run(args: Args, config: &vigil_pipeline::Config) -> Result<ExitCode> {
    let cfg = &config.privacy;
    match args.action {
        Action::On => opt_in(cfg)?,
        Action::Off => {
            opt_out(cfg)?;
            erase_spool(&config.telemetry.spool_dir);
        }
        Action::Status => {}
    }
    let state = ConsentStore::new(&cfg.consent_file).state();
    match (state.on, state.changed_unix) {
        (true, Some(t)) => println!("on (since unix time {t})"),
        (false, Some(t)) => println!("off (since unix time {t})"),
        (on, None) => println!("{}", if on { "on" } else { "off" }),
    }
    Ok(ExitCode::SUCCESS)
}

/// Leaving the programme erases what is pending and leaves one deletion request. When a running vigil holds
/// the spool it does this itself at its next frame.
fn erase_spool(dir: &std::path::Path) {
    if !dir.is_dir() {
        return;
    }
    match inspect::opt_out(dir, Arc::new(SystemClock)) {
        Ok(r) => eprint!("spool: {}", inspect::format_erasure(&r)),
        Err(vigil_telemetry::TelemetryError::Busy(_)) => {
            eprintln!("spool: in use by the running vigil, which erases it at its next frame")
        }
        Err(e) => eprintln!("vigil: warning: spool {} not erased: {e}", dir.display()),
    }
}
