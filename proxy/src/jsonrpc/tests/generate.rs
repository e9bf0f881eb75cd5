//! A small deterministic generator of JSON-RPC-shaped bodies, valid and broken: envelopes with
//! shuffled, repeated and escaped keys, escaped values, odd numbers and whitespace, then random
//! byte mutations. No dependency, so every run sees the same inputs.

/// xorshift64*: fast, deterministic, good enough to explore inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const GOOD_PIECES: &[&[u8]] = &[
    b"a",
    b"tools/call",
    b"github__create_issue",
    b"__",
    b"\\n",
    b"\\\"",
    b"\\\\",
    b"\\/",
    b"\\u0041",
    b"\\u00e9",
    b"\\ud83d\\ude00",
    "\u{e9}".as_bytes(),
    "\u{1f600}".as_bytes(),
    b"\\u0000",
    b"\\b\\f\\r\\t",
    b" ",
    b"file:///tmp/x.txt",
    b"\\u005f",
    b"\x7f",
    b"2.0",
];
const BAD_PIECES: &[&[u8]] = &[
    b"\\x",
    b"\\ud800",
    b"\\udc00",
    b"\\ud800\\u0041",
    b"\x01",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\\u12",
    b"\xf4\x90\x80\x80",
    b"\xc0\xaf",
    b"\t",
    b"\\uD834\\uDD1E",
];
const GOOD_NUMBERS: &[&str] = &[
    "0",
    "-1",
    "42",
    "3.25",
    "-0.0",
    "1e10",
    "2E-3",
    "1.5e+7",
    "12345678901234567890",
    "-9223372036854775809",
    "0.000001",
    "1E99",
    "-0",
];
const BAD_NUMBERS: &[&str] = &[
    "01", "1.", "-", ".5", "+1", "1e", "0x10", "1.e5", "NaN", "--1",
];
const METHODS: &[&str] = &[
    r#""tools/call""#,
    r#""prompts/get""#,
    r#""resources/read""#,
    r#""ping""#,
    r#""notifications/initialized""#,
    r#""tools\/call""#,
    r#""tools\u002fcall""#,
];
const MUTATION_BYTES: &[u8] = b"{}[],:\"\\ 0123456789-+.eEutnfa\x00\x1f\x7f\xc3\xa9\xff";

/// Hand-written bodies that the prefix test and the differential test both start from.
pub fn seed_corpus() -> Vec<Vec<u8>> {
    [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"github__create_issue","arguments":{"title":"bug","body":"x\ny","labels":["a"],"n":-1.5e3,"ok":true,"none":null}}}"#,
        r#"{"jsonrpc":"2.0","id":"r-\u00e9","method":"resources/read","params":{"uri":"file:\/\/\/a","_meta":{"progressToken":"p\ud83d\ude00"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":0.5}}"#,
        r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"hi"}],"isError":false}}"#,
        r#"{"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"Method not found"}}"#,
        r#"[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","id":1,"method":"b","params":[]}]"#,
        " { \"jsonrpc\" : \"2.0\" , \"id\" : 0 , \"method\" : \"ping\" , \"params\" : { } } ",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a__x","name":"b__y"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n\u0061me":"b__y"}}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn ws(r: &mut Rng, out: &mut Vec<u8>) {
    if r.chance(15) {
        const SPACES: &[&[u8]] = &[b" ", b"\n", b"\t", b"\r\n  ", b"  "];
        let space = r.pick::<&[u8]>(SPACES);
        out.extend_from_slice(space);
    }
}

pub fn string(r: &mut Rng, out: &mut Vec<u8>, bad_percent: usize) {
    out.push(b'"');
    for _ in 0..r.below(4) {
        let piece = if r.chance(bad_percent) {
            r.pick::<&[u8]>(BAD_PIECES)
        } else {
            r.pick::<&[u8]>(GOOD_PIECES)
        };
        out.extend_from_slice(piece);
    }
    out.push(b'"');
}

fn number(r: &mut Rng, out: &mut Vec<u8>) {
    let n = if r.chance(3) {
        r.pick(BAD_NUMBERS)
    } else {
        r.pick(GOOD_NUMBERS)
    };
    out.extend_from_slice(n.as_bytes());
}

/// Writes `key` as a key, sometimes with one character spelled as a `\u` escape.
fn key(r: &mut Rng, out: &mut Vec<u8>, key: &str) {
    out.push(b'"');
    let escape_at = if r.chance(4) && !key.is_empty() {
        Some(r.below(key.len()))
    } else {
        None
    };
    for (i, b) in key.bytes().enumerate() {
        if Some(i) == escape_at {
            out.extend_from_slice(format!("\\u{:04x}", b).as_bytes());
        } else {
            out.push(b);
        }
    }
    out.push(b'"');
    ws(r, out);
    out.push(b':');
    ws(r, out);
}

fn value(r: &mut Rng, out: &mut Vec<u8>, depth: usize) {
    let choices = if depth > 4 { 4 } else { 7 };
    match r.below(choices) {
        0 => string(r, out, 3),
        1 => number(r, out),
        2 => {
            let literals: [&[u8]; 5] = [b"true", b"false", b"null", b"tru", b"nul"];
            let usable = if r.chance(3) { 5 } else { 3 };
            let literal = r.pick::<&[u8]>(&literals[..usable]);
            out.extend_from_slice(literal);
        }
        3 | 4 => {
            out.push(b'[');
            for i in 0..r.below(4) {
                if i > 0 {
                    out.push(b',');
                }
                ws(r, out);
                value(r, out, depth + 1);
                ws(r, out);
            }
            out.push(b']');
        }
        _ => {
            let keys = ["a", "name", "uri", "x", "", "_meta", "progressToken"];
            let members: Vec<(&str, Member)> = (0..r.below(4))
                .map(|_| (*r.pick(&keys), Member::Any))
                .collect();
            object(r, out, depth + 1, &members);
        }
    }
}

/// How to write one member's value.
#[derive(Clone, Copy)]
enum Member {
    Any,
    Str(&'static [&'static str]),
    Id,
    Params,
    Meta,
}

fn object(r: &mut Rng, out: &mut Vec<u8>, depth: usize, members: &[(&str, Member)]) {
    out.push(b'{');
    ws(r, out);
    let mut order: Vec<usize> = (0..members.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, r.below(i + 1));
    }
    if r.chance(5) && !order.is_empty() {
        order.push(*r.pick(&order.clone()));
    }
    for (n, &i) in order.iter().enumerate() {
        if n > 0 {
            out.push(b',');
            ws(r, out);
        }
        let (name, member) = members[i];
        key(r, out, name);
        match member {
            Member::Any => value(r, out, depth),
            Member::Str(choices) if r.chance(90) => {
                out.extend_from_slice(r.pick(choices).as_bytes())
            }
            Member::Str(_) if r.chance(50) => string(r, out, 5),
            Member::Str(_) => value(r, out, depth),
            Member::Id => match r.below(10) {
                0..=3 => number(r, out),
                4..=7 => string(r, out, 2),
                _ => value(r, out, depth),
            },
            Member::Params => params(r, out, depth),
            Member::Meta if r.chance(85) => {
                let meta = [("progressToken", Member::Id), ("other", Member::Any)];
                let n = r.below(3);
                object(r, out, depth + 1, &meta[..n.min(2)]);
            }
            Member::Meta => value(r, out, depth),
        }
        ws(r, out);
    }
    out.push(b'}');
}

fn params(r: &mut Rng, out: &mut Vec<u8>, depth: usize) {
    match r.below(10) {
        0 => value(r, out, depth),
        1 => {
            out.push(b'[');
            value(r, out, depth + 1);
            out.push(b']');
        }
        _ => {
            const NAMES: &[&str] = &[
                r#""github__create_issue""#,
                r#""a__b""#,
                r#""x\u005f_y""#,
                r#""\ud83d\ude00__t""#,
            ];
            const URIS: &[&str] = &[r#""file:///a.txt""#, r#""mem:\/\/x""#, r#""""#];
            let all = [
                ("name", Member::Str(NAMES)),
                ("uri", Member::Str(URIS)),
                ("_meta", Member::Meta),
                ("arguments", Member::Any),
                ("cursor", Member::Any),
            ];
            let chosen: Vec<(&str, Member)> =
                all.iter().copied().filter(|_| r.chance(55)).collect();
            object(r, out, depth + 1, &chosen);
        }
    }
}

/// One JSON-RPC-shaped body, usually valid JSON, sometimes not.
pub fn message(r: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    ws(r, &mut out);
    const VERSIONS: &[&str] = &[
        r#""2.0""#,
        r#""2.0""#,
        r#""2.0""#,
        r#""1.0""#,
        "2.0",
        r#""2\u002e0""#,
    ];
    let all = [
        ("jsonrpc", Member::Str(VERSIONS), 95),
        ("id", Member::Id, 60),
        ("method", Member::Str(METHODS), 75),
        ("params", Member::Params, 70),
        ("result", Member::Any, 15),
        ("error", Member::Any, 10),
        ("extension", Member::Any, 10),
    ];
    match r.below(20) {
        0 => {
            out.push(b'[');
            let inner = message(r);
            out.extend_from_slice(&inner);
            out.push(b']');
        }
        1 => value(r, &mut out, 0),
        _ => {
            let chosen: Vec<(&str, Member)> = all
                .iter()
                .filter(|m| r.chance(m.2))
                .map(|m| (m.0, m.1))
                .collect();
            object(r, &mut out, 1, &chosen);
        }
    }
    ws(r, &mut out);
    out
}

/// Applies one to three random edits: delete, insert, replace, truncate or copy a range.
pub fn mutate(r: &mut Rng, body: &mut Vec<u8>) {
    for _ in 0..1 + r.below(3) {
        let at = r.below(body.len() + 1);
        match r.below(5) {
            0 if at < body.len() => {
                body.remove(at);
            }
            1 => body.insert(at, *r.pick(MUTATION_BYTES)),
            2 if at < body.len() => body[at] = *r.pick(MUTATION_BYTES),
            3 => body.truncate(at),
            _ => {
                let from = r.below(body.len() + 1);
                let len = r.below(12).min(body.len() - from);
                let chunk = body[from..from + len].to_vec();
                let at = at.min(body.len());
                body.splice(at..at, chunk);
            }
        }
    }
}
