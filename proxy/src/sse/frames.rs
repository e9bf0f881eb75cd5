//! Event framing for streams the gateway passes on: it cuts an upstream's `text/event-stream`
//! into whole events as raw bytes, so each event can go on unchanged (the common case, no copy
//! beyond the framing buffer) or be rewritten field by field (a relayed request id, an event
//! id). Unlike [`super::SseParser`] it never decodes or allocates per field.

use bytes::{Bytes, BytesMut};

use super::SseError;

/// Cuts a byte stream into whole events (each block ends with its blank line).
#[derive(Debug)]
pub struct EventFramer {
    buf: BytesMut,
    /// Bytes of `buf` already looked at.
    scanned: usize,
    at_line_start: bool,
    /// The last byte looked at was `\r`: a `\n` right after it ends the same line.
    pending_cr: bool,
    limit: usize,
}

impl EventFramer {
    /// A framer that refuses an event growing beyond `limit` bytes.
    pub fn new(limit: usize) -> Self {
        EventFramer {
            buf: BytesMut::new(),
            scanned: 0,
            at_line_start: true,
            pending_cr: false,
            limit,
        }
    }

    /// Feeds a chunk and returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, SseError> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut i = self.scanned;
        while i < self.buf.len() {
            let b = self.buf[i];
            i += 1;
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' | b'\n' if self.at_line_start => {
                    // A blank line: the event ends with it (and with the `\n` of a `\r\n`).
                    let mut end = i;
                    if b == b'\r' {
                        match self.buf.get(i) {
                            Some(b'\n') => end += 1,
                            Some(_) => {}
                            None => self.pending_cr = true,
                        }
                    }
                    events.push(self.buf.split_to(end).freeze());
                    i = 0;
                }
                b'\r' | b'\n' => {
                    self.at_line_start = true;
                    self.pending_cr = b == b'\r';
                }
                _ => self.at_line_start = false,
            }
        }
        self.scanned = self.buf.len();
        if self.buf.len() > self.limit {
            return Err(SseError::EventTooLarge { limit: self.limit });
        }
        Ok(events)
    }

    /// What is left when the stream ends: an unterminated last event, passed on as it is.
    pub fn rest(&mut self) -> Option<Bytes> {
        self.scanned = 0;
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }
}

/// The fields of one event block that the gateway may rewrite.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    /// The `id:` value (the last one, as SSE says).
    pub id: Option<&'a [u8]>,
    /// The `data:` values joined with `\n` (borrowed when there is one line).
    pub data: Option<std::borrow::Cow<'a, [u8]>>,
}

/// Reads the `id` and `data` fields of one event block.
pub fn fields(block: &[u8]) -> Fields<'_> {
    let mut out = Fields::default();
    for line in lines(block) {
        match field(line) {
            (b"id", value) if !value.contains(&0) => out.id = Some(value),
            (b"data", value) => {
                out.data = Some(match out.data.take() {
                    None => std::borrow::Cow::Borrowed(value),
                    Some(previous) => {
                        let mut joined = previous.into_owned();
                        joined.push(b'\n');
                        joined.extend_from_slice(value);
                        std::borrow::Cow::Owned(joined)
                    }
                });
            }
            _ => {}
        }
    }
    out
}

/// Rebuilds an event block with a new `id` and/or new `data`, keeping every other line (event
/// type, `retry`, comments) as it was. Lines end in `\n`.
pub fn rewrite(block: &[u8], id: Option<&[u8]>, data: Option<&[u8]>) -> Bytes {
    let mut out = BytesMut::with_capacity(
        block.len() + id.map_or(0, <[u8]>::len) + data.map_or(0, <[u8]>::len) + 16,
    );
    let (mut id_done, mut data_done) = (false, false);
    for line in lines(block) {
        let (name, _) = field(line);
        match (name, id, data) {
            (b"id", Some(new), _) => {
                if !id_done {
                    out.extend_from_slice(b"id: ");
                    out.extend_from_slice(new);
                    out.extend_from_slice(b"\n");
                    id_done = true;
                }
            }
            (b"data", _, Some(new)) => {
                if !data_done {
                    for part in new.split(|&b| b == b'\n') {
                        out.extend_from_slice(b"data: ");
                        out.extend_from_slice(part);
                        out.extend_from_slice(b"\n");
                    }
                    data_done = true;
                }
            }
            _ => {
                out.extend_from_slice(line);
                out.extend_from_slice(b"\n");
            }
        }
    }
    out.extend_from_slice(b"\n");
    out.freeze()
}

/// The non-empty lines of a block, without their terminators.
fn lines(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    block
        .split(|&b| b == b'\n' || b == b'\r')
        .filter(|l| !l.is_empty())
}

/// A line's field name and value (one leading space dropped); comments have the empty name.
fn field(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|&b| b == b':') {
        Some(at) => {
            let value = &line[at + 1..];
            (&line[..at], value.strip_prefix(b" ").unwrap_or(value))
        }
        None => (line, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_all(input: &[u8], chunk: usize) -> Vec<Bytes> {
        let mut f = EventFramer::new(1 << 20);
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            out.extend(f.push(c).expect("within the limit"));
        }
        out.extend(f.rest());
        out
    }

    #[test]
    fn events_are_cut_at_blank_lines_whatever_the_chunking() {
        let input: &[u8] =
            b"event: message\r\nid: 7\r\ndata: {\"a\":1}\r\n\r\n: comment\n\ndata: x\rdata: y\r\rid: 9\n";
        let whole = frame_all(input, input.len());
        let joined: Vec<u8> = whole.iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(joined, input, "framing loses or adds nothing");
        assert_eq!(whole.len(), 4, "{whole:?}");
        assert_eq!(
            &whole[0][..],
            b"event: message\r\nid: 7\r\ndata: {\"a\":1}\r\n\r\n"
        );
        assert_eq!(&whole[2][..], b"data: x\rdata: y\r\r");
        assert_eq!(&whole[3][..], b"id: 9\n", "the unterminated rest");
        for size in 1..input.len() {
            let framed = frame_all(input, size);
            let joined: Vec<u8> = framed.iter().flat_map(|b| b.to_vec()).collect();
            assert_eq!(joined, input, "chunk size {size}");
            // A "\r\n" split across chunks may leave its "\n" as a blank line of its own,
            // which dispatches nothing; the events with content are the same.
            let meaningful: Vec<Fields<'_>> = framed
                .iter()
                .map(|b| fields(b))
                .filter(|f| f.data.is_some())
                .collect();
            let expected: Vec<Fields<'_>> = whole
                .iter()
                .map(|b| fields(b))
                .filter(|f| f.data.is_some())
                .collect();
            assert_eq!(meaningful, expected, "chunk size {size}");
        }
    }

    #[test]
    fn fields_are_read_and_rewritten_keeping_other_lines() {
        let block = b"event: message\nid: up-1\nretry: 500\ndata: {\"a\":\ndata: 1}\n\n";
        let f = fields(block);
        assert_eq!(f.id, Some(&b"up-1"[..]));
        assert_eq!(f.data.as_deref(), Some(&b"{\"a\":\n1}"[..]));
        let out = rewrite(block, Some(b"gw-1"), Some(b"{\"b\":2}"));
        assert_eq!(
            &out[..],
            b"event: message\nid: gw-1\nretry: 500\ndata: {\"b\":2}\n\n"
        );
        let only_id = rewrite(b"id: 1\r\ndata: x\r\n\r\n", Some(b"2"), None);
        assert_eq!(&only_id[..], b"id: 2\ndata: x\n\n");
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut f = EventFramer::new(16);
        assert!(f.push(b"data: 0123456789").is_ok());
        assert_eq!(
            f.push(b"abcdefghij"),
            Err(SseError::EventTooLarge { limit: 16 })
        );
    }
}
