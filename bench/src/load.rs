//! The MCP-aware load generator.
//!
//! A run has two phases. [`Prepared::connect`] opens the connections and the MCP sessions
//! (`initialize`, `notifications/initialized`), lists the target's tools once to find the tool
//! to call under the name the target gives it (a gateway prefixes it), and builds every request
//! body up front. [`Prepared::run`] then drives the mix for a bounded time, closed loop (each
//! connection sends its next request when the previous answer is in) or open loop (a fixed
//! rate, latencies corrected for coordinated omission, see [`latency`]), and can be called
//! again on the same sessions — a warm-up, then the measured window.

pub mod latency;
pub mod mix;
pub mod progress;
pub mod report;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::Value;

use crate::client::{Connection, Failure, Reply, Target};
use crate::mcp::{self, Outcome};
use latency::{Pacer, Recorder};
use mix::{Mix, Op};

/// What to send, how much and how fast.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent connections, each with one request in flight.
    pub connections: usize,
    /// MCP sessions opened before the run and used in turn; 0 sends requests without one.
    pub sessions: usize,
    /// Open-loop rate in requests per second; `None` is closed loop.
    pub rate: Option<f64>,
    pub mix: Mix,
    /// The tool to call, as the upstream names it (a gateway's `server__` prefix is found).
    pub tool: String,
    /// Size of the `text` argument of each `tools/call`.
    pub argument_bytes: usize,
    /// Ask for progress notifications (`_meta.progressToken`).
    pub progress: bool,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for LoadSpec {
    fn default() -> Self {
        Self {
            connections: 32,
            sessions: 32,
            rate: None,
            mix: Mix::default(),
            tool: "echo".into(),
            argument_bytes: 64,
            progress: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why a request failed, as counted in results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    Connect,
    Timeout,
    Transport,
    /// HTTP 429 (a rate limit).
    Http429,
    Http4xx,
    Http5xx,
    /// HTTP 2xx carrying a JSON-RPC error.
    JsonRpc,
    /// HTTP 2xx whose body is no JSON-RPC response.
    Malformed,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Transport => "transport",
            ErrorKind::Http429 => "http_429",
            ErrorKind::Http4xx => "http_4xx",
            ErrorKind::Http5xx => "http_5xx",
            ErrorKind::JsonRpc => "jsonrpc_error",
            ErrorKind::Malformed => "malformed",
        }
    }

    fn of_failure(failure: &Failure) -> Self {
        match failure {
            Failure::Connect(_) => ErrorKind::Connect,
            Failure::Timeout => ErrorKind::Timeout,
            Failure::Transport(_) => ErrorKind::Transport,
        }
    }

    /// `None` for a successful answer.
    fn of_reply(reply: &Reply, outcome: Outcome) -> Option<Self> {
        let status = reply.status;
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Some(ErrorKind::Http429);
        }
        if status.is_client_error() {
            return Some(ErrorKind::Http4xx);
        }
        if !status.is_success() {
            return Some(ErrorKind::Http5xx);
        }
        match outcome {
            Outcome::Result => None,
            Outcome::Error => Some(ErrorKind::JsonRpc),
            Outcome::Message | Outcome::Malformed => Some(ErrorKind::Malformed),
        }
    }
}

/// What one [`Prepared::run`] measured.
pub struct RunResult {
    /// Requests that got an HTTP answer (successful or not).
    pub answered: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Requests and notifications received on SSE answers before the response.
    pub messages: u64,
    /// From the start to the last answer.
    pub elapsed: Duration,
    pub latency: Recorder,
    /// Whether latencies were corrected against an open-loop schedule.
    pub open_loop: bool,
}

/// Connections with open sessions and pre-built requests, ready to run.
pub struct Prepared {
    connections: Vec<Connection>,
    sessions: Arc<Vec<Option<HeaderValue>>>,
    /// The tool's name at this target.
    pub tool: Option<String>,
    /// Request bodies per worker, indexed by [`Op`].
    bodies: Vec<[Bytes; 3]>,
    cycle: Arc<Vec<Op>>,
    spec: LoadSpec,
    /// Time the sessions took to open.
    pub session_setup: Duration,
}

impl Prepared {
    /// Opens the connections and sessions and finds the tool.
    pub async fn connect(target: &Target, spec: &LoadSpec) -> Result<Self> {
        if spec.connections == 0 {
            bail!("at least one connection is needed");
        }
        let cycle = spec.mix.cycle()?;
        let started = Instant::now();
        let per_connection: Vec<Vec<usize>> = (0..spec.connections)
            .map(|w| (w..spec.sessions).step_by(spec.connections).collect())
            .collect();
        let mut tasks = Vec::new();
        for indices in per_connection {
            let mut connection = Connection::new(target.clone(), spec.timeout);
            tasks.push(tokio::spawn(async move {
                let mut opened = Vec::with_capacity(indices.len());
                for i in indices {
                    let id = open_session(&mut connection, i as u64)
                        .await
                        .with_context(|| format!("opening session {i}"))?;
                    opened.push((i, id));
                }
                anyhow::Ok((connection, opened))
            }));
        }
        let mut connections = Vec::with_capacity(spec.connections);
        let mut sessions = vec![None; spec.sessions];
        for task in tasks {
            let (connection, opened) = task.await.context("a session task panicked")??;
            connections.push(connection);
            for (i, id) in opened {
                sessions[i] = id;
            }
        }
        let session_setup = started.elapsed();

        let needs_tool = spec.mix.call > 0;
        let tool = if needs_tool {
            Some(
                find_tool(
                    &mut connections[0],
                    sessions.first().cloned().flatten().as_ref(),
                    &spec.tool,
                )
                .await?,
            )
        } else {
            None
        };
        let bodies = (0..spec.connections)
            .map(|w| {
                let id = 1_000_000 + w as u64;
                [
                    tool.as_deref()
                        .map(|t| mcp::tools_call(id, t, spec.argument_bytes, spec.progress))
                        .unwrap_or_default(),
                    mcp::tools_list(id),
                    mcp::ping(id),
                ]
            })
            .collect();
        Ok(Self {
            connections,
            sessions: Arc::new(sessions),
            tool,
            bodies,
            cycle: Arc::new(cycle),
            spec: spec.clone(),
            session_setup,
        })
    }

    /// Number of sessions that got an id from the target (0 for stateless servers).
    pub fn stateful_sessions(&self) -> usize {
        self.sessions.iter().filter(|s| s.is_some()).count()
    }

    /// Drives the mix for `duration`; `live` counts answers as they come, for a progress line.
    pub async fn run(
        &mut self,
        duration: Duration,
        live: Option<Arc<progress::Live>>,
    ) -> Result<RunResult> {
        let workers = self.connections.len();
        let start = Instant::now() + Duration::from_millis(1);
        let deadline = start + duration;
        let mut tasks = Vec::with_capacity(workers);
        for (w, connection) in self.connections.drain(..).enumerate() {
            let pacer = self.spec.rate.map(|rate| {
                Pacer::new(
                    start,
                    Duration::from_secs_f64(w as f64 / rate),
                    Duration::from_secs_f64(workers as f64 / rate),
                )
            });
            let worker = Worker {
                index: w,
                workers,
                connection,
                sessions: self.sessions.clone(),
                bodies: self.bodies[w].clone(),
                cycle: self.cycle.clone(),
                pacer,
                live: live.clone(),
            };
            tasks.push(tokio::spawn(worker.run(start, deadline)));
        }
        let mut result = RunResult {
            answered: 0,
            errors: BTreeMap::new(),
            messages: 0,
            elapsed: Duration::ZERO,
            latency: Recorder::default(),
            open_loop: self.spec.rate.is_some(),
        };
        let mut last = start;
        for task in tasks {
            let (connection, done) = task.await.context("a load worker panicked")?;
            self.connections.push(connection);
            result.answered += done.answered;
            result.messages += done.messages;
            for (kind, n) in done.errors {
                *result.errors.entry(kind).or_default() += n;
            }
            result.latency.merge(&done.latency);
            last = last.max(done.last);
        }
        result.elapsed = last.saturating_duration_since(start);
        Ok(result)
    }
}

/// `initialize` then `notifications/initialized`; the session id, if the target gave one.
async fn open_session(connection: &mut Connection, n: u64) -> Result<Option<HeaderValue>> {
    let reply = connection
        .post(mcp::initialize(n), None)
        .await
        .map_err(|f| anyhow!("initialize: {f}"))?;
    let answer = mcp::answer(&reply.body, reply.is_event_stream());
    if !reply.status.is_success() || answer.outcome != Outcome::Result {
        bail!(
            "initialize answered HTTP {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)])
        );
    }
    let session = reply.headers.get(crate::client::MCP_SESSION_ID).cloned();
    let reply = connection
        .post(mcp::initialized(), session.as_ref())
        .await
        .map_err(|f| anyhow!("notifications/initialized: {f}"))?;
    if !reply.status.is_success() {
        bail!("notifications/initialized answered HTTP {}", reply.status);
    }
    Ok(session)
}

/// Lists the tools and picks `tool` or `{server}__{tool}`.
async fn find_tool(
    connection: &mut Connection,
    session: Option<&HeaderValue>,
    tool: &str,
) -> Result<String> {
    let reply = connection
        .post(mcp::tools_list(1), session)
        .await
        .map_err(|f| anyhow!("tools/list: {f}"))?;
    let json = if reply.is_event_stream() {
        let mut last = None;
        mcp::each_event_data(&reply.body, |data| last = Some(data.to_vec()));
        last.ok_or_else(|| anyhow!("tools/list answered an empty event stream"))?
    } else {
        reply.body.to_vec()
    };
    let value: Value = serde_json::from_slice(&json).with_context(|| {
        format!(
            "tools/list answered HTTP {} with no JSON-RPC response",
            reply.status
        )
    })?;
    let tools = value["result"]["tools"]
        .as_array()
        .ok_or_else(|| anyhow!("tools/list answered {}", truncate(&value.to_string(), 300)))?;
    let suffix = format!("__{tool}");
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    names
        .iter()
        .find(|n| **n == tool || n.ends_with(&suffix))
        .map(|n| n.to_string())
        .ok_or_else(|| {
            anyhow!(
                "the target lists no tool '{tool}' (nor '*{suffix}'); it has {}",
                truncate(&names.join(", "), 200)
            )
        })
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

struct Worker {
    index: usize,
    workers: usize,
    connection: Connection,
    sessions: Arc<Vec<Option<HeaderValue>>>,
    bodies: [Bytes; 3],
    cycle: Arc<Vec<Op>>,
    pacer: Option<Pacer>,
    live: Option<Arc<progress::Live>>,
}

/// What one worker counted.
struct Tally {
    answered: u64,
    messages: u64,
    errors: BTreeMap<ErrorKind, u64>,
    latency: Recorder,
    last: Instant,
}

impl Worker {
    async fn run(mut self, start: Instant, deadline: Instant) -> (Connection, Tally) {
        let mut done = Tally {
            answered: 0,
            messages: 0,
            errors: BTreeMap::new(),
            latency: Recorder::default(),
            last: start,
        };
        tokio::time::sleep_until(start.into()).await;
        let mut k = 0usize;
        loop {
            let intended = self.pacer.as_mut().map(Pacer::next_intended);
            let now = Instant::now();
            if intended.unwrap_or(now) >= deadline || now >= deadline {
                break;
            }
            if let Some(at) = intended
                && at > now
            {
                tokio::time::sleep_until(at.into()).await;
            }
            let op = self.cycle[(self.index + k) % self.cycle.len()];
            let session = if self.sessions.is_empty() {
                None
            } else {
                self.sessions[(self.index + k * self.workers) % self.sessions.len()].as_ref()
            };
            k += 1;
            let body = self.bodies[op as usize].clone();
            let sent = Instant::now();
            let reply = self.connection.post(body, session).await;
            let finished = Instant::now();
            done.last = finished;
            let error = match reply {
                Ok(reply) => {
                    done.answered += 1;
                    done.latency.record(intended, sent, finished);
                    let answer = mcp::answer(&reply.body, reply.is_event_stream());
                    done.messages += u64::from(answer.messages);
                    ErrorKind::of_reply(&reply, answer.outcome)
                }
                Err(failure) => Some(ErrorKind::of_failure(&failure)),
            };
            if let Some(kind) = error {
                *done.errors.entry(kind).or_default() += 1;
            }
            if let Some(live) = &self.live {
                live.count(error.is_some());
            }
        }
        (self.connection, done)
    }
}
