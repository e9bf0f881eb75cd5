//! Lazy tool loading, tool-invocation policies and rate limits end to end: the real `sluice`
//! binary in front of a real Python `mcp` server, driven by the official Python, TypeScript
//! and Rust SDK clients, and by raw requests where exact bytes matter (escaped keys,
//! duplicate keys, counted bursts). Counters are read from `/metrics` with a Prometheus parser.

mod harness;

use harness::prom::scrape;
use harness::rmcp_peers::rmcp_connect;
use harness::sdk_peers::{SdkClient, python_server_with, run_client};
use harness::{Raw, RawResponse, Sluice};
use prometheus_parse::Scrape;
use serde_json::{Value, json};

const ENG: &str = "eng-token-0123456789abcdef";
const SALES: &str = "sales-token-0123456789abcdef";
/// Tools of `server.py --filler 20`: its 10 own and 20 fillers.
const PY_TOOLS: u64 = 30;

const POLICIES: &str = r#"
[[gateways.policies]]
name = "no-big-sums"
tools = ["py__add"]
arguments = [{ pointer = "/a", min = 100 }]
effect = "deny"

[[gateways.policies]]
name = "no-secrets"
tools = ["py__echo"]
arguments = [{ pointer = "/text", prefix = "secret" }]
effect = "deny"
"#;

async fn start() -> (Sluice, harness::ChildGuard) {
    let py = python_server_with("py", false, None, &["--filler", "20"]).await;
    let body = format!(
        r#"
[[auth.tokens]]
name = "eng"
token = "{ENG}"
claims = {{ team = "eng" }}

[[auth.tokens]]
name = "sales"
token = "{SALES}"
claims = {{ team = "sales" }}

[[servers]]
name = "py"
url = "http://{addr}/mcp"

[[gateways]]
name = "direct"
servers = ["py"]

[[gateways]]
name = "lazy"
servers = ["py"]
tools_mode = "lazy"

[[gateways]]
name = "lazy-auth"
servers = ["py"]
tools_mode = "lazy"
[gateways.auth]
tokens = true
[[gateways.auth.rules]]
tools = ["py__echo"]
require = {{ team = "eng" }}
[[gateways.auth.rules]]
tools = ["py__*"]

[[gateways]]
name = "guarded"
servers = ["py"]
{POLICIES}

[[gateways]]
name = "guarded-lazy"
servers = ["py"]
tools_mode = "lazy"
{POLICIES}

[[gateways]]
name = "limited"
servers = ["py"]
[gateways.auth]
tokens = true
[gateways.limits]
caller = {{ rate = "1/h", burst = 8 }}
tool = {{ rate = "1/h", burst = 3 }}
"#,
        addr = py.addr
    );
    let sluice = Sluice::start(&body).await;
    sluice.wait_tools("direct", PY_TOOLS).await;
    (sluice, py)
}

/// The value of `name` with at least these labels, summed (0 when absent).
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    harness::prom::sum(s, name, labels, false)
}

fn call_body(name: &str, args: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{{"name":"{name}","arguments":{args}}}}}"#
    )
}

/// Names in a `search_tools` result, checking its text block carries the same JSON.
fn found(result: &Value) -> Vec<String> {
    let structured = &result["structuredContent"];
    let text: Value = serde_json::from_str(result["content"][0]["text"].as_str().expect("text"))
        .expect("the text block is JSON");
    assert_eq!(&text, structured, "text and structured content agree");
    structured["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn sdk_clients_see_two_tools_find_by_search_and_run_tool_equals_a_direct_call() {
    let (sluice, _py) = start().await;
    for client in [SdkClient::Python, SdkClient::Node] {
        let direct = run_client(
            client,
            &sluice.url("direct"),
            Some(("py__add", &json!({"a": 2, "b": 40}))),
        )
        .await;
        let lazy = run_client(
            client,
            &sluice.url("lazy"),
            Some((
                "run_tool",
                &json!({"name": "py__add", "arguments": {"a": 2, "b": 40}}),
            )),
        )
        .await;
        assert_eq!(
            lazy["tools"],
            json!(["search_tools", "run_tool"]),
            "{client:?}"
        );
        assert_eq!(
            lazy["call"], direct["call"],
            "{client:?}: run_tool returns the tool's result unchanged"
        );
        let search = run_client(
            client,
            &sluice.url("lazy"),
            Some((
                "search_tools",
                &json!({"query": "sum two integers", "limit": 3}),
            )),
        )
        .await;
        let names = found(&search["call"]);
        assert_eq!(
            names.first().map(String::as_str),
            Some("py__add"),
            "{client:?}: {names:?}"
        );
        assert!(names.len() <= 3);
        let schema = &search["call"]["structuredContent"]["tools"][0]["inputSchema"];
        assert_eq!(
            schema["properties"]["a"]["type"], "integer",
            "the input schema is returned"
        );
    }
    // The Rust SDK through run_tool, and the call is counted under the real tool.
    let client = rmcp_connect(&sluice.url("lazy")).await;
    let (text, is_error) = harness::rmcp_peers::rmcp_call(
        &client,
        "run_tool",
        json!({"name": "py__echo", "arguments": {"text": "hi"}}),
    )
    .await;
    assert_eq!((text.as_str(), is_error), ("py:hi", false));
    let m = scrape(&sluice).await;
    let count = |tool: &str| {
        value(
            &m,
            "sluice_tool_calls_total",
            &[("gateway", "lazy"), ("tool", tool), ("outcome", "ok")],
        )
    };
    assert_eq!(count("py__add"), 2.0, "two SDK clients ran py__add");
    assert_eq!(count("py__echo"), 1.0);
    assert_eq!(count("search_tools"), 2.0);
}

#[tokio::test]
async fn rules_hide_tools_from_search_and_unknown_names_get_close_matches() {
    let (sluice, _py) = start().await;
    let raw = Raw::new(sluice.url("lazy-auth"));
    let as_eng = [("authorization", &*format!("Bearer {ENG}"))];
    let as_sales = [("authorization", &*format!("Bearer {SALES}"))];
    let eng = raw.initialize_with(&as_eng).await;
    let sales = raw.initialize_with(&as_sales).await;
    let search = |q: &str| json!({"query": q, "limit": 50});

    let r = raw
        .call_tool_with(&eng, "search_tools", search("echo text back"), &as_eng)
        .await;
    assert_eq!(
        found(&r["result"]).first().map(String::as_str),
        Some("py__echo")
    );
    let r = raw
        .call_tool_with(&sales, "search_tools", search("echo text back"), &as_sales)
        .await;
    assert_eq!(
        found(&r["result"]),
        Vec::<String>::new(),
        "only py__echo matches, and it is hidden"
    );
    let r = raw
        .call_tool_with(&sales, "search_tools", search("add integers"), &as_sales)
        .await;
    assert_eq!(
        found(&r["result"]).first().map(String::as_str),
        Some("py__add")
    );

    let refused = raw
        .post_with(
            &call_body(
                "run_tool",
                r#"{"name":"py__echo","arguments":{"text":"x"}}"#,
            ),
            Some(&sales),
            &as_sales,
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused
            .error_message()
            .contains("rule 1 requires team = \"eng\""),
        "{}",
        refused.body
    );

    let unknown = raw
        .post_with(
            &call_body("run_tool", r#"{"name":"py__ecko","arguments":{}}"#),
            Some(&eng),
            &as_eng,
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.error_code()),
        (200, Some(-32602)),
        "{}",
        unknown.body
    );
    let message = unknown.error_message();
    assert!(
        message.contains("unknown tool 'py__ecko'") && message.contains("did you mean py__echo"),
        "{message}"
    );
    let hidden = raw
        .post_with(
            &call_body("run_tool", r#"{"name":"py__ecko","arguments":{}}"#),
            Some(&sales),
            &as_sales,
        )
        .await;
    assert!(
        !hidden.error_message().contains("py__echo"),
        "close matches only name tools the caller may use: {}",
        hidden.body
    );

    for (args, why) in [
        (r#"{"arguments":{}}"#, "missing field `name`"),
        (
            r#"{"name":"py__echo","arguments":[1]}"#,
            "must be an object",
        ),
        (
            r#"{"name":"py__echo","name":"py__add"}"#,
            "duplicate field `name`",
        ),
    ] {
        let r = raw
            .post_with(&call_body("run_tool", args), Some(&eng), &as_eng)
            .await;
        assert_eq!(r.error_code(), Some(-32602), "{args}: {}", r.body);
        assert!(r.error_message().contains(why), "{args}: {}", r.body);
    }
    let ok = raw
        .post_with(
            &call_body(
                "run_tool",
                r#"{"name":"py__echo","arguments":{"text":"ok"}}"#,
            ),
            Some(&eng),
            &as_eng,
        )
        .await;
    assert_eq!(
        ok.message()["result"]["content"][0]["text"],
        "py:ok",
        "{}",
        ok.body
    );
}

#[tokio::test]
async fn policies_refuse_by_argument_value_whatever_the_spelling() {
    let (sluice, _py) = start().await;
    // A real SDK client sees the refusal as a JSON-RPC error naming the policy.
    let client = rmcp_connect(&sluice.url("guarded")).await;
    let (text, _) =
        harness::rmcp_peers::rmcp_call(&client, "py__add", json!({"a": 2, "b": 3})).await;
    assert_eq!(text, "5");
    let err = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("py__add")
                .with_arguments(json!({"a": 500, "b": 1}).as_object().unwrap().clone()),
        )
        .await
        .expect_err("a big sum is refused");
    assert!(
        err.to_string().contains("refused by policy 'no-big-sums'"),
        "{err}"
    );

    let mut denied = 1;
    for gateway in ["guarded", "guarded-lazy"] {
        let raw = Raw::new(sluice.url(gateway));
        let session = raw.initialize().await;
        let send = |name: &str, args: &str| {
            let body = if gateway == "guarded" {
                call_body(name, args)
            } else {
                call_body(
                    "run_tool",
                    &format!(r#"{{"name":"{name}","arguments":{args}}}"#),
                )
            };
            let (raw, session) = (&raw, &session);
            async move { raw.post(&body, Some(session)).await }
        };
        let refused = |r: &RawResponse, policy: &str| {
            assert_eq!(
                (r.status, r.error_code()),
                (200, Some(-32003)),
                "{gateway}: {}",
                r.body
            );
            assert!(
                r.error_message().contains(&format!("policy '{policy}'")),
                "{}",
                r.body
            );
        };
        for args in [
            r#"{"a":500,"b":1}"#,
            r#"{"b":1,"a":500}"#,
            r#"{"a":"500","b":1}"#,
            r#"{"\u0061":500,"b":1}"#,
            r#"{"a":5e2,"b":1}"#,
        ] {
            refused(&send("py__add", args).await, "no-big-sums");
            denied += 1;
        }
        for args in [
            r#"{"text":"secret plans"}"#,
            r#"{"text":"\u0073ecret plans"}"#,
        ] {
            refused(&send("py__echo", args).await, "no-secrets");
        }
        let dup = send("py__add", r#"{"a":1,"a":500,"b":1}"#).await;
        assert_eq!(dup.error_code(), Some(-32602), "{}", dup.body);
        assert!(
            dup.error_message().contains("appears twice"),
            "{}",
            dup.body
        );
        let ok = send("py__add", r#"{"a":"99","b":1}"#).await;
        assert_eq!(
            ok.message()["result"]["content"][0]["text"],
            "100",
            "{gateway}: {}",
            ok.body
        );
    }
    let m = scrape(&sluice).await;
    let deny = |g: &str| {
        value(
            &m,
            "sluice_policy_decisions_total",
            &[
                ("gateway", g),
                ("policy", "no-big-sums"),
                ("effect", "deny"),
            ],
        )
    };
    assert_eq!(deny("guarded") + deny("guarded-lazy"), f64::from(denied));
    assert_eq!(
        value(
            &m,
            "sluice_tool_calls_total",
            &[
                ("gateway", "guarded"),
                ("tool", "py__add"),
                ("outcome", "denied")
            ]
        ),
        6.0
    );
}

#[tokio::test]
async fn rate_limit_bursts_are_counted_exactly() {
    let (sluice, _py) = start().await;
    let raw = Raw::new(sluice.url("limited"));
    let alice = [("authorization", &*format!("Bearer {ENG}"))];
    let bob = [("authorization", &*format!("Bearer {SALES}"))];
    let a = raw.initialize_with(&alice).await; // alice: 1 of 8
    for i in 0..3 {
        let r = raw
            .post_with(&call_body("py__echo", r#"{"text":"x"}"#), Some(&a), &alice)
            .await;
        assert_eq!(r.status, 200, "call {i}: {}", r.body);
    }
    // The tool's burst of 3 is spent (alice: 5 of 8).
    let limited = raw
        .post_with(&call_body("py__echo", r#"{"text":"x"}"#), Some(&a), &alice)
        .await;
    assert_eq!(
        (limited.status, limited.error_code()),
        (429, Some(-32029)),
        "{}",
        limited.body
    );
    assert!(
        limited
            .error_message()
            .contains("the tool limit of gateway 'limited' (1/h, burst 3)"),
        "{}",
        limited.body
    );
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3000..=3600).contains(&retry), "retry after {retry} s");

    // Another caller has its own caller bucket but shares the tool's.
    let b = raw.initialize_with(&bob).await;
    let r = raw
        .post_with(&call_body("py__echo", r#"{"text":"x"}"#), Some(&b), &bob)
        .await;
    assert_eq!(r.status, 429, "{}", r.body);
    let r = raw
        .post_with(&call_body("py__add", r#"{"a":1,"b":1}"#), Some(&b), &bob)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Alice has 3 requests left: of 12 concurrent pings exactly 3 pass.
    let ping = r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#;
    let pings = (0..12).map(|_| raw.post_with(ping, Some(&a), &alice));
    let statuses: Vec<u16> = futures_util::future::join_all(pings)
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        9,
        "{statuses:?}"
    );

    let m = scrape(&sluice).await;
    let refused = |limit: &str| {
        value(
            &m,
            "sluice_rate_limited_total",
            &[("gateway", "limited"), ("limit", limit)],
        )
    };
    assert_eq!(
        (refused("tool"), refused("caller"), refused("gateway")),
        (2.0, 9.0, 0.0)
    );
    assert_eq!(
        value(
            &m,
            "sluice_tool_calls_total",
            &[
                ("gateway", "limited"),
                ("tool", "py__echo"),
                ("outcome", "rate_limited")
            ]
        ),
        2.0
    );
}
