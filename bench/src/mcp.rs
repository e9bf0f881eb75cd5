//! The MCP that both sides of a benchmark speak: request bodies the load generator sends, and
//! a cheap reading of the answers it gets back.
//!
//! The load generator must not become the bottleneck, so it never parses a whole response.
//! [`outcome`] walks the top-level object of a JSON-RPC message only until it meets `result`,
//! `error` or `method`, skipping the (small) `jsonrpc` and `id` values before them: a 1 MiB
//! result costs the same as a 100-byte one. SSE bodies are split into events and each event's
//! data read the same way, so progress notifications are counted and the final answer found.

use bytes::Bytes;
use serde_json::{Value, json};

/// The protocol revision the load generator asks for on `initialize`.
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// The stateless revision (no `initialize`, an envelope in every request's `params._meta`),
/// which the mock speaks too with `--modern`.
pub const MODERN_VERSION: &str = "2026-07-28";

/// `initialize` with a fixed client identity.
pub fn initialize(id: u64) -> Bytes {
    body(json!({
        "jsonrpc": "2.0", "id": id, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "sluice-bench", "version": env!("CARGO_PKG_VERSION")}
        }
    }))
}

/// `notifications/initialized`.
pub fn initialized() -> Bytes {
    body(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
}

/// `tools/list` (first page).
pub fn tools_list(id: u64) -> Bytes {
    body(json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": {}}))
}

/// `ping`.
pub fn ping(id: u64) -> Bytes {
    body(json!({"jsonrpc": "2.0", "id": id, "method": "ping"}))
}

/// `tools/call` of `tool` with one string argument `text` of `argument_bytes` bytes, asking for
/// progress notifications when `progress` is set.
pub fn tools_call(id: u64, tool: &str, argument_bytes: usize, progress: bool) -> Bytes {
    let mut params = json!({"name": tool, "arguments": {"text": filler(argument_bytes)}});
    if progress {
        params["_meta"] = json!({"progressToken": format!("bench-{id}")});
    }
    body(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}))
}

/// `len` bytes of printable text with a few characters JSON must escape, so a parser on the
/// path does real work.
pub fn filler(len: usize) -> String {
    const PATTERN: &str = "The quick brown fox \"jumps\" over the lazy dog.\n";
    let mut text = String::with_capacity(len + PATTERN.len());
    while text.len() < len {
        text.push_str(PATTERN);
    }
    text.truncate(len);
    text
}

fn body(value: Value) -> Bytes {
    Bytes::from(serde_json::to_vec(&value).expect("a JSON value serialises"))
}

/// What one JSON-RPC message is, read from its top-level keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response with `result`.
    Result,
    /// A response with `error`.
    Error,
    /// A request or notification (has `method`).
    Message,
    /// Not a JSON-RPC object.
    Malformed,
}

/// What a whole HTTP response body held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The response to the request, if one was found.
    pub outcome: Outcome,
    /// Requests and notifications that came before it on an SSE stream.
    pub messages: u32,
}

/// Reads a JSON or SSE (`text/event-stream`) response body.
pub fn answer(body: &[u8], event_stream: bool) -> Answer {
    if !event_stream {
        return Answer {
            outcome: outcome(body),
            messages: 0,
        };
    }
    let mut messages = 0;
    let mut last = Outcome::Malformed;
    each_event_data(body, |data| match outcome(data) {
        Outcome::Message => messages += 1,
        other => last = other,
    });
    Answer {
        outcome: last,
        messages,
    }
}

/// Calls `f` with the `data` of each event of an SSE body. Single-line data (the usual case)
/// is passed as a slice of `body`; only an event with several `data:` lines is joined (with
/// `\n`) into a buffer, so reading an answer allocates nothing.
pub fn each_event_data<'a>(body: &'a [u8], mut f: impl FnMut(&[u8])) {
    let mut first: Option<&'a [u8]> = None;
    let mut joined: Vec<u8> = Vec::new();
    let mut end_event = |first: &mut Option<&'a [u8]>, joined: &mut Vec<u8>| {
        if !joined.is_empty() {
            f(joined);
            joined.clear();
        } else if let Some(data) = first {
            f(data);
        }
        *first = None;
    };
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            end_event(&mut first, &mut joined);
            continue;
        }
        if let Some(rest) = line.strip_prefix(b"data:") {
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            match first {
                None => first = Some(rest),
                Some(earlier) => {
                    if joined.is_empty() {
                        joined.extend_from_slice(earlier);
                    }
                    joined.push(b'\n');
                    joined.extend_from_slice(rest);
                }
            }
        }
    }
    end_event(&mut first, &mut joined);
}

/// Classifies a JSON-RPC message by the first of `result`, `error` or `method` among its
/// top-level keys, without reading the value of that key.
pub fn outcome(json: &[u8]) -> Outcome {
    let mut cursor = Cursor { bytes: json, at: 0 };
    cursor.skip_ws();
    if !cursor.eat(b'{') {
        return Outcome::Malformed;
    }
    loop {
        cursor.skip_ws();
        let Some(key) = cursor.string() else {
            return Outcome::Malformed;
        };
        match key {
            b"result" => return Outcome::Result,
            b"error" => return Outcome::Error,
            b"method" => return Outcome::Message,
            _ => {}
        }
        cursor.skip_ws();
        if !cursor.eat(b':') || !cursor.skip_value() {
            return Outcome::Malformed;
        }
        cursor.skip_ws();
        if !cursor.eat(b',') {
            return Outcome::Malformed;
        }
    }
}

/// A forward-only reader over JSON bytes; enough of JSON to skip values, not to validate them.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn skip_ws(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// A string's raw contents (escapes left as they are).
    fn string(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.at;
        while let Some(&b) = self.bytes.get(self.at) {
            match b {
                b'"' => {
                    self.at += 1;
                    return Some(&self.bytes[start..self.at - 1]);
                }
                b'\\' => self.at += 2,
                _ => self.at += 1,
            }
        }
        None
    }

    /// Skips one value of any kind, nested or not; false at the end of the input.
    fn skip_value(&mut self) -> bool {
        self.skip_ws();
        let mut depth = 0usize;
        loop {
            let Some(&b) = self.bytes.get(self.at) else {
                return false;
            };
            match b {
                b'"' => {
                    if self.string().is_none() {
                        return false;
                    }
                }
                b'{' | b'[' => {
                    depth += 1;
                    self.at += 1;
                }
                b'}' | b']' => {
                    if depth == 0 {
                        return true;
                    }
                    depth -= 1;
                    self.at += 1;
                }
                b',' if depth == 0 => return true,
                _ => self.at += 1,
            }
            if depth == 0 && matches!(b, b'"' | b'}' | b']') {
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_stops_at_the_first_deciding_key() {
        assert_eq!(
            outcome(br#"{"jsonrpc":"2.0","id":{"a":[1,"}"]},"result":{"x":1}}"#),
            Outcome::Result
        );
        assert_eq!(
            outcome(br#" { "id" : "a\"b" , "error" : {"code":-1}}"#),
            Outcome::Error
        );
        assert_eq!(
            outcome(br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#),
            Outcome::Message
        );
        // The deciding key may come first; what follows is never read.
        assert_eq!(outcome(br#"{"result":"#), Outcome::Result);
        for bad in [&b""[..], b"[]", b"{", b"{\"id\":1", b"{\"id\" 1}", b"null"] {
            assert_eq!(outcome(bad), Outcome::Malformed, "{:?}", bad);
        }
    }

    #[test]
    fn error_text_inside_a_result_is_not_an_error() {
        let body = serde_json::to_vec(&json!({
            "jsonrpc": "2.0", "id": 7,
            "result": {"content": [{"type": "text", "text": "\"error\":{}"}]}
        }))
        .unwrap();
        assert_eq!(outcome(&body), Outcome::Result);
    }

    #[test]
    fn sse_bodies_count_messages_and_find_the_answer() {
        let body = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n\
                     data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r\n\r\n\
                     id: 3\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\ndata: \"result\":{}}\n\n";
        assert_eq!(
            answer(body, true),
            Answer {
                outcome: Outcome::Result,
                messages: 2
            }
        );
        assert_eq!(
            answer(b": keep-alive\n\n", true).outcome,
            Outcome::Malformed
        );
    }

    #[test]
    fn bodies_are_valid_json_rpc() {
        let call: Value = serde_json::from_slice(&tools_call(3, "echo", 100, true)).unwrap();
        assert_eq!(
            call["params"]["arguments"]["text"].as_str().unwrap().len(),
            100
        );
        assert_eq!(call["params"]["_meta"]["progressToken"], "bench-3");
        for b in [initialize(1), initialized(), tools_list(2), ping(4)] {
            let v: Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(v["jsonrpc"], "2.0");
        }
    }
}
