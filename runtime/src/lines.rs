//! Bounded line reading for a child's stdout and stderr.
//!
//! A stdio MCP server writes one JSON-RPC message per line; a buggy or hostile one could write
//! an endless line. `tokio`'s `read_until` grows without limit, so this reader keeps at most
//! `max` bytes of a line, drops the rest and says it did.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What [`next_line`] read into the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line {
    /// A whole line (without its `\n` or `\r\n`).
    Complete,
    /// The line was longer than the bound: the buffer holds its first `max` bytes only.
    Truncated,
}

/// Reads the next line into `buf` (cleared first), keeping at most `max` bytes. `None` at end
/// of input. A last line without `\n` counts as a line.
pub(crate) async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<Line>> {
    buf.clear();
    let mut truncated = false;
    let mut any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(any.then_some(if truncated {
                Line::Truncated
            } else {
                Line::Complete
            }));
        }
        any = true;
        let newline = available.iter().position(|&b| b == b'\n');
        let chunk = &available[..newline.unwrap_or(available.len())];
        let room = max.saturating_sub(buf.len());
        if chunk.len() > room {
            truncated = true;
        }
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let consumed = newline.map_or(available.len(), |i| i + 1);
        reader.consume(consumed);
        if newline.is_some() {
            if !truncated && buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Some(if truncated {
                Line::Truncated
            } else {
                Line::Complete
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all(input: &[u8], max: usize) -> Vec<(String, Line)> {
        let mut reader = tokio::io::BufReader::with_capacity(4, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(line) = next_line(&mut reader, &mut buf, max).await.unwrap() {
            out.push((String::from_utf8(buf.clone()).unwrap(), line));
        }
        out
    }

    #[tokio::test]
    async fn lines_longer_than_the_bound_are_cut_and_flagged_and_reading_goes_on() {
        let got = all(b"short\r\nthis one is too long\nok\nlast", 8).await;
        assert_eq!(
            got,
            vec![
                ("short".into(), Line::Complete),
                ("this one".into(), Line::Truncated),
                ("ok".into(), Line::Complete),
                ("last".into(), Line::Complete),
            ]
        );
    }

    #[tokio::test]
    async fn empty_input_has_no_lines() {
        assert!(all(b"", 8).await.is_empty());
    }
}
