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
//! A warning whose evidence has lasted `escalate_s` seconds without a cold frame becomes a failure.
//!
//! The *per-camera baseline* is a slow running level of the scores (it rises with time constant `baseline_s`,
//! falls with `baseline_s / 15`). It starts at 0, so nothing is suppressed before it has learned anything: the
//! judge can alarm on the first frames, no warm-up. Once a camera has shown a look-alike (a logo, a fan
//! grate, glare) for many minutes, the part of the baseline above [`BASELINE_FLOOR`] is subtracted from the
//! score before it is compared with the warning threshold, so the look-alike stops raising warnings. The
//! failure threshold is compared with the raw score: a score held above it always raises `failure`.

use serde::{Deserialize, Serialize};
use vigil_frame::Rect;

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
    /// Media seconds for evidence to decay to 1/e. Default 120; range (0, 86400].
    pub memory_s: f64,
    /// Media seconds after an event during which no other event of its kind is raised. Default 300; >= 0.
    pub cooldown_s: f64,
    /// Media seconds of unbroken warning evidence after which a warning becomes a failure. Default 600; > 0.
    pub escalate_s: f64,
    /// Media seconds for the per-camera baseline to learn a look-alike (time constant). Default 900; > 0.
    pub baseline_s: f64,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            sensitivity: Sensitivity::Medium,
            warning_threshold: None,
            failure_threshold: None,
            clear_threshold: None,
            min_frames: 2,
            memory_s: 120.0,
            cooldown_s: 300.0,
            escalate_s: 600.0,
            baseline_s: 900.0,
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
        Ok(())
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
        }
    }

    /// The per-camera baseline learned so far.
    pub fn baseline(&self) -> f32 {
        self.baseline
    }

    /// Takes one analysed frame; returns the event it raises, if any (a failure when both would be raised).
    pub fn observe(&mut self, frame: u64, t: f64, score: f32, regions: &[Region]) -> Option<Event> {
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
        let escalated = self.warning.evidence >= self.need
            && adjusted >= self.warning_t
            && self.warning.since.is_some_and(|s| t - s >= self.cfg.escalate_s);
        let mut kind = None;
        if self.failure.armed
            && self.failure.cooled(t, cooldown)
            && (self.failure.evidence >= self.need || escalated)
        {
            self.failure.fire(t);
            // A failure says more than a warning: no warning until the score clears.
            self.warning.armed = false;
            kind = Some(EventKind::Failure);
        } else if self.warning.armed
            && self.warning.cooled(t, cooldown)
            && self.failure.cooled(t, cooldown)
            && self.warning.evidence >= self.need
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
    fn a_held_failure_score_raises_one_failure_on_the_second_frame_whatever_the_frame_rate() {
        for dt in [0.2, 1.0, 10.0, 60.0] {
            let ev = run_at(&JudgeConfig::default(), &every(dt, &[0.1, 0.99, 0.99, 0.99, 0.99]));
            assert_eq!(ev, vec![(EventKind::Failure, 2)], "frames {dt} s apart");
        }
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

    proptest! {
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
            for pair in runs.windows(2) {
                for kind in [EventKind::Failure, EventKind::Warning] {
                    if let Some(less) = first(&pair[0], kind) {
                        // A failure counts as an earlier warning.
                        let more = [first(&pair[1], kind), first(&pair[1], EventKind::Failure)].into_iter().flatten().min();
                        prop_assert!(more.is_some_and(|m| m <= less), "{:?}: less sensitive at {}, more at {:?}", kind, less, more);
                    }
                }
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
            dt in 0.05f64..60.0,
            held in 0f32..=1.0,
            sens in 0usize..3,
        ) {
            // After any history that ends with a cold frame, a score held at or above the failure threshold,
            // in one place, at any steady frame spacing up to a minute.
            let cfg = JudgeConfig::with_sensitivity([Sensitivity::Low, Sensitivity::Medium, Sensitivity::High][sens]);
            let (_, fail, _) = cfg.thresholds();
            let level = fail + held * (1.0 - fail);
            let mut f = before;
            let mut t = f.last().map_or(0.0, |x| x.0);
            t += cfg.cooldown_s + 1.0;
            f.push((t, 0.0, vec![]));
            let start = f.len() as u64;
            for _ in 0..3 {
                t += dt;
                f.push((t, level, vec![region(400.0)]));
            }
            let ev = run_at(&cfg, &f);
            prop_assert!(ev.iter().any(|e| e.0 == EventKind::Failure && e.1 >= start && e.1 < start + 3), "{ev:?}");
        }
    }
}
