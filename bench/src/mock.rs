//! `sluice-bench mock-upstream`: a fast MCP server to put behind the system under test.
//!
//! Two modes, as real servers come: `json` answers each POST with one `application/json`
//! response and may run without sessions; `sse` answers with a `text/event-stream` (optional
//! progress notifications first, then the response) and requires the session it issued. Its
//! answers are pre-serialised ([`catalog::Answers`]) and a request is parsed only as far as
//! `id`, `method`, `params.name` and `params._meta.progressToken`; arguments are skipped.
//! Faults are deterministic: with `error_rate = 0.01` exactly every 100th `tools/call` fails
//! with HTTP 500, so two runs inject the same errors.
//!
//! `sessions` makes a `json` mock issue and require sessions too (as `sse` always does).
//! `modern` makes it speak MCP 2026-07-28 as well: a request whose `MCP-Protocol-Version`
//! header names that revision needs no session; its `params._meta` envelope and its `Mcp-Method`
//! / `Mcp-Name` headers are checked against the body, and it may ask `server/discover`,
//! `tools/list` and `tools/call`, whose results carry the revision's `resultType`. Without it
//! the mock is of the handshake era only, and such a request is served (or refused) as any
//! other.

pub mod catalog;

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{self, Poll};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::ValueEnum;
use futures_util::stream::{self, StreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::net::TcpListener;

use catalog::Answers;

/// The header naming a request's protocol revision.
const VERSION_HEADER: &str = "mcp-protocol-version";

/// Largest request body the mock reads.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// How the mock answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Stateless; every answer is one JSON body.
    Json,
    /// Sessions; every answer is an SSE stream.
    Sse,
}

/// What the mock serves and how: the flags of `mock-upstream` and, with the same names and
/// defaults, a scenario's `[upstream]` table, which `compare` turns back into flags
/// ([`Behaviour::to_args`]).
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Behaviour {
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    #[arg(long, value_enum, default_value_t = Mode::Json)]
    pub mode: Mode,
    /// Number of tools (the first is `echo`).
    #[arg(long, default_value_t = 10)]
    pub tools: usize,
    /// Size of the text in each `tools/call` result.
    #[arg(long, default_value_t = 64)]
    pub response_bytes: usize,
    /// Added before each answer.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    #[serde(with = "crate::scenario::human")]
    pub latency: Duration,
    /// Fraction of `tools/call`s answered with HTTP 500 (every 1/rate-th one).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Progress notifications sent before a streamed result (SSE mode, when the call has a
    /// progress token).
    #[arg(long, default_value_t = 0)]
    pub progress_events: u32,
    /// Pause between streamed progress notifications.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    #[serde(with = "crate::scenario::human")]
    pub progress_interval: Duration,
    /// Issue and require sessions in `json` mode too (`sse` mode always does).
    #[arg(long)]
    pub sessions: bool,
    /// Also speak MCP 2026-07-28: answer `server/discover`, and serve requests carrying the
    /// revision's envelope without a session.
    #[arg(long)]
    pub modern: bool,
}

impl Default for Behaviour {
    /// The flags' defaults (a test keeps the two equal).
    fn default() -> Self {
        Self {
            threads: 1,
            mode: Mode::Json,
            tools: 10,
            response_bytes: 64,
            latency: Duration::ZERO,
            error_rate: 0.0,
            progress_events: 0,
            progress_interval: Duration::ZERO,
            sessions: false,
            modern: false,
        }
    }
}

impl Behaviour {
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            bail!(
                "error_rate must be between 0 and 1, not {}",
                self.error_rate
            );
        }
        if self.tools == 0 {
            bail!("tools must be at least 1 (the first tool is `echo`)");
        }
        if self.threads == 0 {
            bail!("threads must be at least 1");
        }
        Ok(())
    }

    /// The `mock-upstream` flags that reproduce this behaviour.
    pub fn to_args(&self) -> Vec<String> {
        let mode = self
            .mode
            .to_possible_value()
            .expect("no variant is skipped");
        let duration = |d: Duration| humantime::format_duration(d).to_string();
        [
            ("--threads", self.threads.to_string()),
            ("--mode", mode.get_name().to_string()),
            ("--tools", self.tools.to_string()),
            ("--response-bytes", self.response_bytes.to_string()),
            ("--latency", duration(self.latency)),
            ("--error-rate", self.error_rate.to_string()),
            ("--progress-events", self.progress_events.to_string()),
            ("--progress-interval", duration(self.progress_interval)),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .chain(self.sessions.then(|| "--sessions".to_string()))
        .chain(self.modern.then(|| "--modern".to_string()))
        .collect()
    }

    /// Whether the mock issues sessions and requires them on handshake-era requests.
    pub fn stateful(&self) -> bool {
        self.mode == Mode::Sse || self.sessions
    }
}

/// `sluice-bench mock-upstream` options.
#[derive(Debug, Clone, clap::Args)]
pub struct MockOptions {
    /// Address to listen on; port 0 picks a free one. The chosen address is printed on the
    /// first line of stdout as `listening on ADDR`.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub behaviour: Behaviour,
    /// A JWKS file served at `/jwks.json` (for gateway-auth scenarios).
    #[arg(long)]
    pub jwks: Option<PathBuf>,
}

/// Runs the mock until the process is killed.
pub fn run(options: MockOptions) -> Result<()> {
    options.behaviour.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.behaviour.threads)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(options))
}

async fn serve(options: MockOptions) -> Result<()> {
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("listening on {}", options.listen))?;
    let jwks = match &options.jwks {
        Some(path) => Some(Bytes::from(
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )),
        None => None,
    };
    let state = Arc::new(State::new(options.behaviour, jwks));
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", listener.local_addr()?)?;
    stdout.flush()?;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors, say: keep serving the connections we have.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(state.handle(request).await) }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

struct State {
    behaviour: Behaviour,
    answers: Answers,
    error_every: u64,
    calls: AtomicU64,
    sessions: RwLock<HashSet<u64>>,
    next_session: AtomicU64,
    jwks: Option<Bytes>,
}

impl State {
    fn new(b: Behaviour, jwks: Option<Bytes>) -> Self {
        Self {
            answers: Answers::new(b.tools, b.response_bytes),
            error_every: if b.error_rate > 0.0 {
                (1.0 / b.error_rate).round().max(1.0) as u64
            } else {
                0
            },
            calls: AtomicU64::new(0),
            sessions: RwLock::new(HashSet::new()),
            next_session: AtomicU64::new(1),
            jwks,
            behaviour: b,
        }
    }
}

/// The parts of a JSON-RPC message the mock needs.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "_meta", borrow)]
    meta: Option<Meta<'a>>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(rename = "progressToken", borrow)]
    progress_token: Option<&'a RawValue>,
    /// The 2026-07-28 envelope's protocol version.
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow)]
    protocol_version: Option<Cow<'a, str>>,
    /// The 2026-07-28 envelope's client capabilities (only their presence is checked).
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities", borrow)]
    client_capabilities: Option<&'a RawValue>,
}

/// MCP 2026-07-28: a routing header disagrees with the body.
const HEADER_MISMATCH: i64 = -32020;

/// What a request is answered with, before framing.
enum Reply {
    Result(Bytes),
    Error(StatusCode, i64, &'static str),
}

impl State {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        match (request.method(), request.uri().path()) {
            (&Method::POST, "/mcp") => self.post(request).await,
            (&Method::DELETE, "/mcp") => {
                let id = session_of(request.headers());
                match id.filter(|id| self.sessions.write().expect("not poisoned").remove(id)) {
                    Some(_) => plain(StatusCode::OK, "session ended"),
                    None => plain(StatusCode::NOT_FOUND, "unknown session"),
                }
            }
            (&Method::GET, "/mcp") => {
                let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "no standalone stream");
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST, DELETE"));
                r
            }
            (&Method::GET, "/jwks.json") => match &self.jwks {
                Some(jwks) => {
                    let mut r = Response::new(full(jwks.clone()));
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    r
                }
                None => plain(StatusCode::NOT_FOUND, "no JWKS configured"),
            },
            _ => plain(StatusCode::NOT_FOUND, "the MCP endpoint is /mcp"),
        }
    }

    async fn post(&self, request: Request<Incoming>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "body over 8 MiB or broken"),
        };
        self.answer(&parts.headers, &body).await
    }

    /// Answers one POSTed message.
    async fn answer(&self, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
        let session = session_of(headers);
        // A request of the stateless revision, to a mock that speaks it.
        let modern = self.behaviour.modern
            && headers
                .get(VERSION_HEADER)
                .is_some_and(|v| v.as_bytes() == crate::mcp::MODERN_VERSION.as_bytes());
        let Ok(message) = serde_json::from_slice::<Message>(body) else {
            return self.frame(
                None,
                None,
                Reply::Error(StatusCode::BAD_REQUEST, -32700, "parse error"),
            );
        };
        let Some(method) = message.method.as_deref() else {
            // A response to a server-to-client request; the mock sends none, so just accept.
            return plain(StatusCode::ACCEPTED, "");
        };
        if method.starts_with("notifications/") {
            return plain(StatusCode::ACCEPTED, "");
        }
        let mut new_session = None;
        // A modern request has no session: its envelope says what a session would have.
        if !modern && method == "initialize" {
            if self.behaviour.stateful() {
                let id = self.next_session.fetch_add(1, Ordering::Relaxed);
                self.sessions.write().expect("not poisoned").insert(id);
                new_session = Some(id);
            }
        } else if !modern && self.behaviour.stateful() {
            match session {
                None => return plain(StatusCode::BAD_REQUEST, "Mcp-Session-Id required"),
                Some(id) if !self.sessions.read().expect("not poisoned").contains(&id) => {
                    return plain(StatusCode::NOT_FOUND, "unknown session");
                }
                Some(_) => {}
            }
        }
        let params = message.params.as_ref();
        let name = params.and_then(|p| p.name.as_deref());
        let reply = if modern {
            match modern_mismatch(headers, method, params) {
                Some(refusal) => refusal,
                None => match method {
                    "server/discover" => Reply::Result(self.answers.discover.clone()),
                    "tools/list" => Reply::Result(self.answers.modern_tools_list.clone()),
                    "tools/call" => self.call(name, true),
                    _ => Reply::Error(StatusCode::NOT_FOUND, -32601, "method not found"),
                },
            }
        } else {
            match method {
                "initialize" => Reply::Result(self.answers.initialize.clone()),
                "ping" => Reply::Result(self.answers.empty.clone()),
                "tools/list" => Reply::Result(self.answers.tools_list.clone()),
                "tools/call" => self.call(name, false),
                _ => Reply::Error(StatusCode::OK, -32601, "method not found"),
            }
        };
        if !self.behaviour.latency.is_zero() {
            tokio::time::sleep(self.behaviour.latency).await;
        }
        let progress = params
            .and_then(|p| p.meta.as_ref())
            .and_then(|m| m.progress_token)
            .map(|t| Bytes::copy_from_slice(t.get().as_bytes()));
        let mut response = self.frame(message.id, progress, reply);
        if let Some(id) = new_session {
            response.headers_mut().insert(
                "mcp-session-id",
                HeaderValue::from_str(&format!("mock-{id:016x}")).expect("hex is a valid header"),
            );
        }
        response
    }

    fn call(&self, name: Option<&str>, modern: bool) -> Reply {
        match name {
            Some(name) if self.answers.names.contains(name) => {}
            _ => return Reply::Error(StatusCode::OK, -32602, "unknown tool"),
        }
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if self.error_every > 0 && n.is_multiple_of(self.error_every) {
            return Reply::Error(
                StatusCode::INTERNAL_SERVER_ERROR,
                -32603,
                "injected upstream error",
            );
        }
        Reply::Result(if modern {
            self.answers.modern_call_result.clone()
        } else {
            self.answers.call_result.clone()
        })
    }

    /// Frames `reply` as JSON or as an SSE stream (progress notifications first).
    fn frame(
        &self,
        id: Option<&RawValue>,
        progress: Option<Bytes>,
        reply: Reply,
    ) -> Response<Body> {
        let (status, message) = envelope(id.map_or("null", RawValue::get), reply);
        let sse = self.behaviour.mode == Mode::Sse && status.is_success();
        let body = if sse {
            let events = match progress {
                Some(token) => progress_events(&token, self.behaviour.progress_events),
                None => Vec::new(),
            };
            sse_body(message, events, self.behaviour.progress_interval)
        } else {
            pieces(message.into())
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(if sse {
                "text/event-stream"
            } else {
                "application/json"
            }),
        );
        response
    }
}

/// Why a 2026-07-28 request is refused, if it is: its envelope is incomplete or disagrees with
/// the `MCP-Protocol-Version` header, or `Mcp-Method` / `Mcp-Name` disagree with the body (the
/// checks a server of the revision makes, in its order).
fn modern_mismatch(
    headers: &HeaderMap,
    method: &str,
    params: Option<&Params<'_>>,
) -> Option<Reply> {
    let meta = params.and_then(|p| p.meta.as_ref());
    let Some((version, Some(_))) = meta.and_then(|m| {
        m.protocol_version
            .as_deref()
            .map(|v| (v, m.client_capabilities))
    }) else {
        return Some(Reply::Error(
            StatusCode::BAD_REQUEST,
            -32602,
            "params._meta lacks the 2026-07-28 envelope",
        ));
    };
    let header = |name: &str| headers.get(name).map(HeaderValue::as_bytes);
    if header(VERSION_HEADER) != Some(version.as_bytes()) {
        return Some(Reply::Error(
            StatusCode::BAD_REQUEST,
            HEADER_MISMATCH,
            "MCP-Protocol-Version does not match the envelope",
        ));
    }
    if header("mcp-method") != Some(method.as_bytes()) {
        return Some(Reply::Error(
            StatusCode::BAD_REQUEST,
            HEADER_MISMATCH,
            "Mcp-Method does not match the method",
        ));
    }
    let name = params.and_then(|p| p.name.as_deref());
    if method == "tools/call" && header("mcp-name") != name.map(str::as_bytes) {
        return Some(Reply::Error(
            StatusCode::BAD_REQUEST,
            HEADER_MISMATCH,
            "Mcp-Name does not match the tool name",
        ));
    }
    None
}

/// `{"jsonrpc":"2.0","id":ID,"result":RESULT}` (or `"error"`) as three pieces, the
/// pre-serialised result shared, not copied.
fn envelope(id: &str, reply: Reply) -> (StatusCode, [Bytes; 3]) {
    let (status, key, value) = match reply {
        Reply::Result(result) => (StatusCode::OK, "result", result),
        Reply::Error(status, code, text) => (
            status,
            "error",
            Bytes::from(format!(r#"{{"code":{code},"message":"{text}"}}"#)),
        ),
    };
    let head = Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":{id},"{key}":"#));
    (status, [head, value, Bytes::from_static(b"}")])
}

/// `count` progress notifications for `token`, each one SSE event.
fn progress_events(token: &[u8], count: u32) -> Vec<Bytes> {
    let token = String::from_utf8_lossy(token);
    (1..=count)
        .map(|k| {
            Bytes::from(format!(
                "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\
                 \"params\":{{\"progressToken\":{token},\"progress\":{k},\"total\":{count}}}}}\n\n"
            ))
        })
        .collect()
}

/// The progress events, then `message` as the last event; `interval` apart when set (each
/// flushed on its own), else in one go.
fn sse_body(message: [Bytes; 3], progress: Vec<Bytes>, interval: Duration) -> Body {
    let mut last = vec![Bytes::from_static(b"event: message\ndata: ")];
    last.extend(message);
    last.push(Bytes::from_static(b"\n\n"));
    if interval.is_zero() || progress.is_empty() {
        return pieces(progress.into_iter().chain(last).collect());
    }
    // A pause before every event but the first; the last event's pieces go out together.
    let paused = std::iter::once(false).chain(std::iter::repeat(true));
    let mut frames: Vec<(bool, Bytes)> = paused.zip(progress).collect();
    frames.extend(
        last.into_iter()
            .enumerate()
            .map(|(k, piece)| (k == 0, piece)),
    );
    let frames = stream::iter(frames).then(move |(pause, piece)| async move {
        if pause {
            tokio::time::sleep(interval).await;
        }
        Ok::<_, Infallible>(Frame::data(piece))
    });
    BodyExt::boxed_unsync(StreamBody::new(frames))
}

/// A body of pre-built pieces with a known length. hyper writes them vectored, so a large
/// pre-serialised answer is never copied to join it to its envelope.
struct Pieces {
    parts: VecDeque<Bytes>,
    len: u64,
}

impl hyper::body::Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.parts.pop_front().map(|piece| Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

fn pieces(parts: VecDeque<Bytes>) -> Body {
    let len = parts.iter().map(|p| p.len() as u64).sum();
    BodyExt::boxed_unsync(Pieces { parts, len })
}

fn full(bytes: Bytes) -> Body {
    pieces(VecDeque::from([bytes]))
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r
}

/// The numeric part of a `mock-{hex}` session id.
fn session_of(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get("mcp-session-id")?.to_str().ok()?;
    u64::from_str_radix(value.strip_prefix("mock-")?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn collect(body: Body) -> Bytes {
        futures_util::FutureExt::now_or_never(body.collect())
            .expect("no pauses")
            .unwrap()
            .to_bytes()
    }

    #[test]
    fn envelopes_are_json_rpc() {
        let (status, message) = envelope("\"a\"", Reply::Result(Bytes::from_static(b"{}")));
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value =
            serde_json::from_slice(&collect(pieces(message.into()))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"jsonrpc": "2.0", "id": "a", "result": {}})
        );
        let (status, message) = envelope(
            "7",
            Reply::Error(StatusCode::INTERNAL_SERVER_ERROR, -32603, "x"),
        );
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let v: serde_json::Value =
            serde_json::from_slice(&collect(pieces(message.into()))).unwrap();
        assert_eq!(v["error"]["code"], -32603);
    }

    #[test]
    fn progress_comes_before_the_answer() {
        let (_, message) = envelope("1", Reply::Result(Bytes::from_static(b"{}")));
        let body = sse_body(message, progress_events(b"\"t\"", 3), Duration::ZERO);
        let bytes = collect(body);
        let answer = crate::mcp::answer(&bytes, true);
        assert_eq!(answer.messages, 3);
        assert_eq!(answer.outcome, crate::mcp::Outcome::Result);
    }

    #[test]
    fn the_defaults_are_the_flags_defaults_and_round_trip() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            behaviour: Behaviour,
        }
        use clap::Parser;
        assert_eq!(Cli::parse_from(["mock"]).behaviour, Behaviour::default());
        let custom = Behaviour {
            mode: Mode::Sse,
            latency: Duration::from_millis(3),
            error_rate: 0.01,
            progress_interval: Duration::from_micros(1500),
            sessions: true,
            modern: true,
            ..Behaviour::default()
        };
        let args = std::iter::once("mock".to_string()).chain(custom.to_args());
        assert_eq!(Cli::parse_from(args).behaviour, custom);
        let args = std::iter::once("mock".to_string()).chain(Behaviour::default().to_args());
        assert_eq!(Cli::parse_from(args).behaviour, Behaviour::default());
    }

    /// Sends one message to `state` and returns the status and the JSON answer.
    fn ask(state: &State, headers: &[(&'static str, &str)], body: &str) -> (StatusCode, Value) {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        let response = futures_util::FutureExt::now_or_never(state.answer(&map, body.as_bytes()))
            .expect("no latency configured");
        let status = response.status();
        let bytes = collect(response.into_body());
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    const MODERN_HEADERS: [(&str, &str); 3] = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
    ];
    const ENVELOPE: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;

    fn stateful(modern: bool) -> State {
        let b = Behaviour {
            sessions: true,
            modern,
            ..Behaviour::default()
        };
        State::new(b, None)
    }

    #[test]
    fn a_modern_mock_answers_discover_as_the_gateways_catalog_reads_it() {
        let state = stateful(true);
        let discover = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{{{ENVELOPE}}}}}"#
        );
        let headers = [MODERN_HEADERS[0], ("mcp-method", "server/discover")];
        let (status, v) = ask(&state, &headers, &discover);
        assert_eq!(status, StatusCode::OK, "{v}");
        // What the catalog refresh looks for: 2026-07-28 among the supported versions.
        let versions = v["result"]["supportedVersions"]
            .as_array()
            .expect("versions");
        assert!(versions.contains(&json!(crate::mcp::MODERN_VERSION)), "{v}");
        assert!(
            versions.contains(&json!(crate::mcp::PROTOCOL_VERSION)),
            "{v}"
        );
        assert_eq!(v["result"]["capabilities"]["tools"]["listChanged"], false);
        assert_eq!(v["result"]["resultType"], "complete");
        assert_eq!(v["id"], 1);
    }

    #[test]
    fn a_modern_call_needs_no_session_but_a_consistent_envelope() {
        let state = stateful(true);
        let call = |name: &str, meta: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"{name}","arguments":{{"text":"x"}},{meta}}}}}"#
            )
        };
        let (status, v) = ask(&state, &MODERN_HEADERS, &call("echo", ENVELOPE));
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["result"]["resultType"], "complete", "{v}");
        assert_eq!(v["result"]["isError"], false, "{v}");
        // The name header disagrees with the body.
        let spoofed = [MODERN_HEADERS[0], MODERN_HEADERS[1], ("mcp-name", "other")];
        let (status, v) = ask(&state, &spoofed, &call("echo", ENVELOPE));
        assert_eq!(
            (status, &v["error"]["code"]),
            (StatusCode::BAD_REQUEST, &json!(-32020))
        );
        // No client capabilities in the envelope.
        let bare = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}"#;
        let (status, v) = ask(&state, &MODERN_HEADERS, &call("echo", bare));
        assert_eq!(
            (status, &v["error"]["code"]),
            (StatusCode::BAD_REQUEST, &json!(-32602))
        );
        // A handshake-era call to the same mock still needs its session.
        let (status, _) = ask(&state, &[], &call("echo", r#""_meta":{}"#));
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_handshake_only_mock_refuses_discover_and_keeps_sessions() {
        let discover = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{{{ENVELOPE}}}}}"#
        );
        let headers = [MODERN_HEADERS[0], ("mcp-method", "server/discover")];
        // With sessions, a request without one is refused before its method is read.
        let (status, _) = ask(&stateful(false), &headers, &discover);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // Stateless, the method is unknown.
        let state = State::new(Behaviour::default(), None);
        let (status, v) = ask(&state, &headers, &discover);
        assert_eq!(
            (status, &v["error"]["code"]),
            (StatusCode::OK, &json!(-32601))
        );
        // A handshake session: initialize issues it, a call in it is answered in that era.
        let state = stateful(false);
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
        let mut map = HeaderMap::new();
        let response =
            futures_util::FutureExt::now_or_never(state.answer(&map, init.as_bytes())).unwrap();
        let id = response.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        map.insert("mcp-session-id", HeaderValue::from_str(&id).unwrap());
        let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo"}}"#;
        let response =
            futures_util::FutureExt::now_or_never(state.answer(&map, call.as_bytes())).unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let v: Value = serde_json::from_slice(&collect(response.into_body())).unwrap();
        assert!(v["result"].get("resultType").is_none(), "{v}");
    }
}
