//! Fuzz targets for every Sluice parser that meets untrusted bytes, and a runner for the stable
//! toolchain.
//!
//! Each target is a function `fn(&[u8])` that must never panic on any input: a panic is a
//! finding, either a crash of the code under test or a broken oracle (the target asserts what
//! must hold of the result, such as the JSON-RPC scanner agreeing with `serde_json`). The same
//! functions run three ways:
//!
//! - `cargo test -p sluice-fuzz` (CI): every corpus file plus a short seeded mutation run;
//! - `cargo run --release -p sluice-fuzz -- run all --seconds 60` (stable): the runner in
//!   [`runner`], a small mutation fuzzer with outcome-shape feedback;
//! - `cargo fuzz run --fuzz-dir fuzz/cargo-fuzz TARGET` (nightly): libFuzzer with coverage
//!   feedback, through the wrappers in `fuzz/fuzz_targets/`.
//!
//! See `fuzz/README.md` for the targets, their oracles and the results of the runs done so far.

pub mod input;
pub mod mutate;
pub mod runner;
mod targets;

/// One fuzz target.
pub struct Target {
    /// The name used on the command line, in `fuzz/corpus/<name>/` and in artifacts.
    pub name: &'static str,
    /// What it exercises and what it asserts.
    pub about: &'static str,
    /// Runs one input and returns a cheap "shape" of the outcome (which branch of the result
    /// was taken, which fields were present); the runner keeps inputs that show a new shape.
    /// Panics on a finding.
    pub shape: fn(&[u8]) -> u64,
    /// Tokens the mutator inserts, on top of the generic ones.
    pub dictionary: &'static [&'static [u8]],
    /// Longest input the mutator produces.
    pub max_len: usize,
}

/// Every target, in the order `run all` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "jsonrpc_envelope",
        about: "jsonrpc::scan against serde_json, and the params.name splice",
        shape: targets::jsonrpc::run,
        dictionary: targets::jsonrpc::DICTIONARY,
        max_len: 4096,
    },
    Target {
        name: "session_token",
        about: "SessionSealer::open on any token; seal/open round trips; any authenticated plaintext",
        shape: targets::session::run,
        dictionary: targets::session::DICTIONARY,
        max_len: 6000,
    },
    Target {
        name: "relayed_id",
        about: "RelayedId::open on any id; seal/open round trips; any authenticated payload",
        shape: targets::relay::run,
        dictionary: targets::relay::DICTIONARY,
        max_len: 3000,
    },
    Target {
        name: "event_cursor",
        about: "EventCursor::decode (Last-Event-ID) is canonical and round trips",
        shape: targets::cursor::run,
        dictionary: targets::cursor::DICTIONARY,
        max_len: 5000,
    },
    Target {
        name: "sse",
        about: "SseParser and EventFramer over any chunking; events::rewrite of every block",
        shape: targets::sse::run,
        dictionary: targets::sse::DICTIONARY,
        max_len: 4096,
    },
    Target {
        name: "jwt",
        about: "Authenticator::authenticate and the JWT/JWKS pipeline with a fixed key set",
        shape: targets::jwt::run,
        dictionary: targets::jwt::DICTIONARY,
        max_len: 4096,
    },
    Target {
        name: "config",
        about: "sluice_config::load_str on any text, with ${VAR} interpolation",
        shape: targets::config::run,
        dictionary: targets::config::DICTIONARY,
        max_len: 8192,
    },
    Target {
        name: "header_values",
        about: "Accept, Content-Type, Host/Origin allowlists, Last-Event-ID, MCP-Protocol-Version, Authorization, the request path",
        shape: targets::headers::run,
        dictionary: targets::headers::DICTIONARY,
        max_len: 1024,
    },
    Target {
        name: "modern_envelope",
        about: "2026-07-28: the envelope and header checks, resultType/cache splices, envelope stripping, the Mcp-Name codec",
        shape: targets::modern::run,
        dictionary: targets::modern::DICTIONARY,
        max_len: 4096,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// `jsonrpc::scan` and `jsonrpc::replace_span` against `serde_json` (see the README).
pub fn jsonrpc_envelope(data: &[u8]) {
    targets::jsonrpc::run(data);
}

/// `SessionSealer::open`/`seal` (see the README).
pub fn session_token(data: &[u8]) {
    targets::session::run(data);
}

/// `RelayedId::open`/`seal` (see the README).
pub fn relayed_id(data: &[u8]) {
    targets::relay::run(data);
}

/// `EventCursor::decode`/`encode` (see the README).
pub fn event_cursor(data: &[u8]) {
    targets::cursor::run(data);
}

/// `SseParser`, `EventFramer` and `events::rewrite` (see the README).
pub fn sse(data: &[u8]) {
    targets::sse::run(data);
}

/// JWT and JWKS handling of `sluice-auth` (see the README).
pub fn jwt(data: &[u8]) {
    targets::jwt::run(data);
}

/// `sluice_config::load_str` (see the README).
pub fn config(data: &[u8]) {
    targets::config::run(data);
}

/// Request header values (see the README).
pub fn header_values(data: &[u8]) {
    targets::headers::run(data);
}

/// The 2026-07-28 front door and era splices (see the README).
pub fn modern_envelope(data: &[u8]) {
    targets::modern::run(data);
}

/// A 64-bit FNV-1a hash: names crash files and combines shapes. Not for security.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Combines the parts of an outcome into one shape id.
pub(crate) fn shape(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5eed, |h, p| {
        (h ^ p).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(17)
    })
}
