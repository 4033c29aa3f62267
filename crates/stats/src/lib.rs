//! Counters and latency histograms for `/metrics`.
//!
//! Hot paths own their counters (one set per worker thread, so increments
//! never contend on a cache line) and the scrape sums them. Everything is a
//! relaxed atomic: a scrape may see one query counted in `count` a moment
//! before its bucket, which Prometheus tolerates.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds: 10 µs to 5 s, about
/// three per decade, covering both answers from memory and upstream round
/// trips.
pub const BUCKETS_MICROS: [u64; 16] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 500_000,
    1_000_000, 5_000_000,
];

/// A latency histogram with the fixed [`BUCKETS_MICROS`] bounds.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last slot is `+Inf`.
    buckets: [AtomicU64; BUCKETS_MICROS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let slot = BUCKETS_MICROS.partition_point(|&le| le < micros);
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values, for summing and rendering.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut s = HistogramSnapshot::default();
        for (to, from) in s.buckets.iter_mut().zip(&self.buckets) {
            *to = from.load(Ordering::Relaxed);
        }
        s.sum_micros = self.sum_micros.load(Ordering::Relaxed);
        s.count = self.count.load(Ordering::Relaxed);
        s
    }
}

/// A histogram's values at one moment; several add up with [`Self::add`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Per bucket (not cumulative); the last slot is `+Inf`.
    pub buckets: [u64; BUCKETS_MICROS.len() + 1],
    /// Sum of all observations, in microseconds.
    pub sum_micros: u64,
    /// Number of observations.
    pub count: u64,
}

impl HistogramSnapshot {
    /// Adds `other` into `self` (summing workers at scrape time).
    pub fn add(&mut self, other: &Self) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.sum_micros += other.sum_micros;
        self.count += other.count;
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of a Prometheus
    /// histogram in seconds. `labels` is empty or `key="value",…` without
    /// braces. The `# HELP`/`# TYPE` header is the caller's (once per
    /// metric name).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            cumulative += n;
            let le = BUCKETS_MICROS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |&m| seconds(m));
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", seconds(self.sum_micros));
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Microseconds as decimal seconds without float noise (`2500` → `0.0025`).
fn seconds(micros: u64) -> String {
    let whole = micros / 1_000_000;
    let frac = micros % 1_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Escapes a label value for the Prometheus text format.
pub fn label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(10));
        h.observe(Duration::from_micros(11));
        h.observe(Duration::from_secs(60));
        let mut s = h.snapshot();
        s.add(&h.snapshot());
        let mut out = String::new();
        s.render(&mut out, "x_seconds", "proto=\"udp\"");
        assert!(out.contains("x_seconds_bucket{proto=\"udp\",le=\"0.00001\"} 2\n"));
        assert!(out.contains("x_seconds_bucket{proto=\"udp\",le=\"0.000025\"} 4\n"));
        assert!(out.contains("x_seconds_bucket{proto=\"udp\",le=\"5\"} 4\n"));
        assert!(out.contains("x_seconds_bucket{proto=\"udp\",le=\"+Inf\"} 6\n"));
        assert!(out.contains("x_seconds_sum{proto=\"udp\"} 120.000042\n"));
        assert!(out.contains("x_seconds_count{proto=\"udp\"} 6\n"));
    }

    #[test]
    fn label_values_escaped() {
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
