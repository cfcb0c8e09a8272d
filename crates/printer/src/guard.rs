//! The pause rule, kept pure so it can be tested without a printer: a failure may pause the print only while
//! it is printing, at most `max_per_print` times per print, and never within the cooldown after the user
//! resumed it.

use std::time::{Duration, Instant};

use crate::{PrintState, Status};

/// Why a pause was not sent.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// The printer is not printing.
    NotPrinting(PrintState),
    /// This print was already paused as often as allowed.
    AlreadyPaused { pauses: u32 },
    /// The user resumed the print recently.
    Cooldown { remaining: Duration },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotPrinting(s) => write!(f, "the printer is not printing ({s:?})"),
            Refusal::AlreadyPaused { pauses } => write!(f, "this print was already paused {pauses} time(s)"),
            Refusal::Cooldown { remaining } => {
                write!(
                    f,
                    "the print was resumed recently ({:.0} s of cooldown left)",
                    remaining.as_secs_f64()
                )
            }
        }
    }
}

/// Tracks prints, resumes and pauses.
#[derive(Clone, Debug)]
pub struct PauseGuard {
    max_per_print: u32,
    cooldown: Duration,
    last: Option<Status>,
    pauses: u32,
    resumed_at: Option<Instant>,
    prints: u64,
}

impl PauseGuard {
    pub fn new(max_per_print: u32, cooldown: Duration) -> Self {
        Self { max_per_print, cooldown, last: None, pauses: 0, resumed_at: None, prints: 0 }
    }

    /// Feeds the latest status read at `now`. A print that starts (printing after anything but paused, or a
    /// different job) resets the count; paused to printing is a resume and starts the cooldown.
    pub fn observe(&mut self, status: &Status, now: Instant) {
        let prev = self.last.as_ref();
        if status.state == PrintState::Printing {
            let resumed = prev.is_some_and(|p| p.state == PrintState::Paused && p.job == status.job);
            let same_print = prev.is_some_and(|p| p.state == PrintState::Printing && p.job == status.job);
            if resumed {
                self.resumed_at = Some(now);
            } else if !same_print {
                self.prints += 1;
                self.pauses = 0;
                self.resumed_at = None;
            }
        }
        self.last = Some(status.clone());
    }

    /// Whether a failure seen at `now` may pause the print.
    pub fn may_pause(&self, now: Instant) -> Result<(), Refusal> {
        let state = self.last.as_ref().map_or(PrintState::Offline, |s| s.state);
        if state != PrintState::Printing {
            return Err(Refusal::NotPrinting(state));
        }
        if self.pauses >= self.max_per_print {
            return Err(Refusal::AlreadyPaused { pauses: self.pauses });
        }
        if let Some(at) = self.resumed_at {
            let since = now.saturating_duration_since(at);
            if since < self.cooldown {
                return Err(Refusal::Cooldown { remaining: self.cooldown - since });
            }
        }
        Ok(())
    }

    /// Records a pause that was sent.
    pub fn paused(&mut self) {
        self.pauses += 1;
    }

    /// Prints seen starting so far.
    pub fn prints(&self) -> u64 {
        self.prints
    }

    /// True while the last status read says printing.
    pub fn printing(&self) -> bool {
        self.last.as_ref().is_some_and(|s| s.state == PrintState::Printing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(state: PrintState, job: &str) -> Status {
        Status { state, job: Some(job.into()) }
    }

    #[test]
    fn only_a_running_print_may_be_paused() {
        let mut g = PauseGuard::new(1, Duration::from_secs(600));
        let t = Instant::now();
        assert!(matches!(g.may_pause(t), Err(Refusal::NotPrinting(PrintState::Offline))));
        g.observe(&st(PrintState::Standby, ""), t);
        assert!(matches!(g.may_pause(t), Err(Refusal::NotPrinting(PrintState::Standby))));
        g.observe(&st(PrintState::Printing, "a.gcode"), t);
        assert_eq!(g.may_pause(t), Ok(()));
    }

    #[test]
    fn a_print_is_paused_once_and_never_within_the_cooldown_after_a_resume() {
        let mut g = PauseGuard::new(1, Duration::from_secs(600));
        let t0 = Instant::now();
        g.observe(&st(PrintState::Printing, "a.gcode"), t0);
        assert_eq!(g.may_pause(t0), Ok(()));
        g.paused();
        g.observe(&st(PrintState::Paused, "a.gcode"), t0);
        let t1 = t0 + Duration::from_secs(30);
        g.observe(&st(PrintState::Printing, "a.gcode"), t1);
        assert_eq!(g.may_pause(t1), Err(Refusal::AlreadyPaused { pauses: 1 }));
        assert_eq!(g.prints(), 1);
        // The next print may be paused again.
        g.observe(&st(PrintState::Complete, "a.gcode"), t1);
        g.observe(&st(PrintState::Printing, "a.gcode"), t1);
        assert_eq!(g.prints(), 2);
        assert_eq!(g.may_pause(t1), Ok(()));
    }

    #[test]
    fn a_user_pause_and_resume_starts_the_cooldown() {
        let mut g = PauseGuard::new(2, Duration::from_secs(600));
        let t0 = Instant::now();
        g.observe(&st(PrintState::Printing, "b.gcode"), t0);
        g.observe(&st(PrintState::Paused, "b.gcode"), t0);
        let resumed = t0 + Duration::from_secs(5);
        g.observe(&st(PrintState::Printing, "b.gcode"), resumed);
        let soon = resumed + Duration::from_secs(100);
        assert_eq!(g.may_pause(soon), Err(Refusal::Cooldown { remaining: Duration::from_secs(500) }));
        assert_eq!(g.may_pause(resumed + Duration::from_secs(600)), Ok(()));
        assert_eq!(g.prints(), 1, "a resume is not a new print");
    }
}
