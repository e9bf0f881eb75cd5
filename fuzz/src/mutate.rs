//! A small deterministic mutator: the same seed gives the same inputs, on every machine.

/// xorshift64*: fast, deterministic, good enough to explore inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator; a zero seed is replaced (xorshift would stay at zero).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Bytes that often sit on a parser's branch points.
const INTERESTING_BYTES: &[u8] = b"\x00\x01\x08\x09\x0a\x0c\x0d\x1f\x20\"#$%+,-./0129:;=?@AZ[\\]_az{}~\x7f\x80\xbf\xc0\xc3\xe2\xed\xef\xf0\xf4\xfe\xff";

/// Tokens every target gets: JSON and SSE structure, escapes, encodings and number edges.
pub const GENERIC_DICTIONARY: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"\r\n",
    b"\r",
    b"\n",
    b"\n\n",
    b"\\u0000",
    b"\\ud800",
    b"\\udc00",
    b"\\ud83d\\ude00",
    b"\\\"",
    b"\\\\",
    b"data:",
    b"id:",
    b"event:",
    b"null",
    b"true",
    b"false",
    b"-0",
    b"1e999",
    b"-1",
    b"65536",
    b"18446744073709551616",
    b"\xef\xbb\xbf",
    b"\xc3\xa9",
    b"\xed\xa0\x80",
    b"\xf0\x9f\x98\x80",
    b"\xe2\x80\xa8",
    b"${",
    b"=",
    b" ",
    b"\t",
    b"%00",
];

/// Mutates `data` in place by one to four stacked edits, taking tokens from `dictionary` (and
/// the generic ones) and material from `corpus`; the result is at most `max_len` bytes.
pub fn mutate(
    rng: &mut Rng,
    data: &mut Vec<u8>,
    corpus: &[Vec<u8>],
    dictionary: &[&[u8]],
    max_len: usize,
) {
    let edits = 1 + rng.below(4);
    for _ in 0..edits {
        edit(rng, data, corpus, dictionary);
    }
    data.truncate(max_len);
}

fn token<'a>(rng: &mut Rng, dictionary: &[&'a [u8]]) -> &'a [u8] {
    if !dictionary.is_empty() && rng.chance(70) {
        rng.pick::<&[u8]>(dictionary)
    } else {
        rng.pick::<&[u8]>(GENERIC_DICTIONARY)
    }
}

/// A random range of `data`, possibly empty.
fn range(rng: &mut Rng, len: usize) -> (usize, usize) {
    let start = rng.below(len + 1);
    let max = (len - start).min(if rng.chance(80) { 8 } else { 256 });
    let end = start + rng.below(max + 1);
    (start, end)
}

fn edit(rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>], dictionary: &[&[u8]]) {
    let len = data.len();
    match rng.below(14) {
        // Flip one bit.
        0 if len > 0 => {
            let at = rng.below(len);
            data[at] ^= 1 << rng.below(8);
        }
        // Set a random byte.
        1 if len > 0 => {
            let at = rng.below(len);
            data[at] = rng.next_u64() as u8;
        }
        // Set an interesting byte.
        2 if len > 0 => {
            let at = rng.below(len);
            data[at] = *rng.pick(INTERESTING_BYTES);
        }
        // Add or subtract a little.
        3 if len > 0 => {
            let at = rng.below(len);
            let delta = 1 + rng.below(4) as u8;
            data[at] = if rng.chance(50) {
                data[at].wrapping_add(delta)
            } else {
                data[at].wrapping_sub(delta)
            };
        }
        // Insert random or interesting bytes.
        4 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(4);
            for _ in 0..n {
                let b = if rng.chance(50) {
                    *rng.pick(INTERESTING_BYTES)
                } else {
                    rng.next_u64() as u8
                };
                data.insert(at, b);
            }
        }
        // Delete a range.
        5 if len > 0 => {
            let (start, end) = range(rng, len);
            data.drain(start..end);
        }
        // Copy a range of the input elsewhere in it.
        6 if len > 0 => {
            let (start, end) = range(rng, len);
            let chunk = data[start..end].to_vec();
            let at = rng.below(data.len() + 1);
            data.splice(at..at, chunk);
        }
        // Insert a dictionary token.
        7 | 8 => {
            let t = token(rng, dictionary);
            let at = rng.below(len + 1);
            data.splice(at..at, t.iter().copied());
        }
        // Overwrite with a dictionary token.
        9 if len > 0 => {
            let t = token(rng, dictionary);
            let at = rng.below(len);
            let end = (at + t.len()).min(len);
            data.splice(at..end, t.iter().copied());
        }
        // Splice: this input's head with another entry's tail.
        10 if !corpus.is_empty() => {
            let other = rng.pick(corpus);
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        // Insert a range of another entry.
        11 if !corpus.is_empty() => {
            let other = rng.pick(corpus);
            let (start, end) = range(rng, other.len());
            let at = rng.below(len + 1);
            data.splice(at..at, other[start..end].iter().copied());
        }
        // Truncate.
        12 if len > 0 => {
            data.truncate(rng.below(len));
        }
        // Replace a run of ASCII digits with an edge number.
        13 => {
            let numbers: &[&[u8]] = &[
                b"0",
                b"-1",
                b"255",
                b"256",
                b"65535",
                b"65536",
                b"4294967296",
                b"9223372036854775808",
                b"18446744073709551615",
                b"1e309",
                b"0.0",
                b"1E-400",
            ];
            let from = rng.below(len + 1);
            let start = data[from..]
                .iter()
                .position(|b| b.is_ascii_digit())
                .map(|n| from + n)
                .or_else(|| data.iter().position(|b| b.is_ascii_digit()));
            match start {
                Some(start) => {
                    let end = data[start..]
                        .iter()
                        .position(|b| !b.is_ascii_digit())
                        .map_or(data.len(), |n| start + n);
                    let n = rng.pick(numbers);
                    data.splice(start..end, n.iter().copied());
                }
                None => data.extend_from_slice(rng.pick::<&[u8]>(numbers)),
            }
        }
        // The guarded edits fall back to inserting a token.
        _ => {
            let t = token(rng, dictionary);
            let at = rng.below(len + 1);
            data.splice(at..at, t.iter().copied());
        }
    }
}
