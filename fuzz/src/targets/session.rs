//! Session tokens (`Mcp-Session-Id`). The first byte picks a mode:
//!
//! - 0: the rest as a token: `open` never panics, and a token opens only if this key sealed it
//!   (then its claims seal and open again to the same claims);
//! - 1: claims built from the bytes: `seal` gives a header-safe token within
//!   `MAX_TOKEN_LEN` (or refuses it as too large), and `open` gives the claims back (or
//!   `Expired` when `expires_at` is not after now);
//! - 2: the rest as the claims' plaintext, sealed under the real key (with the session token's
//!   associated data, the version byte), so the claims decoder behind the AEAD meets any bytes:
//!   it never panics, never reports tampering, and what it accepts round-trips.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sluice_proxy::session_token::{
    MAX_TOKEN_LEN, SessionClaims, SessionSealer, SessionTokenError, UpstreamSession,
};

use super::shown;
use crate::input::Input;
use crate::shape;

/// Fixed so corpus tokens sealed with it keep opening.
pub const SECRET: &[u8] = b"sluice-fuzz-session-secret-0123456789abcdef";
/// "Now" for `open`: fixed, so a run is deterministic.
pub const NOW: u64 = 1_800_000_000;
/// The token format version: the first sealed byte and the AEAD associated data.
const VERSION: u8 = 1;

/// Token material the mutator splices in.
pub const DICTIONARY: &[&[u8]] = &[
    b"\x00",
    b"\x01",
    b"\x02",
    b"A",
    b"AQ",
    b"-",
    b"_",
    b"=",
    b"+",
    b"/",
    b"2025-06-18",
    b"2025-11-25",
    b"\x80\x80\x80\x80",
    b"\xff\xff\xff\x7f",
    b"{\"roots\":{}}",
];

/// The sealer every mode uses.
pub fn sealer() -> &'static SessionSealer {
    static SEALER: OnceLock<SessionSealer> = OnceLock::new();
    SEALER.get_or_init(|| SessionSealer::new(SECRET).expect("the fuzz secret is long enough"))
}

fn error_shape(e: SessionTokenError) -> u64 {
    match e {
        SessionTokenError::SecretTooShort => 1,
        SessionTokenError::Malformed => 2,
        SessionTokenError::Tampered => 3,
        SessionTokenError::Expired => 4,
        SessionTokenError::TooLarge => 5,
        SessionTokenError::UnsupportedVersion => 6,
        _ => 7,
    }
}

/// Runs one input.
pub fn run(data: &[u8]) -> u64 {
    let mut input = Input::new(data);
    match input.byte() % 3 {
        0 => open_any(input.rest()),
        1 => round_trip(&mut input),
        _ => open_any_plaintext(input.rest()),
    }
}

/// Claims that opened must seal and open to themselves.
fn reseal(claims: SessionClaims, what: &[u8]) {
    let token = sealer()
        .seal(&claims)
        .unwrap_or_else(|e| panic!("claims that opened do not seal ({e}): {}", shown(what)));
    assert_eq!(
        sealer().open(&token, NOW),
        Ok(claims),
        "resealed claims: {}",
        shown(what)
    );
}

fn open_any(bytes: &[u8]) -> u64 {
    let token = String::from_utf8_lossy(bytes);
    match sealer().open(&token, NOW) {
        Ok(claims) => {
            reseal(claims, bytes);
            shape(&[0, 0])
        }
        Err(e) => {
            assert_ne!(e, SessionTokenError::SecretTooShort);
            shape(&[0, error_shape(e)])
        }
    }
}

fn round_trip(input: &mut Input<'_>) -> u64 {
    let session_uid = input.array16();
    let gateway = input.string(80);
    let protocol_version = input.string(40);
    let client_capabilities = input.sized(3000).to_vec();
    let expires_at = match input.byte() % 8 {
        0 => 0,
        1 => NOW,
        2 => u64::MAX,
        3 => input.u64(),
        _ => NOW + 1 + u64::from(input.u32()),
    };
    let count = usize::from(input.byte() % 16);
    let upstream_sessions = (0..count)
        .map(|_| UpstreamSession {
            server: input.string(70),
            session_id: input.string(200),
            protocol_version: input.string(20),
        })
        .collect();
    let claims = SessionClaims {
        session_uid,
        gateway,
        protocol_version,
        client_capabilities,
        expires_at,
        upstream_sessions,
    };
    let token = match sealer().seal(&claims) {
        Ok(token) => token,
        Err(SessionTokenError::TooLarge) => return shape(&[1, 5]),
        Err(e) => panic!("seal failed with {e:?} for {claims:?}"),
    };
    assert!(
        token.len() <= MAX_TOKEN_LEN,
        "sealed token of {} chars",
        token.len()
    );
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "token is not header-safe base64url: {token}"
    );
    let opened = sealer().open(&token, NOW);
    if claims.expires_at > NOW {
        assert_eq!(opened, Ok(claims), "seal/open round trip");
        shape(&[1, 0])
    } else {
        assert_eq!(opened, Err(SessionTokenError::Expired), "expired claims");
        shape(&[1, 4])
    }
}

fn open_any_plaintext(plaintext: &[u8]) -> u64 {
    // seal_payload lays out nonce ‖ ciphertext ‖ tag with `purpose` as associated data; with
    // the version byte in front that is exactly a session token.
    let sealed = sealer().seal_payload(&[VERSION], plaintext);
    let mut raw = vec![VERSION];
    raw.extend(
        URL_SAFE_NO_PAD
            .decode(&sealed)
            .expect("seal_payload gives base64url"),
    );
    let token = URL_SAFE_NO_PAD.encode(&raw);
    match sealer().open(&token, NOW) {
        Ok(claims) => {
            reseal(claims, plaintext);
            shape(&[2, 0])
        }
        Err(e) => {
            assert!(
                matches!(
                    e,
                    SessionTokenError::Malformed
                        | SessionTokenError::Expired
                        | SessionTokenError::TooLarge
                ),
                "an authentic token refused as {e:?}: {}",
                shown(plaintext)
            );
            shape(&[2, error_shape(e)])
        }
    }
}
