//! The claims' binary form, kept compact because it rides in a header on every request:
//!
//! ```text
//! session_uid[16] expires_at:u64be gateway protocol_version client_capabilities
//! count (server session_id protocol_version){count}
//! ```
//!
//! Strings and byte fields are a LEB128 length then the bytes; `count` is a LEB128 number. Only
//! authenticated plaintext reaches `decode`, but it is still bounded and total: every length is
//! checked against what is left, and trailing bytes are refused.

use super::{SessionClaims, SessionTokenError, UpstreamSession};

/// More upstreams than any gateway configures; a larger count is corrupt.
const MAX_UPSTREAMS: usize = 1024;

/// Exact size of `encode`'s output.
pub(super) fn encoded_len(claims: &SessionClaims) -> usize {
    let field = |n: usize| varint_len(n) + n;
    16 + 8
        + field(claims.gateway.len())
        + field(claims.protocol_version.len())
        + field(claims.client_capabilities.len())
        + varint_len(claims.upstream_sessions.len())
        + claims
            .upstream_sessions
            .iter()
            .map(|u| {
                field(u.server.len()) + field(u.session_id.len()) + field(u.protocol_version.len())
            })
            .sum::<usize>()
}

/// Appends the claims' binary form to `out`.
pub(super) fn encode(claims: &SessionClaims, out: &mut Vec<u8>) -> Result<(), SessionTokenError> {
    if claims.upstream_sessions.len() > MAX_UPSTREAMS {
        return Err(SessionTokenError::TooLarge);
    }
    out.extend_from_slice(&claims.session_uid);
    out.extend_from_slice(&claims.expires_at.to_be_bytes());
    put_bytes(out, claims.gateway.as_bytes());
    put_bytes(out, claims.protocol_version.as_bytes());
    put_bytes(out, &claims.client_capabilities);
    put_varint(out, claims.upstream_sessions.len());
    for upstream in &claims.upstream_sessions {
        put_bytes(out, upstream.server.as_bytes());
        put_bytes(out, upstream.session_id.as_bytes());
        put_bytes(out, upstream.protocol_version.as_bytes());
    }
    Ok(())
}

/// Reads claims written by `encode`; anything else is `Malformed`.
pub(super) fn decode(input: &[u8]) -> Result<SessionClaims, SessionTokenError> {
    let mut r = Reader { rest: input };
    let session_uid = r.array::<16>()?;
    let expires_at = u64::from_be_bytes(r.array::<8>()?);
    let gateway = r.string()?;
    let protocol_version = r.string()?;
    let client_capabilities = r.bytes()?.to_vec();
    let count = r.varint()?;
    // Each upstream takes at least three length bytes: bound the count before allocating.
    if count > MAX_UPSTREAMS || count > r.rest.len() / 3 {
        return Err(SessionTokenError::Malformed);
    }
    let mut upstream_sessions = Vec::with_capacity(count);
    for _ in 0..count {
        upstream_sessions.push(UpstreamSession {
            server: r.string()?,
            session_id: r.string()?,
            protocol_version: r.string()?,
        });
    }
    if !r.rest.is_empty() {
        return Err(SessionTokenError::Malformed);
    }
    Ok(SessionClaims {
        session_uid,
        gateway,
        protocol_version,
        client_capabilities,
        expires_at,
        upstream_sessions,
    })
}

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len());
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SessionTokenError> {
        let (head, tail) = self
            .rest
            .split_at_checked(n)
            .ok_or(SessionTokenError::Malformed)?;
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SessionTokenError> {
        self.take(N)?
            .try_into()
            .map_err(|_| SessionTokenError::Malformed)
    }

    /// LEB128, at most 4 bytes (2^28): far above any length a token can hold.
    fn varint(&mut self) -> Result<usize, SessionTokenError> {
        let mut value = 0usize;
        for shift in [0, 7, 14, 21] {
            let [byte] = self.array::<1>()?;
            value |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(SessionTokenError::Malformed)
    }

    fn bytes(&mut self) -> Result<&'a [u8], SessionTokenError> {
        let len = self.varint()?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, SessionTokenError> {
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| SessionTokenError::Malformed)
    }
}
