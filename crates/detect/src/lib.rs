//! `vigil-detect` turns frames into failure scores and events. A [`PreparedModel`] is a model loaded once and
//! shared between threads; each thread asks it for its own [`Detector`], which owns the per-thread session
//! and buffers and scores one [`vigil_frame::Image`] at a time into a [`Detection`] (a failure score in
//! [0, 1], a heat map and the regions it points at). [`Preprocessor`] turns a gray, BGR or RGB image of any
//! size into the model's input tensor in one fused pass of its own (the area resampling OpenCV's `INTER_AREA`
//! does, which the model was trained with, without linking OpenCV). [`OnnxModel`] is the ONNX Runtime
//! backend; [`runtime`] holds the process-wide ONNX Runtime environment that every model in vigil shares. The
//! [`judge`] module is the pure temporal rule that turns per-frame scores into `warning` and `failure` events
//! (sensitivity, hysteresis, cooldown, spatial persistence, a minimum span of media time, a per-camera
//! baseline, decay per second of media time, and a quality gate that leaves out frames much blurrier or
//! flatter than the camera's recent ones); it does no I/O.

pub mod judge;
mod model;
mod preprocess;
pub mod runtime;

pub use judge::{Event, EventKind, Judge, JudgeConfig, Sensitivity};
pub use model::{
    regions, DetectError, Detection, Detector, HeatMap, ModelInfo, OnnxModel, PreparedModel, Region,
    MAX_HEATMAP_CELLS, REGION_THRESHOLD,
};
pub use preprocess::{PreprocessError, Preprocessor};
