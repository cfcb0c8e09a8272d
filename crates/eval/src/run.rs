//! The evaluation pass: score everything, judge every clip, gather the figures.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use vigil_capture::Timing;
use vigil_detect::judge::FrameQuality;
use vigil_detect::{Detector, Event, EventKind, Judge, JudgeConfig};
use vigil_frame::Image;

use crate::images::{self, ImagesError, LabelledImage};
use crate::labels::{Label, LabelsError, LabelsFile};
use crate::list::{ImageList, ListError};
use crate::metrics::{self, AtThreshold};
use crate::thumbs;

/// What to evaluate.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A folder-per-class image set.
    Images(PathBuf),
    /// A YOLO image set; images with a box of one of these classes are failures.
    Yolo { path: PathBuf, failure_classes: Vec<u32> },
    /// A labels file naming footage clips.
    Footage(PathBuf),
    /// An image list ([`crate::list`]); `data` overrides the folder its paths are relative to.
    List { path: PathBuf, data: Option<PathBuf> },
}

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// The temporal rule run over each clip.
    pub judge: JudgeConfig,
    /// Per-frame operating point; default the judge's warning threshold.
    pub threshold: Option<f32>,
    /// False-positive budget for "recall at FPR"; default 0.02.
    pub max_fpr: f64,
    /// Thumbnails of this many worst false positives and misses; default 8.
    pub worst: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self { judge: JudgeConfig::default(), threshold: None, max_fpr: 0.02, worst: 8 }
    }
}

/// Told about the work as it goes (a progress bar).
pub trait Progress {
    /// A new input begins; `len` is its number of images or frames when known.
    fn begin(&mut self, _name: &str, _len: Option<u64>) {}
    /// One image or frame is done.
    fn step(&mut self) {}
    /// A warning about one input (an unreadable image, a corrupt frame).
    fn warn(&mut self, _message: &str) {}
}

impl Progress for () {}

/// Errors that stop an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Labels(#[from] LabelsError),
    #[error(transparent)]
    Images(#[from] ImagesError),
    #[error(transparent)]
    List(#[from] ListError),
    #[error(transparent)]
    Capture(#[from] vigil_capture::CaptureError),
    #[error("detection failed on {what}: {reason}")]
    Detect { what: String, reason: String },
    #[error("{0} holds no labelled image")]
    Empty(PathBuf),
}

/// Per-frame (or per-image) figures of one set of samples.
#[derive(Clone, Debug, Serialize)]
pub struct SetResult {
    pub name: String,
    /// The source set these figures are for, when they are one source of an image list.
    pub source: Option<String>,
    pub n: usize,
    pub n_failure: usize,
    pub n_normal: usize,
    pub auroc: Option<f64>,
    /// At the operating point.
    pub operating: AtThreshold,
    pub recall_at_max_fpr: Option<f64>,
    pub threshold_at_max_fpr: Option<f32>,
    pub mean_score: Option<f64>,
}

impl SetResult {
    fn new(name: String, labels: &[bool], scores: &[f32], threshold: f32, max_fpr: f64) -> Self {
        let at = metrics::recall_at_fpr(labels, scores, max_fpr);
        let n_failure = labels.iter().filter(|&&y| y).count();
        Self {
            name,
            source: None,
            n: labels.len(),
            n_failure,
            n_normal: labels.len() - n_failure,
            auroc: metrics::auroc(labels, scores),
            operating: metrics::at_threshold(labels, scores, threshold),
            recall_at_max_fpr: at.map(|x| x.0),
            threshold_at_max_fpr: at.map(|x| x.1),
            mean_score: (!scores.is_empty())
                .then(|| scores.iter().map(|&s| s as f64).sum::<f64>() / scores.len() as f64),
        }
    }
}

/// One analysed frame of a clip.
#[derive(Clone, Debug, Serialize)]
pub struct FrameScore {
    pub frame: u64,
    pub t: f64,
    pub score: f32,
    pub label: Option<Label>,
    /// False when the judge's quality gate left the frame out (blurred, faded, dark compared with the clip's
    /// recent frames); its score still counts in the per-frame figures.
    pub judged: bool,
}

/// A clip judged from start to end.
#[derive(Clone, Debug, Serialize)]
pub struct ClipResult {
    pub path: String,
    pub interval_s: Option<f64>,
    pub frames: usize,
    pub corrupt: usize,
    /// Frames the judge's quality gate left out.
    pub unjudged: usize,
    /// Media seconds of frames labelled normal.
    pub normal_s: f64,
    /// First frame labelled failure, and its media time.
    pub onset_frame: Option<u64>,
    pub onset_t: Option<f64>,
    pub events: Vec<Event>,
    /// `failure` events on frames labelled normal.
    pub false_failures: usize,
    /// `warning` events on frames labelled normal.
    pub false_warnings: usize,
    /// Seconds from the onset to the first `failure` event at or after it; `None`: no onset or missed.
    pub onset_to_failure_s: Option<f64>,
    /// Frames from the onset to that event.
    pub onset_to_failure_frames: Option<u64>,
    pub scores: Vec<FrameScore>,
}

/// A thumbnail of a badly scored sample.
#[derive(Clone, Debug, Serialize)]
pub struct Thumb {
    pub source: String,
    pub frame: Option<u64>,
    pub label: Label,
    pub score: f32,
    pub data_url: String,
}

/// Footage figures over every clip.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FootageSummary {
    pub clips: usize,
    pub normal_hours: f64,
    pub false_failures: usize,
    pub false_warnings: usize,
    pub false_failures_per_hour: Option<f64>,
    pub false_warnings_per_hour: Option<f64>,
    /// Clips with a failure onset, and how many of them raised `failure` at or after it.
    pub failure_clips: usize,
    pub detected_clips: usize,
    pub mean_onset_to_failure_s: Option<f64>,
    pub max_onset_to_failure_s: Option<f64>,
}

/// Everything one evaluation measured.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub model: String,
    pub judge: JudgeConfig,
    /// `(warning, failure, clear)` thresholds in force.
    pub thresholds: (f32, f32, f32),
    pub operating_threshold: f32,
    pub max_fpr: f64,
    /// All images and labelled frames together.
    pub overall: SetResult,
    /// One per image set, one per clip, and `footage` for all labelled frames.
    pub sets: Vec<SetResult>,
    pub clips: Vec<ClipResult>,
    pub footage: FootageSummary,
    pub worst_false_positives: Vec<Thumb>,
    pub worst_misses: Vec<Thumb>,
    pub unreadable: usize,
    pub ms_per_sample: f64,
    /// Inputs not evaluated, each with the reason (an image list whose image folder is absent).
    pub skipped: Vec<String>,
}

/// Keeps the `k` worst samples of one kind.
struct Worst {
    k: usize,
    /// Higher is worse.
    items: Vec<(f32, Thumb)>,
}

impl Worst {
    fn qualifies(&self, badness: f32) -> bool {
        self.k > 0 && (self.items.len() < self.k || self.items.last().is_some_and(|x| badness > x.0))
    }

    fn offer(&mut self, badness: f32, make: impl FnOnce() -> Option<Thumb>) {
        if !self.qualifies(badness) {
            return;
        }
        if let Some(t) = make() {
            self.items.push((badness, t));
            self.items.sort_by(|a, b| b.0.total_cmp(&a.0));
            self.items.truncate(self.k);
        }
    }
}

struct Acc {
    labels: Vec<bool>,
    scores: Vec<f32>,
}

/// Scores every input with `detector`, judges each clip with `opts.judge`, and gathers the figures.
pub fn evaluate(
    inputs: &[Input],
    detector: &mut dyn Detector,
    model: &str,
    opts: &EvalOptions,
    progress: &mut dyn Progress,
) -> Result<EvalReport, EvalError> {
    let thresholds = opts.judge.thresholds();
    let op = opts.threshold.unwrap_or(thresholds.0);
    let mut all = Acc { labels: vec![], scores: vec![] };
    let mut footage_acc = Acc { labels: vec![], scores: vec![] };
    let mut sets = Vec::new();
    let mut clips = Vec::new();
    let mut fps = Worst { k: opts.worst, items: vec![] };
    let mut misses = Worst { k: opts.worst, items: vec![] };
    let mut unreadable = 0;
    let mut samples = 0usize;
    let mut skipped = Vec::new();
    let started = Instant::now();

    let mut detect = |image: &Image, what: &dyn Fn() -> String| {
        detector.detect(image).map_err(|e| EvalError::Detect { what: what(), reason: e.to_string() })
    };

    for input in inputs {
        match input {
            Input::Images(_) | Input::Yolo { .. } => {
                let (path, list) = match input {
                    Input::Images(p) => (p, images::folder_per_class(p)?),
                    Input::Yolo { path, failure_classes } => (path, images::yolo(path, failure_classes)?),
                    Input::Footage(_) | Input::List { .. } => unreachable!("matched above"),
                };
                if list.is_empty() {
                    return Err(EvalError::Empty(path.clone()));
                }
                progress.begin(&path.display().to_string(), Some(list.len() as u64));
                let mut acc = Acc { labels: vec![], scores: vec![] };
                for LabelledImage { path: p, label } in &list {
                    let Some(image) = read_or_count(p, progress, &mut unreadable) else { continue };
                    let d = detect(&image, &|| p.display().to_string())?;
                    samples += 1;
                    let y = *label == Label::Failure;
                    acc.labels.push(y);
                    acc.scores.push(d.score);
                    offer(&mut fps, &mut misses, y, d.score, &image, p.display().to_string(), None, *label);
                    progress.step();
                }
                sets.push(SetResult::new(
                    path.display().to_string(),
                    &acc.labels,
                    &acc.scores,
                    op,
                    opts.max_fpr,
                ));
                all.labels.extend(&acc.labels);
                all.scores.extend(&acc.scores);
            }
            Input::List { path, data } => {
                let list = ImageList::load(path, data.as_deref())?;
                if !list.root.is_dir() {
                    let reason = format!(
                        "{}: skipped, its image folder {} is absent",
                        path.display(),
                        list.root.display()
                    );
                    progress.warn(&reason);
                    skipped.push(reason);
                    continue;
                }
                let name = path.display().to_string();
                progress.begin(&name, Some(list.images.len() as u64));
                let sources = list.sources();
                let mut acc = Acc { labels: vec![], scores: vec![] };
                let mut by_source: Vec<Acc> =
                    sources.iter().map(|_| Acc { labels: vec![], scores: vec![] }).collect();
                for img in &list.images {
                    let Some(image) = read_or_count(&img.path, progress, &mut unreadable) else { continue };
                    let d = detect(&image, &|| img.path.display().to_string())?;
                    samples += 1;
                    let y = img.label == Label::Failure;
                    acc.labels.push(y);
                    acc.scores.push(d.score);
                    if let Some(k) = sources.iter().position(|s| *s == img.source) {
                        by_source[k].labels.push(y);
                        by_source[k].scores.push(d.score);
                    }
                    offer(
                        &mut fps,
                        &mut misses,
                        y,
                        d.score,
                        &image,
                        img.path.display().to_string(),
                        None,
                        img.label,
                    );
                    progress.step();
                }
                sets.push(SetResult::new(name.clone(), &acc.labels, &acc.scores, op, opts.max_fpr));
                for (source, a) in sources.iter().zip(&by_source) {
                    let mut r =
                        SetResult::new(format!("{name} [{source}]"), &a.labels, &a.scores, op, opts.max_fpr);
                    r.source = Some(source.to_string());
                    sets.push(r);
                }
                all.labels.extend(&acc.labels);
                all.scores.extend(&acc.scores);
            }
            Input::Footage(labels_path) => {
                let labels = LabelsFile::load(labels_path)?;
                for clip in &labels.clips {
                    let timing = clip.interval_s.map(Timing::Interval).unwrap_or_default();
                    let mut source = vigil_capture::open(&clip.path, timing)?;
                    let name = clip.path.display().to_string();
                    progress.begin(&name, source.len_hint());
                    let mut judge = Judge::new(opts.judge.clone());
                    let mut r = ClipResult {
                        path: name.clone(),
                        interval_s: clip.interval_s,
                        frames: 0,
                        corrupt: 0,
                        unjudged: 0,
                        normal_s: 0.0,
                        onset_frame: None,
                        onset_t: None,
                        events: vec![],
                        false_failures: 0,
                        false_warnings: 0,
                        onset_to_failure_s: None,
                        onset_to_failure_frames: None,
                        scores: vec![],
                    };
                    let mut acc = Acc { labels: vec![], scores: vec![] };
                    loop {
                        let frame = match source.next_frame() {
                            Ok(Some(f)) => f,
                            Ok(None) => break,
                            Err(e) if e.is_recoverable() => {
                                progress.warn(&e.to_string());
                                r.corrupt += 1;
                                continue;
                            }
                            Err(e) => {
                                // A truncated file: keep what was read.
                                progress.warn(&e.to_string());
                                break;
                            }
                        };
                        let d = detect(&frame.image, &|| format!("{name} frame {}", frame.seq))?;
                        samples += 1;
                        r.frames += 1;
                        let label = clip.label(frame.seq);
                        if label == Some(Label::Failure) && r.onset_frame.is_none() {
                            r.onset_frame = Some(frame.seq);
                            r.onset_t = Some(frame.t);
                        }
                        if let Some(l) = label {
                            let y = l == Label::Failure;
                            acc.labels.push(y);
                            acc.scores.push(d.score);
                            offer(
                                &mut fps,
                                &mut misses,
                                y,
                                d.score,
                                &frame.image,
                                name.clone(),
                                Some(frame.seq),
                                l,
                            );
                        }
                        let quality = FrameQuality::measure(&frame.image);
                        let event =
                            judge.observe_frame(frame.seq, frame.t, d.score, &d.regions, Some(&quality));
                        if !judge.last_judged() {
                            r.unjudged += 1;
                        }
                        if let Some(e) = event {
                            if label == Some(Label::Normal) {
                                match e.kind {
                                    EventKind::Failure => r.false_failures += 1,
                                    EventKind::Warning => r.false_warnings += 1,
                                }
                            }
                            if e.kind == EventKind::Failure && r.onset_to_failure_s.is_none() {
                                if let (Some(of), Some(ot)) = (r.onset_frame, r.onset_t) {
                                    r.onset_to_failure_s = Some(e.t - ot);
                                    r.onset_to_failure_frames = Some(e.frame - of);
                                }
                            }
                            r.events.push(e);
                        }
                        r.scores.push(FrameScore {
                            frame: frame.seq,
                            t: frame.t,
                            score: d.score,
                            label,
                            judged: judge.last_judged(),
                        });
                        progress.step();
                    }
                    r.normal_s = normal_seconds(&r.scores);
                    sets.push(SetResult::new(name, &acc.labels, &acc.scores, op, opts.max_fpr));
                    footage_acc.labels.extend(&acc.labels);
                    footage_acc.scores.extend(&acc.scores);
                    clips.push(r);
                }
            }
        }
    }
    if !clips.is_empty() {
        sets.push(SetResult::new(
            "footage".into(),
            &footage_acc.labels,
            &footage_acc.scores,
            op,
            opts.max_fpr,
        ));
        all.labels.extend(&footage_acc.labels);
        all.scores.extend(&footage_acc.scores);
    }
    let footage = summarise(&clips);
    Ok(EvalReport {
        model: model.to_string(),
        judge: opts.judge.clone(),
        thresholds,
        operating_threshold: op,
        max_fpr: opts.max_fpr,
        overall: SetResult::new("all".into(), &all.labels, &all.scores, op, opts.max_fpr),
        sets,
        clips,
        footage,
        worst_false_positives: fps.items.into_iter().map(|x| x.1).collect(),
        worst_misses: misses.items.into_iter().map(|x| x.1).collect(),
        unreadable,
        ms_per_sample: started.elapsed().as_secs_f64() * 1e3 / samples.max(1) as f64,
        skipped,
    })
}

/// Reads a labelled image; one that cannot be read is reported, counted in `unreadable` and skipped.
fn read_or_count(
    path: &std::path::Path,
    progress: &mut dyn Progress,
    unreadable: &mut usize,
) -> Option<Image> {
    match vigil_capture::read_image(path) {
        Ok(i) => Some(i),
        Err(e) => {
            progress.warn(&e.to_string());
            *unreadable += 1;
            progress.step();
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn offer(
    fps: &mut Worst,
    misses: &mut Worst,
    failure: bool,
    score: f32,
    image: &Image,
    source: String,
    frame: Option<u64>,
    label: Label,
) {
    let (worst, badness) = if failure { (misses, 1.0 - score) } else { (fps, score) };
    worst.offer(badness, || {
        thumbs::data_url(image, 200).map(|data_url| Thumb { source, frame, label, score, data_url })
    });
}

/// Media seconds covered by frames labelled normal: each frame lasts until the next one (the last one as long
/// as the one before it).
fn normal_seconds(scores: &[FrameScore]) -> f64 {
    let mut total = 0.0;
    let mut last_dt = 0.0;
    for (i, f) in scores.iter().enumerate() {
        let dt = match scores.get(i + 1) {
            Some(next) if next.t > f.t => next.t - f.t,
            Some(_) => 0.0,
            None => last_dt,
        };
        last_dt = dt;
        if f.label == Some(Label::Normal) {
            total += dt;
        }
    }
    total
}

fn summarise(clips: &[ClipResult]) -> FootageSummary {
    let normal_s: f64 = clips.iter().map(|c| c.normal_s).sum();
    let hours = normal_s / 3600.0;
    let false_failures = clips.iter().map(|c| c.false_failures).sum();
    let false_warnings = clips.iter().map(|c| c.false_warnings).sum();
    let per_hour = |n: usize| (hours > 0.0).then(|| n as f64 / hours);
    let failure_clips: Vec<&ClipResult> = clips.iter().filter(|c| c.onset_frame.is_some()).collect();
    let delays: Vec<f64> = failure_clips.iter().filter_map(|c| c.onset_to_failure_s).collect();
    FootageSummary {
        clips: clips.len(),
        normal_hours: hours,
        false_failures,
        false_warnings,
        false_failures_per_hour: per_hour(false_failures),
        false_warnings_per_hour: per_hour(false_warnings),
        failure_clips: failure_clips.len(),
        detected_clips: delays.len(),
        mean_onset_to_failure_s: (!delays.is_empty())
            .then(|| delays.iter().sum::<f64>() / delays.len() as f64),
        max_onset_to_failure_s: delays.iter().copied().reduce(f64::max),
    }
}

/// Short display name of a path: its last two components.
pub(crate) fn short(path: &str) -> String {
    let p = Path::new(path);
    let parts: Vec<_> = p.components().rev().take(2).collect();
    parts
        .into_iter()
        .rev()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(t: f64, label: Option<Label>) -> FrameScore {
        FrameScore { frame: 0, t, score: 0.0, label, judged: true }
    }

    #[test]
    fn normal_seconds_count_each_frame_until_the_next() {
        let n = Some(Label::Normal);
        let f = Some(Label::Failure);
        assert_eq!(normal_seconds(&[fs(0.0, n), fs(10.0, n), fs(20.0, f), fs(30.0, n)]), 30.0);
        assert_eq!(normal_seconds(&[]), 0.0);
    }

    #[test]
    fn the_worst_list_keeps_the_k_worst() {
        let mut w = Worst { k: 2, items: vec![] };
        for s in [0.1, 0.9, 0.5, 0.95] {
            w.offer(s, || {
                Some(Thumb {
                    source: String::new(),
                    frame: None,
                    label: Label::Normal,
                    score: s,
                    data_url: String::new(),
                })
            });
        }
        let kept: Vec<f32> = w.items.iter().map(|x| x.0).collect();
        assert_eq!(kept, vec![0.95, 0.9]);
    }

    #[test]
    fn short_names_keep_the_last_two_components() {
        assert_eq!(short("/a/b/c/d.mkv"), "c/d.mkv");
    }
}
