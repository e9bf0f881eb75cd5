//! Jittered exponential backoff for restarting a server process.
//!
//! A crashing server restarted at once can spin a core; restarted on a fixed delay, many
//! servers that died together come back together. Each delay doubles up to a cap and is
//! drawn uniformly from its upper half ("equal jitter"), as linkerd2-proxy does.

use std::time::Duration;

/// Delays between restarts.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `base` and doubles up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            attempt: 0,
        }
    }

    /// The next delay: in `[d/2, d]` where `d = min(cap, base * 2^attempt)`.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = exp / 2;
        half + half.mul_f64(rand::random::<f64>())
    }

    /// Back to `base` (after the process ran long enough to count as healthy).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_jitter_up_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let bounds = [100, 200, 400, 800, 1000, 1000];
        for max in bounds {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(max / 2) && d <= Duration::from_millis(max),
                "{d:?} not in [{}, {max}] ms",
                max / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
