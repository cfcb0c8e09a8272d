//! `vigil detect IMAGE...`: scores still images.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;
use vigil_detect::{OnnxModel, PreparedModel, Region};

#[derive(clap::Args)]
pub struct Args {
    /// Images to score (JPEG or PNG).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// One JSON line per image: {"path": ..., "score": ..., "detections": [...]}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Line<'a> {
    /// Exactly as given on the command line.
    path: &'a str,
    score: f32,
    detections: &'a [Region],
}

pub fn run(args: Args, cfg: vigil_pipeline::Config, model: Option<PathBuf>) -> Result<ExitCode> {
    let model = OnnxModel::load(&crate::model_path(model, &cfg)?, cfg.detector_threads())?;
    let mut detector = model.detector()?;
    let mut stdout = std::io::stdout().lock();
    let mut failed = 0;
    for path in &args.images {
        let image = match vigil_capture::read_image(path) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("vigil: {e}");
                failed += 1;
                continue;
            }
        };
        let d = detector.detect(&image)?;
        let shown = path.to_string_lossy();
        if args.json {
            serde_json::to_writer(
                &mut stdout,
                &Line { path: &shown, score: d.score, detections: &d.regions },
            )?;
            writeln!(stdout)?;
        } else {
            writeln!(stdout, "{shown}: score {:.3}, {} region(s)", d.score, d.regions.len())?;
        }
    }
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
