//! A run's figures as data (JSON) and as a table for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::RunResult;

/// Percentiles drawn in latency plots (the x axis is `1 / (1 - p)`).
pub const PLOT_PERCENTILES: [f64; 12] = [
    0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
];

/// Latency figures in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// One run's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Requests answered over HTTP, errors included.
    pub answered: u64,
    pub seconds: f64,
    /// Answered requests per second.
    pub rps: f64,
    /// Failed requests by kind (`http_5xx`, `jsonrpc_error`, `timeout`, …).
    pub errors: BTreeMap<String, u64>,
    /// Messages (progress notifications) that arrived on SSE answers.
    pub messages: u64,
    /// Corrected for coordinated omission in open-loop runs.
    pub latency_us: Latency,
    /// From the actual send (equal to `latency_us` in closed-loop runs).
    pub uncorrected_latency_us: Latency,
    pub open_loop: bool,
    /// `(percentile, µs)` points for plots.
    pub percentiles: Vec<(f64, u64)>,
}

impl Summary {
    pub fn of(run: &RunResult) -> Self {
        let seconds = run.elapsed.as_secs_f64();
        let h = &run.latency.corrected;
        Self {
            answered: run.answered,
            seconds,
            rps: if seconds > 0.0 {
                run.answered as f64 / seconds
            } else {
                0.0
            },
            errors: run
                .errors
                .iter()
                .map(|(k, n)| (k.as_str().to_string(), *n))
                .collect(),
            messages: run.messages,
            latency_us: Latency::of(h),
            uncorrected_latency_us: Latency::of(&run.latency.uncorrected),
            open_loop: run.open_loop,
            percentiles: percentile_points(h),
        }
    }

    /// A human table of this run.
    pub fn table(&self, label: &str) -> String {
        let l = &self.latency_us;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<16} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}  errors",
            "target", "req/s", "p50", "p90", "p99", "p99.9", "max"
        );
        let _ = writeln!(
            out,
            "{:<16} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
            label,
            self.rps,
            fmt_us(l.p50),
            fmt_us(l.p90),
            fmt_us(l.p99),
            fmt_us(l.p999),
            fmt_us(l.max),
            fmt_errors(&self.errors)
        );
        if self.open_loop {
            let u = &self.uncorrected_latency_us;
            let _ = writeln!(
                out,
                "{:<16} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}  (uncorrected for coordinated omission)",
                "",
                "",
                fmt_us(u.p50),
                fmt_us(u.p90),
                fmt_us(u.p99),
                fmt_us(u.p999),
                fmt_us(u.max)
            );
        }
        out
    }
}

/// The plotted percentiles of `h`.
pub fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    PLOT_PERCENTILES
        .iter()
        .map(|&p| (p, h.value_at_quantile(p / 100.0)))
        .collect()
}

/// `1234` µs as `1.23ms`, `87` as `87µs`.
pub fn fmt_us(us: u64) -> String {
    match us {
        0..=999 => format!("{us}µs"),
        1_000..=999_999 => format!("{:.2}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

/// `http_5xx 3, timeout 1`, or `0`.
pub fn fmt_errors(errors: &BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        return "0".into();
    }
    errors
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(fmt_us(87), "87µs");
        assert_eq!(fmt_us(1_234), "1.23ms");
        assert_eq!(fmt_us(2_500_000), "2.50s");
    }

    #[test]
    fn plot_points_rise_with_the_percentile() {
        let mut h = super::super::latency::histogram();
        for us in 1..=100_000u64 {
            h.record(us).unwrap();
        }
        let points = percentile_points(&h);
        assert_eq!(points.len(), PLOT_PERCENTILES.len());
        assert!(points.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(points.last().unwrap().1, h.max());
    }
}
