//! Traces end to end: the real binary exports OTLP/HTTP to a receiver built from the official
//! OpenTelemetry protobuf definitions (`tests/peers/python/otlp_receiver.py`), a client's
//! `traceparent` is continued, and the upstream (the official Python SDK server) receives the
//! trace context of the gateway's upstream span. The access log carries the same trace id.

mod harness;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use harness::sdk_peers::{python, python_server, repo};
use harness::{Raw, Sluice};
use serde_json::{Value, json};

const TOKEN: &str = "tracing-test-token-0123456789";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const UNSAMPLED: &str = "5bf92f3577b34da6a3ce929d0e0e4736";
const LATER: &str = "6bf92f3577b34da6a3ce929d0e0e4736";
const UPSTREAM_KEY: &str = "py-upstream-api-key-0123";

struct Receiver {
    child: std::process::Child,
    port: u16,
    spans: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let mut child = Command::new(python())
            .arg(repo().join("tests/peers/python/otlp_receiver.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the OTLP receiver");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        let port = first["port"].as_u64().unwrap() as u16;
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        Receiver { child, port, spans }
    }

    /// Waits (bounded) until spans of `trace` named as in `names` all arrived.
    async fn wait(&self, trace: &str, names: &[&str]) -> Vec<Value> {
        harness::poll(
            "the spans to be exported",
            400,
            std::time::Duration::from_millis(25),
            || async {
                let spans: Vec<Value> = self
                    .spans
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|s| s["trace_id"] == trace)
                    .cloned()
                    .collect();
                names
                    .iter()
                    .all(|n| spans.iter().any(|s| s["name"] == *n))
                    .then_some(spans)
            },
        )
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The headers the Python server's `seen_headers` tool reports it received.
fn seen_headers(r: &harness::RawResponse) -> Value {
    let text = r.message()["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no tool text in {}", r.body))
        .to_owned();
    serde_json::from_str(&text).expect("seen_headers returns JSON")
}

fn find<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
}

#[tokio::test]
async fn a_client_trace_is_continued_through_auth_and_upstream_spans_and_sent_upstream() {
    let receiver = Receiver::start();
    let upstream = python_server("py", false, None).await;
    let body = format!(
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:{}\"\nsampling_ratio = 0.0\nservice_name = \"sluice-test\"\n\n\
         [[auth.tokens]]\nname = \"bot\"\ntoken = \"{TOKEN}\"\n\n\
         [[servers]]\nname = \"py\"\nurl = \"http://{}/mcp\"\n\
         [servers.credential]\ntype = \"static\"\nheader = \"X-Api-Key\"\nvalue = \"{UPSTREAM_KEY}\"\n\n\
         [[gateways]]\nname = \"dev\"\nservers = [\"py\"]\n[gateways.auth]\ntokens = true\n",
        receiver.port, upstream.addr
    );
    let sluice = Sluice::start(&body).await;
    sluice.wait_tools("dev", 10).await;
    let raw = Raw::new(sluice.url("dev"));
    let auth = format!("Bearer {TOKEN}");
    let session = raw.initialize_with(&[("authorization", &auth)]).await;
    // Sampling ratio 0 for new traces, but the client's sampled traceparent is followed.
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let call = json!({"jsonrpc": "2.0", "id": "c-1", "method": "tools/call",
                      "params": {"name": "py__seen_headers", "arguments": {}}});
    let r = raw
        .post_with(
            &call.to_string(),
            Some(&session),
            &[("authorization", &auth), ("traceparent", &traceparent)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = seen_headers(&r);

    let spans = receiver
        .wait(
            TRACE,
            &["tools/call py__seen_headers", "auth", "credential", "POST"],
        )
        .await;
    let server = find(&spans, "tools/call py__seen_headers");
    let auth_span = find(&spans, "auth");
    let client = find(&spans, "POST");
    assert_eq!(server["kind"], "SPAN_KIND_SERVER");
    assert_eq!(
        server["parent_span_id"], PARENT,
        "the client's span is the parent"
    );
    assert_eq!(server["service"], "sluice-test");
    let attrs = &server["attributes"];
    assert_eq!(attrs["mcp.method.name"], "tools/call");
    assert_eq!(attrs["gen_ai.tool.name"], "py__seen_headers");
    assert_eq!(attrs["jsonrpc.request.id"], "c-1");
    assert_eq!(attrs["sluice.gateway"], "dev");
    assert_eq!(attrs["sluice.server"], "py");
    assert_eq!(attrs["enduser.id"], "token:bot");
    assert_eq!(auth_span["parent_span_id"], server["span_id"]);
    let credential = find(&spans, "credential");
    assert_eq!(credential["parent_span_id"], server["span_id"]);
    assert_eq!(credential["attributes"]["sluice.credential.type"], "static");
    let digest = credential["attributes"]["sluice.credential.digest"]
        .as_str()
        .expect("a credential digest");
    assert_eq!(digest.len(), 8);
    assert!(
        !format!("{spans:?}").contains(UPSTREAM_KEY),
        "no credential value in a span"
    );
    assert_eq!(client["kind"], "SPAN_KIND_CLIENT");
    assert_eq!(client["parent_span_id"], server["span_id"]);
    assert_eq!(client["attributes"]["http.response.status_code"], 200);

    // The upstream saw the upstream span as its parent, in the same trace.
    let sent = seen["traceparent"]
        .as_str()
        .expect("traceparent reached the upstream");
    assert_eq!(
        sent,
        format!("00-{TRACE}-{}-01", client["span_id"].as_str().unwrap())
    );
    assert!(
        seen.get("authorization").is_none(),
        "the gateway token stays at the gateway"
    );
    assert_eq!(seen["x-api-key"], UPSTREAM_KEY);

    // A new trace at ratio 0 is not sampled: nothing recorded and, as with tracing off, no
    // context invented for the upstream.
    let r = raw
        .post_with(
            &call.to_string(),
            Some(&session),
            &[("authorization", &auth)],
        )
        .await;
    let seen = seen_headers(&r);
    assert!(seen.get("traceparent").is_none(), "{seen}");
    // A client's unsampled trace is not recorded, and its context goes upstream unchanged.
    let unsampled = format!("00-{UNSAMPLED}-{PARENT}-00");
    let r = raw
        .post_with(
            &call.to_string(),
            Some(&session),
            &[
                ("authorization", &auth),
                ("traceparent", &unsampled),
                ("tracestate", "vendor=kept"),
            ],
        )
        .await;
    let seen = seen_headers(&r);
    assert_eq!(seen["traceparent"], unsampled.as_str());
    assert_eq!(seen["tracestate"], "vendor=kept");
    // Spans are exported in the order they end: once a later sampled trace has arrived, any
    // span of the unsampled one would have too.
    let later = format!("00-{LATER}-{PARENT}-01");
    raw.post_with(
        &call.to_string(),
        Some(&session),
        &[("authorization", &auth), ("traceparent", &later)],
    )
    .await;
    receiver.wait(LATER, &["tools/call py__seen_headers"]).await;
    let recorded = receiver.spans.lock().unwrap().clone();
    assert!(
        recorded.iter().all(|s| s["trace_id"] != UNSAMPLED),
        "the unsampled trace was recorded"
    );

    let line = sluice
        .wait_access("the traced call in the access log", |l| {
            l["trace_id"] == TRACE
        })
        .await;
    assert_eq!(line["method"], "tools/call");
    assert_eq!(line["target"], "py__seen_headers");
    assert_eq!(line["server"], "py");
    assert_eq!(line["caller"], "token:bot");
    assert_eq!(line["status"], 200);
    assert!(line["bytes_out"].as_u64().unwrap() > 0);
    assert!(line["upstream_ms"].as_f64().unwrap() > 0.0);
    let all = format!("{:?}", sluice.access_log());
    assert!(!all.contains(TOKEN), "no token in the access log");
}

#[tokio::test]
async fn without_tracing_the_clients_trace_context_passes_through_unchanged() {
    let upstream = python_server("py", false, None).await;
    let body = format!(
        "[[servers]]\nname = \"py\"\nurl = \"http://{}/mcp\"\n\n[[gateways]]\nname = \"dev\"\nservers = [\"py\"]\n",
        upstream.addr
    );
    let sluice = Sluice::start(&body).await;
    sluice.wait_tools("dev", 10).await;
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "py__seen_headers", "arguments": {}}});
    let r = raw
        .post_with(
            &call.to_string(),
            Some(&session),
            &[("traceparent", &traceparent), ("tracestate", "vendor=1")],
        )
        .await;
    let seen = seen_headers(&r);
    assert_eq!(seen["traceparent"], traceparent);
    assert_eq!(seen["tracestate"], "vendor=1");
    let line = sluice
        .wait_access("the call in the access log", |l| {
            l["method"] == "tools/call"
        })
        .await;
    assert!(line["trace_id"].is_null(), "no trace id when not tracing");
}
