//! The upload manager: decides what to send next and what to do with each answer. It has no network code
//! and no clock of its own (callers pass monotonic time), so every rule is testable on its own.

use std::collections::VecDeque;
use std::time::Duration;

use crate::bundle::BundleKind;
use crate::config::{Backoff, RateLimit};

/// A bundle waiting to be sent, as the manager sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Bundle id.
    pub id: String,
    /// Event or deletion request.
    pub kind: BundleKind,
}

/// What to do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send `pending[index]`.
    Send(usize),
    /// Nothing may be sent for this long (backoff, Retry-After or rate limit).
    Wait(Duration),
    /// Nothing to send.
    Idle,
}

/// How an upload attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with this status (and `Retry-After`, if it sent one).
    Status {
        /// HTTP status code.
        code: u16,
        /// `Retry-After`, converted to a delay.
        retry_after: Option<Duration>,
    },
    /// Connect, read or write timed out (a stalled server).
    Timeout,
    /// The connection was refused or the host could not be reached.
    Refused,
    /// Any other transport failure.
    Failed(String),
}

/// What to do with the bundle after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: delete it.
    Delivered,
    /// A final 4xx: delete it and count it (never for a deletion request).
    Rejected(u16),
    /// Keep it; nothing is sent before this delay has passed.
    Retry(Duration),
}

/// What the manager has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadCounters {
    /// Attempts made.
    pub attempts: u64,
    /// 2xx answers.
    pub delivered: u64,
    /// Bundles deleted after a final 4xx (413 included).
    pub rejected: u64,
    /// Of those, 413 Payload Too Large.
    pub rejected_too_large: u64,
    /// 5xx (and unexpected 1xx/3xx) answers, retried.
    pub server_errors: u64,
    /// 429 / 408 answers, retried.
    pub throttled: u64,
    /// Retry-After values honoured.
    pub retry_after_honoured: u64,
    /// Timeouts, retried.
    pub timeouts: u64,
    /// Refused connections, retried.
    pub refused: u64,
    /// Other transport failures, retried.
    pub transport_errors: u64,
    /// 4xx answers to a deletion request (kept and retried until a 2xx).
    pub deletion_retries: u64,
}

/// Rate limit, exponential backoff with jitter, Retry-After; see the crate README for the rules.
#[derive(Clone, Debug)]
pub struct UploadManager {
    rate: RateLimit,
    backoff: Backoff,
    sent: VecDeque<Duration>,
    failures: u32,
    not_before: Duration,
    rng: u64,
    counters: UploadCounters,
}

impl UploadManager {
    /// A manager with these rules; `seed` drives the jitter (any value; 0 is replaced).
    pub fn new(rate: RateLimit, backoff: Backoff, seed: u64) -> Self {
        UploadManager {
            rate,
            backoff,
            sent: VecDeque::new(),
            failures: 0,
            not_before: Duration::ZERO,
            rng: if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed },
            counters: UploadCounters::default(),
        }
    }

    /// What has been counted.
    pub fn counters(&self) -> &UploadCounters {
        &self.counters
    }

    /// Consecutive failures so far (0 after any answer that is not a retry).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Decides what to do at monotonic time `now` with `pending` (in send order).
    pub fn decide(&mut self, now: Duration, pending: &[Pending]) -> Decision {
        if pending.is_empty() {
            return Decision::Idle;
        }
        if now < self.not_before {
            return Decision::Wait(self.not_before - now);
        }
        let window = Duration::from_secs(u64::from(self.rate.per_secs));
        while self.sent.front().is_some_and(|t| now.saturating_sub(*t) >= window) {
            self.sent.pop_front();
        }
        if self.sent.len() >= self.rate.max_uploads as usize {
            if let Some(oldest) = self.sent.front() {
                return Decision::Wait((*oldest + window).saturating_sub(now).max(Duration::from_millis(1)));
            }
        }
        Decision::Send(0)
    }

    fn next_rand(&mut self) -> f64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The backoff delay for the current failure count, with jitter.
    fn backoff_delay(&mut self) -> Duration {
        let exp = self.failures.saturating_sub(1).min(40);
        let base = self.backoff.initial_ms.saturating_mul(1u64 << exp).min(self.backoff.max_ms);
        let cut = base as f64 * self.backoff.jitter * self.next_rand();
        Duration::from_millis((base as f64 - cut).round() as u64)
    }

    fn retry(&mut self, now: Duration, retry_after: Option<Duration>) -> Verdict {
        self.failures = self.failures.saturating_add(1);
        let mut delay = self.backoff_delay();
        if let Some(ra) = retry_after {
            let ra = ra.min(Duration::from_secs(self.backoff.max_retry_after_secs));
            self.counters.retry_after_honoured += 1;
            delay = delay.max(ra);
        }
        self.not_before = now + delay;
        Verdict::Retry(delay)
    }

    /// Records the outcome of sending a bundle of `kind` at time `now` and says what to do with it.
    pub fn record(&mut self, now: Duration, kind: BundleKind, outcome: &Outcome) -> Verdict {
        self.counters.attempts += 1;
        self.sent.push_back(now);
        match outcome {
            Outcome::Status { code, .. } if (200..300).contains(code) => {
                self.failures = 0;
                self.counters.delivered += 1;
                Verdict::Delivered
            }
            Outcome::Status { code: code @ (408 | 429), retry_after } => {
                let _ = code;
                self.counters.throttled += 1;
                self.retry(now, *retry_after)
            }
            Outcome::Status { code, retry_after } if (400..500).contains(code) => {
                if kind == BundleKind::DeletionRequest {
                    self.counters.deletion_retries += 1;
                    return self.retry(now, *retry_after);
                }
                self.failures = 0;
                self.counters.rejected += 1;
                if *code == 413 {
                    self.counters.rejected_too_large += 1;
                }
                Verdict::Rejected(*code)
            }
            Outcome::Status { retry_after, .. } => {
                self.counters.server_errors += 1;
                self.retry(now, *retry_after)
            }
            Outcome::Timeout => {
                self.counters.timeouts += 1;
                self.retry(now, None)
            }
            Outcome::Refused => {
                self.counters.refused += 1;
                self.retry(now, None)
            }
            Outcome::Failed(_) => {
                self.counters.transport_errors += 1;
                self.retry(now, None)
            }
        }
    }
}
