//! `vigil spool ls|show|purge`: inspects, unpacks and erases the telemetry spool. The work is done by
//! `vigil_telemetry::inspect`; this file only parses arguments and prints.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use vigil_telemetry::{inspect, SystemClock};

#[derive(clap::Args)]
pub struct Args {
    /// Spool folder; default: `spool_dir` of the config's [telemetry] table.
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// List every file in the spool: bundles, corrupt files, unfinished writes, quarantine.
    Ls,
    /// Verify a bundle and print its manifest, event record and snapshot list.
    Show {
        /// Bundle file (a path, or a name inside the spool).
        file: PathBuf,
        /// Also unpack head.json and the snapshots into this folder.
        #[arg(long, value_name = "DIR")]
        extract: Option<PathBuf>,
    },
    /// Delete every pending bundle and leave exactly one deletion request for the server.
    Purge,
}

pub fn run(args: Args, config: &vigil_pipeline::Config) -> Result<ExitCode> {
    let dir = args.spool.unwrap_or_else(|| config.telemetry.spool_dir.clone());
    match args.action {
        Action::Ls => print!("{}", inspect::format_list(&inspect::list(&dir)?)),
        Action::Show { file, extract } => {
            let file = if file.exists() { file } else { dir.join(&file) };
            print!("{}", inspect::show(&file)?);
            if let Some(out) = extract {
                for p in inspect::extract(&file, &out)? {
                    println!("wrote {}", p.display());
                }
            }
        }
        Action::Purge => print!("{}", inspect::format_erasure(&inspect::purge(&dir, Arc::new(SystemClock))?)),
    }
    Ok(ExitCode::SUCCESS)
}
