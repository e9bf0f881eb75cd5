//! Relayed request ids: how a server-to-client request (`sampling/createMessage`,
//! `elicitation/create`, `roots/list`) finds its way back to the upstream that asked.
//!
//! An upstream sends such a request on a response stream or its standalone GET stream, with an
//! id of its own. The gateway replaces that id with a string that carries everything needed to
//! route the client's answer: the client session it was sent to, the upstream server, the
//! upstream session, the protocol version and the original id's raw JSON. The string is sealed
//! with the gateway's session key (XChaCha20-Poly1305, its own associated data), so any replica
//! with the same secret can route the answer without shared state, a client cannot forge one to
//! reach another session, and the upstream session id never shows in clear. Upstream ids of
//! different servers cannot collide on the client's side either, since every relayed id is
//! unique.

use crate::session_token::{SessionSealer, SessionTokenError};

/// Every relayed id starts with this, so answers to them are told apart cheaply.
pub const PREFIX: &str = "sluice-rq.";
/// Associated data: binds sealed ids to this use of the key.
const PURPOSE: &[u8] = b"sluice/relayed-request-id/v1";
/// Longest relayed id opened (characters after the prefix).
const MAX_TOKEN_LEN: usize = 4096;
/// Longest original id kept (raw JSON bytes); upstream ids are short counters or uuids.
const MAX_ORIGINAL_ID: usize = 512;

/// What a relayed id stands for.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayedId {
    /// The client session the request was sent to.
    pub session_uid: [u8; 16],
    /// The upstream server's configured name.
    pub server: String,
    /// The upstream session the request belongs to (absent for a stateless upstream).
    pub upstream_session: Option<String>,
    /// The protocol version of that session.
    pub version: String,
    /// The upstream's own id, as raw JSON (`7`, `"abc"`).
    pub original: Vec<u8>,
}

impl std::fmt::Debug for RelayedId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayedId")
            .field("server", &self.server)
            .field("original", &String::from_utf8_lossy(&self.original))
            .finish_non_exhaustive()
    }
}

/// Why a relayed id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The upstream's id is too long to relay.
    #[error("the upstream's request id is longer than {MAX_ORIGINAL_ID} bytes")]
    OriginalTooLong,
    /// Not sealed by this gateway, modified, or malformed.
    #[error("the response id was not issued by this gateway")]
    NotIssued,
    /// Issued for another client session.
    #[error("the response id belongs to another session")]
    OtherSession,
}

impl From<SessionTokenError> for RelayError {
    fn from(_: SessionTokenError) -> Self {
        RelayError::NotIssued
    }
}

impl RelayedId {
    /// The id to send to the client: a JSON string literal, quotes included.
    pub fn seal(&self, sealer: &SessionSealer) -> Result<Vec<u8>, RelayError> {
        if self.original.len() > MAX_ORIGINAL_ID {
            return Err(RelayError::OriginalTooLong);
        }
        let mut payload = Vec::with_capacity(
            16 + 3 * 2 + self.server.len() + self.version.len() + self.original.len() + 64,
        );
        payload.extend_from_slice(&self.session_uid);
        put(&mut payload, self.server.as_bytes());
        put(
            &mut payload,
            self.upstream_session
                .as_deref()
                .unwrap_or_default()
                .as_bytes(),
        );
        put(&mut payload, self.version.as_bytes());
        payload.extend_from_slice(&self.original);
        let token = sealer.seal_payload(PURPOSE, &payload);
        let mut literal = Vec::with_capacity(token.len() + PREFIX.len() + 2);
        literal.push(b'"');
        literal.extend_from_slice(PREFIX.as_bytes());
        literal.extend_from_slice(token.as_bytes());
        literal.push(b'"');
        Ok(literal)
    }

    /// Opens a relayed id (the string's value, prefix included) for the client session
    /// `session_uid`.
    pub fn open(
        sealer: &SessionSealer,
        id: &str,
        session_uid: &[u8; 16],
    ) -> Result<RelayedId, RelayError> {
        let token = id.strip_prefix(PREFIX).ok_or(RelayError::NotIssued)?;
        let payload = sealer.open_payload(PURPOSE, token, MAX_TOKEN_LEN)?;
        let (uid, rest) = payload
            .split_first_chunk::<16>()
            .ok_or(RelayError::NotIssued)?;
        let (server, rest) = take(rest)?;
        let (upstream_session, rest) = take(rest)?;
        let (version, original) = take(rest)?;
        if uid != session_uid {
            return Err(RelayError::OtherSession);
        }
        let text = |b: &[u8]| {
            std::str::from_utf8(b)
                .map(str::to_owned)
                .map_err(|_| RelayError::NotIssued)
        };
        Ok(RelayedId {
            session_uid: *uid,
            server: text(server)?,
            upstream_session: Some(text(upstream_session)?).filter(|s| !s.is_empty()),
            version: text(version)?,
            original: original.to_vec(),
        })
    }
}

/// Whether a response id (raw JSON) is one the gateway relayed.
pub fn is_relayed(raw_id: &[u8]) -> bool {
    raw_id
        .strip_prefix(b"\"")
        .is_some_and(|s| s.starts_with(PREFIX.as_bytes()))
}

fn put(out: &mut Vec<u8>, field: &[u8]) {
    // Fields are bounded well below u16::MAX by their sources (names, session ids, versions).
    let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&field[..usize::from(len)]);
}

fn take(bytes: &[u8]) -> Result<(&[u8], &[u8]), RelayError> {
    let (len, rest) = bytes
        .split_first_chunk::<2>()
        .ok_or(RelayError::NotIssued)?;
    let len = usize::from(u16::from_be_bytes(*len));
    if rest.len() < len {
        return Err(RelayError::NotIssued);
    }
    Ok(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> SessionSealer {
        SessionSealer::new(&[7u8; 32]).expect("a 32-byte secret")
    }

    fn sample() -> RelayedId {
        RelayedId {
            session_uid: [9; 16],
            server: "docs".into(),
            upstream_session: Some("abc-123".into()),
            version: "2025-11-25".into(),
            original: b"42".to_vec(),
        }
    }

    fn value(literal: &[u8]) -> String {
        serde_json::from_slice(literal).expect("a JSON string")
    }

    #[test]
    fn a_sealed_id_opens_to_what_was_sealed_for_its_session_only() {
        let s = sealer();
        let literal = sample().seal(&s).expect("sealed");
        assert!(is_relayed(&literal));
        let id = value(&literal);
        assert_eq!(RelayedId::open(&s, &id, &[9; 16]), Ok(sample()));
        assert_eq!(
            RelayedId::open(&s, &id, &[8; 16]),
            Err(RelayError::OtherSession)
        );
        let other_key = SessionSealer::new(&[6u8; 32]).expect("a 32-byte secret");
        assert_eq!(
            RelayedId::open(&other_key, &id, &[9; 16]),
            Err(RelayError::NotIssued)
        );
    }

    #[test]
    fn stateless_upstreams_and_string_ids_round_trip() {
        let s = sealer();
        let relayed = RelayedId {
            upstream_session: None,
            original: br#""req-\"7\"""#.to_vec(),
            ..sample()
        };
        let id = value(&relayed.seal(&s).expect("sealed"));
        assert_eq!(RelayedId::open(&s, &id, &[9; 16]), Ok(relayed));
    }

    #[test]
    fn two_seals_of_one_id_differ_and_tampering_is_refused() {
        let s = sealer();
        let a = value(&sample().seal(&s).expect("sealed"));
        let b = value(&sample().seal(&s).expect("sealed"));
        assert_ne!(a, b, "a fresh nonce each time");
        let mut bytes = a.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ascii");
        assert_eq!(
            RelayedId::open(&s, &tampered, &[9; 16]),
            Err(RelayError::NotIssued)
        );
        for junk in ["", "sluice-rq.", "sluice-rq.!!", "7", "sluice-rq.AAAA"] {
            assert_eq!(
                RelayedId::open(&s, junk, &[9; 16]),
                Err(RelayError::NotIssued),
                "{junk:?}"
            );
        }
        let huge = format!("{PREFIX}{}", "A".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(
            RelayedId::open(&s, &huge, &[9; 16]),
            Err(RelayError::NotIssued)
        );
    }

    #[test]
    fn a_session_token_is_not_a_relayed_id() {
        let s = sealer();
        let claims = crate::session_token::SessionClaims {
            session_uid: [9; 16],
            gateway: "g".into(),
            protocol_version: "2025-11-25".into(),
            client_capabilities: Vec::new(),
            expires_at: u64::MAX,
            upstream_sessions: Vec::new(),
        };
        let token = s.seal(&claims).expect("sealed");
        assert_eq!(
            RelayedId::open(&s, &format!("{PREFIX}{token}"), &[9; 16]),
            Err(RelayError::NotIssued)
        );
    }

    #[test]
    fn overlong_upstream_ids_are_not_relayed() {
        let relayed = RelayedId {
            original: vec![b'1'; MAX_ORIGINAL_ID + 1],
            ..sample()
        };
        assert_eq!(relayed.seal(&sealer()), Err(RelayError::OriginalTooLong));
    }
}
