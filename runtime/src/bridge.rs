//! The stdio-to-Streamable-HTTP bridge: one stdio MCP server process served at `/mcp`.
//!
//! Most MCP servers speak only stdio, one session per process. The bridge runs the process,
//! holds that one session, and lets many HTTP clients share it: each client gets its own
//! `Mcp-Session-Id`, requests are multiplexed over the child's stdin with bridge-assigned ids,
//! answers come back by id (as JSON, or as SSE carrying the request's progress first), and the
//! child's unsolicited notifications and requests go out on the clients' GET streams. The child
//! lives in its own process group; it is restarted with backoff when it dies (`restart`), or the
//! bridge reports that it exited. `sluice bridge` and the local runtime both use this type.
//!
//! Modules, in the order a request meets them: `http` (the endpoint), `message` (envelopes and
//! id splicing), `mux` (in-flight tables, sessions, routing the child's output), `child` (the
//! process and its restarts), `sse` (response bodies).

mod child;
mod http;
pub(crate) mod message;
mod mux;
mod sse;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use message::MessageError;
use mux::{ChildState, Shared};

/// How to run and serve one stdio MCP server.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Name used as the log prefix of the child's stderr (and in errors).
    pub name: String,
    /// The program to run.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables (the bridge's own environment is inherited).
    pub env: Vec<(String, String)>,
    /// Working directory of the child (default: the bridge's).
    pub cwd: Option<PathBuf>,
    /// Restart the child when it exits (else the bridge reports the exit and stops).
    pub restart: bool,
    /// Longest line accepted from the child's stdout, and largest HTTP request body.
    pub max_message_bytes: usize,
    /// Longest stderr line logged (the rest of the line is dropped).
    pub max_log_line_bytes: usize,
    /// Requests to the child awaiting their answer, over all clients.
    pub max_in_flight: usize,
    /// Client sessions kept; the least recently used one is forgotten beyond this.
    pub max_sessions: usize,
    /// Open HTTP connections.
    pub max_connections: usize,
    /// How long a request waits for its answer.
    pub request_timeout: Duration,
    /// How long a request waits for a (re)starting child, and the re-initialize bound.
    pub start_timeout: Duration,
    /// Between SIGTERM and SIGKILL of the child's process group.
    pub stop_grace: Duration,
    /// First restart delay (doubling, jittered, up to `backoff_cap`).
    pub backoff_base: Duration,
    /// Longest restart delay.
    pub backoff_cap: Duration,
    /// Recent stderr lines kept for [`Bridge::logs`].
    pub log_lines: usize,
}

impl BridgeConfig {
    /// Defaults for running `command args…`.
    pub fn new(name: impl Into<String>, command: impl Into<String>, args: Vec<String>) -> Self {
        BridgeConfig {
            name: name.into(),
            command: command.into(),
            args,
            env: Vec::new(),
            cwd: None,
            restart: false,
            max_message_bytes: 16 << 20,
            max_log_line_bytes: 8 << 10,
            max_in_flight: 1024,
            max_sessions: 4096,
            max_connections: 1024,
            request_timeout: Duration::from_secs(300),
            start_timeout: Duration::from_secs(30),
            stop_grace: Duration::from_secs(5),
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(30),
            log_lines: 200,
        }
    }
}

/// Errors of the bridge, each mapped to an HTTP status and a JSON-RPC error in `http`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        reason: String,
    },
    /// The child could not be started.
    #[error("cannot start the MCP server `{command}`: {reason}")]
    Spawn {
        /// The program.
        command: String,
        /// The OS error.
        reason: String,
    },
    /// The child exited and is not restarted; in-flight requests get this too.
    #[error("the MCP server process exited ({0})")]
    Exited(String),
    /// The child is not running (starting or restarting) and did not come up in time.
    #[error("the MCP server process is not running (it is being restarted)")]
    NotRunning,
    /// The child did not answer in time.
    #[error("the MCP server did not answer within {0:?}")]
    Timeout(Duration),
    /// Too many requests in flight.
    #[error("too many requests in flight (limit {0})")]
    Overloaded(usize),
    /// The bridge is shutting down.
    #[error("the bridge is shutting down")]
    ShuttingDown,
}

/// Where the child stands, for status reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BridgeStatus {
    /// Starting or restarting.
    Starting,
    /// Running (and initialized again after a restart, if a client had initialized it).
    Running {
        /// The child's pid.
        pid: u32,
        /// Restarts so far.
        restarts: u64,
    },
    /// Exited for good, with the reason.
    Exited(String),
}

/// A running bridge: the HTTP endpoint and the supervised child.
///
/// Dropping it stops serving and SIGKILLs the child's process group; [`Bridge::shutdown`]
/// stops the child gracefully first.
#[derive(Debug)]
pub struct Bridge {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
    supervisor: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Bridge {
    /// Binds `listen`, starts the child, and serves.
    pub async fn start(config: BridgeConfig, listen: SocketAddr) -> Result<Bridge, BridgeError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| BridgeError::Listen {
                addr: listen,
                reason: e.to_string(),
            })?;
        let addr = listener.local_addr().map_err(|e| BridgeError::Listen {
            addr: listen,
            reason: e.to_string(),
        })?;
        let shared = Arc::new(Shared::new(config, addr));
        let (stop, stop_rx) = watch::channel(false);
        let supervisor = tokio::spawn(child::supervise(shared.clone(), stop_rx));
        let server = tokio::spawn(http::serve(shared.clone(), listener));
        Ok(Bridge {
            shared,
            addr,
            server,
            supervisor: Some(supervisor),
            stop,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The MCP endpoint.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Resolves when the child has exited for good (without `restart`, or it could not be
    /// started), with the reason.
    pub async fn exited(&self) -> BridgeError {
        let mut rx = self.shared.state.subscribe();
        loop {
            if let ChildState::Exited(e) = &*rx.borrow_and_update() {
                return e.clone();
            }
            if rx.changed().await.is_err() {
                return BridgeError::ShuttingDown;
            }
        }
    }

    /// Waits (at most the start timeout) until the child runs; the error says why it does not.
    pub async fn wait_running(&self) -> Result<(), BridgeError> {
        self.shared.running().await.map(|_| ())
    }

    /// Where the child stands.
    pub fn status(&self) -> BridgeStatus {
        self.shared.status()
    }

    /// The child's most recent stderr lines, oldest first.
    pub fn logs(&self) -> Vec<String> {
        self.shared.logs()
    }

    /// Stops taking requests and waits (at most `bound`) until every open connection has
    /// finished its current response: after the child exited for good, the error answers of
    /// its requests in flight reach their clients before the process exits.
    pub async fn drain(&self, bound: Duration) {
        let _ = self.shared.draining.send(true);
        let all = u32::try_from(self.shared.config.max_connections).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(bound, self.shared.connections.acquire_many(all)).await;
    }

    /// Stops the child (SIGTERM to its process group, SIGKILL after the grace period) and the
    /// endpoint.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.await;
        }
        self.server.abort();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Aborting the supervisor drops its process-group guard, which SIGKILLs the group.
        if let Some(supervisor) = &self.supervisor {
            supervisor.abort();
        }
        self.server.abort();
    }
}

/// A bounded buffer of recent log lines.
#[derive(Debug)]
pub(crate) struct LogRing {
    lines: VecDeque<String>,
    cap: usize,
}

impl LogRing {
    pub(crate) fn new(cap: usize) -> Self {
        LogRing {
            lines: VecDeque::with_capacity(cap.min(1024)),
            cap,
        }
    }

    pub(crate) fn push(&mut self, line: String) {
        if self.cap == 0 {
            return;
        }
        if self.lines.len() == self.cap {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    pub(crate) fn snapshot(&self) -> Vec<String> {
        self.lines.iter().cloned().collect()
    }
}
