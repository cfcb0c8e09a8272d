//! `vigil-eval` measures the failure detector and the temporal judge on labelled data. Inputs are
//! [`Input`]s: image sets labelled folder-per-class or in YOLO format ([`images`]), image lists with a label,
//! source set and group per image such as the training script's validation split ([`list`]; figures per
//! source), and footage with a
//! [`labels::LabelsFile`] of frame ranges marked `normal` or `failure`. [`evaluate`] scores every image and
//! frame with a [`vigil_detect::Detector`], runs a [`vigil_detect::Judge`] over each clip and returns an
//! [`EvalReport`]: per-frame AUROC, precision and recall at the operating point, recall at a 2 % false-positive
//! rate, false alarms per hour of normal footage and seconds from failure onset to the `failure` event
//! ([`metrics`]). [`report::html`] renders it as one self-contained HTML page with a score-over-time plot per
//! clip and thumbnails of the worst false positives and misses.

pub mod images;
pub mod labels;
pub mod list;
pub mod metrics;
pub mod report;
mod run;
mod thumbs;

pub use labels::{Clip, Label, LabelsFile};
pub use run::{evaluate, ClipResult, EvalError, EvalOptions, EvalReport, Input, Progress, SetResult, Thumb};
