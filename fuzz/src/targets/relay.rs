//! Relayed request ids: the id of a server-to-client request, sealed, that comes back in the
//! client's answer. The first byte picks a mode:
//!
//! - 0: the rest as the id string: `open` never panics, and opens only what this key sealed;
//! - 1: a `RelayedId` built from the bytes: `seal` gives a JSON string literal starting with
//!   the prefix, which opens to the same id for its session only (an empty upstream session
//!   opens as none; an original id over 512 bytes is refused when sealing);
//! - 2: the rest as the payload, sealed under the real key and purpose, so the payload decoder
//!   behind the AEAD meets any bytes: it never panics and what it accepts round-trips.

use sluice_proxy::relay::{self, PREFIX, RelayError, RelayedId};

use super::session::sealer;
use super::shown;
use crate::input::Input;
use crate::shape;

/// The relayed id's AEAD associated data; mode 1 checks it is still the proxy's.
const PURPOSE: &[u8] = b"sluice/relayed-request-id/v1";
/// The longest token `RelayedId::open` reads.
const MAX_TOKEN_LEN: usize = 4096;
/// The longest original id `seal` accepts.
const MAX_ORIGINAL_ID: usize = 512;
/// The client session every mode uses.
const SESSION: [u8; 16] = *b"fuzz-session-uid";

/// Id material the mutator splices in.
pub const DICTIONARY: &[&[u8]] = &[
    b"sluice-rq.",
    b"sluice-rq",
    b"\x00\x00",
    b"\x00\x04",
    b"\xff\xff",
    b"fuzz-session-uid",
    b"\"abc\"",
    b"42",
    b"A",
    b"_",
    b"-",
];

fn error_shape(e: RelayError) -> u64 {
    match e {
        RelayError::OriginalTooLong => 1,
        RelayError::NotIssued => 2,
        RelayError::OtherSession => 3,
        _ => 4,
    }
}

/// Runs one input.
pub fn run(data: &[u8]) -> u64 {
    let mut input = Input::new(data);
    match input.byte() % 3 {
        0 => open_any(input.rest()),
        1 => round_trip(&mut input),
        _ => open_any_payload(input.rest()),
    }
}

/// An id that opened must seal and open to itself.
fn reseal(id: RelayedId, what: &[u8]) {
    if id.original.len() > MAX_ORIGINAL_ID {
        // Only an authentic payload gets here, and seal never writes such an id.
        return;
    }
    let literal = id
        .seal(sealer())
        .unwrap_or_else(|e| panic!("an id that opened does not seal ({e}): {}", shown(what)));
    let text: String = serde_json::from_slice(&literal).expect("a JSON string literal");
    assert_eq!(
        RelayedId::open(sealer(), &text, &SESSION),
        Ok(id),
        "resealed: {}",
        shown(what)
    );
}

fn open_any(bytes: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(bytes);
    match RelayedId::open(sealer(), &text, &SESSION) {
        Ok(id) => {
            reseal(id, bytes);
            shape(&[0, 0])
        }
        Err(e) => shape(&[0, error_shape(e)]),
    }
}

fn round_trip(input: &mut Input<'_>) -> u64 {
    let session_uid = if input.byte().is_multiple_of(8) {
        input.array16()
    } else {
        SESSION
    };
    let server = input.string(70);
    let upstream_session = match input.byte() % 3 {
        0 => None,
        _ => Some(input.string(200)),
    };
    let version = input.string(20);
    let original = input.sized(600).to_vec();
    let id = RelayedId {
        session_uid,
        server,
        upstream_session,
        version,
        original,
    };
    let literal = match id.seal(sealer()) {
        Ok(literal) => literal,
        Err(RelayError::OriginalTooLong) => {
            assert!(
                id.original.len() > MAX_ORIGINAL_ID,
                "refused a short original id"
            );
            return shape(&[1, 1]);
        }
        Err(e) => panic!("seal failed: {e:?}"),
    };
    assert!(relay::is_relayed(&literal), "is_relayed on a sealed id");
    let text: String = serde_json::from_slice(&literal).expect("a JSON string literal");
    assert!(text.starts_with(PREFIX), "prefix");
    let token = &text[PREFIX.len()..];
    assert!(
        sealer().open_payload(PURPOSE, token, MAX_TOKEN_LEN).is_ok(),
        "the harness's PURPOSE is no longer the proxy's: update fuzz/src/targets/relay.rs"
    );
    let opened = RelayedId::open(sealer(), &text, &SESSION);
    if session_uid != SESSION {
        assert_eq!(
            opened,
            Err(RelayError::OtherSession),
            "another session's id"
        );
        return shape(&[1, 3]);
    }
    let mut expected = id;
    expected.upstream_session = expected.upstream_session.filter(|s| !s.is_empty());
    assert_eq!(opened, Ok(expected), "seal/open round trip");
    shape(&[1, 0])
}

fn open_any_payload(payload: &[u8]) -> u64 {
    let token = sealer().seal_payload(PURPOSE, payload);
    let text = format!("{PREFIX}{token}");
    match RelayedId::open(sealer(), &text, &SESSION) {
        Ok(id) => {
            reseal(id, payload);
            shape(&[2, 0])
        }
        Err(e) => shape(&[2, error_shape(e)]),
    }
}
