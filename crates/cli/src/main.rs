//! `vigil`: the command line. Glue only: argument parsing, logging, output formats and exit codes; the work
//! is done by the library crates.

mod config_cmd;
mod consent;
mod detect;
mod eval;
mod replay;
mod run;
mod scrub;
mod spool;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use vigil_pipeline::Config;

#[derive(Parser)]
#[command(name = "vigil", version, about = "Watches a 3D printer's camera and detects print failures")]
struct Cli {
    /// Configuration file (TOML). Without it every setting has its documented default.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Model file; overrides the config's detector.model.
    #[arg(long, global = true, value_name = "FILE")]
    model: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyse recorded footage (a video file or a folder of frames): one line per event, then a summary.
    Replay(replay::Args),
    /// Score still images.
    Detect(detect::Args),
    /// Measure the detector and the judge on labelled images and footage; writes an HTML report.
    Eval(eval::Args),
    /// Run the privacy filter's snapshot path on still images and write what would be handed on.
    Scrub(scrub::Args),
    /// Join (on) or leave (off) the user-experience improvement programme, or show its status.
    Consent(consent::Args),
    /// Inspect, unpack or purge the telemetry spool.
    Spool(spool::Args),
    /// Watch a live camera while the printer prints (the daemon): pause or notify on failures, metrics.
    Run(run::Args),
    /// Check a configuration file and print the effective configuration.
    Config(config_cmd::Args),
}

fn main() -> ExitCode {
    // Before any other thread exists: fewer arenas, large blocks given back when freed (RAM is scarce).
    vigil_pipeline::limit_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
    let cli = Cli::parse();
    let result = load_config(cli.config.as_deref()).and_then(|cfg| {
        let model = cli.model.clone();
        match cli.command {
            Command::Replay(args) => replay::run(args, cfg, model),
            Command::Detect(args) => detect::run(args, cfg, model),
            Command::Eval(args) => eval::run(args, cfg, model),
            Command::Scrub(args) => scrub::run(args, &cfg),
            Command::Consent(args) => consent::run(args, &cfg),
            Command::Spool(args) => spool::run(args, &cfg),
            Command::Run(args) => run::run(args, cfg, model, cli.config.clone()),
            Command::Config(args) => config_cmd::run(args),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Ok(Config::load(p)?),
        None => Ok(Config::default()),
    }
}

/// The model to use: `--model`, else the config's, else `models/failure.onnx` (on 64-bit ARM boards the int8
/// `models/failure-int8.onnx`, see models/MODEL_CARD.md) of the installation
/// (the working directory, then beside or above the executable).
pub fn model_path(cli: Option<PathBuf>, cfg: &Config) -> Result<PathBuf> {
    if let Some(p) = cli.or_else(|| cfg.model_path().map(Path::to_path_buf)) {
        return Ok(p);
    }
    let name = if cfg!(target_arch = "aarch64") { "failure-int8.onnx" } else { "failure.onnx" };
    let mut candidates = vec![Path::new("models").join(name)];
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(4) {
            candidates.push(dir.join("models").join(name));
            candidates.push(dir.join("share/vigil").join(name));
        }
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models").join(name));
    candidates.iter().find(|p| p.is_file()).cloned().with_context(|| {
        format!(
            "no model found (looked at {}); pass --model FILE",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })
}
