//! `vigil eval`: measures the detector and the judge on labelled images and footage (vigil-eval does the work).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use vigil_detect::{OnnxModel, PreparedModel, Sensitivity};
use vigil_eval::{EvalOptions, Input, Progress};

#[derive(clap::Args)]
pub struct Args {
    /// A folder-per-class image set (subfolders named normal/failure, NoDefects/YesDefects, ...). Repeatable.
    #[arg(long, value_name = "DIR")]
    images: Vec<PathBuf>,
    /// A YOLO image set (images/ + labels/ folders). Repeatable.
    #[arg(long, value_name = "DIR")]
    yolo: Vec<PathBuf>,
    /// YOLO class ids that mark a failure.
    #[arg(long = "yolo-failure-class", value_name = "ID", default_values_t = [1u32])]
    yolo_failure_class: Vec<u32>,
    /// A labels file (TOML) naming footage clips and their failure frame ranges. Repeatable.
    #[arg(long, value_name = "FILE")]
    footage: Vec<PathBuf>,
    /// An image list (TOML: image paths with label, source set and group, such as the training script's
    /// validation split written by `--write-split`); figures per source. Repeatable.
    #[arg(long, value_name = "FILE")]
    list: Vec<PathBuf>,
    /// Folder the image lists' paths are relative to (default: each list's `root`, else ../shared/data).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Judge sensitivity (overrides the config's).
    #[arg(long, value_parser = ["low", "medium", "high"])]
    sensitivity: Option<String>,
    /// Per-frame operating point (default: the judge's warning threshold).
    #[arg(long, value_name = "SCORE")]
    threshold: Option<f32>,
    /// Write the HTML report here.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write every figure as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Thumbnails of this many worst false positives and misses.
    #[arg(long, default_value_t = 8)]
    worst: usize,
}

struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn begin(&mut self, name: &str, len: Option<u64>) {
        self.0.reset();
        self.0.set_length(len.unwrap_or(0));
        self.0.set_message(name.to_string());
    }
    fn step(&mut self) {
        self.0.inc(1);
    }
    fn warn(&mut self, message: &str) {
        self.0.suspend(|| eprintln!("vigil: warning: {message}"));
    }
}

pub fn run(args: Args, cfg: vigil_pipeline::Config, model: Option<PathBuf>) -> Result<ExitCode> {
    let mut inputs: Vec<Input> = args.images.iter().cloned().map(Input::Images).collect();
    inputs.extend(
        args.yolo
            .iter()
            .map(|p| Input::Yolo { path: p.clone(), failure_classes: args.yolo_failure_class.clone() }),
    );
    inputs.extend(args.footage.iter().cloned().map(Input::Footage));
    inputs.extend(args.list.iter().map(|p| Input::List { path: p.clone(), data: args.data.clone() }));
    anyhow::ensure!(!inputs.is_empty(), "nothing to evaluate: give --images, --yolo, --footage or --list");
    let mut judge = cfg.judge.clone();
    if let Some(s) = &args.sensitivity {
        judge.sensitivity = match s.as_str() {
            "low" => Sensitivity::Low,
            "high" => Sensitivity::High,
            _ => Sensitivity::Medium,
        };
        judge.validate()?;
    }
    if let Some(t) = args.threshold {
        anyhow::ensure!((0.0..=1.0).contains(&t), "--threshold must be in [0, 1], got {t}");
    }
    let model_path = crate::model_path(model, &cfg)?;
    let model = OnnxModel::load(&model_path, cfg.detector_threads())?;
    let mut detector = model.detector()?;
    let opts = EvalOptions { judge, threshold: args.threshold, worst: args.worst, ..Default::default() };

    let bar = indicatif::ProgressBar::new(0);
    if std::io::stderr().is_terminal() {
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg:40!} {wide_bar} {pos}/{len} {per_sec}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut progress = Bar(bar);
    let report = vigil_eval::evaluate(
        &inputs,
        detector.as_mut(),
        &model_path.display().to_string(),
        &opts,
        &mut progress,
    )?;
    progress.0.finish_and_clear();

    let mut out = std::io::stdout().lock();
    for reason in &report.skipped {
        writeln!(out, "{reason}")?;
    }
    let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
    for s in std::iter::once(&report.overall).chain(&report.sets) {
        writeln!(
            out,
            "{:<48} n {:>5} ({}/{})  AUROC {}  precision {}  recall {}  @{:.2}  recall@FPR<={}% {}",
            s.name,
            s.n,
            s.n_failure,
            s.n_normal,
            f(s.auroc),
            f(s.operating.precision),
            f(s.operating.recall),
            report.operating_threshold,
            report.max_fpr * 100.0,
            f(s.recall_at_max_fpr),
        )?;
    }
    for c in &report.clips {
        let events: Vec<String> =
            c.events.iter().map(|e| format!("{:?}@{}", e.kind, e.frame).to_lowercase()).collect();
        writeln!(
            out,
            "clip {}: {} frames ({} left out by the quality gate), events [{}], false failures {}, onset to failure {}",
            c.path,
            c.frames,
            c.unjudged,
            events.join(", "),
            c.false_failures,
            match (c.onset_frame, c.onset_to_failure_s) {
                (None, _) => "-".to_string(),
                (Some(_), Some(s)) => format!("{s:.1} s"),
                (Some(_), None) => "missed".to_string(),
            }
        )?;
    }
    if !report.clips.is_empty() {
        let s = &report.footage;
        writeln!(
            out,
            "footage: {:.3} h normal, false failures {} ({} /h), false warnings {} ({} /h), failure clips {} detected {}, \
             onset to failure mean {} s max {} s",
            s.normal_hours,
            s.false_failures,
            f(s.false_failures_per_hour),
            s.false_warnings,
            f(s.false_warnings_per_hour),
            s.failure_clips,
            s.detected_clips,
            f(s.mean_onset_to_failure_s),
            f(s.max_onset_to_failure_s),
        )?;
    }
    writeln!(out, "{:.2} ms per image or frame", report.ms_per_sample)?;
    if let Some(p) = &args.report {
        std::fs::write(p, vigil_eval::report::html(&report))
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
