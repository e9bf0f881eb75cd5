//! Server-sent event streams from upstreams. The first two bytes seed the chunking, the third
//! sets a small limit, the rest is the stream. Checked:
//!
//! - `SseParser`: the events and the error are the same for the whole stream, for one byte at
//!   a time and for the seeded chunking (an error loses the events of its chunk, so a run that
//!   fails gives a prefix); under a small limit it yields a prefix of the same events, each
//!   within the limit;
//! - `EventFramer`: for each chunking the blocks and the rest concatenate to the input (no byte
//!   lost or added), every block ends with its blank line, the blocks' `id`/`data` fields are
//!   the same whatever the chunking, and under a small limit no block exceeds the limit plus
//!   the chunk that completed it;
//! - the framer and the parser see the same events (same `id` and `data`) in a valid UTF-8
//!   stream without a byte-order mark;
//! - `events::rewrite` of every block gives one well-framed event whose `id` is the cursor that
//!   records the upstream's id, whose server-to-client request id is relayed (and opens to the
//!   original id), and whose other data is unchanged.

use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::Value;
use sluice_proxy::gateway::events::{self, EventCursor, MAX_CURSOR_LEN, Origin};
use sluice_proxy::jsonrpc::{self, MessageKind, Scanned};
use sluice_proxy::relay::{PREFIX, RelayedId};
use sluice_proxy::sse::frames::{self, EventFramer};
use sluice_proxy::sse::{SseError, SseEvent, SseParser};

use super::session::sealer;
use super::shown;
use crate::input::Input;
use crate::mutate::Rng;
use crate::shape;

const BOM: &[u8] = "\u{feff}".as_bytes();
/// The gateway's default JSON depth limit.
const DEPTH: usize = 64;

/// Stream material the mutator splices in.
pub const DICTIONARY: &[&[u8]] = &[
    b"data:",
    b"data: ",
    b"id:",
    b"id: ",
    b"event:",
    b"event: message\n",
    b"retry: 100\n",
    b": comment\n",
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b"\r\r",
    b"\r\n\r\n",
    b"\xef\xbb\xbf",
    b"\x00",
    b"data: {\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"sampling/createMessage\",\"params\":{}}\n\n",
    b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n",
    b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
    b"\"method\"",
];

/// What a parser run produced: the events before the first error, and the error.
#[derive(Debug, PartialEq)]
struct Parsed {
    events: Vec<SseEvent>,
    error: Option<SseError>,
}

fn parse(chunks: &[&[u8]], limit: usize) -> Parsed {
    let mut parser = SseParser::new(limit);
    let mut events = Vec::new();
    for chunk in chunks {
        match parser.push(chunk) {
            Ok(more) => events.extend(more),
            Err(e) => {
                return Parsed {
                    events,
                    error: Some(e),
                };
            }
        }
    }
    Parsed {
        events,
        error: None,
    }
}

/// What a framer run produced: the complete blocks, the rest, and the error if one stopped it.
struct Framed {
    blocks: Vec<Bytes>,
    rest: Option<Bytes>,
    error: Option<SseError>,
}

fn frame(chunks: &[&[u8]], limit: usize) -> Framed {
    let mut framer = EventFramer::new(limit);
    let mut blocks = Vec::new();
    for chunk in chunks {
        let before = blocks.len();
        match framer.push(chunk) {
            Ok(more) => blocks.extend(more),
            Err(e) => {
                return Framed {
                    blocks,
                    rest: None,
                    error: Some(e),
                };
            }
        }
        for block in &blocks[before..] {
            assert!(
                block.len() <= limit + chunk.len(),
                "a block of {} bytes under a limit of {limit} (chunk {})",
                block.len(),
                chunk.len()
            );
        }
    }
    let rest = framer.rest();
    Framed {
        blocks,
        rest,
        error: None,
    }
}

/// The `(id, data)` of the blocks that carry data.
fn data_fields(blocks: &[Bytes]) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    blocks
        .iter()
        .filter_map(|b| {
            let f = frames::fields(b);
            f.data.map(|d| (f.id.map(<[u8]>::to_vec), d.into_owned()))
        })
        .collect()
}

fn chunking(stream: &[u8], seed: u16) -> Vec<&[u8]> {
    let mut rng = Rng::new(u64::from(seed) | 1 << 32);
    let max = 1 + usize::from(seed % 64);
    let mut chunks = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let (head, tail) = rest.split_at((1 + rng.below(max)).min(rest.len()));
        chunks.push(head);
        rest = tail;
    }
    chunks
}

/// Runs one input.
pub fn run(data: &[u8]) -> u64 {
    let mut input = Input::new(data);
    let seed = input.u16();
    let small = usize::from(input.byte()) * 4;
    let stream = input.rest();
    let chunks = chunking(stream, seed);
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    // No line or event of the stream can be longer than the stream.
    let big = stream.len() + 16;

    let bytewise = parse(&bytes, big);
    assert!(
        matches!(bytewise.error, None | Some(SseError::NotUtf8)),
        "{:?} under a limit the stream cannot reach",
        bytewise.error
    );
    let chunked = parse(&chunks, big);
    for (what, other) in [("whole", parse(&[stream], big)), ("chunked", chunked)] {
        assert_eq!(other.error, bytewise.error, "{what}: {}", shown(stream));
        assert!(
            bytewise.events.starts_with(&other.events),
            "{what} events differ: {:?} vs {:?} for {}",
            other.events,
            bytewise.events,
            shown(stream)
        );
        if other.error.is_none() {
            assert_eq!(other.events, bytewise.events, "{what}: {}", shown(stream));
        }
    }
    let limited = parse(&chunks, small);
    assert!(
        bytewise.events.starts_with(&limited.events),
        "a limit changed the events: {}",
        shown(stream)
    );
    if limited.error.is_none() && bytewise.error.is_none() {
        assert_eq!(limited.events, bytewise.events, "{}", shown(stream));
    }
    for e in &limited.events {
        assert!(
            e.data.len() + e.event.len() <= small,
            "an event of {} bytes under a limit of {small}",
            e.data.len() + e.event.len()
        );
    }

    let whole = frame(&[stream], big);
    let mut fields = None;
    for (what, run) in [
        ("whole", &whole),
        ("chunked", &frame(&chunks, big)),
        ("bytewise", &frame(&bytes, big)),
    ] {
        assert!(run.error.is_none(), "{what}: {:?}", run.error);
        let mut joined: Vec<u8> = run.blocks.iter().flat_map(|b| b.to_vec()).collect();
        joined.extend(run.rest.iter().flat_map(|b| b.to_vec()));
        assert_eq!(joined, stream, "{what} framing lost or added bytes");
        for block in &run.blocks {
            assert!(
                block.ends_with(b"\n") || block.ends_with(b"\r"),
                "{what}: a block without its blank line: {}",
                shown(block)
            );
        }
        let these = data_fields(&run.blocks);
        match &fields {
            None => fields = Some(these),
            Some(first) => assert_eq!(first, &these, "{what} framing: {}", shown(stream)),
        }
    }
    let limited = frame(&chunks, small);
    let emitted: Vec<u8> = limited.blocks.iter().flat_map(|b| b.to_vec()).collect();
    assert!(
        stream.starts_with(&emitted),
        "limited framing changed bytes"
    );

    if bytewise.error.is_none() && !stream.starts_with(BOM) {
        let mut framed = fields.unwrap_or_default();
        let parsed: Vec<(Option<Vec<u8>>, Vec<u8>)> = bytewise
            .events
            .iter()
            .map(|e| {
                (
                    e.id.clone().map(String::into_bytes),
                    e.data.clone().into_bytes(),
                )
            })
            .collect();
        // A final "\r" may still be the first half of "\r\n": the framer ends the event
        // there, the parser waits for the next byte.
        if stream.ends_with(b"\r") && framed.len() == parsed.len() + 1 {
            framed.pop();
        }
        assert_eq!(
            parsed,
            framed,
            "parser and framer disagree: {}",
            shown(stream)
        );
    }

    let mut changed = 0;
    let mut cursor = EventCursor::default();
    for block in &whole.blocks {
        changed += rewrite(block, &mut cursor) as u64;
    }
    shape(&[
        bytewise.events.len().min(4) as u64,
        bytewise.error.is_some() as u64,
        whole.blocks.len().min(4) as u64,
        whole.rest.is_some() as u64,
        changed.min(3),
    ])
}

fn origin() -> &'static Origin {
    static ORIGIN: OnceLock<Origin> = OnceLock::new();
    ORIGIN.get_or_init(|| Origin {
        session_uid: *b"fuzz-session-uid",
        server: "docs".to_owned(),
        upstream_session: Some("upstream-session-1".to_owned()),
        version: "2025-11-25".to_owned(),
    })
}

/// Rewrites one complete block and checks the result; returns whether it changed.
fn rewrite(block: &Bytes, cursor: &mut EventCursor) -> bool {
    let before = frames::fields(block);
    let request_id = before.data.as_deref().and_then(|data| {
        let contains = data.windows(8).any(|w| w == b"\"method\"");
        match jsonrpc::scan(data, DEPTH) {
            Ok(Scanned::Single(env)) if contains && env.kind == MessageKind::Request => {
                env.id.and_then(|s| s.slice(data)).map(<[u8]>::to_vec)
            }
            _ => None,
        }
    });
    let out = events::rewrite(block.clone(), origin(), Some(cursor), sealer(), DEPTH);
    let reframed = frame(&[&out.block], out.block.len() + 16);
    assert!(
        reframed.blocks.len() == 1 && reframed.rest.is_none(),
        "a rewritten block is not one event: {} from {}",
        shown(&out.block),
        shown(block)
    );
    let after = frames::fields(&out.block);
    match before.id {
        Some(id) => {
            let cursor_id = after.id.expect("an event with an id keeps one");
            assert_eq!(
                cursor_id,
                cursor.encode().as_bytes(),
                "the new id is the cursor"
            );
            // The cursor grows with the upstreams' ids and is not cut to what `decode` accepts
            // (noted in the README, left alone); within the bound it must decode.
            if cursor_id.len() <= MAX_CURSOR_LEN {
                let text = std::str::from_utf8(cursor_id).expect("ascii");
                let decoded =
                    EventCursor::decode(text).expect("the gateway decodes its own cursor");
                assert!(
                    decoded.entries().any(|(s, i)| s == "docs" && i == id),
                    "the cursor lost the upstream's id"
                );
            }
        }
        None => assert_eq!(after.id, None, "an id appeared"),
    }
    match (&request_id, before.data.as_deref()) {
        (Some(original), Some(_)) if original.len() <= 512 => {
            let data = after.data.expect("data stays");
            let message: Value = serde_json::from_slice(&data)
                .unwrap_or_else(|e| panic!("relayed request is not JSON ({e}): {}", shown(&data)));
            let id = message["id"].as_str().expect("a relayed id is a string");
            assert!(id.starts_with(PREFIX), "relayed id prefix");
            let opened = RelayedId::open(sealer(), id, &origin().session_uid)
                .expect("a relayed id opens for its session");
            assert_eq!(&opened.original, original, "relayed id lost the original");
        }
        _ => assert_eq!(after.data, before.data, "data changed: {}", shown(block)),
    }
    out.block != *block
}
