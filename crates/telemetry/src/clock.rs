//! Wall-clock access behind a trait, so tests can set the clock to 1970 or years ahead.

use std::sync::atomic::{AtomicI64, Ordering};

/// 2024-01-01T00:00:00Z: a wall clock earlier than this is taken as not set (printers boot in 1970).
pub const PLAUSIBLE_FROM_UNIX: i64 = 1_704_067_200;
/// 2100-01-01T00:00:00Z: a wall clock later than this is taken as wrong.
pub const PLAUSIBLE_UNTIL_UNIX: i64 = 4_102_444_800;

/// A source of wall-clock time in Unix seconds. The value may be anything a printer's clock says.
pub trait Clock: Send + Sync {
    /// Seconds since 1970-01-01T00:00:00Z, as the clock says (possibly negative or far off).
    fn now_unix(&self) -> i64;
}

/// Whether a wall-clock reading can be trusted for timestamps and retention.
pub fn plausible(unix: i64) -> bool {
    (PLAUSIBLE_FROM_UNIX..PLAUSIBLE_UNTIL_UNIX).contains(&unix)
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        }
    }
}

/// A clock that says what it is told; for tests and tools.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock reading `unix`.
    pub fn new(unix: i64) -> Self {
        ManualClock(AtomicI64::new(unix))
    }
    /// Sets the reading.
    pub fn set(&self, unix: i64) {
        self.0.store(unix, Ordering::SeqCst);
    }
    /// Moves the reading by `secs`.
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
