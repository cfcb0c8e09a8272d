//! `vigil scrub IMAGE... --out DIR`: runs the privacy filter's snapshot path (orientation, region of
//! interest, masks, faces, downscale, re-encode, verify) on still images and writes what would be handed on.
//! A dropped image is named on stderr with its reason; the exit status is non-zero if any was dropped.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use vigil_privacy::{PrivacyConfig, Scrubber};

#[derive(clap::Args)]
pub struct Args {
    /// Images to scrub (JPEG, PNG or WebP).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Folder for the scrubbed JPEGs (created if missing); each is named after its input, with `.jpg`.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// The privacy settings: the `[privacy]` table of the config. A face model path that does not exist falls back to the development copy put in place by
/// tools/setup.sh, then to `share/vigil/centerface.onnx` beside or above the executable.
pub fn privacy_config(config: &vigil_pipeline::Config) -> Result<PrivacyConfig> {
    let mut cfg = config.privacy.clone();
    if !cfg.faces.model.is_file() {
        let mut candidates =
            vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.local/models/centerface.onnx")];
        if let Ok(exe) = std::env::current_exe() {
            for dir in exe.ancestors().skip(1).take(4) {
                candidates.push(dir.join("share/vigil/centerface.onnx"));
            }
        }
        if let Some(found) = candidates.into_iter().find(|p| p.is_file()) {
            cfg.faces.model = found;
        }
    }
    Ok(cfg)
}

pub fn run(args: Args, config: &vigil_pipeline::Config) -> Result<ExitCode> {
    let cfg = privacy_config(config)?;
    let mut scrubber = Scrubber::from_config(&cfg);
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut used = HashSet::new();
    let mut dropped = 0;
    for path in &args.images {
        let result = std::fs::read(path)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|bytes| scrubber.scrub_bytes(&bytes).map_err(|e| format!("{}: {e}", e.code())));
        match result {
            Ok(s) => {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "image".into());
                let mut name = format!("{stem}.jpg");
                let mut n = 1;
                while !used.insert(name.clone()) {
                    n += 1;
                    name = format!("{stem}-{n}.jpg");
                }
                let dest = args.out.join(&name);
                std::fs::write(&dest, &s.jpeg).with_context(|| format!("cannot write {}", dest.display()))?;
                println!(
                    "{} -> {} ({}x{}, {} face(s) filled)",
                    path.display(),
                    dest.display(),
                    s.width,
                    s.height,
                    s.faces
                );
            }
            Err(reason) => {
                eprintln!("vigil: dropped {}: {reason}", path.display());
                dropped += 1;
            }
        }
    }
    Ok(if dropped > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
