//! `vigil config check FILE`: validates a configuration file and prints the effective configuration, every
//! default filled in, as TOML.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use vigil_pipeline::Config;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Validate FILE and print the effective configuration with every default.
    Check {
        /// The configuration file (TOML).
        file: PathBuf,
    },
}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.command {
        Sub::Check { file } => {
            let cfg = Config::load(&file)?;
            let text = toml::to_string_pretty(&cfg.effective()).context("cannot print the configuration")?;
            println!("# {}: valid; effective configuration with defaults\n{text}", file.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
