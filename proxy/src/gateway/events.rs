//! What the gateway changes in the events an upstream streams to a client, on a response
//! stream or the standalone GET stream. Everything else passes byte for byte.
//!
//! - **Server-to-client requests** (`sampling/createMessage`, `elicitation/create`,
//!   `roots/list`): their id becomes a sealed [`RelayedId`], so the client's answer finds the
//!   upstream session that asked, on whichever replica it lands.
//! - **Event ids** become an [`EventCursor`]: per upstream server, the last event id it sent on
//!   this stream. A client resuming with `Last-Event-ID` hands the cursor back, and the gateway
//!   resumes each named upstream from its own id. The cursor names servers, not replicas, so
//!   any replica can resume it.
//! - **List changes** of an upstream are reported to the caller, which refreshes the catalog;
//!   the standalone stream announces the gateway's own list changes instead.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;

use crate::jsonrpc::{self, MessageKind, Scanned};
use crate::relay::RelayedId;
use crate::session_token::SessionSealer;
use crate::sse::frames;

/// Version tag of the cursor format.
const CURSOR_TAG: &str = "c1.";
/// Longest `Last-Event-ID` decoded.
pub const MAX_CURSOR_LEN: usize = 4096;
/// Most servers one cursor names.
const MAX_CURSOR_ENTRIES: usize = 64;

/// Per upstream server, the last event id it sent on a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventCursor {
    entries: Vec<(String, Vec<u8>)>,
}

/// Why a `Last-Event-ID` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Last-Event-ID was not issued by this gateway")]
pub struct CursorError;

impl EventCursor {
    /// Records `id` as the last event of `server`.
    pub fn set(&mut self, server: &str, id: &[u8]) {
        match self.entries.iter_mut().find(|(s, _)| s == server) {
            Some((_, last)) => {
                last.clear();
                last.extend_from_slice(id);
            }
            None => self.entries.push((server.to_owned(), id.to_vec())),
        }
    }

    /// The servers and their last event ids.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries
            .iter()
            .map(|(s, id)| (s.as_str(), id.as_slice()))
    }

    /// The SSE `id` value: `c1.` and base64url of length-prefixed (server, id) pairs.
    pub fn encode(&self) -> String {
        let mut raw = Vec::new();
        for (server, id) in &self.entries {
            let server = &server.as_bytes()[..server.len().min(255)];
            let id = &id[..id.len().min(usize::from(u16::MAX))];
            raw.push(server.len() as u8);
            raw.extend_from_slice(server);
            raw.extend_from_slice(&(id.len() as u16).to_be_bytes());
            raw.extend_from_slice(id);
        }
        format!("{CURSOR_TAG}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// Reads a cursor back from a `Last-Event-ID`, bounded in size and entries.
    pub fn decode(text: &str) -> Result<Self, CursorError> {
        if text.len() > MAX_CURSOR_LEN {
            return Err(CursorError);
        }
        let body = text.strip_prefix(CURSOR_TAG).ok_or(CursorError)?;
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| CursorError)?;
        let mut rest = raw.as_slice();
        let mut entries = Vec::new();
        while let Some((&len, tail)) = rest.split_first() {
            if entries.len() == MAX_CURSOR_ENTRIES {
                return Err(CursorError);
            }
            let (server, tail) = tail.split_at_checked(usize::from(len)).ok_or(CursorError)?;
            let (id_len, tail) = tail.split_first_chunk::<2>().ok_or(CursorError)?;
            let (id, tail) = tail
                .split_at_checked(usize::from(u16::from_be_bytes(*id_len)))
                .ok_or(CursorError)?;
            let server = std::str::from_utf8(server).map_err(|_| CursorError)?;
            if id.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
                return Err(CursorError);
            }
            entries.push((server.to_owned(), id.to_vec()));
            rest = tail;
        }
        Ok(EventCursor { entries })
    }
}

/// Which upstream session a stream's events come from, for relaying its requests.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The client session.
    pub session_uid: [u8; 16],
    /// The upstream server's configured name.
    pub server: String,
    /// The upstream session id, if the server keeps sessions.
    pub upstream_session: Option<String>,
    /// The protocol version of the upstream session.
    pub version: String,
}

/// One event as it goes to the client.
#[derive(Debug)]
pub struct Rewritten {
    /// The event block to write.
    pub block: Bytes,
    /// The event was an upstream `notifications/*/list_changed`.
    pub list_changed: bool,
}

/// Rewrites one event block from `origin` (see the module docs). With a `cursor`, an event
/// carrying an id gets the cursor's id, after recording it.
pub fn rewrite(
    block: Bytes,
    origin: &Origin,
    cursor: Option<&mut EventCursor>,
    sealer: &SessionSealer,
    max_depth: usize,
) -> Rewritten {
    let fields = frames::fields(&block);
    let new_id = match (fields.id, cursor) {
        (Some(id), Some(cursor)) => {
            cursor.set(&origin.server, id);
            Some(cursor.encode())
        }
        _ => None,
    };
    let mut list_changed = false;
    let mut new_data: Option<Bytes> = None;
    if let Some(data) = fields.data.as_deref()
        && contains(data, b"\"method\"")
        && let Ok(Scanned::Single(envelope)) = jsonrpc::scan(data, max_depth)
    {
        match (envelope.kind, envelope.id) {
            (MessageKind::Request, Some(span)) => {
                new_data = relay_request(data, span, origin, sealer);
            }
            (MessageKind::Notification, _) => {
                list_changed = envelope.method.as_deref().is_some_and(|m| {
                    m.starts_with("notifications/") && m.ends_with("/list_changed")
                });
            }
            _ => {}
        }
    }
    let block = if new_id.is_none() && new_data.is_none() {
        block
    } else {
        frames::rewrite(
            &block,
            new_id.as_deref().map(str::as_bytes),
            new_data.as_deref(),
        )
    };
    Rewritten {
        block,
        list_changed,
    }
}

/// The request with its id replaced by a relayed one; `None` (sent unchanged) when it cannot
/// be relayed, which leaves the upstream waiting for an answer that cannot reach it.
fn relay_request(
    data: &[u8],
    span: jsonrpc::Span,
    origin: &Origin,
    sealer: &SessionSealer,
) -> Option<Bytes> {
    let relayed = RelayedId {
        session_uid: origin.session_uid,
        server: origin.server.clone(),
        upstream_session: origin.upstream_session.clone(),
        version: origin.version.clone(),
        original: span.slice(data)?.to_vec(),
    };
    match relayed.seal(sealer) {
        Ok(literal) => jsonrpc::replace_span(data, span, &literal).ok(),
        Err(e) => {
            tracing::warn!(server = %origin.server, error = %e, "a server-to-client request cannot be relayed");
            None
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// An event carrying a JSON-RPC notification the gateway sends on its own behalf (`method`
/// is one of the gateway's constants, so it needs no escaping).
pub fn notification_event(method: &str) -> Bytes {
    Bytes::from(format!(
        "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"{method}\"}}\n\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> SessionSealer {
        SessionSealer::new(&[3u8; 32]).expect("a 32-byte secret")
    }

    fn origin() -> Origin {
        Origin {
            session_uid: [1; 16],
            server: "docs".into(),
            upstream_session: Some("up-session".into()),
            version: "2025-11-25".into(),
        }
    }

    #[test]
    fn a_cursor_round_trips_and_junk_is_refused() {
        let mut c = EventCursor::default();
        c.set("docs", b"stream-1_5");
        c.set("search", b"77");
        c.set("docs", b"stream-1_6");
        let text = c.encode();
        assert!(text.bytes().all(|b| b.is_ascii_graphic()), "{text}");
        let back = EventCursor::decode(&text).expect("decodes");
        assert_eq!(back, c);
        assert_eq!(
            back.entries().collect::<Vec<_>>(),
            vec![("docs", &b"stream-1_6"[..]), ("search", &b"77"[..])]
        );
        for junk in ["", "c1", "c1.!!", "7", "c1.AQ", "c2.AAAA"] {
            assert_eq!(EventCursor::decode(junk), Err(CursorError), "{junk:?}");
        }
        let long = format!("c1.{}", "A".repeat(MAX_CURSOR_LEN));
        assert_eq!(EventCursor::decode(&long), Err(CursorError));
    }

    #[test]
    fn server_requests_get_a_relayed_id_that_opens_to_the_original() {
        let s = sealer();
        let block = Bytes::from_static(
            b"event: message\nid: e-3\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"sampling/createMessage\",\"params\":{}}\n\n",
        );
        let mut cursor = EventCursor::default();
        let out = rewrite(block, &origin(), Some(&mut cursor), &s, 64);
        let f = frames::fields(&out.block);
        let id = f.id.expect("an id");
        assert_eq!(
            EventCursor::decode(std::str::from_utf8(id).expect("ascii"))
                .expect("a cursor")
                .entries()
                .collect::<Vec<_>>(),
            vec![("docs", &b"e-3"[..])]
        );
        let message: serde_json::Value =
            serde_json::from_slice(&f.data.expect("data")).expect("JSON");
        assert_eq!(message["method"], "sampling/createMessage");
        let relayed = message["id"].as_str().expect("a string id");
        let opened = RelayedId::open(&s, relayed, &[1; 16]).expect("opens");
        assert_eq!(opened.original, b"7");
        assert_eq!(opened.upstream_session.as_deref(), Some("up-session"));
        assert!(!out.list_changed);
    }

    #[test]
    fn responses_and_notifications_pass_unchanged() {
        let s = sealer();
        for raw in [
            &b"data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"method\":\"x\"}}\n\n"[..],
            b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\r\n\r\n",
            b": keep-alive\n\n",
            b"retry: 1000\nid: 5\ndata: \n\n",
        ] {
            let out = rewrite(Bytes::copy_from_slice(raw), &origin(), None, &s, 64);
            assert_eq!(&out.block[..], raw);
        }
        let changed = rewrite(
            Bytes::from_static(
                b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n",
            ),
            &origin(),
            None,
            &s,
            64,
        );
        assert!(changed.list_changed);
    }
}
