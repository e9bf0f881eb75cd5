//! `/metrics` after real calls through the real binary: exact counter deltas and labels for
//! every tool-call outcome, auth failures and bad requests, read with a Prometheus text
//! parser (the `prometheus-parse` crate), not string matching.

mod harness;

use harness::prom::scrape;
use harness::{Raw, Sluice, example_server};
use prometheus_parse::Scrape;
use serde_json::json;

const TOKEN: &str = "metrics-test-token-0123456789";

/// The value of `name` with exactly these labels (0 when absent).
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    harness::prom::sum(s, name, labels, true)
}

fn call(tool: &str, args: serde_json::Value) -> String {
    json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": tool, "arguments": args}})
        .to_string()
}

#[tokio::test]
async fn every_tool_call_outcome_and_refusal_is_counted_with_bounded_labels() {
    let mut upstream = example_server().await;
    let body = format!(
        "[[auth.tokens]]\nname = \"bot\"\ntoken = \"{TOKEN}\"\n\n\
         [[servers]]\nname = \"example\"\nurl = \"http://{}/mcp\"\ntimeout = \"5s\"\n\n\
         [[gateways]]\nname = \"dev\"\nservers = [\"example\"]\n\n\
         [[gateways]]\nname = \"locked\"\nservers = [\"example\"]\n[gateways.auth]\ntokens = true\n\
         [[gateways.auth.rules]]\ntools = [\"example__echo\"]\n",
        upstream.addr
    );
    let sluice = Sluice::start(&body).await;
    sluice.wait_tools("dev", 3).await;
    let before = scrape(&sluice).await;
    assert_eq!(
        value(&before, "sluice_upstream_up", &[("server", "example")]),
        1.0
    );
    assert_eq!(
        value(&before, "sluice_catalog_tools", &[("gateway", "dev")]),
        3.0
    );
    assert_eq!(
        value(
            &before,
            "sluice_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    let dev = Raw::new(sluice.url("dev"));
    let s = dev.initialize().await;
    let ok = dev
        .post(&call("example__echo", json!({"text": "hi"})), Some(&s))
        .await;
    assert_eq!(ok.message()["result"]["isError"], false);
    let tool_error = dev.post(&call("example__add", json!({})), Some(&s)).await;
    assert_eq!(tool_error.message()["result"]["isError"], true);
    let unknown = dev.post(&call("example__nope", json!({})), Some(&s)).await;
    assert_eq!(unknown.error_code(), Some(-32602));
    let bad = dev.post("{not json", Some(&s)).await;
    assert_eq!(bad.status, 400);

    let locked = Raw::new(sluice.url("locked"));
    assert_eq!(
        locked
            .post(&call("example__echo", json!({})), None)
            .await
            .status,
        401
    );
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    let ls = locked.initialize_with(&auth).await;
    let denied = locked
        .post_with(
            &call("example__add", json!({"a": 1, "b": 2})),
            Some(&ls),
            &auth,
        )
        .await;
    assert_eq!(denied.status, 403);

    upstream.kill();
    let down = dev
        .post(&call("example__echo", json!({"text": "x"})), Some(&s))
        .await;
    assert_eq!(down.error_code(), Some(-32603));

    let after = scrape(&sluice).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let tool =
        |gateway: &'static str, server: &'static str, tool: &'static str, outcome: &'static str| {
            delta(
                "sluice_tool_calls_total",
                &[
                    ("gateway", gateway),
                    ("server", server),
                    ("tool", tool),
                    ("outcome", outcome),
                ],
            )
        };
    assert_eq!(tool("dev", "example", "example__echo", "ok"), 1.0);
    assert_eq!(tool("dev", "example", "example__add", "tool_error"), 1.0);
    assert_eq!(
        tool("dev", "-", "other", "invalid"),
        1.0,
        "unknown tools share one label"
    );
    assert_eq!(
        tool("dev", "example", "example__echo", "upstream_error"),
        1.0
    );
    assert_eq!(tool("locked", "example", "example__add", "denied"), 1.0);
    assert_eq!(
        delta(
            "sluice_tool_call_duration_seconds",
            &[
                ("gateway", "dev"),
                ("server", "example"),
                ("tool", "example__echo")
            ]
        ),
        2.0
    );
    assert_eq!(
        delta(
            "sluice_requests_total",
            &[
                ("gateway", "dev"),
                ("method", "tools/call"),
                ("status", "200")
            ]
        ),
        4.0
    );
    assert_eq!(
        delta(
            "sluice_requests_total",
            &[
                ("gateway", "locked"),
                ("method", "tools/call"),
                ("status", "403")
            ]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "sluice_auth_failures_total",
            &[("gateway", "locked"), ("reason", "missing")]
        ),
        1.0
    );
    assert_eq!(
        delta("sluice_bad_requests_total", &[("reason", "parse_error")]),
        1.0
    );
    assert!(
        delta("sluice_upstream_duration_seconds", &[("server", "example")]) >= 3.0,
        "three calls reached the upstream"
    );
    assert!(
        after
            .samples
            .iter()
            .all(|x| x.labels.get("tool") != Some("example__nope")),
        "a tool outside the catalog never becomes a label"
    );
}

/// Every metric the shipped dashboard and alert rules query is one the gateway exports.
#[tokio::test]
async fn the_dashboard_and_alerts_query_only_exported_metrics() {
    let upstream = example_server().await;
    let dead = harness::free_port();
    let body = format!(
        "[[auth.tokens]]\nname = \"bot\"\ntoken = \"{TOKEN}\"\n\
         [[auth.providers]]\nname = \"dead\"\nissuer = \"http://127.0.0.1:{dead}\"\naudiences = [\"s\"]\n\n\
         [[servers]]\nname = \"example\"\nurl = \"http://{}/mcp\"\n\n\
         [[gateways]]\nname = \"dev\"\nservers = [\"example\"]\n[gateways.auth]\ntokens = true\nproviders = [\"dead\"]\n",
        upstream.addr
    );
    let sluice = Sluice::start(&body).await;
    sluice.wait_tools("dev", 3).await;
    // Families appear once a series exists: make one of each kind.
    let dev = Raw::new(sluice.url("dev"));
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    let s = dev.initialize_with(&auth).await;
    dev.post_with(
        &call("example__echo", json!({"text": "x"})),
        Some(&s),
        &auth,
    )
    .await;
    dev.post_with("{", Some(&s), &auth).await;
    let admin = sluice.admin;
    let text = harness::poll(
        "the first key refresh to be counted",
        200,
        std::time::Duration::from_millis(50),
        || async move {
            let t = reqwest::get(format!("http://{admin}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            t.contains("sluice_jwks_refresh_total{").then_some(t)
        },
    )
    .await;
    let root = harness::sdk_peers::repo();
    for file in ["deploy/grafana/sluice.json", "deploy/prometheus/alerts.yml"] {
        let src = std::fs::read_to_string(root.join(file)).expect("deploy file");
        let mut names: Vec<&str> = src
            .match_indices("sluice_")
            .map(|(i, _)| {
                let rest = &src[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        names.sort();
        names.dedup();
        assert!(!names.is_empty(), "{file} queries no metric");
        for name in names {
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            assert!(
                text.contains(&format!("# TYPE {base} ")),
                "{file} queries {name}, which /metrics does not export"
            );
        }
    }
}
