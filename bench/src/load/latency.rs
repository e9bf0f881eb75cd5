//! Latency recording with coordinated-omission correction.
//!
//! A closed-loop generator waits for each answer before sending the next request, so when the
//! target stalls it simply stops asking, and the requests a real client would have sent during
//! the stall are never measured ("coordinated omission"). In open-loop mode every request has
//! an *intended* send time on a fixed schedule ([`Pacer`]); its latency is counted from that
//! time, not from when the worker got round to sending it, so a stall shows up in every
//! request it delayed. The uncorrected latency (from the actual send) is kept beside it, which
//! makes the size of the correction visible in the report.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Highest latency recorded exactly (values above are clamped), in microseconds: 10 minutes.
const MAX_US: u64 = 600_000_000;

/// A fresh histogram, 1 µs to 10 min at 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("static bounds are valid")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_US)
}

/// When each request of one open-loop worker is meant to be sent: `start + offset + k·interval`.
#[derive(Debug, Clone)]
pub struct Pacer {
    next: Instant,
    interval: Duration,
}

impl Pacer {
    /// A worker's schedule. With C workers sharing a rate R, each gets `interval = C / R` and
    /// `offset = w / R`, so together they send evenly spaced requests at R per second.
    pub fn new(start: Instant, offset: Duration, interval: Duration) -> Self {
        Self {
            next: start + offset,
            interval,
        }
    }

    /// The intended send time of the next request; the schedule never slips, however late the
    /// worker is.
    pub fn next_intended(&mut self) -> Instant {
        let at = self.next;
        self.next += self.interval;
        at
    }
}

/// Latencies of one worker (merged at the end of a run).
pub struct Recorder {
    /// From the intended send time (open loop) or the actual send (closed loop).
    pub corrected: Histogram<u64>,
    /// From the actual send.
    pub uncorrected: Histogram<u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            corrected: histogram(),
            uncorrected: histogram(),
        }
    }
}

impl Recorder {
    /// Records one request. `intended` is `None` in closed-loop mode.
    pub fn record(&mut self, intended: Option<Instant>, sent: Instant, done: Instant) {
        let actual = micros(done.saturating_duration_since(sent));
        let corrected = intended.map_or(actual, |at| micros(done.saturating_duration_since(at)));
        self.uncorrected.saturating_record(actual);
        self.corrected.saturating_record(corrected);
    }

    pub fn merge(&mut self, other: &Recorder) {
        self.corrected
            .add(&other.corrected)
            .expect("histograms with the same bounds merge");
        self.uncorrected
            .add(&other.uncorrected)
            .expect("histograms with the same bounds merge");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a [`Pacer`] and a [`Recorder`] on a virtual clock, the way the open-loop worker
    /// does on the real one: a request is sent at its intended time, or when the previous one
    /// finished if that is later, and takes `service[i]`.
    fn simulate(interval: Duration, service: &[Duration]) -> Recorder {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, Duration::ZERO, interval);
        let mut recorder = Recorder::default();
        let mut free_at = start;
        for &took in service {
            let intended = pacer.next_intended();
            let sent = intended.max(free_at);
            let done = sent + took;
            recorder.record(Some(intended), sent, done);
            free_at = done;
        }
        recorder
    }

    #[test]
    fn values_are_recorded_to_three_significant_figures() {
        let mut h = histogram();
        for us in 1..=10_000u64 {
            h.record(us).unwrap();
        }
        let p50 = h.value_at_quantile(0.5) as f64;
        let p99 = h.value_at_quantile(0.99) as f64;
        assert!((p50 - 5_000.0).abs() / 5_000.0 < 0.001, "p50 {p50}");
        assert!((p99 - 9_900.0).abs() / 9_900.0 < 0.001, "p99 {p99}");
        assert_eq!(h.len(), 10_000);
    }

    #[test]
    fn a_stall_is_charged_to_every_request_it_delayed() {
        // 100 requests per second for 10 s, each served in 1 ms, except one 1 s stall halfway.
        let mut service = vec![Duration::from_millis(1); 1_000];
        service[500] = Duration::from_secs(1);
        let r = simulate(Duration::from_millis(10), &service);

        // Uncorrected, the stall is one slow request among 1,000: p99 stays at 1 ms.
        assert_eq!(r.uncorrected.len(), 1_000);
        assert!(r.uncorrected.value_at_quantile(0.99) <= 1_001);
        assert!(r.uncorrected.max() >= 999_000);

        // Corrected, the ~100 requests scheduled during the stall waited for it: about 10 % of
        // requests are over 500 ms ... so the p95 is far above 1 ms and p99 near 900 ms.
        assert!(
            r.corrected.value_at_quantile(0.95) > 400_000,
            "p95 {}",
            r.corrected.value_at_quantile(0.95)
        );
        let p99 = r.corrected.value_at_quantile(0.99);
        assert!((850_000..=1_000_000).contains(&p99), "p99 {p99}");
        // ... while the median, before and after the backlog drains, is untouched.
        assert!(r.corrected.value_at_quantile(0.5) <= 1_001);
    }

    #[test]
    fn without_stalls_correction_changes_nothing() {
        let r = simulate(
            Duration::from_millis(10),
            &vec![Duration::from_millis(2); 500],
        );
        assert_eq!(r.corrected.max(), r.uncorrected.max());
        assert_eq!(
            r.corrected.value_at_quantile(0.999),
            r.uncorrected.value_at_quantile(0.999)
        );
    }

    #[test]
    fn workers_share_a_rate_evenly() {
        // 4 workers at 1,000/s: together their first 8 intended times are 1 ms apart.
        let start = Instant::now();
        let rate = 1_000.0;
        let mut times: Vec<Instant> = (0..4)
            .flat_map(|w| {
                let mut p = Pacer::new(
                    start,
                    Duration::from_secs_f64(w as f64 / rate),
                    Duration::from_secs_f64(4.0 / rate),
                );
                [p.next_intended(), p.next_intended()]
            })
            .collect();
        times.sort();
        for (k, t) in times.iter().enumerate() {
            let expected = Duration::from_millis(k as u64);
            let got = t.duration_since(start);
            assert!(
                got.abs_diff(expected) < Duration::from_micros(1),
                "{k}: {got:?}"
            );
        }
    }

    #[test]
    fn merged_recorders_hold_every_sample() {
        let a = simulate(Duration::from_millis(1), &[Duration::from_micros(100); 10]);
        let mut b = simulate(Duration::from_millis(1), &[Duration::from_micros(300); 30]);
        b.merge(&a);
        assert_eq!(b.corrected.len(), 40);
        assert_eq!(b.uncorrected.min(), a.uncorrected.min());
    }
}
