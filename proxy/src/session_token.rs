//! Stateless MCP session ids: the `Mcp-Session-Id` the gateway hands out is the session itself,
//! sealed with XChaCha20-Poly1305 under a key derived from a shared secret, so any replica with
//! the same secret can serve any session without a shared store.
//!
//! Token = base64url-no-pad( version ‖ nonce(24) ‖ AEAD(claims, aad = version) ). A random
//! 24-byte nonce makes collisions negligible however many tokens are sealed under one key, which
//! a 12-byte random nonce could not promise. Claims are a compact length-prefixed binary form
//! (see `codec`), and every length is bounded while decoding.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand::RngCore as _;
use sha2::Sha256;

mod codec;
#[cfg(test)]
mod tests;

/// Token format version; also the AEAD associated data, so it cannot be swapped.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// HKDF `info`: binds the derived key to this one use of the secret.
const HKDF_INFO: &[u8] = b"sluice/session-token/v1";
/// Shortest secret accepted: 256 bits.
pub const MIN_SECRET_LEN: usize = 32;
/// Longest token `open` will look at, checked before any decoding. Tokens travel in an HTTP
/// header; `seal` refuses claims that would not fit.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// What a session token carries.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionClaims {
    /// Random and unique per session: the handle for revocation.
    pub session_uid: [u8; 16],
    /// The gateway that opened the session.
    pub gateway: String,
    /// The MCP protocol version negotiated with the client.
    pub protocol_version: String,
    /// The client's `capabilities` from `initialize`, as raw JSON bytes (may be empty).
    pub client_capabilities: Vec<u8>,
    /// Unix time (seconds) from which the token is refused.
    pub expires_at: u64,
    /// Sessions the gateway holds with upstream servers on the client's behalf.
    pub upstream_sessions: Vec<UpstreamSession>,
}

/// One upstream server's session, opened lazily by the gateway.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamSession {
    /// The server's name in the gateway's configuration.
    pub server: String,
    /// The `Mcp-Session-Id` that server assigned.
    pub session_id: String,
    /// The protocol version negotiated with that server.
    pub protocol_version: String,
}

/// Upstream session ids let their holder act in that session: keep them out of logs.
impl std::fmt::Debug for UpstreamSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSession")
            .field("server", &self.server)
            .field(
                "session_id",
                &format_args!("<{} bytes>", self.session_id.len()),
            )
            .field("protocol_version", &self.protocol_version)
            .finish()
    }
}

impl std::fmt::Debug for SessionClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionClaims")
            .field("session_uid", &format_args!("{}", hex(&self.session_uid)))
            .field("gateway", &self.gateway)
            .field("protocol_version", &self.protocol_version)
            .field(
                "client_capabilities",
                &String::from_utf8_lossy(&self.client_capabilities),
            )
            .field("expires_at", &self.expires_at)
            .field("upstream_sessions", &self.upstream_sessions)
            .finish()
    }
}

impl SessionClaims {
    /// A fresh random `session_uid`.
    pub fn new_session_uid() -> [u8; 16] {
        let mut uid = [0u8; 16];
        rand::rng().fill_bytes(&mut uid);
        uid
    }

    /// The session's upstream session with `server`, if one was opened.
    pub fn upstream(&self, server: &str) -> Option<&UpstreamSession> {
        self.upstream_sessions.iter().find(|u| u.server == server)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a token could not be sealed or opened. Deliberately coarse: a client learns only that its
/// session is gone, never which check failed inside the AEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionTokenError {
    /// The configured secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("session secret must be at least {MIN_SECRET_LEN} bytes")]
    SecretTooShort,
    /// Not a token: bad base64, too short, or claims that do not decode.
    #[error("malformed session token")]
    Malformed,
    /// Authentication failed: sealed under another secret, or modified.
    #[error("session token failed authentication")]
    Tampered,
    /// The token's `expires_at` has passed.
    #[error("session token expired")]
    Expired,
    /// The token (or, when sealing, the claims) exceed [`MAX_TOKEN_LEN`].
    #[error("session token longer than {MAX_TOKEN_LEN} characters")]
    TooLarge,
    /// A token format this gateway does not know.
    #[error("unsupported session token version")]
    UnsupportedVersion,
}

/// Seals and opens session tokens with a key derived from the gateway's session secret.
pub struct SessionSealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SessionSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSealer { key: *** }")
    }
}

impl SessionSealer {
    /// Derives the sealing key from `secret` (HKDF-SHA256, info `sluice/session-token/v1`).
    pub fn new(secret: &[u8]) -> Result<Self, SessionTokenError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(SessionTokenError::SecretTooShort);
        }
        let mut key = Key::default();
        Hkdf::<Sha256>::new(None, secret)
            .expand(HKDF_INFO, &mut key)
            .map_err(|_| SessionTokenError::SecretTooShort)?;
        Ok(SessionSealer {
            cipher: XChaCha20Poly1305::new(&key),
        })
    }

    /// Seals `claims` into a header-safe token (base64url, no padding). Fails only with
    /// [`SessionTokenError::TooLarge`] when the token would be refused by [`Self::open`].
    pub fn seal(&self, claims: &SessionClaims) -> Result<String, SessionTokenError> {
        let sealed_len = 1 + NONCE_LEN + codec::encoded_len(claims) + TAG_LEN;
        if base64_len(sealed_len) > MAX_TOKEN_LEN {
            return Err(SessionTokenError::TooLarge);
        }
        let mut nonce = XNonce::default();
        rand::rng().fill_bytes(&mut nonce);
        let mut buffer = Vec::with_capacity(sealed_len);
        buffer.push(VERSION);
        buffer.extend_from_slice(&nonce);
        codec::encode(claims, &mut buffer)?;
        let plaintext = buffer
            .get_mut(1 + NONCE_LEN..)
            .ok_or(SessionTokenError::Malformed)?;
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce, &[VERSION], plaintext)
            .map_err(|_| SessionTokenError::TooLarge)?;
        buffer.extend_from_slice(&tag);
        Ok(URL_SAFE_NO_PAD.encode(&buffer))
    }

    /// Opens a token: checks its size, format, authenticity and expiry (`expires_at <=
    /// now_unix` is expired), then returns the claims.
    pub fn open(&self, token: &str, now_unix: u64) -> Result<SessionClaims, SessionTokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(SessionTokenError::TooLarge);
        }
        let mut raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| SessionTokenError::Malformed)?;
        let (&version, rest) = raw.split_first().ok_or(SessionTokenError::Malformed)?;
        if version != VERSION {
            return Err(SessionTokenError::UnsupportedVersion);
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(SessionTokenError::Malformed);
        }
        let (header, sealed) = raw
            .split_at_mut_checked(1 + NONCE_LEN)
            .ok_or(SessionTokenError::Malformed)?;
        let nonce: [u8; NONCE_LEN] = header
            .get(1..)
            .and_then(|n| n.try_into().ok())
            .ok_or(SessionTokenError::Malformed)?;
        let (ciphertext, tag) = sealed
            .split_at_mut_checked(sealed.len().saturating_sub(TAG_LEN))
            .ok_or(SessionTokenError::Malformed)?;
        let tag: [u8; TAG_LEN] = (&*tag)
            .try_into()
            .map_err(|_| SessionTokenError::Malformed)?;
        self.cipher
            .decrypt_in_place_detached(
                &XNonce::from(nonce),
                &[VERSION],
                ciphertext,
                &Tag::from(tag),
            )
            .map_err(|_| SessionTokenError::Tampered)?;
        let claims = codec::decode(ciphertext)?;
        if claims.expires_at <= now_unix {
            return Err(SessionTokenError::Expired);
        }
        Ok(claims)
    }
}

impl SessionSealer {
    /// Seals an opaque `payload` for another use of the same key (a relayed request id, for
    /// example). `purpose` is the AEAD associated data, so a sealed payload opens only for the
    /// purpose it was sealed for, and never as a session token (whose associated data is the
    /// one version byte).
    pub fn seal_payload(&self, purpose: &[u8], payload: &[u8]) -> String {
        let mut nonce = XNonce::default();
        rand::rng().fill_bytes(&mut nonce);
        let mut buffer = Vec::with_capacity(NONCE_LEN + payload.len() + TAG_LEN);
        buffer.extend_from_slice(&nonce);
        buffer.extend_from_slice(payload);
        let Some(plaintext) = buffer.get_mut(NONCE_LEN..) else {
            return String::new();
        };
        match self
            .cipher
            .encrypt_in_place_detached(&nonce, purpose, plaintext)
        {
            Ok(tag) => buffer.extend_from_slice(&tag),
            // Only for payloads beyond the cipher's limit (far beyond any bound here): an
            // empty token, which never opens.
            Err(_) => return String::new(),
        }
        URL_SAFE_NO_PAD.encode(&buffer)
    }

    /// Opens what [`Self::seal_payload`] sealed for `purpose`; refuses tokens over `max_len`
    /// characters before decoding them.
    pub fn open_payload(
        &self,
        purpose: &[u8],
        token: &str,
        max_len: usize,
    ) -> Result<Vec<u8>, SessionTokenError> {
        if token.len() > max_len {
            return Err(SessionTokenError::TooLarge);
        }
        let mut raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| SessionTokenError::Malformed)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(SessionTokenError::Malformed);
        }
        let tag_at = raw.len() - TAG_LEN;
        let tag: [u8; TAG_LEN] = raw[tag_at..]
            .try_into()
            .map_err(|_| SessionTokenError::Malformed)?;
        raw.truncate(tag_at);
        let nonce: [u8; NONCE_LEN] = raw[..NONCE_LEN]
            .try_into()
            .map_err(|_| SessionTokenError::Malformed)?;
        let mut payload = raw.split_off(NONCE_LEN);
        self.cipher
            .decrypt_in_place_detached(&XNonce::from(nonce), purpose, &mut payload, &Tag::from(tag))
            .map_err(|_| SessionTokenError::Tampered)?;
        Ok(payload)
    }
}

/// Length of unpadded base64 for `n` bytes.
fn base64_len(n: usize) -> usize {
    let tail = match n % 3 {
        0 => 0,
        1 => 2,
        _ => 3,
    };
    n / 3 * 4 + tail
}
