//! JSON-RPC inspection and tool-name rewriting: Sluice's byte scanner and splice against
//! `serde_json` and `simd-json`, on a typical `tools/call` (~300 B) and on `tools/call` bodies of
//! 8 KiB and 1 MiB with realistic arguments (nested objects, escaped strings, unicode, numbers).
//!
//! These figures justify the parser the proxy uses on its hot path (`sluice_proxy::jsonrpc`):
//!
//! - `jsonrpc_inspect`: read `method`, `id` and `params.name` from a body.
//!   - `scan`: [`scan`], which also validates the whole body and refuses duplicate keys.
//!   - `serde_struct`: `serde_json` into a borrowed `#[derive(Deserialize)]` struct whose
//!     `id`, `arguments` and `_meta` are `&RawValue`: the least work `serde_json` can do.
//!   - `value_parse`: `serde_json` into a `serde_json::Value`.
//!   - `simd_tape`: `simd-json` into its tape, its fastest read-only form (its serde derive path
//!     measured 20-35 % slower and is left out, which keeps the `serde_impl` feature off).
//!     `simd-json` parses in place, so a proxy that must forward the original bytes has to copy
//!     the body first: that copy is measured (into a reused buffer, with simd-json's reusable
//!     `Buffers`, the most favourable set-up for it).
//! - `jsonrpc_rename`: the gateway's rewrite: inspect, strip the `server__` prefix from
//!   `params.name` and produce the new body bytes.
//!   - `scan+splice`: [`scan`], then [`replace_span`] with [`json_string_literal`].
//!   - `value_parse+reserialise`: `serde_json::Value` parse, edit, `serde_json::to_vec`.
//!   - `simd_value+reserialise`: copy, `simd-json` `BorrowedValue` parse, edit, serialise.
//!
//! The re-serialising variants also change bytes the client sent (key order, number spelling;
//! simd-json reads `-0` as the integer 0), which the splice never does.
//!
//! Every variant is checked once, outside the timed loops, to route to the same tool and to
//! produce the same JSON, so a broken comparison fails loudly instead of being fast.
//!
//! Run (the short form is enough for ratios on a noisy machine):
//!
//! ```text
//! cargo bench -p sluice-proxy --bench jsonrpc
//! cargo bench -p sluice-proxy --bench jsonrpc -- --warm-up-time 1 --measurement-time 3
//! cargo bench -p sluice-proxy --bench jsonrpc -- jsonrpc_inspect/scan   # one variant
//! ```

use std::borrow::Cow;
use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main, measurement::WallTime,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use simd_json::prelude::*;
use sluice_proxy::jsonrpc::{DEFAULT_MAX_DEPTH, Scanned, json_string_literal, replace_span, scan};

// ---------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------

/// A typical `tools/call`, about 300 bytes.
fn small_body() -> Vec<u8> {
    br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"github__create_issue","arguments":{"owner":"acme","repo":"widgets","title":"Crash when saving","body":"Steps:\n1. open\n2. save\nExpected: no crash","labels":["bug","p1"]},"_meta":{"progressToken":"tok-42"}}}"#
        .to_vec()
}

/// A `tools/call` writing files, grown to just under `target` bytes: nested objects, strings
/// with escapes (`\n`, `\t`, `\"`, `\uXXXX` including a surrogate pair) and raw UTF-8, integers,
/// negative and fractional numbers, booleans and nulls.
fn files_body(target: usize) -> Vec<u8> {
    let head = r#"{"jsonrpc":"2.0","id":"req-7","method":"tools/call","params":{"name":"fs__write_files","arguments":{"files":["#;
    let tail = r#"],"options":{"overwrite":true,"dryRun":false}},"_meta":{"progressToken":7}}}"#;
    let mut body = String::from(head);
    let mut file = String::new();
    for i in 0usize.. {
        file.clear();
        write!(
            file,
            r#"{{"path":"src/module_{i}/file_{i}.rs","mode":420,"size":{size},"ratio":{ratio},"delta":-{delta},"tags":["rust","generated",{flag}],"owner":{{"id":{id},"name":"Zoë Ünal 日本","roles":["maintainer",null],"quota":{{"used":{used},"limit":1.5e3}}}},"content":"// File {i}\nfn main() {{\n    println!(\"hello, \\\"world\\\" {i}\");\n    let x = [1, 2, 3];\n}}\n\tindented line with caf\u00e9 and \ud83d\ude00 and naïve ☃\n"}}"#,
            size = i * 37,
            delta = i + 1,
            ratio = 0.25 + (i % 8) as f64 * 0.125,
            flag = i % 7 == 0,
            id = 10_000 + i,
            used = i % 1000,
        )
        .expect("write to a String");
        let separator = usize::from(i > 0);
        if body.len() + separator + file.len() + tail.len() > target {
            break;
        }
        if i > 0 {
            body.push(',');
        }
        body.push_str(&file);
    }
    body.push_str(tail);
    body.into_bytes()
}

/// The bodies, labelled by nominal size.
fn bodies() -> [(&'static str, Vec<u8>); 3] {
    [
        ("300B", small_body()),
        ("8KiB", files_body(8 * 1024)),
        ("1MiB", files_body(1024 * 1024)),
    ]
}

/// The routing part of `params.name`: everything after the first `server__` prefix.
fn tool_of(name: &str) -> &str {
    name.split_once("__").map_or(name, |(_, tool)| tool)
}

// ---------------------------------------------------------------------------------------------
// Inspection: method, id and tool name
// ---------------------------------------------------------------------------------------------

/// What every inspection variant reads; the `id` is only checked for presence, since each
/// parser represents it differently.
#[derive(Debug, PartialEq, Eq)]
struct Routing<'a> {
    method: &'a str,
    has_id: bool,
    name: &'a str,
}

impl Routing<'_> {
    /// Something cheap that depends on every field, for `black_box`.
    fn digest(&self) -> usize {
        self.method.len() + self.name.len() + usize::from(self.has_id)
    }

    fn to_owned_triple(&self) -> (String, bool, String) {
        (self.method.to_owned(), self.has_id, self.name.to_owned())
    }
}

fn inspect_scan<R>(body: &[u8], f: impl FnOnce(Routing<'_>) -> R) -> R {
    let Ok(Scanned::Single(envelope)) = scan(body, DEFAULT_MAX_DEPTH) else {
        panic!("bench body scans")
    };
    f(Routing {
        method: envelope.method.as_deref().expect("method"),
        has_id: envelope.id.is_some(),
        name: &envelope.name.as_ref().expect("name").value,
    })
}

/// The least `serde_json` can do: borrow strings, keep nested values as unparsed raw slices
/// (still validated), ignore everything else.
#[derive(Deserialize)]
struct SerdeMessage<'a> {
    #[serde(borrow)]
    jsonrpc: Cow<'a, str>,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    params: Option<SerdeParams<'a>>,
}

#[derive(Deserialize)]
struct SerdeParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    #[allow(dead_code)]
    arguments: Option<&'a RawValue>,
    #[serde(borrow, rename = "_meta")]
    #[allow(dead_code)]
    meta: Option<&'a RawValue>,
}

fn inspect_serde_struct<R>(body: &[u8], f: impl FnOnce(Routing<'_>) -> R) -> R {
    let message: SerdeMessage<'_> = serde_json::from_slice(body).expect("bench body parses");
    assert_eq!(message.jsonrpc, "2.0");
    f(Routing {
        method: &message.method,
        has_id: message.id.is_some(),
        name: &message.params.as_ref().expect("params").name,
    })
}

fn inspect_value<R>(body: &[u8], f: impl FnOnce(Routing<'_>) -> R) -> R {
    let value: serde_json::Value = serde_json::from_slice(body).expect("bench body parses");
    f(Routing {
        method: value["method"].as_str().expect("method"),
        has_id: value.get("id").is_some(),
        name: value["params"]["name"].as_str().expect("name"),
    })
}

/// What `simd-json` needs besides the body: a mutable copy of it and its parse buffers, both
/// reused across requests as a tuned proxy would.
struct SimdScratch {
    input: Vec<u8>,
    buffers: simd_json::Buffers,
}

impl SimdScratch {
    fn new() -> Self {
        Self {
            input: Vec::new(),
            buffers: simd_json::Buffers::default(),
        }
    }

    /// Copies `body` into the reused input buffer (the proxy keeps the original bytes) and
    /// hands it out with the parse buffers.
    fn load(&mut self, body: &[u8]) -> (&mut [u8], &mut simd_json::Buffers) {
        self.input.clear();
        self.input.extend_from_slice(body);
        (&mut self.input, &mut self.buffers)
    }
}

fn inspect_simd_tape<R>(
    body: &[u8],
    scratch: &mut SimdScratch,
    f: impl FnOnce(Routing<'_>) -> R,
) -> R {
    let (input, buffers) = scratch.load(body);
    let tape = simd_json::to_tape_with_buffers(input, buffers).expect("bench body parses");
    let message = tape.as_value();
    f(Routing {
        method: message
            .get("method")
            .and_then(ValueIntoString::into_string)
            .expect("method"),
        has_id: message.get("id").is_some(),
        name: message
            .get("params")
            .and_then(|p| p.get("name"))
            .and_then(ValueIntoString::into_string)
            .expect("name"),
    })
}

// ---------------------------------------------------------------------------------------------
// Rename: strip the server prefix from params.name and produce the new body
// ---------------------------------------------------------------------------------------------

/// The gateway's path: scan, strip the server prefix from the tool name, splice.
fn rename_by_splice(body: &[u8]) -> bytes::Bytes {
    let Ok(Scanned::Single(envelope)) = scan(body, DEFAULT_MAX_DEPTH) else {
        panic!("bench body scans")
    };
    let name = envelope.name.expect("bench body has a name");
    replace_span(body, name.span, &json_string_literal(tool_of(&name.value)))
        .expect("span from this body")
}

/// `serde_json`: build a `Value`, edit the name in place, serialise it again.
fn rename_by_value(body: &[u8]) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(body).expect("bench body parses");
    let Some(serde_json::Value::String(name)) = value.pointer_mut("/params/name") else {
        panic!("bench body has a name")
    };
    let prefix = name.len() - tool_of(name).len();
    name.drain(..prefix);
    serde_json::to_vec(&value).expect("serialise")
}

/// `simd-json`: copy, parse into a `BorrowedValue`, edit the name (without copying it when it
/// is borrowed from the input), serialise it again.
fn rename_by_simd_value(body: &[u8], scratch: &mut SimdScratch) -> Vec<u8> {
    let (input, buffers) = scratch.load(body);
    let mut value =
        simd_json::to_borrowed_value_with_buffers(input, buffers).expect("bench body parses");
    let Some(simd_json::BorrowedValue::String(name)) = value
        .get_mut("params")
        .and_then(|params| params.get_mut("name"))
    else {
        panic!("bench body has a name")
    };
    *name = match std::mem::take(name) {
        Cow::Borrowed(name) => Cow::Borrowed(tool_of(name)),
        Cow::Owned(name) => Cow::Owned(tool_of(&name).to_owned()),
    };
    let mut out = Vec::with_capacity(body.len());
    value.write(&mut out).expect("serialise");
    out
}

// ---------------------------------------------------------------------------------------------
// Checks and benchmarks
// ---------------------------------------------------------------------------------------------

/// Fails loudly unless every variant routes `body` the same way and renames it to the same JSON.
fn check(label: &str, body: &[u8]) {
    let mut scratch = SimdScratch::new();
    let expected = inspect_scan(body, |r| r.to_owned_triple());
    assert!(expected.1, "{label}: the bench body is a request");
    for (variant, got) in [
        (
            "serde_struct",
            inspect_serde_struct(body, |r| r.to_owned_triple()),
        ),
        ("value_parse", inspect_value(body, |r| r.to_owned_triple())),
        (
            "simd_tape",
            inspect_simd_tape(body, &mut scratch, |r| r.to_owned_triple()),
        ),
    ] {
        assert_eq!(got, expected, "{label}: {variant} inspects differently");
    }

    let parse = |bytes: &[u8]| -> serde_json::Value {
        serde_json::from_slice(bytes).expect("renamed body is JSON")
    };
    let spliced = rename_by_splice(body);
    let routed = tool_of(&expected.2);
    assert_ne!(routed, expected.2, "{label}: the bench name has a prefix");
    assert_eq!(parse(&spliced)["params"]["name"], routed, "{label}");
    let mut original = parse(body);
    original["params"]["name"] = routed.into();
    assert_eq!(parse(&spliced), original, "{label}: scan+splice");
    assert_eq!(parse(&rename_by_value(body)), original, "{label}: value");
    assert_eq!(
        parse(&rename_by_simd_value(body, &mut scratch)),
        original,
        "{label}: simd value"
    );
}

/// Per-size sampling: a 1 MiB body takes milliseconds per iteration, so fewer, flat samples
/// keep the run within the requested measurement time.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>, body: &[u8]) {
    group.throughput(Throughput::Bytes(body.len() as u64));
    if body.len() > 64 * 1024 {
        group.sampling_mode(SamplingMode::Flat).sample_size(20);
    } else {
        group.sampling_mode(SamplingMode::Auto).sample_size(100);
    }
}

fn bench_inspect(c: &mut Criterion, bodies: &[(&str, Vec<u8>)]) {
    let mut group = c.benchmark_group("jsonrpc_inspect");
    let mut scratch = SimdScratch::new();
    for (label, body) in bodies {
        configure(&mut group, body);
        group.bench_with_input(BenchmarkId::new("scan", label), body, |b, body| {
            b.iter(|| inspect_scan(black_box(body), |r| r.digest()))
        });
        group.bench_with_input(BenchmarkId::new("serde_struct", label), body, |b, body| {
            b.iter(|| inspect_serde_struct(black_box(body), |r| r.digest()))
        });
        group.bench_with_input(BenchmarkId::new("value_parse", label), body, |b, body| {
            b.iter(|| inspect_value(black_box(body), |r| r.digest()))
        });
        group.bench_with_input(BenchmarkId::new("simd_tape", label), body, |b, body| {
            b.iter(|| inspect_simd_tape(black_box(body), &mut scratch, |r| r.digest()))
        });
    }
    group.finish();
}

fn bench_rename(c: &mut Criterion, bodies: &[(&str, Vec<u8>)]) {
    let mut group = c.benchmark_group("jsonrpc_rename");
    let mut scratch = SimdScratch::new();
    for (label, body) in bodies {
        configure(&mut group, body);
        group.bench_with_input(BenchmarkId::new("scan+splice", label), body, |b, body| {
            b.iter(|| rename_by_splice(black_box(body)))
        });
        group.bench_with_input(
            BenchmarkId::new("value_parse+reserialise", label),
            body,
            |b, body| b.iter(|| rename_by_value(black_box(body))),
        );
        group.bench_with_input(
            BenchmarkId::new("simd_value+reserialise", label),
            body,
            |b, body| b.iter(|| rename_by_simd_value(black_box(body), &mut scratch)),
        );
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    let bodies = bodies();
    for (label, body) in &bodies {
        check(label, body);
    }
    bench_inspect(c, &bodies);
    bench_rename(c, &bodies);
}

criterion_group!(benches, bench);
criterion_main!(benches);
