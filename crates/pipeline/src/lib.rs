//! `vigil-pipeline` wires vigil's stages together. Each stage is a function that takes a `Receiver` and
//! returns a `Receiver`, running on its own thread: [`read_stage`] (a [`FrameSource`] into frames),
//! [`detect_stage`] (frames into [`Scored`] frames through a [`Detector`]), [`judge_stage`] (scored frames
//! into [`Judged`] frames, some carrying an [`Event`]) and [`snapshot_stage`] (while the owner consents, the
//! frames after a failure through the privacy filter into the telemetry spool). Every channel is bounded:
//! from a file or folder the reader waits so every frame is analysed; from a live source the reader keeps
//! only the newest frame when detection is behind and counts the drops; later stages block. Dropping a sender
//! flushes and shuts the next stage down; [`Counters`] hold what each stage did (live-source outages
//! included). [`Config`] is the one TOML file every section of the program is read from, [`serve_metrics`]
//! serves Prometheus text metrics on a loopback port.

mod config;
mod metrics;
mod perf;
mod snapshots;
mod stages;

pub use config::{
    Config, ConfigError, DetectorConfig, DeviceConfig, MetricsConfig, PipelineConfig, SourceConfig,
};
pub use metrics::{metric, render_counters, serve_metrics, Render};
pub use perf::{limit_allocator, peak_rss_kb, rss_kb, Histogram};
pub use snapshots::{snapshot_stage, RecordInfo, SpoolSink};
pub use stages::{detect_stage, judge_stage, read_stage, Counters, Judged, Pacing, Scored, Summary};

pub use vigil_capture::FrameSource;
pub use vigil_detect::{Detector, Event};
