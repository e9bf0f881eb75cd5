//! Finding a `tools/call`'s `params.name` in a body that is still arriving.
//!
//! A 2026-07-28 request is routed by its `Mcp-Name` header, so a large call can stream to its
//! upstream while the client is still sending it; when the gateway shows the tool under another
//! name (`server__tool`), the name's bytes must be replaced on the way. This locator is fed the
//! body chunk by chunk and says where the string value of the top-level `params.name` starts
//! (the writer holds bytes back from there) and where it ends (the writer splices the upstream's
//! name in). It keeps a few flags per level and nothing of the body, so its cost is one pass
//! over the bytes.
//!
//! It only has to be right on well-formed bodies. The whole body is still scanned by
//! [`crate::jsonrpc::scan`] (duplicate keys, escapes, depth) before its last byte goes upstream,
//! and a span that disagrees with the scan's aborts the upstream request: a body crafted to
//! fool the locator can make a request fail, never reach a tool it did not name.

use crate::jsonrpc::Span;

/// Longest key the locator keeps; longer keys are neither of the two it looks for.
const MAX_KEY: usize = 8;

/// Where the locator stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located {
    /// `params.name` has not begun (or the body is not an object, which the scan refuses).
    Searching,
    /// Its string value begins at this offset and has not ended yet.
    Inside(usize),
    /// Its string value, quotes included.
    Found(Span),
}

/// What a string being read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A key of the object at level 1 (the message) or 2 (`params` or another value).
    Key(usize),
    /// The value of `params.name`.
    Name,
    Other,
}

/// The incremental locator; see the module docs.
#[derive(Debug)]
pub struct NameLocator {
    /// Offset of the next byte fed.
    offset: usize,
    /// Containers open around the next byte.
    depth: usize,
    in_string: bool,
    escaped: bool,
    role: Role,
    key: [u8; MAX_KEY],
    key_len: usize,
    key_overflow: bool,
    /// Per level 1 and 2: the container there is an object, a key comes next, and which of
    /// the looked-for keys the last one was.
    object: [bool; 3],
    expect_key: [bool; 3],
    last_key: [Key; 3],
    /// The object at level 2 is the message's `params`.
    in_params: bool,
    located: Located,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Params,
    Name,
    Other,
}

impl Default for NameLocator {
    fn default() -> Self {
        NameLocator {
            offset: 0,
            depth: 0,
            in_string: false,
            escaped: false,
            role: Role::Other,
            key: [0; MAX_KEY],
            key_len: 0,
            key_overflow: false,
            object: [false; 3],
            expect_key: [false; 3],
            last_key: [Key::Other; 3],
            in_params: false,
            located: Located::Searching,
        }
    }
}

impl NameLocator {
    /// Reads the next bytes of the body.
    pub fn feed(&mut self, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            if let Located::Found(_) = self.located {
                // Nothing after the first name matters here (a second is the scan's to refuse).
                self.offset += bytes.len() - i;
                return;
            }
            if self.in_string {
                self.string_byte(b);
            } else {
                self.structural(b);
            }
            self.offset += 1;
        }
    }

    /// Where the locator stands after the bytes fed so far.
    pub fn located(&self) -> Located {
        self.located
    }

    fn string_byte(&mut self, b: u8) {
        if let Role::Key(_) = self.role {
            if self.key_len < MAX_KEY {
                self.key[self.key_len] = b;
                self.key_len += 1;
            } else {
                self.key_overflow = true;
            }
        }
        if self.escaped {
            self.escaped = false;
            return;
        }
        match b {
            b'\\' => self.escaped = true,
            b'"' => {
                self.in_string = false;
                match self.role {
                    Role::Key(level) => {
                        // The closing quote was pushed with the key; leave it out.
                        let raw = &self.key[..self.key_len.saturating_sub(1)];
                        self.last_key[level] = if self.key_overflow {
                            Key::Other
                        } else {
                            key_of(raw)
                        };
                    }
                    Role::Name => {
                        if let Located::Inside(start) = self.located {
                            self.located = Located::Found(Span {
                                start,
                                end: self.offset + 1,
                            });
                        }
                    }
                    Role::Other => {}
                }
            }
            _ => {}
        }
    }

    fn structural(&mut self, b: u8) {
        let level = self.depth;
        match b {
            b'"' => {
                self.in_string = true;
                self.role =
                    if (1..=2).contains(&level) && self.object[level] && self.expect_key[level] {
                        self.key_len = 0;
                        self.key_overflow = false;
                        Role::Key(level)
                    } else if level == 2
                        && self.in_params
                        && self.last_key[2] == Key::Name
                        && self.located == Located::Searching
                    {
                        self.located = Located::Inside(self.offset);
                        Role::Name
                    } else {
                        Role::Other
                    };
            }
            b'{' | b'[' => {
                let entering_params =
                    level == 1 && b == b'{' && self.object[1] && self.last_key[1] == Key::Params;
                self.depth += 1;
                let inner = self.depth;
                if inner <= 2 {
                    self.object[inner] = b == b'{';
                    self.expect_key[inner] = b == b'{';
                    self.last_key[inner] = Key::Other;
                }
                if inner == 2 {
                    self.in_params = entering_params;
                }
            }
            b'}' | b']' => {
                if level == 2 {
                    self.in_params = false;
                }
                self.depth = self.depth.saturating_sub(1);
            }
            b':' if (1..=2).contains(&level) => self.expect_key[level] = false,
            b',' if (1..=2).contains(&level) => {
                self.expect_key[level] = self.object[level];
                self.last_key[level] = Key::Other;
            }
            _ => {}
        }
    }
}

/// Which looked-for key a raw key (without quotes) is. An escaped key is neither: the scan
/// refuses escaped keys in the message and its `params`, so such a body never goes upstream.
fn key_of(raw: &[u8]) -> Key {
    match raw {
        b"params" => Key::Params,
        b"name" => Key::Name,
        _ => Key::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{Scanned, scan};

    /// Feeds `body` in chunks of `size` and returns where the locator ends.
    fn located(body: &[u8], size: usize) -> Located {
        let mut locator = NameLocator::default();
        for chunk in body.chunks(size.max(1)) {
            locator.feed(chunk);
        }
        locator.located()
    }

    /// The scan's span of `params.name`, the reference the locator must match.
    fn scanned(body: &[u8]) -> Option<Span> {
        match scan(body, 64) {
            Ok(Scanned::Single(e)) => e.name.map(|n| n.span),
            Ok(Scanned::Batch) => None,
            Err(e) => panic!("{e}: {}", String::from_utf8_lossy(body)),
        }
    }

    #[test]
    fn agrees_with_the_scan_however_the_body_is_split() {
        let bodies: &[&[u8]] = &[
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a__echo","arguments":{"text":"x"}}}"#,
            br#"{"params":{"arguments":{"name":"inner","list":["name",{"name":"deep"}]},"name":"a__echo"},"id":"n","method":"tools/call","jsonrpc":"2.0"}"#,
            br#"{ "jsonrpc" : "2.0" , "params" : { "_meta" : {"name":"meta"} , "name" : "a\"b\\c" } , "id" : 2 , "method" : "tools/call" }"#,
            br#"{"name":"top-level","jsonrpc":"2.0","id":1,"method":"m","params":{"x":1,"name":"real"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"name":"a\u005f\u005fb"}}"#,
        ];
        for body in bodies {
            let want = scanned(body).expect("the scan finds a name");
            for size in [1, 2, 3, 7, 16, body.len()] {
                assert_eq!(
                    located(body, size),
                    Located::Found(want),
                    "chunks of {size}: {}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }

    #[test]
    fn names_that_are_not_the_params_name_are_not_found() {
        let bodies: &[&[u8]] = &[
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"name"}}"#,
            br#"{"params":[{"name":"in-an-array"}]}"#,
            br#"{"params":{"arguments":{"name":"nested"}}}"#,
            br#"{"params":{"name":42,"x":"not-this"}}"#,
            br#"{"params":"name","name":"top"}"#,
            br#"[{"params":{"name":"batch"}}]"#,
            br#"{"params":{"n\u0061me":"escaped-key"}}"#,
            br#"{"\u0070arams":{"name":"escaped-params"}}"#,
        ];
        for body in bodies {
            for size in [1, 5, body.len()] {
                assert_eq!(
                    located(body, size),
                    Located::Searching,
                    "{}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }

    #[test]
    fn an_unfinished_name_says_where_it_began() {
        let body = br#"{"params":{"name":"serv"#;
        assert_eq!(located(body, 4), Located::Inside(18));
    }

    #[test]
    fn a_long_key_is_no_match() {
        let long = "p".repeat(MAX_KEY + 10);
        let body = format!(
            r#"{{"{long}":{{"name":"x"}},"jsonrpc":"2.0","id":1,"method":"m","params":{{"name":"y"}}}}"#
        );
        let want = scanned(body.as_bytes()).expect("the scan finds a name");
        assert_eq!(located(body.as_bytes(), 3), Located::Found(want));
    }
}
