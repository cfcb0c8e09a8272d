//! The temporal rule: per-frame scores in, `failure` events out. Pure: no I/O, no clock but the media time
//! it is given, so the same input always gives the same events.
//!
//! A frame is *hot* when its score is at least [`JudgeConfig::threshold`]. A `failure` event is raised when
//! [`JudgeConfig::min_frames`] consecutive analysed frames are hot, so a single spike never raises one.
//! After an event the judge is disarmed until a frame scores below [`JudgeConfig::clear_threshold`]
//! (hysteresis), and no new event comes within [`JudgeConfig::cooldown_s`] seconds of media time of the
//! last one (no alert floods).

use serde::{Deserialize, Serialize};

use crate::model::Region;

/// Settings of the temporal rule. Every field has a documented default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JudgeConfig {
    /// Score at or above which a frame is hot. Default 0.6; range (0, 1].
    pub threshold: f32,
    /// Score below which the judge re-arms after an event. Default 0.4; range [0, threshold].
    pub clear_threshold: f32,
    /// Consecutive hot frames needed for an event. Default 2; range 1..=100.
    pub min_frames: u32,
    /// Seconds of media time after an event during which no other event is raised. Default 300.
    pub cooldown_s: f64,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self { threshold: 0.6, clear_threshold: 0.4, min_frames: 2, cooldown_s: 300.0 }
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
    pub fn validate(&self) -> Result<(), JudgeConfigError> {
        let bad = |field, value, range| Err(JudgeConfigError { field, value, range });
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return bad("threshold", self.threshold as f64, "(0, 1]");
        }
        if !(self.clear_threshold >= 0.0 && self.clear_threshold <= self.threshold) {
            return bad("clear_threshold", self.clear_threshold as f64, "[0, threshold]");
        }
        if !(1..=100).contains(&self.min_frames) {
            return bad("min_frames", self.min_frames as f64, "1..=100");
        }
        if !(self.cooldown_s >= 0.0 && self.cooldown_s.is_finite()) {
            return bad("cooldown_s", self.cooldown_s, ">= 0");
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

/// The state machine. Feed it frames in order with [`Judge::observe`].
#[derive(Clone, Debug)]
pub struct Judge {
    cfg: JudgeConfig,
    hot_run: u32,
    armed: bool,
    last_event_t: Option<f64>,
}

impl Judge {
    pub fn new(cfg: JudgeConfig) -> Self {
        Self { cfg, hot_run: 0, armed: true, last_event_t: None }
    }

    /// Takes one analysed frame; returns the event it raises, if any.
    pub fn observe(&mut self, frame: u64, t: f64, score: f32, regions: &[Region]) -> Option<Event> {
        if score < self.cfg.clear_threshold {
            self.armed = true;
        }
        if score >= self.cfg.threshold {
            self.hot_run = self.hot_run.saturating_add(1);
        } else {
            self.hot_run = 0;
        }
        let cooled = self.last_event_t.is_none_or(|last| t - last >= self.cfg.cooldown_s || t < last);
        if self.armed && cooled && self.hot_run >= self.cfg.min_frames {
            self.armed = false;
            self.last_event_t = Some(t);
            return Some(Event { kind: EventKind::Failure, frame, t, score, regions: regions.to_vec() });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cfg: JudgeConfig, scores: &[(f64, f32)]) -> Vec<u64> {
        let mut j = Judge::new(cfg);
        scores
            .iter()
            .enumerate()
            .filter_map(|(i, &(t, s))| j.observe(i as u64, t, s, &[]))
            .map(|e| e.frame)
            .collect()
    }

    fn every_10s(scores: &[f32]) -> Vec<(f64, f32)> {
        scores.iter().enumerate().map(|(i, &s)| (i as f64 * 10.0, s)).collect()
    }

    #[test]
    fn a_single_spike_raises_no_event() {
        assert!(run(JudgeConfig::default(), &every_10s(&[0.1, 0.99, 0.1, 0.1])).is_empty());
    }

    #[test]
    fn a_held_high_score_raises_one_failure_on_the_second_hot_frame() {
        assert_eq!(run(JudgeConfig::default(), &every_10s(&[0.1, 0.9, 0.9, 0.9, 0.9])), vec![2]);
    }

    #[test]
    fn no_second_event_until_the_score_clears_and_the_cooldown_passes() {
        let cfg = JudgeConfig { cooldown_s: 100.0, ..Default::default() };
        // Dips to 0.5 (not below clear 0.4) do not re-arm; a clear at frame 6 re-arms, but the cooldown holds
        // until t >= 120 (frame 12).
        let scores = [0.9, 0.9, 0.5, 0.9, 0.9, 0.9, 0.1, 0.9, 0.9, 0.1, 0.1, 0.1, 0.9, 0.9];
        assert_eq!(run(cfg, &every_10s(&scores)), vec![1, 13]);
    }

    #[test]
    fn events_serialise_with_the_documented_field_names() {
        let e = Event { kind: EventKind::Failure, frame: 3, t: 1.5, score: 0.75, regions: vec![] };
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "failure");
        assert_eq!(v["frame"], 3);
        assert_eq!(v["t"], 1.5);
        assert_eq!(v["score"], 0.75);
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        assert!(JudgeConfig::default().validate().is_ok());
        let e = JudgeConfig { threshold: 1.5, ..Default::default() }.validate().unwrap_err();
        assert_eq!(e.field, "threshold");
        let e = JudgeConfig { clear_threshold: 0.9, ..Default::default() }.validate().unwrap_err();
        assert_eq!(e.field, "clear_threshold");
        assert!(JudgeConfig { min_frames: 0, ..Default::default() }.validate().is_err());
    }

    proptest::proptest! {
        #[test]
        fn same_input_gives_same_events(scores in proptest::collection::vec(0f32..1.0, 0..200)) {
            let s = every_10s(&scores);
            proptest::prop_assert_eq!(run(JudgeConfig::default(), &s), run(JudgeConfig::default(), &s));
        }

        #[test]
        fn isolated_spikes_never_raise_events(spikes in proptest::collection::vec(proptest::bool::ANY, 0..200)) {
            // Hot frames that are never adjacent.
            let mut prev = false;
            let scores: Vec<f32> = spikes.iter().map(|&s| { let hot = s && !prev; prev = hot; if hot { 1.0 } else { 0.0 } }).collect();
            proptest::prop_assert!(run(JudgeConfig::default(), &every_10s(&scores)).is_empty());
        }
    }
}
