//! Client sessions of the handshake era, without shared state between replicas.
//!
//! The client's `Mcp-Session-Id` is a sealed token (see [`crate::session_token`]) that carries
//! the upstream session ids opened when the client initialized, so every replica forwards to
//! the *same* upstream sessions. Two small per-replica tables complete the picture:
//! [`RevokedSessions`] (ids ended with DELETE here) and [`LazySessions`] (upstream sessions
//! opened after the client's initialize, because the upstream was down then or lost its
//! session; their state is per replica, as the README says).

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::upstream::ServerIdx;

/// Bound on each per-replica table; the oldest entries go first when it is reached.
const MAX_ENTRIES: usize = 100_000;

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Session uids ended with DELETE on this replica, kept until the token would expire anyway.
#[derive(Debug)]
pub struct RevokedSessions {
    entries: RwLock<HashMap<[u8; 16], u64>>,
    len: AtomicUsize,
    ttl: Duration,
}

impl RevokedSessions {
    /// An empty table whose entries live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        RevokedSessions {
            entries: RwLock::default(),
            len: AtomicUsize::new(0),
            ttl,
        }
    }

    /// Ends a session on this replica.
    pub fn revoke(&self, uid: [u8; 16], expires_at: u64) {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let now = unix_now();
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, exp| *exp > now);
        }
        if map.len() >= MAX_ENTRIES
            && let Some(oldest) = map.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(uid, expires_at.min(now + self.ttl.as_secs()));
        self.len.store(map.len(), Ordering::Release);
    }

    /// Whether a session was ended here. Costs one atomic load while nothing was revoked.
    pub fn is_revoked(&self, uid: &[u8; 16]) -> bool {
        if self.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(uid)
    }
}

/// An upstream session opened on this replica on behalf of a client session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LazySession {
    /// The upstream's session id.
    pub session_id: String,
    /// The version negotiated with the upstream.
    pub protocol_version: String,
}

/// (client session uid, server) -> (upstream session, expiry in unix seconds).
type LazyTable = HashMap<([u8; 16], ServerIdx), (LazySession, u64)>;

/// Upstream sessions opened lazily on this replica, keyed by client session and server.
#[derive(Debug)]
pub struct LazySessions {
    entries: RwLock<LazyTable>,
    ttl: Duration,
}

impl LazySessions {
    /// An empty table whose entries live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        LazySessions {
            entries: RwLock::default(),
            ttl,
        }
    }

    /// The session opened here for this client session and server, if still fresh.
    pub fn get(&self, uid: &[u8; 16], server: ServerIdx) -> Option<LazySession> {
        let map = self.entries.read().unwrap_or_else(|p| p.into_inner());
        map.get(&(*uid, server))
            .filter(|(_, exp)| *exp > unix_now())
            .map(|(s, _)| s.clone())
    }

    /// Forgets the sessions of servers for which `keep` is false (a reload moved or changed
    /// them, so their index now names another server or another endpoint).
    pub fn retain_servers(&self, keep: impl Fn(ServerIdx) -> bool) {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|(_, server), _| keep(*server));
    }

    /// Remembers a session opened here.
    pub fn insert(&self, uid: [u8; 16], server: ServerIdx, session: LazySession) {
        let now = unix_now();
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, exp)| *exp > now);
        }
        if map.len() >= MAX_ENTRIES
            && let Some(oldest) = map.iter().min_by_key(|(_, (_, e))| *e).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert((uid, server), (session, now + self.ttl.as_secs()));
    }

    /// Removes and returns every session opened here for a client session.
    pub fn take_all(&self, uid: &[u8; 16]) -> Vec<(ServerIdx, LazySession)> {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<_> = map.keys().filter(|(u, _)| u == uid).copied().collect();
        keys.into_iter()
            .filter_map(|k| map.remove(&k).map(|(s, _)| (k.1, s)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_session_is_remembered_and_others_are_not() {
        let r = RevokedSessions::new(Duration::from_secs(60));
        assert!(!r.is_revoked(&[1; 16]));
        r.revoke([1; 16], unix_now() + 60);
        assert!(r.is_revoked(&[1; 16]));
        assert!(!r.is_revoked(&[2; 16]));
    }

    #[test]
    fn lazy_sessions_are_per_client_session_and_server() {
        let l = LazySessions::new(Duration::from_secs(60));
        let s = LazySession {
            session_id: "abc".into(),
            protocol_version: "2025-11-25".into(),
        };
        l.insert([1; 16], 0, s.clone());
        assert_eq!(l.get(&[1; 16], 0), Some(s.clone()));
        assert_eq!(l.get(&[1; 16], 1), None);
        assert_eq!(l.get(&[2; 16], 0), None);
        assert_eq!(l.take_all(&[1; 16]), vec![(0, s)]);
        assert_eq!(l.get(&[1; 16], 0), None);
    }

    #[test]
    fn expired_lazy_session_is_not_returned() {
        let l = LazySessions::new(Duration::ZERO);
        l.insert(
            [1; 16],
            0,
            LazySession {
                session_id: "x".into(),
                protocol_version: "v".into(),
            },
        );
        assert_eq!(l.get(&[1; 16], 0), None);
    }
}
