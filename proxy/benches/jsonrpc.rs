//! Scan + splice against `serde_json::Value` parse + re-serialise, on the two body sizes the
//! gateway cares about: a typical `tools/call` (~300 B) and a large one (64 KiB of arguments).
//!
//! `cargo bench -p sluice-proxy --bench jsonrpc`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice_proxy::jsonrpc::{DEFAULT_MAX_DEPTH, Scanned, json_string_literal, replace_span, scan};

fn small_body() -> Vec<u8> {
    br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"github__create_issue","arguments":{"owner":"acme","repo":"widgets","title":"Crash when saving","body":"Steps:\n1. open\n2. save\nExpected: no crash","labels":["bug","p1"]},"_meta":{"progressToken":"tok-42"}}}"#
        .to_vec()
}

/// Files with escaped text, numbers and nesting, until the body passes 64 KiB.
fn large_body() -> Vec<u8> {
    let mut files = Vec::new();
    let mut size = 0;
    let mut i = 0;
    while size < 64 * 1024 - 200 {
        let file = format!(
            r#"{{"path":"src/module_{i}/file_{i}.rs","mode":420,"size":{},"tags":["rust","generated",{}],"content":"// File {i}\nfn main() {{\n    println!(\"hello, \\\"world\\\" {i}\");\n    let x = [1, 2, 3];\n}}\n\tindented line with caf\u00e9 and \ud83d\ude00\n"}}"#,
            i * 37,
            i % 7 == 0
        );
        size += file.len() + 1;
        files.push(file);
        i += 1;
    }
    format!(
        r#"{{"jsonrpc":"2.0","id":"req-7","method":"tools/call","params":{{"name":"fs__write_files","arguments":{{"files":[{}]}}}}}}"#,
        files.join(",")
    )
    .into_bytes()
}

/// The gateway's path: scan, strip the server prefix from the tool name, splice.
fn rename_by_splice(body: &[u8]) -> bytes::Bytes {
    let Ok(Scanned::Single(envelope)) = scan(body, DEFAULT_MAX_DEPTH) else {
        panic!("bench body scans")
    };
    let name = envelope.name.expect("bench body has a name");
    let tool = name
        .value
        .split_once("__")
        .map_or(&*name.value, |(_, tool)| tool);
    replace_span(body, name.span, &json_string_literal(tool)).expect("span from this body")
}

/// The alternative: build a `Value`, edit it, serialise it again.
fn rename_by_value(body: &[u8]) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(body).expect("bench body parses");
    let name = value["params"]["name"].as_str().expect("name").to_owned();
    let tool = name
        .split_once("__")
        .map_or(name.as_str(), |(_, tool)| tool)
        .to_owned();
    value["params"]["name"] = serde_json::Value::String(tool);
    serde_json::to_vec(&value).expect("serialise")
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("jsonrpc");
    for (label, body) in [("300B", small_body()), ("64KiB", large_body())] {
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&rename_by_splice(&body)).expect("json"),
            serde_json::from_slice::<serde_json::Value>(&rename_by_value(&body)).expect("json"),
        );
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("scan", label), &body, |b, body| {
            b.iter(|| scan(black_box(body), DEFAULT_MAX_DEPTH).is_ok())
        });
        group.bench_with_input(BenchmarkId::new("scan+splice", label), &body, |b, body| {
            b.iter(|| rename_by_splice(black_box(body)))
        });
        group.bench_with_input(BenchmarkId::new("value_parse", label), &body, |b, body| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(body)).is_ok())
        });
        group.bench_with_input(
            BenchmarkId::new("value_parse+reserialise", label),
            &body,
            |b, body| b.iter(|| rename_by_value(black_box(body))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
