//! `vigil consent on|off|status`: joins or leaves the user-experience improvement programme, or shows
//! whether the printer is in it. A running pipeline sees the change at its next frame.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use vigil_privacy::{opt_in, opt_out, ConsentStore, PrivacyConfig};

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

pub fn run(args: Args, config: Option<&Path>) -> Result<ExitCode> {
    let cfg = match config {
        Some(p) => PrivacyConfig::load(p)?,
        None => PrivacyConfig::default(),
    };
    match args.action {
        Action::On => opt_in(&cfg)?,
        Action::Off => opt_out(&cfg)?,
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
