//! Per-frame timing histograms and the process's memory figures, for the summary and the benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Number of buckets of a [`Histogram`]: 2 % wide from 1 µs to about 100 s.
const BUCKETS: usize = 930;
/// Width of a bucket, as a ratio.
const BUCKET_RATIO: f64 = 1.02;

/// A fixed-size histogram of durations (2 % resolution), filled without locks or allocation.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Self { buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram").field("count", &self.count()).finish()
    }
}

impl Histogram {
    /// Counts one duration.
    pub fn record(&self, d: Duration) {
        let us = d.as_secs_f64() * 1e6;
        let i = if us <= 1.0 { 0 } else { (us.ln() / BUCKET_RATIO.ln()) as usize + 1 };
        self.buckets[i.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }

    /// Durations counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The `q` quantile (0..=1) in milliseconds (the middle of its bucket); 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let n = self.count();
        if n == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                if i == 0 {
                    return 1e-3;
                }
                let lo = BUCKET_RATIO.powi(i as i32 - 1);
                return lo * BUCKET_RATIO.sqrt() / 1e3;
            }
        }
        0.0
    }
}

/// Sets the C allocator up for a small board; call first thing in `main`, before any other thread exists.
///
/// - At most two glibc arenas: otherwise each thread gets one holding freed memory.
/// - A fixed 128 KiB mmap threshold: blocks that large are mapped on their own and given back as soon as they
///   are freed. glibc otherwise raises the threshold after the first such block is freed, and the copies ONNX
///   Runtime makes while it prepares a model then pile up in the heap: measured on the fp32 failure model,
///   the loading peak falls from 80 MB to 69 MB. Nothing that large is allocated per frame (ONNX Runtime's
///   arena keeps its blocks), so this costs no system calls in the steady state.
pub fn limit_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; the caller calls it before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// The process's peak resident set size in kilobytes (`VmHWM`), 0 where the system does not say.
pub fn peak_rss_kb() -> u64 {
    proc_status_kb("VmHWM:")
}

/// The process's current resident set size in kilobytes (`VmRSS`), 0 where the system does not say.
pub fn rss_kb() -> u64 {
    proc_status_kb("VmRSS:")
}

fn proc_status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_land_within_a_bucket_of_the_true_value() {
        let h = Histogram::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.count(), 100);
        let p50 = h.quantile_ms(0.5);
        let p99 = h.quantile_ms(0.99);
        assert!((p50 / 50.0 - 1.0).abs() < 0.03, "{p50}");
        assert!((p99 / 99.0 - 1.0).abs() < 0.03, "{p99}");
        assert_eq!(Histogram::default().quantile_ms(0.5), 0.0);
    }

    #[test]
    fn durations_beyond_the_range_go_to_the_last_bucket() {
        let h = Histogram::default();
        h.record(Duration::from_secs(1000));
        h.record(Duration::ZERO);
        assert_eq!(h.count(), 2);
        assert!(h.quantile_ms(1.0) > 60_000.0);
    }

    #[test]
    fn this_process_reports_its_peak_memory() {
        if std::path::Path::new("/proc/self/status").exists() {
            // Resident memory first: other tests of this process may grow it before the peak is read, and the
            // peak read afterwards still covers it.
            let rss = rss_kb();
            let peak = peak_rss_kb();
            assert!(rss > 0 && peak >= rss, "rss {rss} KiB, peak {peak} KiB");
        }
    }
}
