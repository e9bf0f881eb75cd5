//! Bounded concurrency: how many requests a gateway, and each upstream server, may have in
//! flight on this replica at once.
//!
//! A request beyond the bound is refused at once (HTTP 503 with `Retry-After`, JSON-RPC -32030
//! naming the bound) instead of waiting in a queue: under overload a queue only adds latency to
//! every request and memory to the process, while a quick refusal lets a client or balancer try
//! another replica. Admission is one compare-and-swap; the permit gives it back when the request ends,
//! however it ends.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A bound on requests in flight.
#[derive(Debug)]
pub struct Admission {
    limit: usize,
    in_flight: AtomicUsize,
}

/// One admitted request; leaving drops it.
#[derive(Debug)]
pub struct Permit<'a>(&'a Admission);

impl Admission {
    /// A bound of `limit` requests at once (at least one).
    pub fn new(limit: usize) -> Self {
        Admission {
            limit: limit.max(1),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Admits one more request, or `None` when `limit` are in flight already.
    pub fn try_enter(&self) -> Option<Permit<'_>> {
        // A compare-and-swap loop, so the count never passes the limit, even for a moment.
        let mut current = self.in_flight.load(Ordering::Acquire);
        loop {
            if current >= self.limit {
                return None;
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(Permit(self)),
                Err(now) => current = now,
            }
        }
    }

    /// The bound.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Requests admitted and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_again_once_one_leaves() {
        let a = Admission::new(2);
        let first = a.try_enter().expect("first");
        let _second = a.try_enter().expect("second");
        assert!(a.try_enter().is_none(), "the third waits for nobody");
        assert_eq!(a.in_flight(), 2);
        drop(first);
        assert!(a.try_enter().is_some());
    }

    #[test]
    fn concurrent_entries_never_exceed_the_limit() {
        let a = std::sync::Arc::new(Admission::new(3));
        let peak = std::sync::Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (a, peak) = (a.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        if let Some(_p) = a.try_enter() {
                            peak.fetch_max(a.in_flight.load(Ordering::Acquire), Ordering::AcqRel);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no panic");
        }
        assert!(peak.load(Ordering::Acquire) <= 3);
        assert_eq!(a.in_flight(), 0, "every permit was given back");
    }
}
