//! Request-rate limits per gateway, per caller and per tool, enforced per replica.
//!
//! Each limit is a GCRA bucket (generic cell rate algorithm): one `AtomicU64` holding the
//! theoretical arrival time of the next request, advanced by compare-and-swap, so a check is
//! a load and a CAS with no lock, and a refusal knows exactly when the next request would
//! pass (the `Retry-After`). A limit of N per period with burst B lets B requests through at
//! once after an idle spell, then one every period/N.
//!
//! Gateway and tool buckets live as long as the process (tool buckets are handed to each
//! catalog build by name, so a refreshed catalog keeps its counts). Caller buckets sit in a
//! bounded cache keyed by a keyed hash of who the caller is, and idle out once full again, so
//! an evicted bucket is indistinguishable from a kept one.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use sluice_config::{GatewayLimits, RateLimit};

use crate::metrics::Metrics;

/// Most callers with their own bucket per gateway; past this the least recently used start
/// over with a full bucket.
pub const CALLER_CAPACITY: u64 = 100_000;

/// Nanoseconds on a process-wide monotonic clock.
fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    // A process would have to run for 584 years to overflow.
    start.elapsed().as_nanos() as u64
}

/// A rate in the form the bucket needs.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Nanoseconds between requests at the sustained rate.
    interval: u64,
    /// How far ahead of now the arrival time may run: `(burst - 1) * interval`.
    tolerance: u64,
    /// As configured, for messages.
    limit: RateLimit,
}

impl Rate {
    /// From the config's `count` per `period` with `burst`.
    pub fn new(limit: RateLimit) -> Self {
        let period = u64::try_from(limit.period.as_nanos()).unwrap_or(u64::MAX);
        let interval = (period / limit.count.max(1)).max(1);
        Rate {
            interval,
            tolerance: interval.saturating_mul(limit.burst.max(1) - 1),
            limit,
        }
    }

    /// How long an unused bucket takes to fill up again.
    fn refill(&self) -> Duration {
        Duration::from_nanos(self.tolerance.saturating_add(self.interval))
    }
}

/// One bucket: the theoretical arrival time of the next request.
#[derive(Debug, Default)]
pub struct Bucket {
    tat: AtomicU64,
}

impl Bucket {
    /// Takes one request at `now`, or says how long until one would pass.
    pub fn take(&self, rate: &Rate, now: u64) -> Result<(), Duration> {
        let mut current = self.tat.load(Ordering::Relaxed);
        loop {
            let tat = current.max(now);
            let ahead = tat - now;
            if ahead > rate.tolerance {
                return Err(Duration::from_nanos(ahead - rate.tolerance));
            }
            match self.tat.compare_exchange_weak(
                current,
                tat.saturating_add(rate.interval),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(seen) => current = seen,
            }
        }
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole gateway's.
    Gateway = 0,
    /// The caller's.
    Caller = 1,
    /// The tool's.
    Tool = 2,
}

impl Scope {
    /// Label in metrics and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Gateway => "gateway",
            Scope::Caller => "caller",
            Scope::Tool => "tool",
        }
    }
}

/// A refused request.
#[derive(Debug, Clone, PartialEq)]
pub struct Limited {
    /// Which limit.
    pub scope: Scope,
    /// The limit as configured (`"50/s, burst 100"`).
    pub limit: String,
    /// When the next request would pass.
    pub retry_after: Duration,
}

/// One gateway's limits, kept for the life of the process.
pub struct GatewayLimiter {
    gateway: Option<(Rate, Bucket)>,
    caller: Option<(Rate, moka::sync::Cache<u64, Arc<Bucket>>)>,
    tool: Option<Rate>,
    tool_buckets: Mutex<HashMap<String, Arc<Bucket>>>,
    hasher: RandomState,
    refused: [IntCounter; 3],
    counting: bool,
}

impl std::fmt::Debug for GatewayLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayLimiter").finish_non_exhaustive()
    }
}

/// Who a caller is, for the caller limit.
pub enum CallerKey<'a> {
    /// An authenticated identity: issuer (if any) and subject.
    Identity(Option<&'a str>, &'a str),
    /// A gateway without auth: the client's address.
    Address(std::net::IpAddr),
}

impl GatewayLimiter {
    /// The limiter for a gateway's `[gateways.limits]`; `None` when it sets none.
    pub fn new(gateway: &str, limits: &GatewayLimits, metrics: &Metrics) -> Option<Self> {
        if limits.is_empty() {
            return None;
        }
        let caller = limits.caller.map(|l| {
            let rate = Rate::new(l);
            let cache = moka::sync::Cache::builder()
                .max_capacity(CALLER_CAPACITY)
                .time_to_idle(rate.refill().max(Duration::from_secs(1)))
                .build();
            (rate, cache)
        });
        Some(GatewayLimiter {
            gateway: limits.gateway.map(|l| (Rate::new(l), Bucket::default())),
            caller,
            tool: limits.tool.map(Rate::new),
            tool_buckets: Mutex::new(HashMap::new()),
            hasher: RandomState::new(),
            refused: [Scope::Gateway, Scope::Caller, Scope::Tool]
                .map(|s| metrics.rate_limited(gateway, s.as_str())),
            counting: metrics.enabled,
        })
    }

    /// Takes one request from the gateway's and the caller's buckets.
    pub fn admit(&self, caller: CallerKey<'_>) -> Result<(), Limited> {
        let now = now_ns();
        if let Some((rate, bucket)) = &self.gateway {
            bucket
                .take(rate, now)
                .map_err(|d| self.refuse(Scope::Gateway, rate, d))?;
        }
        if let Some((rate, cache)) = &self.caller {
            let key = self.key(&caller);
            let bucket = cache.get_with(key, || Arc::new(Bucket::default()));
            bucket
                .take(rate, now)
                .map_err(|d| self.refuse(Scope::Caller, rate, d))?;
        }
        Ok(())
    }

    /// The bucket for a tool's calls, the same one across catalog rebuilds; `None` without a
    /// tool limit. Called when a catalog is built, not per request.
    pub fn tool_bucket(&self, tool: &str) -> Option<Arc<Bucket>> {
        self.tool?;
        let mut buckets = self.tool_buckets.lock().unwrap_or_else(|p| p.into_inner());
        Some(buckets.entry(tool.to_owned()).or_default().clone())
    }

    /// Takes one call from a tool's bucket.
    pub fn admit_tool(&self, bucket: &Bucket) -> Result<(), Limited> {
        let Some(rate) = &self.tool else {
            return Ok(());
        };
        bucket
            .take(rate, now_ns())
            .map_err(|d| self.refuse(Scope::Tool, rate, d))
    }

    fn key(&self, caller: &CallerKey<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        match caller {
            CallerKey::Identity(issuer, subject) => {
                0u8.hash(&mut h);
                issuer.hash(&mut h);
                subject.hash(&mut h);
            }
            CallerKey::Address(ip) => {
                1u8.hash(&mut h);
                ip.hash(&mut h);
            }
        }
        h.finish()
    }

    fn refuse(&self, scope: Scope, rate: &Rate, retry_after: Duration) -> Limited {
        if self.counting {
            self.refused[scope as usize].inc();
        }
        Limited {
            scope,
            limit: rate.limit.describe(),
            retry_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: u64, secs: u64, burst: u64) -> Rate {
        Rate::new(RateLimit {
            count,
            period: Duration::from_secs(secs),
            burst,
        })
    }

    #[test]
    fn a_burst_passes_exactly_then_the_sustained_rate() {
        let r = rate(10, 1, 5);
        let b = Bucket::default();
        let t0 = 1_000_000_000;
        for i in 0..5 {
            assert_eq!(b.take(&r, t0), Ok(()), "request {i} of the burst");
        }
        let wait = b.take(&r, t0).expect_err("the sixth at once is refused");
        assert_eq!(
            wait,
            Duration::from_millis(100),
            "one interval until the next"
        );
        assert!(b.take(&r, t0 + 99_999_999).is_err());
        assert_eq!(b.take(&r, t0 + 100_000_000), Ok(()));
        assert!(b.take(&r, t0 + 100_000_000).is_err());
        // Idle for the whole refill time: the full burst again.
        let later = t0 + 2_000_000_000;
        for _ in 0..5 {
            assert_eq!(b.take(&r, later), Ok(()));
        }
        assert!(b.take(&r, later).is_err());
    }

    #[test]
    fn long_periods_and_huge_bursts_do_not_overflow() {
        let r = rate(1_000_000_000, 86_400, 1_000_000_000);
        let b = Bucket::default();
        assert_eq!(b.take(&r, 5), Ok(()));
        let r = rate(1, 86_400, 1);
        let b = Bucket::default();
        assert_eq!(b.take(&r, 5), Ok(()));
        assert_eq!(b.take(&r, 5), Err(Duration::from_secs(86_400)));
    }

    #[test]
    fn concurrent_takers_share_the_burst_exactly() {
        let r = rate(1, 3600, 1000);
        let b = Arc::new(Bucket::default());
        let now = now_ns();
        let passed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let b = b.clone();
                    s.spawn(move || (0..500).filter(|_| b.take(&r, now).is_ok()).count())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(passed, 1000);
    }
}
