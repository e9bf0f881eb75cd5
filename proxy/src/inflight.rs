//! Requests being forwarded on this replica, by client session and request id, so a client's
//! `notifications/cancelled` reaches the upstream that owns the request.
//!
//! A cancellation that lands on another replica than its request finds nothing here and is
//! dropped, which MCP allows (cancellation is advisory and may race the response). Entries
//! live exactly as long as their forward: the guard removes its entry when dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

type Key = ([u8; 16], Box<[u8]>);

/// The forwards in progress on this replica.
#[derive(Debug, Default)]
pub struct InFlight {
    requests: Mutex<HashMap<Key, Arc<Notify>>>,
}

/// Keeps a request registered while it is forwarded.
#[derive(Debug)]
pub struct InFlightGuard<'a> {
    owner: &'a InFlight,
    key: Option<Key>,
    cancelled: Arc<Notify>,
}

impl InFlight {
    /// Registers the request `id` (raw JSON) of client session `session_uid`. A second request
    /// with the same id in the same session (a client bug) replaces the first's entry.
    pub fn register(&self, session_uid: [u8; 16], id: Option<&[u8]>) -> InFlightGuard<'_> {
        let cancelled = Arc::new(Notify::new());
        let key = id.map(|id| (session_uid, canonical(id)));
        if let Some(key) = &key {
            self.lock().insert(key.clone(), cancelled.clone());
        }
        InFlightGuard {
            owner: self,
            key,
            cancelled,
        }
    }

    /// Signals the request `id` (raw JSON) of `session_uid`; whether it was in flight here.
    pub fn cancel(&self, session_uid: [u8; 16], id: &[u8]) -> bool {
        let found = self.lock().get(&(session_uid, canonical(id))).cloned();
        match found {
            Some(notify) => {
                notify.notify_one();
                true
            }
            None => false,
        }
    }

    /// Requests registered now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Notify>>> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl InFlightGuard<'_> {
    /// Completes when the client cancels the request.
    pub async fn cancelled(&self) {
        self.cancelled.notified().await;
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut map = self.owner.lock();
            if map
                .get(&key)
                .is_some_and(|n| Arc::ptr_eq(n, &self.cancelled))
            {
                map.remove(&key);
            }
        }
    }
}

/// One spelling per id: `"a\u0062"` and `"ab"` are the same request. Ids without escapes
/// (nearly every id) are kept as they are; numbers are compared as written (MCP ids are
/// integers or strings).
fn canonical(id: &[u8]) -> Box<[u8]> {
    if !id.contains(&b'\\') {
        return id.trim_ascii().into();
    }
    serde_json::from_slice::<serde_json::Value>(id)
        .ok()
        .and_then(|v| serde_json::to_vec(&v).ok())
        .unwrap_or_else(|| id.to_vec())
        .into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_reaches_its_request_only_while_it_is_in_flight() {
        let flights = InFlight::default();
        let guard = flights.register([1; 16], Some(b"7"));
        assert!(!flights.cancel([2; 16], b"7"), "another session's request");
        assert!(!flights.cancel([1; 16], b"8"));
        assert!(flights.cancel([1; 16], b"7"));
        // The permit is stored: the forward sees it even if it starts waiting afterwards.
        futures_util::FutureExt::now_or_never(guard.cancelled()).expect("signalled");
        drop(guard);
        assert!(flights.is_empty());
        assert!(
            !flights.cancel([1; 16], b"7"),
            "finished requests are forgotten"
        );
    }

    #[test]
    fn ids_match_however_they_are_spelt() {
        let flights = InFlight::default();
        let _a = flights.register([1; 16], Some(br#""ab""#));
        assert!(flights.cancel([1; 16], br#""a\u0062""#));
        let _b = flights.register([1; 16], Some(b"10"));
        assert!(flights.cancel([1; 16], b" 10"));
    }

    #[test]
    fn a_replaced_entry_is_not_removed_by_the_older_guard() {
        let flights = InFlight::default();
        let first = flights.register([1; 16], Some(b"1"));
        let second = flights.register([1; 16], Some(b"1"));
        drop(first);
        assert!(flights.cancel([1; 16], b"1"));
        drop(second);
        assert!(flights.is_empty());
    }
}
