//! Server-to-client requests through the gateway, end to end with the official SDKs.
//!
//! The upstream is `tests/peers/python/conformance_server.py` (the official Python `mcp` SDK,
//! stateful). Its `test_sampling` and `test_elicitation` tools send `sampling/createMessage`
//! and `elicitation/create` on the tool call's own SSE response stream and wait for the
//! client's answer; `test_tool_with_progress` sends progress 0, 50 and 100 there. The clients
//! reach it only through a gateway that prefixes its tools (`conf__test_sampling`, ...): the
//! official Python SDK client (`tests/peers/python/interactive_client.py`, session era) and the
//! official Rust SDK client (`rmcp`, a `ClientHandler` of this file).
//!
//! What each test proves, with a real SDK on both sides:
//! - the gateway relays the upstream's requests to the client under its own ids: the client's
//!   callbacks see string ids starting with `sluice-rq.`, never the upstream's counters;
//! - the client's answer, a POST carrying that id, is routed back to the upstream session
//!   that asked with the upstream's own id restored: the upstream resolves its pending
//!   request and its tool result quotes what the client answered (an upstream SDK drops a
//!   response whose id it does not know, and the call would never finish). The access log
//!   shows each answer as a response (no method) forwarded to server `conf` and accepted by
//!   it (202), and no response dropped as answering nothing;
//! - progress notifications reach the client's progress handler in order.
//!
//! Every wait is bounded: the SDK clients have request timeouts, the Python client runs under
//! a process timeout, and the access log is polled a bounded number of times.

mod harness;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::sdk_peers::{conformance_server, python, repo};
use harness::{ChildGuard, Sluice};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientCapabilities, ClientConfig, ClientRequest,
    ElicitRequestParams, ElicitResult, ElicitationAction, Implementation, NumberOrString,
    ProgressNotificationParam, ProgressToken, RequestId, Role, ServerResult,
};
// Sampling is deprecated by SEP-2577 in rmcp, and exactly what these tests relay.
#[allow(deprecated)]
use rmcp::model::{
    CreateMessageRequestParams, CreateMessageResult, SamplingMessage, SamplingMessageContentBlock,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestContext, RoleClient};
use rmcp::{ClientHandler, ErrorData, ServiceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The gateway, its one upstream server, and the prefix the gateway gives that server's tools.
const GATEWAY: &str = "dev";
const SERVER: &str = "conf";
const PREFIX: &str = "conf__";
/// What the clients answer to elicitations (as `interactive_client.py` does).
const USERNAME: &str = "u";
const EMAIL: &str = "e@example.com";
/// The prefix of every id the gateway gives a relayed request.
const RELAYED: &str = "sluice-rq.";
/// Longest any single client exchange may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The conformance server behind gateway `dev` (servers = ["conf"]), its catalog loaded.
async fn gateway() -> (ChildGuard, Sluice) {
    let upstream = conformance_server().await;
    let body = format!(
        "[[servers]]\nname = \"{SERVER}\"\nurl = \"http://{}/mcp\"\n\n[[gateways]]\nname = \"{GATEWAY}\"\nservers = [\"{SERVER}\"]\n",
        upstream.addr
    );
    let sluice = Sluice::start(&body).await;
    harness::poll(
        "the conformance server's catalog",
        600,
        Duration::from_millis(50),
        || async {
            let (_, r) = sluice.readyz().await?;
            let up = r["servers"][SERVER]["up"] == true
                && r["gateways"][GATEWAY]["tools"].as_u64().unwrap_or(0) > 0;
            up.then_some(())
        },
    )
    .await;
    (upstream, sluice)
}

/// What `test_sampling` answers when the client sampled `prompt` as both clients here do.
fn sampled(prompt: &str) -> String {
    format!("LLM response: sampled:{prompt}")
}

/// Checks `test_elicitation`'s answer says the client accepted with [`USERNAME`] and
/// [`EMAIL`] (the content as JSON: clients order its keys as they like).
fn assert_elicited(text: &str) {
    let content = text
        .strip_prefix("User response: action=accept, content=")
        .unwrap_or_else(|| panic!("elicitation not accepted: {text}"));
    let content: Value = serde_json::from_str(content)
        .unwrap_or_else(|e| panic!("elicitation content is not JSON ({e}): {text}"));
    assert_eq!(
        content,
        json!({ "username": USERNAME, "email": EMAIL }),
        "{text}"
    );
}

/// Whether an access log line is a client's JSON-RPC response (a POST with a body and no
/// method; the standalone GET stream and DELETE have no body).
fn is_response(line: &Value) -> bool {
    line["gateway"] == GATEWAY
        && line["method"].is_null()
        && line["bytes_in"].as_u64().unwrap_or(0) > 0
}

/// The tools each test calls, unprefixed.
const TOOLS: [&str; 3] = [
    "test_sampling",
    "test_elicitation",
    "test_tool_with_progress",
];

/// Waits (bounded) for the access log lines of the three calls and `n` responses, and checks
/// each response was an answer routed to the upstream (server `conf`, its 202), not one
/// dropped for answering nothing.
async fn assert_answers_routed(sluice: &Sluice, n: usize) {
    let (calls, answers) = harness::poll(
        &format!("3 calls and {n} answers in the access log"),
        400,
        Duration::from_millis(25),
        || async {
            let log = sluice.access_log();
            let calls: Vec<Value> = TOOLS
                .iter()
                .filter_map(|tool| {
                    let target = format!("{PREFIX}{tool}");
                    log.iter()
                        .find(|l| l["method"] == "tools/call" && l["target"] == target.as_str())
                        .cloned()
                })
                .collect();
            let answers: Vec<Value> = log.into_iter().filter(is_response).collect();
            (calls.len() == TOOLS.len() && answers.len() >= n).then_some((calls, answers))
        },
    )
    .await;
    for call in &calls {
        assert_eq!(call["server"], SERVER, "{call}");
        assert_eq!(call["status"], 200, "{call}");
    }
    assert_eq!(
        answers.len(),
        n,
        "one response per relayed request: {answers:#?}"
    );
    for line in &answers {
        assert_eq!(
            line["server"], SERVER,
            "answer routed to the upstream: {line}"
        );
        assert_eq!(
            line["status"], 202,
            "the upstream accepted the answer: {line}"
        );
        assert_eq!(line["outcome"], "ok", "{line}");
        assert!(line["error"].is_null(), "{line}");
    }
}

/// Runs `interactive_client.py` against `url` (bounded) and returns its JSON.
async fn run_interactive_client(url: &str, prompt: &str, message: &str) -> Value {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(repo().join("tests/peers/python/interactive_client.py"))
        .arg(url)
        .args(["--prefix", PREFIX, "--prompt", prompt, "--message", message])
        .args([
            "--mode",
            "legacy",
            "--timeout",
            &TIMEOUT.as_secs().to_string(),
        ])
        .kill_on_drop(true);
    let out = tokio::time::timeout(TIMEOUT * 2, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("interactive_client.py timed out against {url}"))
        .expect("run interactive_client.py");
    assert!(
        out.status.success(),
        "interactive_client.py failed against {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "interactive_client.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The only text content of a CallToolResult as the client printed it (camelCase JSON),
/// checking the call is not an error.
fn only_text(result: &Value, what: &str) -> String {
    assert_ne!(result["isError"], true, "{what} failed: {result}");
    let content = result["content"].as_array().expect("content");
    assert_eq!(content.len(), 1, "{what}: {result}");
    content[0]["text"]
        .as_str()
        .expect("text content")
        .to_owned()
}

/// A relayed id as a client saw it: a string the gateway issued.
fn assert_relayed(id: &Value, what: &str) -> String {
    let id = id
        .as_str()
        .unwrap_or_else(|| panic!("{what} id is not a string: {id}"));
    assert!(
        id.starts_with(RELAYED) && id.len() > RELAYED.len() + 16,
        "{what} id was not rewritten by the gateway: {id}"
    );
    id.to_owned()
}

#[tokio::test]
async fn python_sdk_client_answers_sampling_and_elicitation_through_a_prefixed_gateway() {
    let (_upstream, sluice) = gateway().await;
    let prompt = "python asks through sluice";
    let message = "python, who are you?";
    let out = run_interactive_client(&sluice.url(GATEWAY), prompt, message).await;

    assert_eq!(
        only_text(&out["sampling"], "test_sampling"),
        sampled(prompt)
    );
    assert_elicited(&only_text(&out["elicitation"], "test_elicitation"));
    assert_eq!(
        only_text(&out["progress"], "test_tool_with_progress"),
        "Tool with progress executed successfully"
    );
    assert_eq!(out["progress_values"], json!([0.0, 50.0, 100.0]), "{out}");

    // The client saw one request of each kind, with the upstream's content and relayed ids.
    let sampling = out["sampling_requests"].as_array().expect("list");
    let elicitation = out["elicitation_requests"].as_array().expect("list");
    assert_eq!(sampling.len(), 1, "{out}");
    assert_eq!(elicitation.len(), 1, "{out}");
    assert_eq!(sampling[0]["text"], prompt);
    assert_eq!(elicitation[0]["message"], message);
    let a = assert_relayed(&sampling[0]["id"], "sampling/createMessage");
    let b = assert_relayed(&elicitation[0]["id"], "elicitation/create");
    assert_ne!(a, b, "every relayed request gets its own id");

    assert_answers_routed(&sluice, 2).await;
}

/// An rmcp client that samples, elicits and records what it was asked.
#[derive(Clone)]
struct Answering {
    /// (id, last message text) of each sampling/createMessage.
    sampling: Arc<Mutex<Vec<(RequestId, String)>>>,
    /// (id, message) of each elicitation/create.
    elicitation: Arc<Mutex<Vec<(RequestId, String)>>>,
    /// Every progress notification, in arrival order.
    progress: mpsc::UnboundedSender<ProgressNotificationParam>,
}

// Sampling is deprecated by SEP-2577 in rmcp, and exactly what this test relays.
#[allow(deprecated)]
impl ClientHandler for Answering {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder()
                .enable_sampling()
                .enable_elicitation()
                .build(),
            Implementation::new("sluice-relay-test", "1.0.0"),
        )
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let text: String = params
            .messages
            .last()
            .map(|m| {
                m.content
                    .clone()
                    .into_vec()
                    .iter()
                    .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                    .collect()
            })
            .unwrap_or_default();
        self.sampling
            .lock()
            .expect("lock")
            .push((context.id, text.clone()));
        Ok(CreateMessageResult::new(
            SamplingMessage::new(
                Role::Assistant,
                SamplingMessageContentBlock::text(format!("sampled:{text}")),
            ),
            "sluice-relay-test".to_owned(),
        )
        .with_stop_reason(CreateMessageResult::STOP_REASON_END_TURN))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let message = match request {
            ElicitRequestParams::FormElicitationParams { message, .. }
            | ElicitRequestParams::UrlElicitationParams { message, .. } => message,
            _ => String::new(),
        };
        self.elicitation
            .lock()
            .expect("lock")
            .push((context.id, message));
        Ok(ElicitResult::new(ElicitationAction::Accept)
            .with_content(json!({ "username": USERNAME, "email": EMAIL })))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.progress.send(params);
    }
}

/// Calls a tool and returns (its text, the progress token rmcp gave the request).
async fn rmcp_call(
    client: &rmcp::service::RunningService<RoleClient, Answering>,
    name: &str,
    args: Value,
) -> (String, ProgressToken) {
    let Value::Object(args) = args else {
        panic!("tool arguments must be an object")
    };
    let request: ClientRequest =
        CallToolRequest::new(CallToolRequestParams::new(name.to_owned()).with_arguments(args))
            .into();
    let handle = client
        .send_request_with_option(request, PeerRequestOptions::with_timeout(TIMEOUT))
        .await
        .unwrap_or_else(|e| panic!("send tools/call {name}: {e}"));
    let token = handle.progress_token.clone();
    let result = match handle.await_response().await {
        Ok(ServerResult::CallToolResult(r)) => r,
        other => panic!("tools/call {name}: {other:?}"),
    };
    assert_ne!(result.is_error, Some(true), "{name} failed: {result:?}");
    assert_eq!(result.content.len(), 1, "{name}: {result:?}");
    let text = result.content[0]
        .as_text()
        .unwrap_or_else(|| panic!("{name}: no text content: {result:?}"))
        .text
        .clone();
    (text, token)
}

fn assert_relayed_rmcp(id: &RequestId, what: &str) -> String {
    match id {
        NumberOrString::String(s) => assert_relayed(&json!(s.as_ref()), what),
        NumberOrString::Number(n) => panic!("{what} id was not rewritten by the gateway: {n}"),
    }
}

#[tokio::test]
async fn rust_sdk_client_answers_sampling_and_elicitation_through_a_prefixed_gateway() {
    let (_upstream, sluice) = gateway().await;
    harness::ensure_crypto();
    let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
    let handler = Answering {
        sampling: Arc::default(),
        elicitation: Arc::default(),
        progress: progress_tx,
    };
    let transport = rmcp::transport::StreamableHttpClientTransport::from_config(
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            sluice.url(GATEWAY),
        ),
    );
    let client = tokio::time::timeout(TIMEOUT, handler.clone().serve(transport))
        .await
        .expect("rmcp connects in time")
        .expect("rmcp connects to the gateway");

    let prompt = "rust asks through sluice";
    let message = "rust, who are you?";
    let (text, _) = rmcp_call(
        &client,
        &format!("{PREFIX}test_sampling"),
        json!({ "prompt": prompt }),
    )
    .await;
    assert_eq!(text, sampled(prompt));
    let (text, _) = rmcp_call(
        &client,
        &format!("{PREFIX}test_elicitation"),
        json!({ "message": message }),
    )
    .await;
    assert_elicited(&text);
    let (text, token) = rmcp_call(
        &client,
        &format!("{PREFIX}test_tool_with_progress"),
        json!({}),
    )
    .await;
    assert_eq!(text, "Tool with progress executed successfully");

    // rmcp hands each notification to its own task, so the last may land after the result.
    let mut progress = Vec::new();
    while progress.len() < 3 {
        let p = tokio::time::timeout(TIMEOUT, progress_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("3 progress notifications, got {progress:?}"))
            .expect("the handler lives");
        progress.push(p);
    }
    assert!(
        progress.iter().all(|p| p.progress_token == token),
        "progress of the progress call only: {progress:?}"
    );
    let values: Vec<f64> = progress.iter().map(|p| p.progress).collect();
    assert_eq!(values, [0.0, 50.0, 100.0]);
    assert!(
        progress.iter().all(|p| p.total == Some(100.0)),
        "{progress:?}"
    );

    let sampling = handler.sampling.lock().expect("lock").clone();
    let elicitation = handler.elicitation.lock().expect("lock").clone();
    assert_eq!(sampling.len(), 1, "{sampling:?}");
    assert_eq!(elicitation.len(), 1, "{elicitation:?}");
    assert_eq!(sampling[0].1, prompt);
    assert_eq!(elicitation[0].1, message);
    let a = assert_relayed_rmcp(&sampling[0].0, "sampling/createMessage");
    let b = assert_relayed_rmcp(&elicitation[0].0, "elicitation/create");
    assert_ne!(a, b, "every relayed request gets its own id");

    assert_answers_routed(&sluice, 2).await;
    client.cancel().await.expect("close");
}
