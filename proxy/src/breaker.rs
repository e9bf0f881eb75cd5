//! Outlier ejection per upstream server: after `eject_after` consecutive failures (connect
//! refused or timed out, reset, timeout, a 5xx, a response that is not HTTP or not MCP), the
//! server is ejected for `eject_for`, doubling with each ejection in a row up to
//! [`MAX_EJECTION`]. While ejected, its requests fail at once with a JSON-RPC error that says
//! when to retry, instead of each waiting out a connect timeout. When the time is up, one
//! request is let through as a probe: its success closes the breaker, its failure ejects again.
//!
//! Failures the client caused (4xx such as an expired upstream session, a credential refused)
//! say nothing about the server's health and are not counted. The state is three atomics, so
//! admitting a request to a healthy server is two loads.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Longest ejection, however many in a row.
pub const MAX_EJECTION: Duration = Duration::from_secs(300);

/// One server's breaker.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    base: Duration,
    epoch: Instant,
    consecutive: AtomicU32,
    /// Ejections in a row (reset by a success).
    ejections: AtomicU32,
    /// Milliseconds since `epoch` until which the server is ejected; 0 = closed.
    until_ms: AtomicU64,
    /// A probe is in flight (half-open).
    probing: AtomicBool,
}

/// Whether a request may go to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The breaker is closed.
    Pass,
    /// The ejection is over and this request is the probe.
    Probe,
    /// Ejected: retry after this long.
    Ejected {
        /// Time left of the ejection (zero while another request probes).
        retry_after: Duration,
        /// Consecutive failures that caused it.
        failures: u32,
    },
}

impl Breaker {
    /// A breaker ejecting after `threshold` consecutive failures (0 = never) for `base`.
    pub fn new(threshold: u32, base: Duration) -> Self {
        Breaker {
            threshold,
            base,
            epoch: Instant::now(),
            consecutive: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            until_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Asks to send one request.
    pub fn admit(&self) -> Admission {
        let until = self.until_ms.load(Ordering::Acquire);
        if until == 0 {
            return Admission::Pass;
        }
        let now = self.now_ms();
        let failures = self.threshold;
        if now < until {
            return Admission::Ejected {
                retry_after: Duration::from_millis(until - now),
                failures,
            };
        }
        if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            Admission::Probe
        } else {
            Admission::Ejected {
                retry_after: Duration::ZERO,
                failures,
            }
        }
    }

    /// The request succeeded: the server is healthy.
    pub fn success(&self) {
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
        if self.until_ms.load(Ordering::Acquire) != 0 {
            self.ejections.store(0, Ordering::Relaxed);
            self.until_ms.store(0, Ordering::Release);
            self.probing.store(false, Ordering::Release);
        }
    }

    /// The request failed for the server's reasons. Returns whether this ejected it.
    pub fn failure(&self, was_probe: bool) -> bool {
        if self.threshold == 0 {
            return false;
        }
        let failures = self.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
        if !was_probe && failures < self.threshold {
            return false;
        }
        if !was_probe && self.until_ms.load(Ordering::Acquire) != 0 {
            // Already ejected (a request admitted before the ejection failing late).
            return false;
        }
        let n = self.ejections.fetch_add(1, Ordering::AcqRel);
        let cooldown = self
            .base
            .saturating_mul(1u32 << n.min(16))
            .min(MAX_EJECTION);
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX))
            .max(1);
        self.consecutive.store(0, Ordering::Relaxed);
        self.until_ms.store(until, Ordering::Release);
        self.probing.store(false, Ordering::Release);
        true
    }

    /// A probe ended without telling anything (the client left): the next request probes.
    pub fn release_probe(&self) {
        self.probing.store(false, Ordering::Release);
    }

    /// Whether the server is ejected now (for the gauge and `/readyz`).
    pub fn is_ejected(&self) -> bool {
        self.until_ms.load(Ordering::Acquire) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A breaker whose clock started a minute ago, so "ejected until 1 ms" is in the past.
    fn aged(threshold: u32, base: Duration) -> Breaker {
        let fresh = Breaker::new(threshold, base);
        Breaker {
            epoch: Instant::now()
                .checked_sub(Duration::from_secs(60))
                .unwrap_or(fresh.epoch),
            ..fresh
        }
    }

    #[test]
    fn ejects_after_the_threshold_and_probes_once_the_time_is_up() {
        let b = aged(3, Duration::ZERO);
        assert_eq!(b.admit(), Admission::Pass);
        assert!(!b.failure(false));
        assert!(!b.failure(false));
        b.success();
        assert!(
            !b.failure(false),
            "a success in between starts the count again"
        );
        assert!(!b.failure(false));
        assert!(b.failure(false), "the third in a row ejects");
        assert!(b.is_ejected());
        // A zero cooldown is over at once: one probe, the others wait for it.
        assert_eq!(b.admit(), Admission::Probe);
        assert!(
            matches!(b.admit(), Admission::Ejected { retry_after, .. } if retry_after.is_zero())
        );
        b.success();
        assert!(!b.is_ejected());
        assert_eq!(b.admit(), Admission::Pass);
    }

    #[test]
    fn a_failed_probe_ejects_again_for_longer() {
        let b = aged(1, Duration::from_secs(10));
        assert!(b.failure(false));
        match b.admit() {
            Admission::Ejected {
                retry_after,
                failures,
            } => {
                assert!(
                    retry_after > Duration::from_secs(9) && retry_after <= Duration::from_secs(10)
                );
                assert_eq!(failures, 1);
            }
            other => panic!("ejected, not {other:?}"),
        }
        // Force the probe: the second ejection lasts twice as long.
        b.until_ms.store(1, Ordering::Release);
        assert_eq!(b.admit(), Admission::Probe);
        assert!(b.failure(true));
        match b.admit() {
            Admission::Ejected { retry_after, .. } => {
                assert!(retry_after > Duration::from_secs(19), "{retry_after:?}");
            }
            other => panic!("ejected, not {other:?}"),
        }
    }

    #[test]
    fn a_zero_threshold_never_ejects() {
        let b = aged(0, Duration::from_secs(1));
        for _ in 0..100 {
            assert!(!b.failure(false));
        }
        assert_eq!(b.admit(), Admission::Pass);
    }

    #[test]
    fn ejections_are_capped() {
        let b = aged(1, Duration::from_secs(200));
        assert!(b.failure(false));
        b.until_ms.store(1, Ordering::Release);
        assert_eq!(b.admit(), Admission::Probe);
        assert!(b.failure(true));
        match b.admit() {
            Admission::Ejected { retry_after, .. } => assert!(retry_after <= MAX_EJECTION),
            other => panic!("ejected, not {other:?}"),
        }
    }
}
