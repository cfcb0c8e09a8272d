//! The temporal rule: per-frame scores and regions in, `warning` and `failure` events out. Pure: no I/O, no
//! clock but the media time it is given, so the same input always gives the same events.
//!
//! Every frame updates two pieces of *evidence*, one per event kind. Evidence decays with media time (it is
//! multiplied by `exp(-dt / memory_s)` between frames `dt` seconds apart), so 10-second timelapse frames and
//! 5 fps streams are judged by the same clock:
//!
//! * a frame at or above the kind's threshold (*hot*) whose regions overlap the previous frame's regions adds
//!   1 (spatial persistence: a place that stays counts); a hot frame whose regions are somewhere new only keeps
//!   the evidence at 1 or more (one flicker does not count twice);
//! * a frame below [`JudgeConfig`]'s clear threshold (*cold*) resets the evidence to 0;
//! * a frame in between only decays it.
//!
//! An event is raised when the evidence reaches `min_frames - 0.5` (so one spike never raises one, and a score
//! held above the threshold raises one on its `min_frames`-th frame while frames are less than
//! `memory_s * ln 2` seconds apart), the kind is armed and its cooldown has passed. After an event its kind is
//! disarmed until a cold frame (hysteresis) and silent for `cooldown_s` seconds of media time (no floods).
//! The evidence must also span `min_span_s` seconds of media time, from the kind's first hot frame since the
//! last cold one (default 0.4 s: three frames of a 5 fps stream, the fastest rate at which a held failure
//! must still be caught within three frames). A print fails over seconds to minutes, so a fast stream (a
//! 30 fps recording, say) needs the same 0.4 s of media time rather than the same two frames: a look-alike
//! that fills a few hundredths of a second of video does not raise an event, while a 5 fps stream, a
//! 10-second timelapse and everything slower raise one within three frames.
//! A warning whose evidence has lasted `escalate_s` seconds without a cold frame becomes a failure.
//!
//! The *per-camera baseline* is a slow running level of the scores (it rises with time constant `baseline_s`,
//! falls with `baseline_s / 15`). It starts at 0, so nothing is suppressed before it has learned anything: the
//! judge can alarm on the first frames, no warm-up. Once a camera has shown a look-alike (a logo, a fan
//! grate, glare) for many minutes, the part of the baseline above [`BASELINE_FLOOR`] is subtracted from the
//! score before it is compared with the warning threshold, so the look-alike stops raising warnings. The
//! failure threshold is compared with the raw score: a score held above it always raises `failure`.
//!
//! The *quality gate* keeps frames the model cannot judge out of the evidence. [`Judge::observe_frame`] takes
//! a [`FrameQuality`] (sharpness, brightness and contrast of a 64x64 gray copy, measured with
//! [`FrameQuality::measure`]); a frame whose sharpness is below `gate_sharpness` times, or whose contrast is
//! below `gate_contrast` times, the camera's recent reference is *unjudgeable*: a camera refocusing, a fade
//! to black, a light switched off, a lens fogging, a frame caught mid-transition. An unjudgeable frame neither
//! adds evidence nor resets or decays it, never raises an event and is not learned by the baseline (its score
//! is still reported by the caller). The reference is the camera's own recent history: it jumps up to a frame
//! sharper (or more contrasted) than it and falls towards a lower one with time constant `gate_memory_s`, so it
//! needs no warm-up (the first frame sets it and is judged) and a camera that changes for good is judged
//! again within a few `gate_memory_s` (about 2.3 for frames 20 times less sharp than before). Frames given without a quality ([`Judge::observe`]) are always
//! judged.

use serde::{Deserialize, Serialize};
use vigil_frame::{Image, PixelFormat, Rect};

use crate::model::Region;

/// How readily the judge alarms. Thresholds (score in [0, 1]):
///
/// | sensitivity | warning | failure | clear |
/// |---|---|---|---|
/// | `low` | 0.80 | 0.97 | 0.50 |
/// | `medium` (default) | 0.70 | 0.95 | 0.40 |
/// | `high` | 0.55 | 0.85 | 0.30 |
///
/// Each is lower (more sensitive) from `low` to `high`, so a more sensitive judge never alarms later.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sensitivity {
    Low,
    #[default]
    Medium,
    High,
}

impl Sensitivity {
    /// `(warning, failure, clear)` thresholds.
    pub fn thresholds(self) -> (f32, f32, f32) {
        match self {
            Sensitivity::Low => (0.80, 0.97, 0.50),
            Sensitivity::Medium => (0.70, 0.95, 0.40),
            Sensitivity::High => (0.55, 0.85, 0.30),
        }
    }
}

/// Baseline level below which nothing is subtracted from the score: cameras whose frames usually score up to
/// this are judged on their raw scores.
pub const BASELINE_FLOOR: f32 = 0.3;

/// Settings of the temporal rule. Every field has a documented default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JudgeConfig {
    /// `low`, `medium` or `high`; sets the three thresholds (see [`Sensitivity`]). Default `medium`.
    pub sensitivity: Sensitivity,
    /// Overrides the sensitivity's warning threshold. Range (0, 1].
    pub warning_threshold: Option<f32>,
    /// Overrides the sensitivity's failure threshold. Range [warning threshold, 1].
    pub failure_threshold: Option<f32>,
    /// Overrides the sensitivity's clear threshold (below it evidence resets and alarms re-arm).
    /// Range [0, warning threshold].
    pub clear_threshold: Option<f32>,
    /// Hot frames in one place needed for an event. Default 2; range 2..=100 (one spike never alarms).
    pub min_frames: u32,
    /// Media seconds the evidence for an event must span, from the first hot frame since the last cold one.
    /// Default 0.4 (three frames at 5 fps); range [0, 3600]; 0 turns this off.
    pub min_span_s: f64,
    /// Media seconds for evidence to decay to 1/e. Default 120; range (0, 86400].
    pub memory_s: f64,
    /// Media seconds after an event during which no other event of its kind is raised. Default 300; >= 0.
    pub cooldown_s: f64,
    /// Media seconds of unbroken warning evidence after which a warning becomes a failure. Default 600; > 0.
    pub escalate_s: f64,
    /// Media seconds for the per-camera baseline to learn a look-alike (time constant). Default 900; > 0.
    pub baseline_s: f64,
    /// Quality gate: a frame whose sharpness is below this fraction of the camera's recent sharpness is not
    /// judged (blurred, faded, mid-transition). Default 0.35; range [0, 1); 0 turns this check off.
    pub gate_sharpness: f32,
    /// Quality gate: a frame whose contrast is below this fraction of the camera's recent contrast is not
    /// judged (dark, faded, washed out). Default 0.5; range [0, 1); 0 turns this check off.
    pub gate_contrast: f32,
    /// Media seconds for the quality gate's reference to fall to a lower level (time constant; it rises at
    /// once). Default 30; range (0, 86400].
    pub gate_memory_s: f64,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            sensitivity: Sensitivity::Medium,
            warning_threshold: None,
            failure_threshold: None,
            clear_threshold: None,
            min_frames: 2,
            min_span_s: 0.4,
            memory_s: 120.0,
            cooldown_s: 300.0,
            escalate_s: 600.0,
            baseline_s: 900.0,
            gate_sharpness: 0.35,
            gate_contrast: 0.5,
            gate_memory_s: 30.0,
        }
    }
}

/// A setting outside its documented range.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("judge setting `{field}` = {value} is out of range: {range}")]
pub struct JudgeConfigError {
    pub field: &'static str,
    pub value: f64,
    pub range: &'static str,
}

impl JudgeConfig {
    /// The default settings at another sensitivity.
    pub fn with_sensitivity(sensitivity: Sensitivity) -> Self {
        Self { sensitivity, ..Self::default() }
    }

    /// `(warning, failure, clear)` thresholds in force: the sensitivity's, with any overrides.
    pub fn thresholds(&self) -> (f32, f32, f32) {
        let (w, f, c) = self.sensitivity.thresholds();
        (
            self.warning_threshold.unwrap_or(w),
            self.failure_threshold.unwrap_or(f),
            self.clear_threshold.unwrap_or(c),
        )
    }

    pub fn validate(&self) -> Result<(), JudgeConfigError> {
        let bad = |field, value, range| Err(JudgeConfigError { field, value, range });
        let (w, f, c) = self.thresholds();
        if !(w > 0.0 && w <= 1.0) {
            return bad("warning_threshold", w as f64, "(0, 1]");
        }
        if !(f >= w && f <= 1.0) {
            return bad("failure_threshold", f as f64, "[warning_threshold, 1]");
        }
        if !(c >= 0.0 && c <= w) {
            return bad("clear_threshold", c as f64, "[0, warning_threshold]");
        }
        if !(2..=100).contains(&self.min_frames) {
            return bad("min_frames", self.min_frames as f64, "2..=100");
        }
        if !(self.min_span_s >= 0.0 && self.min_span_s <= 3600.0) {
            return bad("min_span_s", self.min_span_s, "[0, 3600]");
        }
        if !(self.memory_s > 0.0 && self.memory_s <= 86_400.0) {
            return bad("memory_s", self.memory_s, "(0, 86400]");
        }
        if !(self.cooldown_s >= 0.0 && self.cooldown_s.is_finite()) {
            return bad("cooldown_s", self.cooldown_s, ">= 0");
        }
        if !(self.escalate_s > 0.0 && self.escalate_s.is_finite()) {
            return bad("escalate_s", self.escalate_s, "> 0");
        }
        if !(self.baseline_s > 0.0 && self.baseline_s.is_finite()) {
            return bad("baseline_s", self.baseline_s, "> 0");
        }
        if !(self.gate_sharpness >= 0.0 && self.gate_sharpness < 1.0) {
            return bad("gate_sharpness", self.gate_sharpness as f64, "[0, 1)");
        }
        if !(self.gate_contrast >= 0.0 && self.gate_contrast < 1.0) {
            return bad("gate_contrast", self.gate_contrast as f64, "[0, 1)");
        }
        if !(self.gate_memory_s > 0.0 && self.gate_memory_s <= 86_400.0) {
            return bad("gate_memory_s", self.gate_memory_s, "(0, 86400]");
        }
        Ok(())
    }
}

/// Cheap statistics of one frame for the quality gate, measured on a small gray copy (at most 64x64 cells,
/// each the mean of a few sampled pixels). Only their ratios to the same camera's recent frames matter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameQuality {
    /// Variance of the 4-neighbour Laplacian of the gray copy: low when blurred or faded.
    pub sharpness: f32,
    /// Mean gray level, 0 to 255.
    pub brightness: f32,
    /// Standard deviation of the gray levels: low when dark, faded or washed out.
    pub contrast: f32,
}

/// Side of the gray copy [`FrameQuality::measure`] works on.
const GRID: usize = 64;
/// Pixels sampled per row and column at most (evenly spaced), so a 1080p frame costs as much as a 256x256 one.
const SAMPLES: usize = 256;

impl FrameQuality {
    /// Measures `image`. Allocates nothing; about 65,000 pixels read whatever the frame size.
    pub fn measure(image: &Image) -> Self {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let ch = image.format().channels();
        let (gw, gh) = (w.min(GRID), h.min(GRID));
        if gw == 0 || gh == 0 {
            return Self::default();
        }
        let (sx, sy) = ((w / SAMPLES).max(1), (h / SAMPLES).max(1));
        // Sums of 4x the gray level (b + 2g + r, or 4 gray) per cell. The sampled columns of one cell are
        // contiguous: each row adds its run of them to the cell once.
        let mut sum = [0u32; GRID * GRID];
        let mut count = [0u32; GRID * GRID];
        let cols = w.div_ceil(sx);
        // edge[j]..edge[j + 1]: the sampled columns (k, at pixel k * sx) in cell column j, the first k with
        // k * sx * gw / w >= j.
        let mut edge = [cols; GRID + 1];
        for (j, e) in edge.iter_mut().enumerate().take(gw + 1) {
            *e = (j * w).div_ceil(sx * gw).min(cols);
        }
        let format = image.format();
        // Blue and red weigh the same, so the order does not matter.
        let bgr = |px: &[u8]| px[0] as u32 + 2 * px[1] as u32 + px[2] as u32;
        for (y, row) in image.data().chunks_exact(w * ch).enumerate().step_by(sy) {
            let base = y * gh / h * gw;
            for c in 0..gw {
                let (from, to) = (edge[c], edge[c + 1]);
                let run: u32 = match (format, ch, sx) {
                    (PixelFormat::Gray8, _, 1) => row[from..to].iter().map(|&g| 4 * g as u32).sum(),
                    (PixelFormat::Gray8, _, _) => (from..to).map(|k| 4 * row[k * sx] as u32).sum(),
                    (_, 3.., 1) => row[from * ch..to * ch].chunks_exact(ch).map(bgr).sum(),
                    (_, 3.., _) => (from..to).map(|k| bgr(&row[k * sx * ch..k * sx * ch + 3])).sum(),
                    _ => 0,
                };
                sum[base + c] += run;
                count[base + c] += (to - from) as u32;
            }
        }
        let n = gw * gh;
        let mut cells = [0f32; GRID * GRID];
        for i in 0..n {
            cells[i] = if count[i] > 0 { sum[i] as f32 / (4 * count[i]) as f32 } else { 0.0 };
        }
        let cells = &cells[..n];
        let mean = cells.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = cells.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let mut lap = (0.0f64, 0.0f64, 0usize);
        for y in 1..gh.saturating_sub(1) {
            for x in 1..gw - 1 {
                let c = |yy: usize, xx: usize| cells[yy * gw + xx] as f64;
                let l = 4.0 * c(y, x) - c(y - 1, x) - c(y + 1, x) - c(y, x - 1) - c(y, x + 1);
                lap = (lap.0 + l, lap.1 + l * l, lap.2 + 1);
            }
        }
        let sharpness = if lap.2 > 0 {
            let m = lap.0 / lap.2 as f64;
            (lap.1 / lap.2 as f64 - m * m).max(0.0)
        } else {
            0.0
        };
        Self { sharpness: sharpness as f32, brightness: mean as f32, contrast: var.sqrt() as f32 }
    }
}

/// The quality gate's reference: the camera's recent sharpness and contrast.
#[derive(Clone, Debug, Default)]
struct Gate {
    /// `(sharpness, contrast)`; `None` until the first frame with a quality.
    reference: Option<(f64, f64)>,
    last_t: Option<f64>,
}

impl Gate {
    /// Whether a frame of quality `q` at `t` can be judged; then learns it.
    fn judgeable(&mut self, cfg: &JudgeConfig, t: f64, q: &FrameQuality) -> bool {
        let (s, c) = (q.sharpness as f64, q.contrast as f64);
        if !(s.is_finite() && c.is_finite()) {
            return true;
        }
        let ok = self.reference.is_none_or(|(rs, rc)| {
            !(s < cfg.gate_sharpness as f64 * rs || c < cfg.gate_contrast as f64 * rc)
        });
        let dt = match self.last_t {
            Some(last) if t.is_finite() && t > last => t - last,
            _ => 0.0,
        };
        let a = 1.0 - (-dt / cfg.gate_memory_s).exp();
        let follow = |r: f64, v: f64| if v >= r { v } else { r + (v - r) * a };
        self.reference = Some(match self.reference {
            None => (s, c),
            Some((rs, rc)) => (follow(rs, s), follow(rc, c)),
        });
        if t.is_finite() && self.last_t.is_none_or(|last| t > last) {
            self.last_t = Some(t);
        }
        ok
    }
}

/// The kind of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Warning,
    Failure,
}

/// An event, as written to the events file (one JSON line each).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// 0-based index of the frame read from the source that raised it.
    pub frame: u64,
    /// Media time of that frame, in seconds.
    pub t: f64,
    /// That frame's score.
    pub score: f32,
    /// Where the model saw the failure in that frame.
    pub regions: Vec<Region>,
}

/// Evidence for one event kind.
#[derive(Clone, Debug)]
struct Track {
    evidence: f64,
    /// Media time of the first hot frame since the last reset.
    since: Option<f64>,
    armed: bool,
    last_event_t: Option<f64>,
}

impl Track {
    fn new() -> Self {
        Self { evidence: 0.0, since: None, armed: true, last_event_t: None }
    }

    /// `level` is compared with `threshold`; `cold` resets.
    fn update(&mut self, t: f64, decay: f64, hot: bool, cold: bool, persistent: bool) {
        if cold {
            self.evidence = 0.0;
            self.since = None;
            self.armed = true;
            return;
        }
        self.evidence *= decay;
        if hot {
            self.evidence = if persistent { self.evidence + 1.0 } else { self.evidence.max(1.0) };
            self.since.get_or_insert(t);
        }
    }

    /// Whether the evidence has lasted `min_span_s` of media time (a small tolerance absorbs the rounding of
    /// frame times summed from their intervals).
    fn spans(&self, t: f64, min_span_s: f64) -> bool {
        min_span_s <= 0.0 || self.since.is_some_and(|s| t - s >= min_span_s - 1e-6)
    }

    fn cooled(&self, t: f64, cooldown_s: f64) -> bool {
        self.last_event_t.is_none_or(|last| t - last >= cooldown_s || t < last)
    }

    fn fire(&mut self, t: f64) {
        self.armed = false;
        self.last_event_t = Some(t);
    }
}

/// The state machine. Feed it frames in order with [`Judge::observe`].
#[derive(Clone, Debug)]
pub struct Judge {
    cfg: JudgeConfig,
    warning_t: f32,
    failure_t: f32,
    clear_t: f32,
    need: f64,
    warning: Track,
    failure: Track,
    baseline: f32,
    last_t: Option<f64>,
    last_regions: Vec<Rect>,
    gate: Gate,
    last_judged: bool,
}

impl Judge {
    pub fn new(cfg: JudgeConfig) -> Self {
        let (warning_t, failure_t, clear_t) = cfg.thresholds();
        let need = cfg.min_frames as f64 - 0.5;
        Self {
            cfg,
            warning_t,
            failure_t,
            clear_t,
            need,
            warning: Track::new(),
            failure: Track::new(),
            baseline: 0.0,
            last_t: None,
            last_regions: Vec::new(),
            gate: Gate::default(),
            last_judged: true,
        }
    }

    /// Whether the last frame given was judged (false: the quality gate left it out).
    pub fn last_judged(&self) -> bool {
        self.last_judged
    }

    /// The per-camera baseline learned so far.
    pub fn baseline(&self) -> f32 {
        self.baseline
    }

    /// Takes one analysed frame; returns the event it raises, if any (a failure when both would be raised).
    /// The frame is always judged: no quality gate.
    pub fn observe(&mut self, frame: u64, t: f64, score: f32, regions: &[Region]) -> Option<Event> {
        self.observe_frame(frame, t, score, regions, None)
    }

    /// [`Judge::observe`] with the frame's quality: a frame the quality gate finds unjudgeable changes no
    /// evidence and raises nothing (see the module documentation).
    pub fn observe_frame(
        &mut self,
        frame: u64,
        t: f64,
        score: f32,
        regions: &[Region],
        quality: Option<&FrameQuality>,
    ) -> Option<Event> {
        self.last_judged = quality.is_none_or(|q| self.gate.judgeable(&self.cfg, t, q));
        if !self.last_judged {
            return None;
        }
        let score = if score.is_finite() { score.clamp(0.0, 1.0) } else { 0.0 };
        let dt = match self.last_t {
            Some(last) if t.is_finite() && t > last => t - last,
            _ => 0.0,
        };
        let decay = (-dt / self.cfg.memory_s).exp();
        let rects: Vec<Rect> = regions.iter().map(|r| r.rect).collect();
        let persistent = self.last_t.is_some() && (rects.is_empty() || overlaps(&self.last_regions, &rects));
        let adjusted = score - (self.baseline - BASELINE_FLOOR).max(0.0);

        self.failure.update(t, decay, score >= self.failure_t, score < self.clear_t, persistent);
        self.warning.update(t, decay, adjusted >= self.warning_t, adjusted < self.clear_t, persistent);

        let cooldown = self.cfg.cooldown_s;
        let span = self.cfg.min_span_s;
        let escalated = self.warning.evidence >= self.need
            && adjusted >= self.warning_t
            && self.warning.since.is_some_and(|s| t - s >= self.cfg.escalate_s);
        let mut kind = None;
        if self.failure.armed
            && self.failure.cooled(t, cooldown)
            && ((self.failure.evidence >= self.need && self.failure.spans(t, span)) || escalated)
        {
            self.failure.fire(t);
            // A failure says more than a warning: no warning until the score clears.
            self.warning.armed = false;
            kind = Some(EventKind::Failure);
        } else if self.warning.armed
            && self.warning.cooled(t, cooldown)
            && self.failure.cooled(t, cooldown)
            && self.warning.evidence >= self.need
            && self.warning.spans(t, span)
        {
            self.warning.fire(t);
            kind = Some(EventKind::Warning);
        }

        // Learn after judging, so a frame never hides itself.
        let tau = if score > self.baseline { self.cfg.baseline_s } else { self.cfg.baseline_s / 15.0 };
        self.baseline += (score - self.baseline) * (1.0 - (-dt / tau).exp()) as f32;
        self.last_t = Some(match self.last_t {
            Some(last) if !(t.is_finite() && t > last) => last,
            _ => t,
        });
        self.last_regions = rects;
        kind.map(|kind| Event { kind, frame, t, score, regions: regions.to_vec() })
    }
}

/// Whether any rectangle of `a` shares area with any of `b`.
fn overlaps(a: &[Rect], b: &[Rect]) -> bool {
    a.iter().any(|p| {
        b.iter().any(|q| {
            let w = (p.x + p.w).min(q.x + q.w) - p.x.max(q.x);
            let h = (p.y + p.h).min(q.y + q.h) - p.y.max(q.y);
            w > 0.0 && h > 0.0
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn region(x: f32) -> Region {
        Region { rect: Rect::new(x, 100.0, 50.0, 50.0), score: 0.9 }
    }

    /// Events as (kind, frame) for frames `(t, score, regions)`.
    fn run_at(cfg: &JudgeConfig, frames: &[(f64, f32, Vec<Region>)]) -> Vec<(EventKind, u64)> {
        let mut j = Judge::new(cfg.clone());
        frames
            .iter()
            .enumerate()
            .filter_map(|(i, (t, s, r))| j.observe(i as u64, *t, *s, r))
            .map(|e| (e.kind, e.frame))
            .collect()
    }

    /// Events as (kind, frame) for frames `(t, score, regions, quality)` through the quality gate.
    fn run_gated(
        cfg: &JudgeConfig,
        frames: &[(f64, f32, Vec<Region>, FrameQuality)],
    ) -> Vec<(EventKind, u64)> {
        let mut j = Judge::new(cfg.clone());
        frames
            .iter()
            .enumerate()
            .filter_map(|(i, (t, s, r, q))| j.observe_frame(i as u64, *t, *s, r, Some(q)))
            .map(|e| (e.kind, e.frame))
            .collect()
    }

    fn quality(sharpness: f32, contrast: f32) -> FrameQuality {
        FrameQuality { sharpness, brightness: 100.0, contrast }
    }

    impl FrameQuality {
        fn with_brightness(self, brightness: f32) -> Self {
            Self { brightness, ..self }
        }
    }

    /// A `w` x `h` gray checkerboard of `cell`-pixel squares between `lo` and `hi`.
    fn checkerboard(w: u32, h: u32, cell: u32, lo: u8, hi: u8) -> Image {
        let data = (0..h)
            .flat_map(|y| (0..w).map(move |x| if (x / cell + y / cell) % 2 == 0 { lo } else { hi }))
            .collect();
        Image::new(w, h, PixelFormat::Gray8, data).unwrap()
    }

    fn every(dt: f64, scores: &[f32]) -> Vec<(f64, f32, Vec<Region>)> {
        scores.iter().enumerate().map(|(i, &s)| (i as f64 * dt, s, vec![region(10.0)])).collect()
    }

    fn first(events: &[(EventKind, u64)], kind: EventKind) -> Option<u64> {
        events.iter().find(|e| e.0 == kind).map(|e| e.1)
    }

    #[test]
    fn a_single_spike_raises_no_event() {
        assert!(run_at(&JudgeConfig::default(), &every(10.0, &[0.1, 0.99, 0.1, 0.1])).is_empty());
    }

    #[test]
    fn a_held_failure_score_raises_one_failure_on_the_second_frame_at_2_5_fps_and_slower() {
        for dt in [0.4, 1.0, 10.0, 60.0] {
            let ev = run_at(&JudgeConfig::default(), &every(dt, &[0.1, 0.99, 0.99, 0.99, 0.99]));
            assert_eq!(ev, vec![(EventKind::Failure, 2)], "frames {dt} s apart");
        }
    }

    #[test]
    fn a_held_failure_score_raises_failure_on_the_third_frame_at_5_fps() {
        let ev = run_at(&JudgeConfig::default(), &every(0.2, &[0.1, 0.99, 0.99, 0.99, 0.99]));
        assert_eq!(ev, vec![(EventKind::Failure, 3)]);
    }

    #[test]
    fn a_look_alike_held_for_less_than_min_span_s_of_a_30_fps_stream_raises_nothing() {
        // Ten hot frames in one place, 1/30 s apart: 0.3 s of media time, then the score falls back.
        let mut scores = vec![0.1];
        scores.extend([0.97; 10]);
        scores.extend([0.1; 20]);
        assert!(run_at(&JudgeConfig::default(), &every(1.0 / 30.0, &scores)).is_empty());
        // Held longer, the same stream raises failure once the evidence spans 0.4 s (the 13th hot frame).
        let mut held = vec![0.1];
        held.extend([0.97; 20]);
        assert_eq!(
            run_at(&JudgeConfig::default(), &every(1.0 / 30.0, &held)),
            vec![(EventKind::Failure, 13)]
        );
    }

    #[test]
    fn a_held_warning_level_score_warns_once_and_escalates_after_escalate_s() {
        // 0.8: hot for a warning (0.7), not for a failure (0.95). Frames 10 s apart; escalation after 600 s.
        let ev = run_at(&JudgeConfig::default(), &every(10.0, &[0.8; 70]));
        assert_eq!(ev, vec![(EventKind::Warning, 1), (EventKind::Failure, 60)]);
    }

    #[test]
    fn hot_frames_in_different_places_are_a_flicker_not_an_event() {
        let frames: Vec<_> =
            (0..10).map(|i| (i as f64 * 10.0, 0.99, vec![region(i as f32 * 100.0)])).collect();
        assert!(run_at(&JudgeConfig::default(), &frames).is_empty());
    }

    #[test]
    fn evidence_decays_with_media_time_not_frames() {
        // Two hot frames with a middling one between: at 10 s apart they add up, at 10 minutes apart they do not.
        let scores = [0.99, 0.6, 0.99];
        assert_eq!(
            first(&run_at(&JudgeConfig::default(), &every(10.0, &scores)), EventKind::Failure),
            Some(2)
        );
        assert!(run_at(&JudgeConfig::default(), &every(600.0, &scores)).is_empty());
    }

    #[test]
    fn no_second_event_until_the_score_clears_and_the_cooldown_passes() {
        let cfg = JudgeConfig { cooldown_s: 100.0, ..Default::default() };
        // Dips to 0.5 (not below clear 0.4) do not re-arm; a clear at frame 6 re-arms, but the cooldown holds
        // until t >= 120 (frame 12 is the first hot frame after it; the second, frame 13, raises).
        let scores = [0.99, 0.99, 0.5, 0.99, 0.99, 0.99, 0.1, 0.99, 0.99, 0.1, 0.1, 0.1, 0.99, 0.99];
        let ev = run_at(&cfg, &every(10.0, &scores));
        assert_eq!(ev, vec![(EventKind::Failure, 1), (EventKind::Failure, 13)]);
    }

    #[test]
    fn the_baseline_needs_no_warm_up_and_learns_a_static_look_alike() {
        // A look-alike scoring 0.75 from the first frame warns at once; after the baseline has learned it over
        // hours, a fresh occurrence (after a clear) no longer warns.
        let cfg = JudgeConfig { escalate_s: 1e9, ..Default::default() };
        let mut j = Judge::new(cfg);
        let r = [region(10.0)];
        let mut kinds = vec![];
        for i in 0..2000u64 {
            let s = if i == 1500 { 0.1 } else { 0.75 };
            if let Some(e) = j.observe(i, i as f64 * 10.0, s, &r) {
                kinds.push((e.kind, e.frame));
            }
        }
        assert_eq!(kinds, vec![(EventKind::Warning, 1)]);
        assert!(j.baseline() > 0.6, "baseline {}", j.baseline());
    }

    #[test]
    fn events_serialise_with_the_documented_field_names() {
        let e = Event { kind: EventKind::Failure, frame: 3, t: 1.5, score: 0.75, regions: vec![] };
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "failure");
        assert_eq!(v["frame"], 3);
        assert_eq!(v["t"], 1.5);
        assert_eq!(v["score"], 0.75);
        let w = Event { kind: EventKind::Warning, ..e };
        assert_eq!(serde_json::to_value(&w).unwrap()["type"], "warning");
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        assert!(JudgeConfig::default().validate().is_ok());
        let e = JudgeConfig { warning_threshold: Some(1.5), ..Default::default() }.validate().unwrap_err();
        assert_eq!(e.field, "warning_threshold");
        let e = JudgeConfig { clear_threshold: Some(0.9), ..Default::default() }.validate().unwrap_err();
        assert_eq!(e.field, "clear_threshold");
        let e = JudgeConfig { failure_threshold: Some(0.5), ..Default::default() }.validate().unwrap_err();
        assert_eq!(e.field, "failure_threshold");
        assert!(JudgeConfig { min_frames: 1, ..Default::default() }.validate().is_err());
        assert!(JudgeConfig { memory_s: 0.0, ..Default::default() }.validate().is_err());
        let e = JudgeConfig { gate_sharpness: 1.0, ..Default::default() }.validate().unwrap_err();
        assert_eq!(e.field, "gate_sharpness");
        let e = JudgeConfig { gate_contrast: -0.1, ..Default::default() }.validate().unwrap_err();
        assert_eq!(e.field, "gate_contrast");
        let e = JudgeConfig { gate_memory_s: 0.0, ..Default::default() }.validate().unwrap_err();
        assert_eq!(e.field, "gate_memory_s");
        assert!(serde_json::from_str::<JudgeConfig>(r#"{"gate_sharpnes": 0.2}"#).is_err());
    }

    #[test]
    fn sensitivities_are_ordered_and_documented() {
        let (l, m, h) = (Sensitivity::Low, Sensitivity::Medium, Sensitivity::High);
        assert_eq!(m.thresholds(), (0.70, 0.95, 0.40));
        for (a, b) in [(l, m), (m, h)] {
            let (x, y) = (a.thresholds(), b.thresholds());
            assert!(x.0 > y.0 && x.1 > y.1 && x.2 > y.2);
        }
        let cfg: JudgeConfig = serde_json::from_str(r#"{"sensitivity": "high"}"#).unwrap();
        assert_eq!(cfg.thresholds(), (0.55, 0.85, 0.30));
    }

    /// The quality statistics written plainly: every sampled pixel's gray level in float, its cell divided
    /// out per pixel.
    fn plain_quality(image: &Image) -> FrameQuality {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let ch = image.format().channels();
        let (gw, gh) = (w.min(GRID), h.min(GRID));
        let (sx, sy) = ((w / SAMPLES).max(1), (h / SAMPLES).max(1));
        let (mut sum, mut count) = (vec![0f64; gw * gh], vec![0u32; gw * gh]);
        for y in (0..h).step_by(sy) {
            for x in (0..w).step_by(sx) {
                let px = &image.data()[(y * w + x) * ch..][..ch];
                let v = match image.format() {
                    PixelFormat::Gray8 => px[0] as f64,
                    _ => (px[0] as f64 + 2.0 * px[1] as f64 + px[2] as f64) / 4.0,
                };
                let i = y * gh / h * gw + x * gw / w;
                sum[i] += v;
                count[i] += 1;
            }
        }
        let cells: Vec<f64> = sum.iter().zip(&count).map(|(s, &c)| s / c.max(1) as f64).collect();
        let n = cells.len() as f64;
        let mean = cells.iter().sum::<f64>() / n;
        let var = cells.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let mut laps = Vec::new();
        for y in 1..gh.saturating_sub(1) {
            for x in 1..gw - 1 {
                let c = |yy: usize, xx: usize| cells[yy * gw + xx];
                laps.push(4.0 * c(y, x) - c(y - 1, x) - c(y + 1, x) - c(y, x - 1) - c(y, x + 1));
            }
        }
        let m = laps.iter().sum::<f64>() / laps.len().max(1) as f64;
        let sharpness = laps.iter().map(|l| (l - m).powi(2)).sum::<f64>() / laps.len().max(1) as f64;
        FrameQuality { sharpness: sharpness as f32, brightness: mean as f32, contrast: var.sqrt() as f32 }
    }

    #[test]
    fn quality_matches_its_plain_definition_for_any_frame_size_and_format() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut byte = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        };
        let sizes = [(1, 1), (3, 2), (63, 65), (320, 240), (511, 300), (512, 288), (767, 431), (1920, 1080)];
        for (w, h) in sizes {
            for format in [PixelFormat::Gray8, PixelFormat::Bgr8] {
                // Smooth gradients plus noise, so cells differ and the Laplacian is not zero.
                let data = (0..h * w * format.channels() as u32)
                    .map(|i| {
                        ((i / format.channels() as u32 % w + i / (w * format.channels() as u32)) as u8) / 2
                            + byte() / 2
                    })
                    .collect();
                let image = Image::new(w, h, format, data).unwrap();
                let (fast, plain) = (FrameQuality::measure(&image), plain_quality(&image));
                let close = |a: f32, b: f32| (a - b).abs() <= 1e-3 * b.abs().max(1.0);
                assert!(
                    close(fast.sharpness, plain.sharpness)
                        && close(fast.brightness, plain.brightness)
                        && close(fast.contrast, plain.contrast),
                    "{w}x{h} {format:?}: {fast:?} vs {plain:?}"
                );
            }
        }
    }

    #[test]
    fn quality_is_lower_for_a_faded_or_blurred_copy_of_the_same_scene() {
        let sharp = FrameQuality::measure(&checkerboard(640, 640, 40, 40, 200));
        let faded = FrameQuality::measure(&checkerboard(640, 640, 40, 100, 140));
        let coarse = FrameQuality::measure(&checkerboard(640, 640, 160, 40, 200));
        assert!((sharp.brightness - 120.0).abs() < 2.0, "{sharp:?}");
        assert!(faded.contrast < 0.3 * sharp.contrast, "{faded:?} vs {sharp:?}");
        assert!(faded.sharpness < 0.1 * sharp.sharpness);
        // Fewer edges (what blur leaves): same contrast, far less sharpness.
        assert!((coarse.contrast - sharp.contrast).abs() < 0.1 * sharp.contrast);
        assert!(coarse.sharpness < 0.35 * sharp.sharpness, "{coarse:?} vs {sharp:?}");
        let colour = Image::new(4, 4, PixelFormat::Bgr8, [10u8, 20, 30].repeat(16)).unwrap();
        assert_eq!(FrameQuality::measure(&colour), quality(0.0, 0.0).with_brightness(20.0));
        assert_eq!(
            FrameQuality::measure(&Image::filled(0, 0, PixelFormat::Gray8, 0)),
            FrameQuality::default()
        );
    }

    #[test]
    fn a_fade_to_black_is_not_judged_and_does_not_alarm() {
        // A steady scene, then a fade whose last frames the model scores as failures.
        let mut frames: Vec<_> =
            (0..30).map(|i| (i as f64 / 30.0, 0.1, vec![region(10.0)], quality(2000.0, 50.0))).collect();
        for (k, (s, c)) in
            [(800.0, 30.0), (200.0, 15.0), (50.0, 8.0), (10.0, 4.0), (1.0, 1.0)].into_iter().enumerate()
        {
            frames.push(((30 + k) as f64 / 30.0, 0.97, vec![region(10.0)], quality(s, c)));
        }
        // The gate alone (no minimum span) keeps the fade out.
        let cfg = JudgeConfig { min_span_s: 0.0, ..Default::default() };
        assert!(run_gated(&cfg, &frames).is_empty());
        // Without the gate the same frames raise a failure.
        let ungated = JudgeConfig { gate_sharpness: 0.0, gate_contrast: 0.0, ..cfg.clone() };
        assert_eq!(first(&run_gated(&ungated, &frames), EventKind::Failure), Some(31));
        let mut j = Judge::new(cfg);
        for (i, (t, s, r, q)) in frames.iter().enumerate() {
            j.observe_frame(i as u64, *t, *s, r, Some(q));
            assert_eq!(j.last_judged(), i < 31, "frame {i}");
        }
    }

    #[test]
    fn the_first_frames_are_judged_whatever_their_quality() {
        // No warm-up: a dim, soft camera showing a failure from its first frame alarms on the second.
        let frames: Vec<_> =
            (0..3).map(|i| (i as f64 * 10.0, 0.99, vec![region(10.0)], quality(5.0, 3.0))).collect();
        assert_eq!(run_gated(&JudgeConfig::default(), &frames), vec![(EventKind::Failure, 1)]);
    }

    #[test]
    fn a_camera_that_changes_for_good_is_judged_again_within_three_gate_memories() {
        // Lights dimmed for good at t = 100 s (frames 1 s apart; 20 times less sharp, 5 times less contrast):
        // left out for at least one gate memory, judged again by t = 100 + 3 * 30 s.
        let cfg = JudgeConfig::default();
        let mut j = Judge::new(cfg.clone());
        let mut back = None;
        for i in 0..300u64 {
            let q = if i < 100 { quality(2000.0, 50.0) } else { quality(100.0, 10.0) };
            j.observe_frame(i, i as f64, 0.1, &[], Some(&q));
            if i >= 100 && j.last_judged() && back.is_none() {
                back = Some(i);
            }
        }
        let back = back.unwrap();
        let after = back as f64 - 100.0;
        assert!(after > cfg.gate_memory_s && after <= 3.0 * cfg.gate_memory_s, "judged again at {back}");
    }

    /// Frames with arbitrary spacing (a 20 fps stream up to one frame a minute), scores and regions in one of
    /// three places or none.
    fn frames() -> impl Strategy<Value = Vec<(f64, f32, Vec<Region>)>> {
        prop::collection::vec((0.05f64..60.0, 0f32..=1.0, 0usize..4), 0..150).prop_map(|v| {
            let mut t = 0.0;
            v.into_iter()
                .map(|(dt, s, place)| {
                    t += dt;
                    let regions = if place == 0 { vec![] } else { vec![region(place as f32 * 200.0)] };
                    (t, s, regions)
                })
                .collect()
        })
    }

    /// Events of the same frames at sensitivities low, medium, high: each kind's first event comes no later
    /// at a higher sensitivity (a failure counts as an earlier warning).
    fn more_sensitive_alarms_no_later(runs: &[Vec<(EventKind, u64)>]) -> Result<(), String> {
        for pair in runs.windows(2) {
            for kind in [EventKind::Failure, EventKind::Warning] {
                if let Some(less) = first(&pair[0], kind) {
                    let more = [first(&pair[1], kind), first(&pair[1], EventKind::Failure)]
                        .into_iter()
                        .flatten()
                        .min();
                    if more.is_none_or(|m| m > less) {
                        return Err(format!("{kind:?}: less sensitive at {less}, more at {more:?}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// One frame for the judge: media time, score, regions.
    type Scored = (f64, f32, Vec<Region>);

    /// `before`, then (after the cooldown) a cold frame and `n` frames `dt` apart holding a score at or above
    /// the failure threshold of sensitivity `sens` in one place; the settings, the frames and the index of the
    /// first held frame.
    fn held_failure(
        mut f: Vec<Scored>,
        sens: usize,
        held: f32,
        dt: f64,
        n: usize,
    ) -> (JudgeConfig, Vec<Scored>, u64) {
        let cfg =
            JudgeConfig::with_sensitivity([Sensitivity::Low, Sensitivity::Medium, Sensitivity::High][sens]);
        let (_, fail, _) = cfg.thresholds();
        let level = fail + held * (1.0 - fail);
        let mut t = f.last().map_or(0.0, |x| x.0) + cfg.cooldown_s + 1.0;
        f.push((t, 0.0, vec![]));
        let start = f.len() as u64;
        for _ in 0..n {
            t += dt;
            f.push((t, level, vec![region(400.0)]));
        }
        (cfg, f, start)
    }

    /// [`frames`] with a quality each: sharpness and contrast anywhere from nothing to a sharp scene.
    fn frames_q() -> impl Strategy<Value = Vec<(f64, f32, Vec<Region>, FrameQuality)>> {
        (frames(), prop::collection::vec((0f32..3000.0, 0f32..80.0), 150)).prop_map(|(f, q)| {
            f.into_iter().zip(q).map(|((t, s, r), (qs, qc))| (t, s, r, quality(qs, qc))).collect()
        })
    }

    proptest! {
        #[test]
        fn unjudgeable_frames_never_raise_an_event_and_never_clear_one(
            f in frames(),
            bad in prop::collection::vec(prop::bool::ANY, 150),
            sens in 0usize..3,
        ) {
            // Frames of a steady sharp scene, some of them replaced by black frames (any score, hot or cold):
            // the events are those of the sharp frames alone, on the same frames.
            let cfg = JudgeConfig::with_sensitivity([Sensitivity::Low, Sensitivity::Medium, Sensitivity::High][sens]);
            let good = quality(2000.0, 50.0);
            let mixed: Vec<_> = f.iter().zip(&bad).enumerate().map(|(i, ((t, s, r), &b))| {
                (*t, *s, r.clone(), if b && i > 0 { quality(0.0, 0.0) } else { good })
            }).collect();
            let mut j = Judge::new(cfg.clone());
            let mut with_gate = vec![];
            for (i, (t, s, r, q)) in mixed.iter().enumerate() {
                if let Some(e) = j.observe_frame(i as u64, *t, *s, r, Some(q)) {
                    prop_assert!(*q == good, "frame {} was unjudgeable and raised {:?}", i, e.kind);
                    with_gate.push((e.kind, e.frame));
                }
                prop_assert_eq!(j.last_judged(), *q == good);
            }
            let mut j = Judge::new(cfg);
            let without: Vec<_> = mixed.iter().enumerate().filter(|(_, x)| x.3 == good)
                .filter_map(|(i, (t, s, r, _))| j.observe(i as u64, *t, *s, r))
                .map(|e| (e.kind, e.frame))
                .collect();
            prop_assert_eq!(with_gate, without);
        }

        #[test]
        fn with_the_gate_a_score_held_above_the_failure_threshold_on_steady_frames_raises_failure_within_3_frames(
            before in frames_q(),
            dt in 0.2f64..60.0,
            held in 0f32..=1.0,
            sens in 0usize..3,
        ) {
            // After any history of any quality, frames at least as sharp and contrasted as any before it.
            let cfg = JudgeConfig::with_sensitivity([Sensitivity::Low, Sensitivity::Medium, Sensitivity::High][sens]);
            let (_, fail, _) = cfg.thresholds();
            let level = fail + held * (1.0 - fail);
            let steady = quality(3000.0, 80.0);
            let mut f = before;
            let mut t = f.last().map_or(0.0, |x| x.0);
            t += cfg.cooldown_s + 1.0;
            f.push((t, 0.0, vec![], steady));
            let start = f.len() as u64;
            for _ in 0..3 {
                t += dt;
                f.push((t, level, vec![region(400.0)], steady));
            }
            let ev = run_gated(&cfg, &f);
            prop_assert!(ev.iter().any(|e| e.0 == EventKind::Failure && e.1 >= start && e.1 < start + 3), "{ev:?}");
        }

        #[test]
        fn with_the_gate_higher_sensitivity_never_alarms_later(f in frames_q()) {
            let runs: Vec<_> = [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High]
                .iter()
                .map(|&s| run_gated(&JudgeConfig::with_sensitivity(s), &f))
                .collect();
            if let Err(e) = more_sensitive_alarms_no_later(&runs) {
                prop_assert!(false, "{}", e);
            }
        }

        #[test]
        fn same_input_gives_same_events(f in frames()) {
            let cfg = JudgeConfig::default();
            prop_assert_eq!(run_at(&cfg, &f), run_at(&cfg, &f));
        }

        #[test]
        fn higher_sensitivity_never_alarms_later(f in frames()) {
            let runs: Vec<_> = [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High]
                .iter()
                .map(|&s| run_at(&JudgeConfig::with_sensitivity(s), &f))
                .collect();
            if let Err(e) = more_sensitive_alarms_no_later(&runs) {
                prop_assert!(false, "{}", e);
            }
        }

        #[test]
        fn isolated_spikes_never_raise_events(
            f in frames(),
            spikes in prop::collection::vec(prop::bool::ANY, 150),
            low in 0f32..0.3,
        ) {
            // Hot frames (any height) never adjacent, every other frame below every clear threshold.
            let mut prev = false;
            let f: Vec<_> = f.into_iter().zip(spikes).map(|((t, s, r), spike)| {
                let hot = spike && !prev;
                prev = hot;
                (t, if hot { s.max(0.99) } else { low }, r)
            }).collect();
            for s in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
                prop_assert!(run_at(&JudgeConfig::with_sensitivity(s), &f).is_empty());
            }
        }

        #[test]
        fn a_score_held_above_the_failure_threshold_raises_failure_within_3_frames(
            before in frames(),
            dt in 0.2f64..60.0,
            held in 0f32..=1.0,
            sens in 0usize..3,
        ) {
            // After any history that ends with a cold frame, a score held at or above the failure threshold,
            // in one place, at any steady frame spacing from 5 fps to a minute.
            let (cfg, f, start) = held_failure(before, sens, held, dt, 3);
            let ev = run_at(&cfg, &f);
            prop_assert!(ev.iter().any(|e| e.0 == EventKind::Failure && e.1 >= start && e.1 < start + 3), "{ev:?}");
        }

        #[test]
        fn on_faster_streams_a_held_failure_score_raises_failure_once_it_spans_min_span_s(
            before in frames(),
            dt in 0.01f64..0.2,
            held in 0f32..=1.0,
            sens in 0usize..3,
        ) {
            // Faster than 5 fps: the event comes on the first frame at least `min_span_s` after the first hot
            // one, and not before.
            let (cfg, f, start) = held_failure(before, sens, held, dt, 200);
            let first_hot = f[start as usize].0;
            let expected = (start + 1..f.len() as u64)
                .find(|&i| f[i as usize].0 - first_hot >= cfg.min_span_s - 1e-6);
            let ev: Vec<_> = run_at(&cfg, &f).into_iter().filter(|e| e.1 >= start).collect();
            prop_assert_eq!(ev.first().copied(), expected.map(|e| (EventKind::Failure, e)), "{:?}", ev);
        }
    }
}
