//! Incremental parser for `text/event-stream` bodies.
//!
//! Upstream MCP servers answer a POST either with one JSON body or with an SSE stream that
//! carries JSON-RPC messages as `data:` events. The gateway reads such streams itself when it
//! talks to an upstream on its own behalf (initialize, catalog fetches), so it needs a parser
//! that accepts bytes in arbitrary chunks, bounds what it buffers, and never panics.

use thiserror::Error;

pub mod frames;

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; empty means the default type `message`.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last `id:` field seen on this event, if any.
    pub id: Option<String>,
}

/// Why a stream could not be parsed.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SseError {
    /// A single event grew beyond the configured bound.
    #[error("server-sent event larger than {limit} bytes")]
    EventTooLarge {
        /// The bound that was exceeded.
        limit: usize,
    },
    /// The stream was not UTF-8.
    #[error("server-sent event stream is not valid UTF-8")]
    NotUtf8,
}

/// Accumulates bytes and yields complete events (WHATWG "event stream interpretation").
#[derive(Debug)]
pub struct SseParser {
    buf: Vec<u8>,
    /// Bytes at the start of `buf` already searched for a line end (a pending partial line),
    /// so a long line arriving in many chunks is not searched again for every chunk.
    scanned: usize,
    limit: usize,
    current: SseEvent,
    has_data: bool,
    /// Skip a leading byte-order mark once.
    at_start: bool,
}

impl SseParser {
    /// A parser that refuses events (and pending partial lines) over `limit` bytes.
    pub fn new(limit: usize) -> Self {
        SseParser {
            buf: Vec::new(),
            scanned: 0,
            limit,
            current: SseEvent::default(),
            has_data: false,
            at_start: true,
        }
    }

    /// Feeds a chunk and returns every event it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        self.buf.extend_from_slice(chunk);
        // The lines are read in place and the buffer is cut once: cutting each line off would
        // move the rest of the buffer every time, quadratic in a chunk of many short lines.
        let buf = std::mem::take(&mut self.buf);
        let mut events = Vec::new();
        let mut consumed = 0;
        let read = self.read_lines(&buf, &mut consumed, &mut events);
        self.buf = buf;
        self.buf.drain(..consumed);
        read?;
        if self.buf.len() > self.limit {
            return Err(SseError::EventTooLarge { limit: self.limit });
        }
        Ok(events)
    }

    /// Processes the complete lines of `buf` from `consumed` on, advancing `consumed` past
    /// each one, and remembers how much of the pending partial line was searched.
    fn read_lines(
        &mut self,
        buf: &[u8],
        consumed: &mut usize,
        events: &mut Vec<SseEvent>,
    ) -> Result<(), SseError> {
        let mut skip = std::mem::take(&mut self.scanned);
        loop {
            let rest = buf.get(*consumed..).unwrap_or_default();
            let Some(offset) = rest
                .get(skip..)
                .unwrap_or_default()
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
            else {
                self.scanned = rest.len();
                return Ok(());
            };
            let line_end = *consumed + skip + offset;
            skip = 0;
            // A lone '\r' at the end of the buffer may be the first half of "\r\n".
            let terminator_len = if buf.get(line_end) == Some(&b'\r') {
                match buf.get(line_end + 1) {
                    Some(b'\n') => 2,
                    Some(_) => 1,
                    None => {
                        self.scanned = line_end - *consumed;
                        return Ok(());
                    }
                }
            } else {
                1
            };
            let line = buf.get(*consumed..line_end).unwrap_or_default();
            *consumed = line_end + terminator_len;
            let line = if self.at_start {
                self.at_start = false;
                line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line)
            } else {
                line
            };
            let line = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
            if let Some(event) = self.process_line(line)? {
                events.push(event);
            }
        }
    }

    fn process_line(&mut self, line: &str) -> Result<Option<SseEvent>, SseError> {
        if line.is_empty() {
            if !self.has_data {
                self.current = SseEvent::default();
                return Ok(None);
            }
            self.has_data = false;
            return Ok(Some(std::mem::take(&mut self.current)));
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.current.event = value.to_owned(),
            "id" if !value.contains('\0') => self.current.id = Some(value.to_owned()),
            _ => {}
        }
        if self.current.data.len() + self.current.event.len() > self.limit {
            return Err(SseError::EventTooLarge { limit: self.limit });
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8], chunk: usize) -> Vec<SseEvent> {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            out.extend(p.push(c).expect("valid stream"));
        }
        out
    }

    #[test]
    fn events_are_the_same_whatever_the_chunking() {
        let input =
            b"event: message\r\nid: 7\r\ndata: {\"a\":1}\r\n\r\n: comment\n\ndata: x\ndata: y\n\n";
        let whole = parse_all(input, input.len());
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].data, "{\"a\":1}");
        assert_eq!(whole[0].id.as_deref(), Some("7"));
        assert_eq!(whole[1].data, "x\ny");
        for size in 1..input.len() {
            assert_eq!(parse_all(input, size), whole, "chunk size {size}");
        }
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        assert!(parse_all(b"event: ping\n\n", 3).is_empty());
    }

    #[test]
    fn oversized_event_is_refused() {
        let mut p = SseParser::new(16);
        let err = p.push(b"data: 0123456789abcdefghij\n").unwrap_err();
        assert_eq!(err, SseError::EventTooLarge { limit: 16 });
        let mut p = SseParser::new(16);
        assert!(
            p.push(&[b'x'; 64]).is_err(),
            "an unterminated line is bounded too"
        );
    }

    #[test]
    fn a_chunk_of_many_short_lines_is_parsed_in_linear_time() {
        // Found while writing the SSE fuzz target (fuzz/README.md): cutting each line off the
        // front of the buffer moved the rest of the chunk every time, so this chunk took 15 s
        // in a debug build. The bound leaves room for slow builds on busy machines.
        let input = b"data: x\n\n".repeat(256 * 1024);
        let started = std::time::Instant::now();
        let events = SseParser::new(1 << 20).push(&input).expect("valid stream");
        let elapsed = started.elapsed();
        assert_eq!(events.len(), 256 * 1024);
        assert!(events.iter().all(|e| e.data == "x"));
        assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
        // A long line arriving in small chunks is searched once, not once per chunk.
        let mut p = SseParser::new(8 << 20);
        let line = vec![b'a'; 4 << 20];
        let started = std::time::Instant::now();
        assert!(p.push(b"data: ").expect("partial").is_empty());
        for chunk in line.chunks(4096) {
            assert!(p.push(chunk).expect("partial").is_empty());
        }
        let events = p.push(b"\r").expect("partial");
        assert!(events.is_empty(), "a lone CR may start a CRLF");
        let events = p.push(b"\n\n").expect("complete");
        let elapsed = started.elapsed();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data.len(), 4 << 20);
        assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
    }

    #[test]
    fn garbage_never_panics() {
        let mut p = SseParser::new(64);
        for i in 0..2048u32 {
            let bytes = [(i % 256) as u8, (i / 7 % 256) as u8, b'\r', b':', b'\n'];
            let _ = p.push(&bytes);
        }
    }
}
