//! The config loader on any text (`sluice_config::load_str`), with `${VAR}` interpolation
//! from a fixed environment. Checked:
//!
//! - nothing panics (`Debug` and `summary` of a loaded config included);
//! - a config loads only if every variable it asked for is set (`${UNSET}` is an error);
//! - a refused config has at least one error, each at a line and column inside the text;
//! - no error shows a value taken from the environment (unless the text holds it too).
//!
//! Inputs naming `/dev/`, `/proc/` or `/sys/` are skipped: the loader reads the files a config
//! names (CA bundle, issuer key, secrets file), and a fuzzed `"/dev/zero"` or `"/dev/stdin"`
//! would hang the harness rather than find anything.

use std::cell::RefCell;

use super::shown;
use crate::{fnv1a, shape};

/// The environment, and for each value a distinctive piece of it: an error showing the piece
/// (while the text does not hold it) leaked the value, or part of it. No value is a valid
/// server, provider or gateway name (each has a `+`, a space, a `(` or a `:`): names are public
/// identifiers (tool prefixes, metrics labels), and a name taken from the environment is shown
/// in hints such as "declared servers: ...", which is not a leak.
const ENV: &[(&str, &str, &str)] = &[
    (
        "SLUICE_SESSION_SECRET",
        "fuzz+secret-value-7f3a9c1e5b2d4f6a8c0e",
        "7f3a9c1e5b2d4f6a8c0e",
    ),
    ("SHORT_SECRET", "fuzz+short-secret-9q8w7e", "9q8w7e"),
    (
        "TOKEN_URL",
        "ftp://user:fuzz-tok3n-value-4r5t@example.com/",
        "tok3n-value-4r5t",
    ),
    (
        "NOT_AN_ADDR",
        "fuzz+hidden-host-value-1z2x",
        "hidden-host-value-1z2x",
    ),
    ("DURATION_UNIT", "5 fuzzfortnights", "fuzzfortnights"),
    ("REGEX", "(fuzz-regex-leak-6y5u", "regex-leak-6y5u"),
    // Plain values that also appear in the messages' examples: not checked.
    ("PORT", "8080", ""),
    ("HOST", "127.0.0.1", ""),
];

/// TOML and Sluice keys the mutator splices in.
pub const DICTIONARY: &[&[u8]] = &[
    b"[proxy]\n",
    b"[sessions]\n",
    b"[catalog]\n",
    b"[auth]\n",
    b"[[auth.tokens]]\n",
    b"[[auth.providers]]\n",
    b"[auth.issuer]\n",
    b"[telemetry]\n",
    b"[[servers]]\n",
    b"[servers.credential]\n",
    b"[[gateways]]\n",
    b"[gateways.auth]\n",
    b"[[gateways.auth.rules]]\n",
    b"[[gateways.policies]]\n",
    b"[gateways.limits]\n",
    b"name = \"a\"\n",
    b"url = \"http://127.0.0.1:3001/mcp\"\n",
    b"servers = [\"a\"]\n",
    b"tools = [\"a__b\"]\n",
    b"secret = \"${SLUICE_SESSION_SECRET}\"\n",
    b"listen = \"${NOT_AN_ADDR}\"\n",
    b"url = \"${TOKEN_URL}\"\n",
    b"${UNSET}",
    b"${DURATION_UNIT}",
    b"${REGEX}",
    b"${TOKEN_URL}",
    b"${SLUICE_SESSION_SECRET}",
    b"${PORT}",
    b"$${",
    b"${",
    b"}",
    b" = ",
    b"\"\"\"",
    b"'''",
    b"'",
    b"\"10s\"",
    b"\"24h\"",
    b"\"1ms\"",
    b"\"100/s\"",
    b"{ rate = \"10/s\", burst = 5 }",
    b"true",
    b"1e400",
    b"0x10",
    b"1979-05-27T07:32:00Z",
    b"allowed_hosts = [\"*\"]\n",
    b"allowed_origins = [\"https://app.example.com\"]\n",
    b"\"[::1]:8080\"",
    b"pointer = \"/a/0\"\n",
    b"regex = \"^(a+)+$\"\n",
    b"effect = \"deny\"\n",
    b"type = \"static\"\n",
    b"value = \"Bearer x\"\n",
    b"\xef\xbb\xbf",
];

/// Runs one input.
pub fn run(data: &[u8]) -> u64 {
    for dangerous in [&b"/dev/"[..], b"/proc/", b"/sys/"] {
        if data.windows(dangerous.len()).any(|w| w == dangerous) {
            return shape(&[0]);
        }
    }
    let text = String::from_utf8_lossy(data);
    let missing = RefCell::new(Vec::new());
    let env = |name: &str| {
        let value = ENV
            .iter()
            .find(|(k, _, _)| *k == name)
            .map(|(_, v, _)| (*v).to_owned());
        if value.is_none() {
            missing.borrow_mut().push(name.to_owned());
        }
        value
    };
    let result = sluice_config::load_str(&text, "fuzz.toml", &env);
    match result {
        Ok(config) => {
            assert!(
                missing.borrow().is_empty(),
                "loaded although {:?} is not set: {}",
                missing.borrow(),
                shown(data)
            );
            let _ = format!("{config:?}");
            let _ = config.summary();
            shape(&[
                1,
                config.servers.len().min(3) as u64,
                config.gateways.len().min(3) as u64,
                u64::from(config.sessions.is_some()),
                u64::from(!config.auth.is_empty()),
            ])
        }
        Err(errors) => {
            assert!(!errors.errors.is_empty(), "refused without an error");
            let lines = text.split('\n').count();
            for e in &errors.errors {
                assert!(
                    e.line >= 1 && e.line <= lines && e.column >= 1,
                    "error at {}:{} in a text of {lines} lines: {} ({})",
                    e.line,
                    e.column,
                    e.message,
                    shown(data)
                );
                let line_chars = text
                    .split('\n')
                    .nth(e.line - 1)
                    .map_or(0, |l| l.chars().count());
                assert!(
                    e.column <= line_chars + 1,
                    "column {} past a line of {line_chars} characters: {}",
                    e.column,
                    shown(data)
                );
            }
            let shown_errors = format!("{errors}\n{errors:?}");
            for (name, _, piece) in ENV {
                if !piece.is_empty() && !text.contains(piece) {
                    assert!(
                        !shown_errors.contains(piece),
                        "an error shows the value of {name}: {shown_errors}"
                    );
                }
            }
            // The first problem's place (`servers.url`, the syntax error's first words): its
            // kind, not the text it quotes.
            let first = &errors.errors[0].message;
            let place: String = match first.strip_prefix("TOML syntax: ") {
                // The parser's first words ("invalid basic string", "unclosed array").
                Some(syntax) => syntax
                    .split(|c: char| !c.is_ascii_alphabetic())
                    .filter(|w| !w.is_empty())
                    .take(3)
                    .collect(),
                None => first
                    .split([':', ' ', '"'])
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            };
            // Places name keys, some of them the input's own: bounded so the pool stays small.
            shape(&[
                2,
                fnv1a(place.as_bytes()) % 64,
                errors.errors.len().min(4) as u64,
            ])
        }
    }
}
