//! [`SnapshotSelector`]: the purpose rules. Only an allowed event opens a window; only frames whose media
//! time lies in [event, event + W] can be kept, at most N of them, at least S seconds apart; at most M events
//! per print and M per UTC day open a window. Nothing before the event is ever kept, so there is no pre-roll
//! buffer anywhere. The selector only decides; it holds no pixels.

use crate::config::{EventKind, PurposeConfig};

/// What happened to an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventDecision {
    /// A snapshot window opened; frames from it carry this event id.
    Opened { event_id: u64 },
    /// The event kind is not listed in `purpose.events`.
    KindNotAllowed,
    /// A window of an earlier event is still open; this event adds nothing.
    WindowAlreadyOpen,
    /// M events already opened a window for this print.
    PrintCapReached,
    /// M events already opened a window today (UTC).
    DayCapReached,
}

impl EventDecision {
    /// A short reason for the audit log (`None` when the window opened).
    pub fn refusal(&self) -> Option<&'static str> {
        match self {
            EventDecision::Opened { .. } => None,
            EventDecision::KindNotAllowed => Some("event kind not allowed by purpose.events"),
            EventDecision::WindowAlreadyOpen => Some("a snapshot window is already open"),
            EventDecision::PrintCapReached => Some("per-print event cap reached"),
            EventDecision::DayCapReached => Some("per-day event cap reached"),
        }
    }
}

/// What to do with one frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FrameDecision {
    /// Keep it as snapshot `index` (0-based) of `event_id`, taken `offset_s` after the event.
    Keep { event_id: u64, index: u32, offset_s: f64 },
    /// Not wanted (no window open, too soon after the last kept frame, before the event, ...).
    Skip,
}

#[derive(Clone, Debug)]
struct Window {
    event_id: u64,
    start: f64,
    kept: u32,
    last_kept: Option<f64>,
}

/// The purpose rules as a state machine fed with events and frame times.
#[derive(Clone, Debug)]
pub struct SnapshotSelector {
    cfg: PurposeConfig,
    print: Option<String>,
    print_events: u32,
    day: u64,
    day_events: u32,
    next_event_id: u64,
    window: Option<Window>,
}

impl SnapshotSelector {
    /// A selector with no history; see [`SnapshotSelector::with_day_count`] to carry today's count over a
    /// restart.
    pub fn new(cfg: PurposeConfig) -> Self {
        Self { cfg, print: None, print_events: 0, day: 0, day_events: 0, next_event_id: 1, window: None }
    }

    /// Starts with `count` events already used on UTC day `day` (days since the Unix epoch).
    pub fn with_day_count(mut self, day: u64, count: u32) -> Self {
        self.day = day;
        self.day_events = count;
        self
    }

    /// An event at media time `t` during print `print_id`, on UTC day `day` (Unix time / 86400).
    pub fn on_event(&mut self, kind: EventKind, t: f64, print_id: &str, day: u64) -> EventDecision {
        if !self.cfg.events.contains(&kind) || !t.is_finite() {
            return EventDecision::KindNotAllowed;
        }
        if self.print.as_deref() != Some(print_id) {
            self.print = Some(print_id.to_string());
            self.print_events = 0;
            self.window = None;
        }
        if day != self.day {
            self.day = day;
            self.day_events = 0;
        }
        if let Some(w) = &self.window {
            if t <= w.start + self.cfg.window_s && w.kept < self.cfg.frames_per_event {
                return EventDecision::WindowAlreadyOpen;
            }
        }
        if self.print_events >= self.cfg.max_events {
            return EventDecision::PrintCapReached;
        }
        if self.day_events >= self.cfg.max_events {
            return EventDecision::DayCapReached;
        }
        self.print_events += 1;
        self.day_events += 1;
        let event_id = self.next_event_id;
        self.next_event_id += 1;
        self.window = Some(Window { event_id, start: t, kept: 0, last_kept: None });
        EventDecision::Opened { event_id }
    }

    /// Whether the frame at media time `t` is to be kept.
    pub fn offer(&mut self, t: f64) -> FrameDecision {
        let Some(w) = self.window.as_mut() else { return FrameDecision::Skip };
        if !t.is_finite() || t < w.start {
            return FrameDecision::Skip;
        }
        if t > w.start + self.cfg.window_s || w.kept >= self.cfg.frames_per_event {
            self.window = None;
            return FrameDecision::Skip;
        }
        if let Some(last) = w.last_kept {
            if t - last < self.cfg.min_spacing_s {
                return FrameDecision::Skip;
            }
        }
        let index = w.kept;
        w.kept += 1;
        w.last_kept = Some(t);
        FrameDecision::Keep { event_id: w.event_id, index, offset_s: t - w.start }
    }

    /// Forgets the open window (e.g. when consent is withdrawn): nothing more is kept until a new event.
    pub fn close_window(&mut self) {
        self.window = None;
    }

    /// Whether a window is open.
    pub fn window_open(&self) -> bool {
        self.window.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel() -> SnapshotSelector {
        SnapshotSelector::new(PurposeConfig::default())
    }

    fn kept_times(s: &mut SnapshotSelector, times: impl IntoIterator<Item = f64>) -> Vec<f64> {
        times.into_iter().filter(|&t| matches!(s.offer(t), FrameDecision::Keep { .. })).collect()
    }

    #[test]
    fn at_most_n_frames_s_apart_from_the_window_after_a_failure() {
        let mut s = sel();
        assert_eq!(s.on_event(EventKind::Failure, 100.0, "p1", 0), EventDecision::Opened { event_id: 1 });
        // 10 fps from 95 s to 140 s: nothing before the event, 5 s apart, 3 at most.
        let kept = kept_times(&mut s, (950..1400).map(|i| i as f64 / 10.0));
        assert_eq!(kept, vec![100.0, 105.0, 110.0]);
    }

    #[test]
    fn frames_after_the_window_are_not_kept() {
        let cfg = PurposeConfig { frames_per_event: 10, min_spacing_s: 10.0, ..PurposeConfig::default() };
        let mut s = SnapshotSelector::new(cfg);
        s.on_event(EventKind::Failure, 0.0, "p", 0);
        let kept = kept_times(&mut s, (0..100).map(|i| i as f64));
        assert_eq!(kept, vec![0.0, 10.0, 20.0, 30.0]);
        assert!(!s.window_open());
    }

    #[test]
    fn warnings_need_to_be_allowed() {
        let mut s = sel();
        assert_eq!(s.on_event(EventKind::Warning, 1.0, "p", 0), EventDecision::KindNotAllowed);
        assert_eq!(s.offer(1.0), FrameDecision::Skip);
        let mut s = SnapshotSelector::new(PurposeConfig {
            events: vec![EventKind::Failure, EventKind::Warning],
            ..PurposeConfig::default()
        });
        assert!(matches!(s.on_event(EventKind::Warning, 1.0, "p", 0), EventDecision::Opened { .. }));
    }

    #[test]
    fn no_frame_is_kept_without_an_event() {
        let mut s = sel();
        assert!(kept_times(&mut s, (0..1000).map(|i| i as f64)).is_empty());
    }

    #[test]
    fn per_print_and_per_day_caps_hold() {
        let mut s = sel();
        let mut opened = 0;
        for i in 0..10 {
            if let EventDecision::Opened { .. } = s.on_event(EventKind::Failure, i as f64 * 100.0, "p1", 5) {
                opened += 1;
            }
        }
        assert_eq!(opened, 3);
        assert_eq!(s.on_event(EventKind::Failure, 2000.0, "p1", 5), EventDecision::PrintCapReached);
        // A new print the same day: the day cap (3) is already used up.
        assert_eq!(s.on_event(EventKind::Failure, 0.0, "p2", 5), EventDecision::DayCapReached);
        // Next day, same new print: allowed again.
        assert!(matches!(s.on_event(EventKind::Failure, 10.0, "p2", 6), EventDecision::Opened { .. }));
        let mut restarted = sel().with_day_count(6, 3);
        assert_eq!(restarted.on_event(EventKind::Failure, 0.0, "p3", 6), EventDecision::DayCapReached);
    }

    #[test]
    fn an_event_inside_an_open_window_does_not_count() {
        let mut s = sel();
        assert!(matches!(s.on_event(EventKind::Failure, 0.0, "p", 0), EventDecision::Opened { .. }));
        assert_eq!(s.on_event(EventKind::Failure, 3.0, "p", 0), EventDecision::WindowAlreadyOpen);
    }
}
