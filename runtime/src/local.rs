//! The `local` backend: installations as child processes on this machine.
//!
//! Stdio servers run under an in-process [`Bridge`] on a loopback port. In-process rather than
//! a `sluice bridge` child: the runtime need not find its own binary, one process fewer per
//! installation, and `logs`/`status` read the bridge directly instead of parsing another
//! process's output; the server itself is still a separate process in its own group, so a
//! crashing server cannot take the control process down. HTTP servers run with an assigned
//! loopback port (`$PORT` and `{port}` in their arguments), are healthy once an MCP `initialize`
//! succeeds, and are restarted with jittered backoff. Removing an installation, or dropping
//! the runtime, kills its process group: no orphans.
//!
//! Each installation has its own slot, whose lock is held across a start (up to
//! `healthy_within`) and a stop: the same installation is never started twice at once, nor
//! started while it is being stopped, yet different installations start concurrently, so one
//! slow server does not hold up the others. `status` and `logs` never wait for a start: an
//! installation being started or stopped reports `Starting` and no logs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::bridge::{Bridge, BridgeConfig, BridgeStatus, LogRing};
use crate::installation::{
    Endpoint, InstallationSpec, InstallationStatus, RuntimeError, StartBounds, Transport,
};
use crate::lines::next_line;
use crate::process_group::{ProcessGroup, isolate};
use crate::{Runtime, until_true};

/// Installations as local child processes.
#[derive(Debug, Default)]
pub struct LocalRuntime {
    bounds: StartBounds,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

/// One installation's place: empty until it has started, locked while it starts or stops.
type Slot = tokio::sync::Mutex<Option<Installed>>;

#[derive(Debug)]
struct Installed {
    spec: InstallationSpec,
    endpoint: Endpoint,
    running: Running,
}

#[derive(Debug)]
enum Running {
    Stdio(Bridge),
    Http(HttpServer),
}

impl LocalRuntime {
    /// A runtime with these start bounds.
    pub fn new(bounds: StartBounds) -> LocalRuntime {
        LocalRuntime {
            bounds,
            slots: Default::default(),
        }
    }

    /// Stops every installation (SIGTERM, then SIGKILL after the grace period), after the
    /// starts in progress have finished.
    pub async fn shutdown(&self) {
        let all: Vec<Arc<Slot>> = lock(&self.slots).drain().map(|(_, s)| s).collect();
        for slot in all {
            let installed = slot.lock().await.take();
            if let Some(installed) = installed {
                installed.running.stop().await;
            }
        }
    }

    /// The slot of `name`, made if there is none.
    fn slot(&self, name: &str) -> Arc<Slot> {
        lock(&self.slots)
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// The slot of `name`, if it has one.
    fn existing(&self, name: &str) -> Option<Arc<Slot>> {
        lock(&self.slots).get(name).cloned()
    }

    /// Forgets the slot of `name` if it is empty and nobody else holds it (call with no
    /// clone of it held).
    fn prune(&self, name: &str) {
        let mut slots = lock(&self.slots);
        let unused = slots.get(name).is_some_and(|s| {
            Arc::strong_count(s) == 1 && s.try_lock().is_ok_and(|installed| installed.is_none())
        });
        if unused {
            slots.remove(name);
        }
    }
}

#[async_trait]
impl Runtime for LocalRuntime {
    async fn ensure(&self, spec: &InstallationSpec) -> Result<Endpoint, RuntimeError> {
        let slot = self.slot(&spec.name);
        let result = {
            let mut current = slot.lock().await;
            match current.as_ref() {
                Some(existing) if existing.spec == *spec => Ok(existing.endpoint.clone()),
                _ => {
                    if let Some(old) = current.take() {
                        old.running.stop().await;
                    }
                    start(spec, &self.bounds).await.map(|installed| {
                        let endpoint = installed.endpoint.clone();
                        *current = Some(installed);
                        endpoint
                    })
                }
            }
        };
        drop(slot);
        if result.is_err() {
            self.prune(&spec.name);
        }
        result
    }

    async fn status(&self, name: &str) -> Result<InstallationStatus, RuntimeError> {
        let unknown = || RuntimeError::Unknown(name.to_owned());
        let slot = self.existing(name).ok_or_else(unknown)?;
        let Ok(installed) = slot.try_lock() else {
            return Ok(InstallationStatus::Starting { last_error: None });
        };
        installed
            .as_ref()
            .map(|i| i.running.status())
            .ok_or_else(unknown)
    }

    async fn logs(&self, name: &str) -> Result<Vec<String>, RuntimeError> {
        let unknown = || RuntimeError::Unknown(name.to_owned());
        let slot = self.existing(name).ok_or_else(unknown)?;
        let Ok(installed) = slot.try_lock() else {
            return Ok(Vec::new());
        };
        let installed = installed.as_ref().ok_or_else(unknown)?;
        Ok(match &installed.running {
            Running::Stdio(bridge) => bridge.logs(),
            Running::Http(server) => lock(&server.logs).snapshot(),
        })
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        let slot = self
            .existing(name)
            .ok_or_else(|| RuntimeError::Unknown(name.to_owned()))?;
        let removed = {
            let mut current = slot.lock().await;
            match current.take() {
                Some(installed) => {
                    // Stopped under the lock: a start of the same name waits for it.
                    installed.running.stop().await;
                    true
                }
                None => false,
            }
        };
        drop(slot);
        self.prune(name);
        if removed {
            Ok(())
        } else {
            Err(RuntimeError::Unknown(name.to_owned()))
        }
    }
}

impl Running {
    fn status(&self) -> InstallationStatus {
        match self {
            Running::Stdio(bridge) => match bridge.status() {
                BridgeStatus::Running { pid, restarts } => {
                    InstallationStatus::Running { pid, restarts }
                }
                BridgeStatus::Exited(e) => InstallationStatus::Failed(e),
                _ => InstallationStatus::Starting { last_error: None },
            },
            Running::Http(server) => server.status.borrow().clone(),
        }
    }

    async fn stop(self) {
        match self {
            Running::Stdio(bridge) => bridge.shutdown().await,
            Running::Http(server) => server.stop().await,
        }
    }
}

async fn start(spec: &InstallationSpec, bounds: &StartBounds) -> Result<Installed, RuntimeError> {
    let failed = |reason: String| RuntimeError::Start {
        name: spec.name.clone(),
        reason,
    };
    let (running, url) = match &spec.transport {
        Transport::Stdio => {
            let mut config =
                BridgeConfig::new(spec.name.clone(), spec.command.clone(), spec.args.clone());
            config.env = spec.env.iter().chain(&spec.secret_env).cloned().collect();
            config.restart = true;
            let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
            let bridge = Bridge::start(config, loopback)
                .await
                .map_err(|e| failed(e.to_string()))?;
            let url = bridge.url();
            (Running::Stdio(bridge), url)
        }
        Transport::Http { path } => {
            let port = free_port().map_err(|e| failed(format!("no free port: {e}")))?;
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let server = HttpServer::start(spec.clone(), addr, path.clone());
            (Running::Http(server), format!("http://{addr}{path}"))
        }
    };
    let healthy = wait_healthy(&running, bounds.healthy_within).await;
    if let Err(reason) = healthy {
        running.stop().await;
        return Err(failed(reason));
    }
    Ok(Installed {
        spec: spec.clone(),
        endpoint: Endpoint { url },
        running,
    })
}

async fn wait_healthy(running: &Running, bound: Duration) -> Result<(), String> {
    let wait = async {
        match running {
            Running::Stdio(bridge) => bridge.wait_running().await.map_err(|e| e.to_string()),
            Running::Http(server) => {
                let mut rx = server.status.subscribe();
                let result = rx
                    .wait_for(|s| !matches!(s, InstallationStatus::Starting { .. }))
                    .await
                    .map(|s| s.clone());
                match result {
                    Ok(InstallationStatus::Failed(e)) => Err(e),
                    Ok(_) => Ok(()),
                    Err(_) => Err("the supervisor stopped".to_owned()),
                }
            }
        }
    };
    tokio::time::timeout(bound, wait)
        .await
        .unwrap_or_else(|_| Err(format!("not healthy within {bound:?}")))
}

fn free_port() -> std::io::Result<u16> {
    // Bound and released: another process could take it before the server binds it; the
    // health check then fails and the server is restarted on its next attempt.
    std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()
        .map(|a| a.port())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A supervised HTTP server process.
#[derive(Debug)]
struct HttpServer {
    status: watch::Sender<InstallationStatus>,
    logs: Arc<Mutex<LogRing>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl HttpServer {
    fn start(spec: InstallationSpec, addr: SocketAddr, path: String) -> HttpServer {
        let status = watch::channel(InstallationStatus::Starting { last_error: None }).0;
        let logs = Arc::new(Mutex::new(LogRing::new(200)));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(supervise_http(
            spec,
            addr,
            path,
            status.clone(),
            logs.clone(),
            stop_rx,
        ));
        HttpServer {
            status,
            logs,
            stop,
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        // Aborting drops the process-group guard inside the task: the group is SIGKILLed.
        self.task.abort();
    }
}

const STOP_GRACE: Duration = Duration::from_secs(5);
const HEALTHY_AFTER: Duration = Duration::from_secs(10);

async fn supervise_http(
    spec: InstallationSpec,
    addr: SocketAddr,
    path: String,
    status: watch::Sender<InstallationStatus>,
    logs: Arc<Mutex<LogRing>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
    let port = addr.port().to_string();
    let mut restarts = 0u64;
    loop {
        let mut command = Command::new(&spec.command);
        command
            .args(spec.args.iter().map(|a| a.replace("{port}", &port)))
            .envs(spec.env.iter().chain(&spec.secret_env).map(|(k, v)| (k, v)))
            .env("PORT", &port)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        isolate(&mut command);
        let last_error = match command.spawn() {
            Err(e) if restarts == 0 => {
                // A command that cannot start at all is reported, not retried forever.
                let why = format!("cannot start `{}`: {e}", spec.command);
                status.send_replace(InstallationStatus::Failed(why));
                return;
            }
            Err(e) => format!("cannot start `{}`: {e}", spec.command),
            Ok(mut child) => {
                let group = ProcessGroup::of(&child);
                let pid = child.id().unwrap_or_default();
                if let Some(out) = child.stdout.take() {
                    tokio::spawn(capture(spec.name.clone(), out, logs.clone()));
                }
                if let Some(err) = child.stderr.take() {
                    tokio::spawn(capture(spec.name.clone(), err, logs.clone()));
                }
                let started = tokio::time::Instant::now();
                let healthy = async {
                    // Health by MCP initialize; the first attempts fail until the port is bound.
                    let mut pause =
                        Backoff::new(Duration::from_millis(20), Duration::from_millis(500));
                    while !initialize_ok(addr, &path).await {
                        tokio::time::sleep(pause.next_delay()).await;
                    }
                };
                enum First {
                    Healthy,
                    Exited(std::io::Result<std::process::ExitStatus>),
                    Stop,
                }
                let first = tokio::select! {
                    _ = healthy => First::Healthy,
                    s = child.wait() => First::Exited(s),
                    _ = until_true(&mut stop) => First::Stop,
                };
                let exited = match first {
                    First::Exited(s) => s,
                    First::Stop => {
                        group.terminate(&mut child, STOP_GRACE).await;
                        return;
                    }
                    First::Healthy => {
                        status.send_replace(InstallationStatus::Running { pid, restarts });
                        tokio::select! {
                            s = child.wait() => s,
                            _ = until_true(&mut stop) => {
                                group.terminate(&mut child, STOP_GRACE).await;
                                return;
                            }
                        }
                    }
                };
                group.signal(libc::SIGKILL);
                if started.elapsed() >= HEALTHY_AFTER {
                    backoff.reset();
                }
                let why = exited.map_or_else(|e| e.to_string(), |s| s.to_string());
                format!("the server process exited ({why})")
            }
        };
        tracing::warn!("[{}] {last_error}", spec.name);
        status.send_replace(InstallationStatus::Starting {
            last_error: Some(last_error),
        });
        let delay = backoff.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = until_true(&mut stop) => return,
        }
        restarts += 1;
    }
}

async fn capture(name: String, stream: impl AsyncRead + Unpin, logs: Arc<Mutex<LogRing>>) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    while let Ok(Some(_)) = next_line(&mut reader, &mut buf, 8 << 10).await {
        let line = String::from_utf8_lossy(&buf).into_owned();
        tracing::info!("[{name}] {line}");
        lock(&logs).push(line);
    }
}

/// Whether an MCP `initialize` POSTed to `http://addr{path}` is answered with a result
/// (plain HTTP/1.1 by hand: the runtime needs no HTTP client for one probe).
async fn initialize_ok(addr: SocketAddr, path: &str) -> bool {
    const BODY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"sluice-health","version":"1"}}}"#;
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
            BODY.len()
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        while seen.len() < 64 << 10 {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&chunk[..n]);
            if seen.windows(8).any(|w| w == b"\"result\"") {
                break;
            }
        }
        Some(seen.starts_with(b"HTTP/1.1 200") && seen.windows(8).any(|w| w == b"\"result\""))
    };
    tokio::time::timeout(Duration::from_secs(5), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
