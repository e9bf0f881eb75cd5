//! What lazy mode's search and the tool-invocation policies cost per call:
//! - `search_tools` over the fixed 1,000-tool evaluation set and over 10,000 tools (the set
//!   ten times under different server prefixes), for a short and a long query;
//! - policy evaluation with 100 policies that all match the tool and test its arguments, none
//!   deciding (the worst case: every policy is walked and the arguments are parsed once),
//!   against one policy.
//!
//! `cargo bench -p sluice-proxy --bench controls`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::Value;
use sluice_config::{
    ArgumentCondition, ArgumentTest, Effect, GatewayConfig, GatewayName, PolicyConfig,
};
use sluice_proxy::catalog::search::SearchIndex;
use sluice_proxy::metrics::Metrics;
use sluice_proxy::policy::{Policies, arguments::parse_strict};

fn tools(copies: usize) -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/fixtures/search/tools-1000.json"
    );
    let base: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON");
    (0..copies)
        .flat_map(|c| {
            base.iter().map(move |t| {
                let mut t = t.clone();
                let name = t["name"].as_str().unwrap().to_owned();
                t["name"] = Value::String(format!("c{c}{name}"));
                t
            })
        })
        .collect()
}

fn search(c: &mut Criterion) {
    let mut g = c.benchmark_group("search_tools");
    for copies in [1, 10] {
        let tools = tools(copies);
        let index = SearchIndex::build(&tools);
        for (label, query) in [
            ("short", "create issue"),
            (
                "long",
                "open a bug ticket in our github repository with a title and labels",
            ),
        ] {
            g.bench_with_input(BenchmarkId::new(label, tools.len()), &query, |b, q| {
                b.iter(|| index.search(black_box(q), 10, |_| true))
            });
        }
    }
    g.finish();
}

fn gateway(n: usize) -> GatewayConfig {
    GatewayConfig {
        name: GatewayName::new("bench").unwrap(),
        servers: Vec::new(),
        tools: Vec::new(),
        prefix: true,
        auth: None,
        tools_mode: Default::default(),
        policies: (0..n)
            .map(|i| PolicyConfig {
                name: format!("p{i}"),
                tools: vec!["*".into()],
                claims: Vec::new(),
                arguments: vec![ArgumentCondition {
                    pointer: "/text".into(),
                    test: ArgumentTest::Prefix(format!("forbidden-{i}")),
                }],
                effect: Effect::Deny,
            })
            .collect(),
        policy_default: Effect::Allow,
        limits: Default::default(),
        builtin_tools: false,
    }
}

fn policies(c: &mut Criterion) {
    let args = br#"{"text":"hello from the benchmark","count":3,"tags":["a","b"],"options":{"dry_run":false}}"#;
    let metrics = Metrics::new(true);
    let mut g = c.benchmark_group("policies");
    for n in [1, 100] {
        let p = Policies::compile(&gateway(n), &metrics).expect("policies");
        let candidates = p.candidates("github__create_issue");
        g.bench_function(BenchmarkId::new("evaluate", n), |b| {
            b.iter(|| {
                p.evaluate(black_box(&candidates), None, || {
                    parse_strict(black_box(args))
                })
                .expect("decides")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, search, policies);
criterion_main!(benches);
