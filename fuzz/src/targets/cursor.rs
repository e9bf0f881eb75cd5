//! The SSE event cursor, the `Last-Event-ID` a client resumes with. The first byte picks a mode:
//!
//! - 0: the rest as the header text; 1: the rest as the cursor's raw bytes behind `c1.` and
//!   base64url (so the entry parser is reached). `decode` never panics; what it accepts is
//!   within its bounds (4096 characters, 64 entries, ids without CR, LF or NUL) and canonical:
//!   encoding it again gives the very same text.
//! - 2: a cursor built with `set` from realistic parts (server names as the config allows them,
//!   ids an SSE line can carry): its encoding decodes to the same cursor whenever it is within
//!   the decoder's bounds, and is refused otherwise.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sluice_proxy::gateway::events::{EventCursor, MAX_CURSOR_LEN};

use super::shown;
use crate::input::Input;
use crate::shape;

/// Most entries `decode` accepts.
const MAX_ENTRIES: usize = 64;

/// Cursor material the mutator splices in.
pub const DICTIONARY: &[&[u8]] = &[
    b"c1.",
    b"c2.",
    b"c1",
    b"\x00",
    b"\x04docs",
    b"\x00\x03",
    b"\xff\xff",
    b"A",
    b"_",
    b"-",
    b"=",
];

/// Runs one input.
pub fn run(data: &[u8]) -> u64 {
    let mut input = Input::new(data);
    match input.byte() % 3 {
        0 => decode(&String::from_utf8_lossy(input.rest()), 0),
        1 => decode(&format!("c1.{}", URL_SAFE_NO_PAD.encode(input.rest())), 1),
        _ => round_trip(&mut input),
    }
}

fn decode(text: &str, mode: u64) -> u64 {
    let Ok(cursor) = EventCursor::decode(text) else {
        return shape(&[mode, 0]);
    };
    assert!(
        text.len() <= MAX_CURSOR_LEN,
        "accepted {} chars",
        text.len()
    );
    let entries: Vec<(&str, &[u8])> = cursor.entries().collect();
    assert!(
        entries.len() <= MAX_ENTRIES,
        "accepted {} entries",
        entries.len()
    );
    for (_, id) in &entries {
        assert!(
            !id.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)),
            "accepted an id no SSE line can carry: {}",
            shown(id)
        );
    }
    assert_eq!(
        cursor.encode(),
        text,
        "decode accepted a non-canonical cursor"
    );
    assert_eq!(
        EventCursor::decode(&cursor.encode()).as_ref(),
        Ok(&cursor),
        "re-decode"
    );
    shape(&[mode, 1, entries.len().min(8) as u64])
}

fn round_trip(input: &mut Input<'_>) -> u64 {
    const NAME: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-";
    let mut cursor = EventCursor::default();
    let sets = usize::from(input.byte() % 80);
    for _ in 0..sets {
        let len = 1 + usize::from(input.byte() % 64);
        let server: String = input
            .take(len)
            .iter()
            .map(|b| char::from(NAME[usize::from(*b) % NAME.len()]))
            .collect();
        let server = if server.is_empty() {
            "s".to_owned()
        } else {
            server
        };
        let id: Vec<u8> = input
            .sized(300)
            .iter()
            .map(|&b| {
                if matches!(b, b'\r' | b'\n' | 0) {
                    b'_'
                } else {
                    b
                }
            })
            .collect();
        cursor.set(&server, &id);
    }
    let text = cursor.encode();
    let entries = cursor.entries().count();
    let back = EventCursor::decode(&text);
    if text.len() <= MAX_CURSOR_LEN && entries <= MAX_ENTRIES {
        assert_eq!(back, Ok(cursor), "encode/decode round trip of {text}");
        shape(&[2, 1])
    } else {
        assert!(back.is_err(), "decoded a cursor beyond the bounds");
        shape(&[2, 0])
    }
}
