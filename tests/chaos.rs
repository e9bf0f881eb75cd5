//! The chaos test of issue 12 (bounded, loopback only): two Sluice replicas sharing one
//! session secret behind a real haproxy (Debian's package, installed by `scripts/setup.sh`),
//! a load generator driving `tools/call` through it, and during the run:
//!
//! 1. a config reload on each replica (SIGHUP on one, `POST /reload` on the other);
//! 2. replica `r1` SIGTERM'd (readiness turns false, haproxy takes it out, it exits 0) and
//!    restarted on the same ports;
//! 3. upstream `flaky` (a stateful Python SDK server) killed and restarted on its port.
//!
//! Asserted: every request got an HTTP answer, none was answered wrongly (each call echoes a
//! unique text under a unique JSON-RPC id), calls to `steady` (the bundled example server)
//! never failed, calls to `flaky` failed only while it was down (from the kill until the
//! first success on the same replica after its restart, which must come within a bound), each
//! with JSON-RPC -32603 naming the server, and every client session went on: answered by `r2`
//! while `r1` was away, by the restarted `r1` (a process that never saw the session), and by
//! `flaky` again after its restart. The counts are printed (`--nocapture`) for the notes.
//!
//! Phases wait for events (a condition over the calls recorded so far, `/readyz`, haproxy's
//! server state, a process exit), each bounded; the only fixed pause is the load's own pacing.

mod harness;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use harness::sdk_peers::python_server;
use harness::{ChildGuard, TEST_SECRET, ensure_crypto, example_server, free_port, poll, temp_path};
use serde_json::{Value, json};

/// Concurrent client sessions, each its own HTTP client and MCP session.
const TASKS: usize = 12;
/// Each task's pause between two calls: shapes the load (about 40 calls/s per task at most)
/// so a loaded 2-core machine keeps up; nothing waits on it.
const PACE: Duration = Duration::from_millis(25);
/// Upper bound on calls per task (the run normally stops far earlier).
const MAX_CALLS_PER_TASK: u64 = 4_000;
/// `proxy.drain_delay`: long enough for haproxy (checks every 100 ms, 2 failures) to take a
/// draining replica out before its listener closes, with a wide margin on a loaded machine.
const DRAIN_DELAY: &str = "2s";
/// `servers.eject_for` of `flaky`: short, so it is probed soon after it comes back.
const FLAKY_EJECT_FOR: &str = "500ms";
/// After `flaky` listens again, each replica must route a call to it successfully within this.
const RECOVERY_BOUND: Duration = Duration::from_secs(20);
/// Calls each session must have answered correctly in a phase before the next event.
const PER_PHASE: usize = 5;
/// Each phase's wait is bounded by this many polls of [`POLL_PAUSE`].
const PHASE_POLLS: usize = 1_200;
const POLL_PAUSE: Duration = Duration::from_millis(25);

/// The gateway the reload adds (visible in `/readyz` and served at `/mcp/reloaded`).
const RELOADED_GATEWAY: &str = "reloaded";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tool {
    Steady,
    Flaky,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Steady => "steady__echo",
            Tool::Flaky => "flaky__echo",
        }
    }

    /// What a correct answer's text is for the echoed `text`.
    fn expected(self, text: &str) -> String {
        match self {
            // The bundled example server echoes the text; the Python server prefixes its name.
            Tool::Steady => text.to_owned(),
            Tool::Flaky => format!("flaky:{text}"),
        }
    }
}

// The texts are read through `Debug` in failure messages.
#[allow(dead_code)]
#[derive(Debug, Clone)]
enum Outcome {
    /// The exact expected answer.
    Ok,
    /// An answer, but not the right one (id, text or shape).
    Wrong(String),
    /// No HTTP answer at all: the request was lost.
    Transport(String),
    /// An HTTP answer without a JSON-RPC error in it.
    Http { status: u16, body: String },
    /// A JSON-RPC error.
    Rpc {
        status: u16,
        code: i64,
        message: String,
    },
}

#[derive(Debug, Clone)]
struct Call {
    task: usize,
    tool: Tool,
    sent: Instant,
    answered: Instant,
    /// haproxy's server name (`X-Sluice-Replica`), when there was an answer.
    replica: Option<String>,
    outcome: Outcome,
}

impl Call {
    fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok)
    }

    fn on(&self, replica: &str) -> bool {
        self.replica.as_deref() == Some(replica)
    }
}

/// What the load generator recorded, shared with the test's phases.
#[derive(Default)]
struct Load {
    calls: Mutex<Vec<Call>>,
    init_failures: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Load {
    fn calls(&self) -> MutexGuard<'_, Vec<Call>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A condition over the calls recorded so far, which a phase waits for.
type Condition = Box<dyn Fn(&[Call]) -> bool + Send>;

/// True when every task has at least `n` calls that `pred` accepts.
fn every_task(calls: &[Call], n: usize, pred: impl Fn(&Call) -> bool) -> bool {
    let mut seen = [0usize; TASKS];
    for c in calls.iter().filter(|c| pred(c)) {
        seen[c.task] += 1;
    }
    seen.iter().all(|s| *s >= n)
}

/// The tasks without a call that `pred` accepts.
fn tasks_without(calls: &[Call], pred: impl Fn(&Call) -> bool) -> Vec<usize> {
    (0..TASKS)
        .filter(|t| !calls.iter().any(|c| c.task == *t && pred(c)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Processes: replicas, the balancer, the upstreams.

/// One Sluice replica: a config file it is (re)started and reloaded from, fixed ports, and
/// one access log per process it ran as.
struct Replica {
    name: &'static str,
    listen: SocketAddr,
    admin: SocketAddr,
    config: PathBuf,
    log: PathBuf,
    access: Vec<PathBuf>,
    child: Option<Child>,
}

fn replica_config(listen: SocketAddr, admin: SocketAddr, steady: &str, flaky: &str) -> String {
    format!(
        r#"[proxy]
listen = "{listen}"
admin_listen = "{admin}"
threads = 2
grace_period = "1s"
drain_delay = "{DRAIN_DELAY}"

[sessions]
secret = "{TEST_SECRET}"

[[servers]]
name = "steady"
url = "{steady}"
timeout = "20s"

[[servers]]
name = "flaky"
url = "{flaky}"
timeout = "20s"
connect_timeout = "2s"
eject_for = "{FLAKY_EJECT_FOR}"

[[gateways]]
name = "chaos"
servers = ["steady", "flaky"]
"#
    )
}

impl Replica {
    fn new(name: &'static str, steady: &str, flaky: &str) -> Replica {
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = temp_path(&format!("{name}.toml"));
        std::fs::write(&config, replica_config(listen, admin, steady, flaky)).expect("config");
        Replica {
            name,
            listen,
            admin,
            config,
            log: temp_path(&format!("{name}.log")),
            access: Vec::new(),
            child: None,
        }
    }

    /// Starts a process on the replica's ports (again, after an exit) and waits for `/readyz`.
    async fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let access = temp_path(&format!("{}-access-{}.log", self.name, self.access.len()));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("replica log");
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["proxy", "--config"])
            .arg(&self.config)
            .env("SLUICE_LOG", "info,pingora=warn")
            .stdout(std::fs::File::create(&access).expect("access log"))
            .stderr(log)
            .spawn()
            .expect("spawn sluice");
        self.access.push(access);
        self.child = Some(child);
        for _ in 0..PHASE_POLLS {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "{} exited while starting ({status}):\n{}",
                    self.name,
                    self.log()
                );
            }
            if let Some((200, _)) = self.readyz().await {
                return;
            }
            tokio::time::sleep(POLL_PAUSE).await;
        }
        panic!("gave up waiting for {} /readyz 200", self.name);
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    async fn readyz(&self) -> Option<(u16, Value)> {
        let resp = http()
            .get(format!("http://{}/readyz", self.admin))
            .send()
            .await
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.json().await.ok()?))
    }

    /// Waits (bounded) for the process to exit and returns its status.
    async fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        for _ in 0..PHASE_POLLS {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            tokio::time::sleep(POLL_PAUSE).await;
        }
        panic!("gave up waiting for {} to exit", self.name);
    }

    /// `tools/call` lines of each process's access log, by status.
    fn access_counts(&self) -> Vec<BTreeMap<u64, usize>> {
        self.access
            .iter()
            .map(|path| {
                let mut counts = BTreeMap::new();
                for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
                    let v: Value = serde_json::from_str(line)
                        .unwrap_or_else(|e| panic!("access log line {line:?}: {e}"));
                    if v["method"] == "tools/call" {
                        *counts.entry(v["status"].as_u64().unwrap_or(0)).or_default() += 1;
                    }
                }
                counts
            })
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("----- {} log -----\n{}", self.name, self.log());
        }
        let _ = std::fs::remove_file(&self.config);
        let _ = std::fs::remove_file(&self.log);
        for a in &self.access {
            let _ = std::fs::remove_file(a);
        }
    }
}

/// The haproxy binary from Debian's package; the test fails (it does not skip) without it.
fn haproxy_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    ["/usr/sbin", "/usr/local/sbin"]
        .iter()
        .map(PathBuf::from)
        .chain(on_path)
        .map(|d| d.join("haproxy"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "haproxy is not installed: run scripts/setup.sh (it installs Debian's haproxy \
                 package, the load balancer of this test)"
            )
        })
}

/// haproxy in the foreground (`-db`) on loopback ports: round robin over the replicas, health
/// checks on `/readyz` of their admin listeners, retries only when a connection could not be
/// made (a POST that may have reached a replica is never retried), the answering server's
/// name in `X-Sluice-Replica`, and a CSV stats page.
struct Balancer {
    child: Child,
    listen: SocketAddr,
    stats: SocketAddr,
    config: PathBuf,
    log: PathBuf,
}

impl Balancer {
    async fn start(replicas: &[&Replica]) -> Balancer {
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let stats: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let servers: String = replicas
            .iter()
            .map(|r| {
                format!(
                    "    server {} {} check port {}\n",
                    r.name,
                    r.listen,
                    r.admin.port()
                )
            })
            .collect();
        let config_text = format!(
            r#"global
    maxconn 2000

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout check 2s
    timeout http-request 10s
    timeout http-keep-alive 10s
    retries 3
    option redispatch 1
    retry-on conn-failure

frontend mcp
    bind {listen}
    default_backend sluice

frontend stats
    bind {stats}
    stats enable
    stats uri /stats

backend sluice
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    http-response set-header X-Sluice-Replica %[srv_name]
    default-server inter 100ms fall 2 rise 2
{servers}"#
        );
        let config = temp_path("haproxy.cfg");
        std::fs::write(&config, config_text).expect("haproxy config");
        let log = temp_path("haproxy.log");
        let mut child = Command::new(haproxy_binary())
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("haproxy log"))
            .spawn()
            .expect("spawn haproxy");
        poll("haproxy to listen", PHASE_POLLS, POLL_PAUSE, || {
            let exited = child.try_wait().expect("try_wait");
            let log = &log;
            async move {
                if let Some(status) = exited {
                    let log = std::fs::read_to_string(log).unwrap_or_default();
                    panic!("haproxy exited ({status}):\n{log}");
                }
                let a = tokio::net::TcpStream::connect(listen).await.ok()?;
                let b = tokio::net::TcpStream::connect(stats).await.ok()?;
                drop((a, b));
                Some(())
            }
        })
        .await;
        Balancer {
            child,
            listen,
            stats,
            config,
            log,
        }
    }

    fn url(&self, gateway: &str) -> String {
        format!("http://{}/mcp/{gateway}", self.listen)
    }

    /// The stats rows of the backend's servers (and `BACKEND`), by server name: column → value.
    async fn stats(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let text = http()
            .get(format!("http://{}/stats;csv", self.stats))
            .send()
            .await
            .expect("haproxy stats")
            .text()
            .await
            .expect("haproxy stats body");
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|row| row.first() == Some(&"sluice"))
            .map(|row| {
                let cols: BTreeMap<String, String> = header
                    .iter()
                    .zip(&row)
                    .map(|(h, v)| ((*h).to_owned(), (*v).to_owned()))
                    .collect();
                (row.get(1).copied().unwrap_or_default().to_owned(), cols)
            })
            .collect()
    }

    /// A server's state as haproxy sees it (`UP`, `DOWN`, `UP 1/2`, ...).
    async fn status(&self, server: &str) -> String {
        self.stats()
            .await
            .get(server)
            .and_then(|c| c.get("status"))
            .cloned()
            .unwrap_or_default()
    }

    async fn wait_status(&self, server: &str, want: &str) {
        let what = format!("haproxy to see {server} {want}");
        poll(&what, PHASE_POLLS, POLL_PAUSE, || async {
            (self.status(server).await == want).then_some(())
        })
        .await
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("----- haproxy log -----\n{log}");
        }
        let _ = std::fs::remove_file(&self.config);
        let _ = std::fs::remove_file(&self.log);
    }
}

/// An upstream process whose piped stderr a thread reads (so the pipe never fills and blocks
/// it), keeping the last 64 KiB for a failure report.
struct Upstream {
    guard: ChildGuard,
    stderr: Arc<Mutex<String>>,
}

impl Upstream {
    fn new(mut guard: ChildGuard) -> Upstream {
        let stderr = drain_stderr(&mut guard);
        Upstream { guard, stderr }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.guard.kill();
        if std::thread::panicking() {
            let text = self
                .stderr
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            eprintln!("----- upstream {} stderr -----\n{text}", self.guard.addr);
        }
    }
}

fn drain_stderr(guard: &mut ChildGuard) -> Arc<Mutex<String>> {
    let kept = Arc::new(Mutex::new(String::new()));
    if let Some(mut stderr) = guard.child.stderr.take() {
        let kept = kept.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut k = kept.lock().unwrap_or_else(|p| p.into_inner());
                k.push_str(&String::from_utf8_lossy(&buf[..n]));
                if k.len() > 64 * 1024 {
                    let cut = k.len() - 32 * 1024;
                    let cut = (cut..k.len()).find(|i| k.is_char_boundary(*i)).unwrap_or(0);
                    k.drain(..cut);
                }
            }
        });
    }
    kept
}

// ---------------------------------------------------------------------------------------------
// The load generator.

/// A plain HTTP client that never goes through a proxy from the environment.
fn http() -> reqwest::Client {
    ensure_crypto();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: String,
    session: Option<&str>,
) -> Result<(u16, reqwest::header::HeaderMap, String), String> {
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    let resp = req.send().await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.map_err(|e| format!("body: {e:?}"))?;
    Ok((status, headers, body))
}

/// The JSON-RPC response in a body: plain JSON, or the SSE event that carries an `id`.
fn response_message(headers: &reqwest::header::HeaderMap, body: &str) -> Option<Value> {
    let sse = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !sse {
        return serde_json::from_str(body).ok();
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .rfind(|v| v.get("id").is_some())
}

fn classify(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    id: &str,
    expected: &str,
) -> Outcome {
    let Some(message) = response_message(headers, body) else {
        return if status == 200 {
            Outcome::Wrong(format!("200 without a JSON-RPC response: {body:.300}"))
        } else {
            Outcome::Http {
                status,
                body: body.chars().take(300).collect(),
            }
        };
    };
    if let Some(error) = message.get("error") {
        if message["id"] != id {
            return Outcome::Wrong(format!("error for another id: {message}"));
        }
        return Outcome::Rpc {
            status,
            code: error["code"].as_i64().unwrap_or(0),
            message: error["message"].as_str().unwrap_or_default().to_owned(),
        };
    }
    if status != 200 {
        return Outcome::Http {
            status,
            body: body.chars().take(300).collect(),
        };
    }
    let text = &message["result"]["content"][0]["text"];
    if message["id"] != id
        || message["result"]["isError"] == true
        || text.as_str() != Some(expected)
    {
        return Outcome::Wrong(format!("expected id {id} text {expected:?}, got {message}"));
    }
    Outcome::Ok
}

async fn initialize(client: &reqwest::Client, url: &str, task: usize) -> Result<String, String> {
    let init = json!({
        "jsonrpc": "2.0", "id": format!("init-{task}"), "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": { "name": format!("chaos-{task}"), "version": "1" },
        },
    });
    let (status, headers, body) = post(client, url, init.to_string(), None).await?;
    if status != 200 {
        return Err(format!("initialize: {status} {body}"));
    }
    let session = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .ok_or("initialize without Mcp-Session-Id")?
        .to_owned();
    let note = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let (status, _, body) = post(client, url, note.to_string(), Some(&session)).await?;
    if status != 202 {
        return Err(format!("notifications/initialized: {status} {body}"));
    }
    Ok(session)
}

/// One client: its own connection pool and MCP session (opened through the balancer), then
/// `tools/call` alternating between the two upstreams, each echoing a unique text.
async fn client_task(task: usize, url: String, load: Arc<Load>) {
    let client = http();
    let session = match initialize(&client, &url, task).await {
        Ok(s) => s,
        Err(e) => {
            load.init_failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("task {task}: {e}"));
            return;
        }
    };
    for seq in 0..MAX_CALLS_PER_TASK {
        if load.stop.load(Ordering::Acquire) {
            break;
        }
        let tool = if seq % 2 == 0 {
            Tool::Steady
        } else {
            Tool::Flaky
        };
        let id = format!("{task}-{seq}");
        let text = format!("chaos-{task}-{seq}");
        let body = json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": { "name": tool.name(), "arguments": { "text": text } },
        });
        let sent = Instant::now();
        let result = post(&client, &url, body.to_string(), Some(&session)).await;
        let answered = Instant::now();
        let (replica, outcome) = match result {
            Err(e) => (None, Outcome::Transport(e)),
            Ok((status, headers, body)) => (
                headers
                    .get("x-sluice-replica")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                classify(status, &headers, &body, &id, &tool.expected(&text)),
            ),
        };
        load.calls().push(Call {
            task,
            tool,
            sent,
            answered,
            replica,
            outcome,
        });
        tokio::time::sleep(PACE).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The report.

/// Phase times of one run.
#[derive(Default)]
struct Timeline {
    marks: Vec<(String, Instant)>,
}

impl Timeline {
    fn mark(&mut self, what: &str) -> Instant {
        let now = Instant::now();
        self.marks.push((what.to_owned(), now));
        now
    }
}

/// The kind of an error, for the counts table.
fn error_kind(outcome: &Outcome) -> Option<String> {
    Some(match outcome {
        Outcome::Ok => return None,
        Outcome::Wrong(_) => "wrong answer".to_owned(),
        Outcome::Transport(_) => "transport (no HTTP answer)".to_owned(),
        Outcome::Http { status, .. } => format!("HTTP {status} without JSON-RPC error"),
        Outcome::Rpc {
            status,
            code,
            message,
        } => {
            let why = [
                ("refused or failed the connection", "connect failed"),
                ("reset the connection", "reset"),
                ("is ejected", "ejected"),
                ("timed out", "timeout"),
                ("answered HTTP", "upstream status"),
                ("invalid response", "invalid response"),
                ("lost the session", "session lost"),
            ]
            .iter()
            .find(|(needle, _)| message.contains(needle))
            .map_or("other", |(_, label)| label);
            format!("HTTP {status} JSON-RPC {code} ({why})")
        }
    })
}

fn report(calls: &[Call], t0: Instant, timeline: &Timeline, extra: &str) -> String {
    use std::fmt::Write;
    let secs = |i: Instant| i.saturating_duration_since(t0).as_secs_f64();
    let mut out = String::new();
    let _ = writeln!(out, "chaos: timeline (seconds since start)");
    let mut marks = timeline.marks.clone();
    marks.sort_by_key(|(_, at)| *at);
    for (what, at) in &marks {
        let _ = writeln!(out, "  {:>7.2}  {what}", secs(*at));
    }
    let answered = calls
        .iter()
        .filter(|c| !matches!(c.outcome, Outcome::Transport(_)))
        .count();
    let _ = writeln!(out, "chaos: counts");
    let _ = writeln!(out, "  sent                          {:>6}", calls.len());
    let _ = writeln!(out, "  answered (HTTP)               {answered:>6}");
    let _ = writeln!(
        out,
        "  answered correctly            {:>6}",
        calls.iter().filter(|c| c.ok()).count()
    );
    let mut kinds: BTreeMap<(Tool, String), usize> = BTreeMap::new();
    for c in calls {
        if let Some(kind) = error_kind(&c.outcome) {
            *kinds.entry((c.tool, kind)).or_default() += 1;
        }
    }
    let _ = writeln!(out, "  errors by kind:");
    if kinds.is_empty() {
        let _ = writeln!(out, "    none");
    }
    for ((tool, kind), n) in &kinds {
        let _ = writeln!(out, "    {:<13} {kind:<55} {n:>6}", tool.name());
    }
    let _ = writeln!(out, "  by tool (sent / ok / errors):");
    for tool in [Tool::Steady, Tool::Flaky] {
        let of: Vec<&Call> = calls.iter().filter(|c| c.tool == tool).collect();
        let ok = of.iter().filter(|c| c.ok()).count();
        let _ = writeln!(
            out,
            "    {:<13} {:>6} / {ok:>6} / {:>6}",
            tool.name(),
            of.len(),
            of.len() - ok
        );
    }
    let mut by_replica: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for c in calls {
        let e = by_replica
            .entry(c.replica.clone().unwrap_or_else(|| "(none)".into()))
            .or_default();
        e.0 += 1;
        e.1 += usize::from(c.ok());
    }
    let _ = writeln!(out, "  by replica (answered / ok):");
    for (r, (n, ok)) in &by_replica {
        let _ = writeln!(out, "    {r:<13} {n:>6} / {ok:>6}");
    }
    out.push_str(extra);
    out
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_behind_haproxy_survive_reload_restart_and_an_upstream_crash() {
    let t0 = Instant::now();
    let mut timeline = Timeline::default();
    haproxy_binary();

    let steady = example_server().await;
    let flaky = Upstream::new(python_server("flaky", true, None).await);
    let flaky_port = flaky.guard.addr.port();
    let steady_url = format!("http://{}/mcp", steady.addr);
    let flaky_url = format!("http://{}/mcp", flaky.guard.addr);

    let mut r1 = Replica::new("r1", &steady_url, &flaky_url);
    let mut r2 = Replica::new("r2", &steady_url, &flaky_url);
    r1.start().await;
    r2.start().await;
    let balancer = Balancer::start(&[&r1, &r2]).await;
    balancer.wait_status("r1", "UP").await;
    balancer.wait_status("r2", "UP").await;
    timeline.mark("replicas, upstreams and haproxy up");

    let load = Arc::new(Load::default());
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| tokio::spawn(client_task(t, balancer.url("chaos"), load.clone())))
        .collect();

    // Waits (bounded) until `pred` holds over the calls so far; on timeout, fails with the
    // counts and the tasks' init failures.
    let until = |what: String, pred: Condition| {
        let load = load.clone();
        async move {
            for _ in 0..PHASE_POLLS {
                if pred(&load.calls()) {
                    return;
                }
                let failures = load
                    .init_failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                assert!(failures.is_empty(), "sessions failed to open: {failures:?}");
                tokio::time::sleep(POLL_PAUSE).await;
            }
            let calls = load.calls().clone();
            let last_errors: Vec<String> = calls
                .iter()
                .filter(|c| !c.ok())
                .rev()
                .take(10)
                .map(|c| format!("{c:?}"))
                .collect();
            panic!(
                "gave up waiting for {what}\n{}\nlast errors: {last_errors:#?}",
                report(&calls, t0, &Timeline::default(), "")
            );
        }
    };

    // 1. Warm-up: every session calls both upstreams through both replicas.
    until(
        "every session to call both upstreams, on both replicas".into(),
        Box::new(|calls| {
            every_task(calls, PER_PHASE, |c| c.ok() && c.tool == Tool::Steady)
                && every_task(calls, PER_PHASE, |c| c.ok() && c.tool == Tool::Flaky)
                && every_task(calls, 1, |c| c.ok() && c.on("r1"))
                && every_task(calls, 1, |c| c.ok() && c.on("r2"))
        }),
    )
    .await;
    timeline.mark("warm-up done: every session called both upstreams on both replicas");

    // 2. A config reload on each replica, under load.
    reload_both(&r1, &r2, &mut timeline).await;
    let reloaded = *timeline.marks.last().map(|(_, at)| at).expect("a mark");
    until(
        "every session to be served after the reloads".into(),
        Box::new(move |calls| {
            every_task(calls, PER_PHASE, |c| c.ok() && c.sent > reloaded)
                && every_task(calls, 1, |c| c.ok() && c.on("r1") && c.sent > reloaded)
                && every_task(calls, 1, |c| c.ok() && c.on("r2") && c.sent > reloaded)
        }),
    )
    .await;
    timeline.mark("every session served after the reloads");

    // 3. SIGTERM r1: readiness false at once, haproxy takes it out, exit 0 after the drain.
    let term = timeline.mark("SIGTERM r1");
    r1.signal("TERM");
    poll(
        "r1 /readyz 503 draining",
        PHASE_POLLS,
        POLL_PAUSE,
        || async {
            match r1.readyz().await {
                Some((503, body)) if body["draining"] == true => Some(()),
                _ => None,
            }
        },
    )
    .await;
    timeline.mark("r1 /readyz 503 draining");
    balancer.wait_status("r1", "DOWN").await;
    timeline.mark("haproxy marks r1 DOWN");
    let status = r1.wait_exit().await;
    let r1_exit = timeline.mark(&format!("r1 exited ({status})"));
    assert!(status.success(), "r1 after SIGTERM: {status}\n{}", r1.log());
    until(
        "every session to be served by r2 while r1 is gone".into(),
        Box::new(move |calls| {
            every_task(calls, PER_PHASE, |c| {
                c.ok() && c.on("r2") && c.sent > r1_exit
            })
        }),
    )
    .await;
    timeline.mark("every session served by r2 after r1 exited");

    // 4. Restart r1 on the same ports; every session continues on it.
    let r1_start = timeline.mark("restarting r1 on the same ports");
    r1.start().await;
    timeline.mark("r1 ready");
    balancer.wait_status("r1", "UP").await;
    timeline.mark("haproxy marks r1 UP");
    until(
        "every session to be served by the restarted r1".into(),
        Box::new(move |calls| {
            every_task(calls, PER_PHASE, |c| {
                c.ok() && c.on("r1") && c.sent > r1_start
            })
        }),
    )
    .await;
    timeline.mark("every session served by the restarted r1");

    // 5. Kill flaky; its calls fail while it is down.
    let kill = timeline.mark("kill flaky (SIGKILL)");
    let mut flaky = flaky;
    flaky.guard.kill();
    until(
        "every session to call flaky while it is down".into(),
        Box::new(move |calls| every_task(calls, 2, |c| c.tool == Tool::Flaky && c.sent > kill)),
    )
    .await;
    timeline.mark("every session called flaky while it was down");

    // 6. Restart flaky on its port; each replica routes to it again within the bound.
    timeline.mark("restarting flaky on its port");
    let _flaky_restarted = Upstream::new(python_server("flaky", true, Some(flaky_port)).await);
    let flaky_listening = timeline.mark("flaky listening again");
    let back = move |calls: &[Call], replica: &str| {
        calls
            .iter()
            .filter(|c| c.tool == Tool::Flaky && c.ok() && c.on(replica) && c.sent > kill)
            .map(|c| c.answered)
            .min()
    };
    until(
        "each replica to route a call to flaky successfully again".into(),
        Box::new(move |calls| back(calls, "r1").is_some() && back(calls, "r2").is_some()),
    )
    .await;
    let (back_r1, back_r2) = {
        let calls = load.calls();
        (back(&calls, "r1").unwrap(), back(&calls, "r2").unwrap())
    };
    timeline.marks.push(("flaky back on r1".into(), back_r1));
    timeline.marks.push(("flaky back on r2".into(), back_r2));
    let flaky_back = back_r1.max(back_r2);
    until(
        "every session to call flaky successfully after its restart".into(),
        Box::new(move |calls| {
            let flaky_on = |r: &'static str| {
                move |c: &Call| c.ok() && c.tool == Tool::Flaky && c.on(r) && c.sent > flaky_back
            };
            every_task(calls, PER_PHASE, |c| {
                c.ok() && c.tool == Tool::Flaky && c.sent > flaky_back
            }) && every_task(calls, PER_PHASE, |c| {
                c.ok() && c.tool == Tool::Steady && c.sent > flaky_back
            }) && every_task(calls, 1, flaky_on("r1"))
                && every_task(calls, 1, flaky_on("r2"))
        }),
    )
    .await;
    timeline.mark("every session called flaky again, through both replicas");

    // 7. Stop the load.
    load.stop.store(true, Ordering::Release);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("a client task stops within 60 s")
            .expect("a client task ran to its end");
    }
    timeline.mark("load stopped");

    let calls = load.calls().clone();
    let stats = balancer.stats().await;
    let mut extra = String::from(
        "  haproxy (per server: requests, connection errors, response errors, retries, redispatches):\n",
    );
    for (server, cols) in &stats {
        let col = |k: &str| cols.get(k).map(String::as_str).unwrap_or("-");
        extra.push_str(&format!(
            "    {server:<13} stot {:>6}  econ {:>3}  eresp {:>3}  wretr {:>3}  wredis {:>3}\n",
            col("stot"),
            col("econ"),
            col("eresp"),
            col("wretr"),
            col("wredis")
        ));
    }
    // Every request haproxy says a replica answered is in that process's access log (the
    // writer flushes every 100 ms, so wait a little for the last lines).
    let split = |calls: &[Call]| -> [usize; 3] {
        let mut n = [0usize; 3];
        for c in calls {
            match c.replica.as_deref() {
                Some("r1") if c.answered < r1_exit => n[0] += 1,
                Some("r1") => n[1] += 1,
                Some("r2") => n[2] += 1,
                _ => {}
            }
        }
        n
    };
    let by_process = split(&calls);
    let logged = || {
        let r1c = r1.access_counts();
        let r2c = r2.access_counts();
        let total = |m: Option<&BTreeMap<u64, usize>>| m.map_or(0, |m| m.values().sum::<usize>());
        [total(r1c.first()), total(r1c.get(1)), total(r2c.first())]
    };
    let access = poll(
        "the access logs to list every answered call",
        PHASE_POLLS,
        POLL_PAUSE,
        || async {
            let l = logged();
            (l == by_process).then_some(l)
        },
    )
    .await;
    extra.push_str(&format!(
        "  access logs (tools/call lines): r1 first process {}, r1 restarted {}, r2 {}\n",
        access[0], access[1], access[2]
    ));
    let in_window = |c: &Call| {
        let back = match c.replica.as_deref() {
            Some("r1") => back_r1,
            Some("r2") => back_r2,
            _ => return false,
        };
        c.answered >= kill && c.sent < back
    };
    let flaky_errors: Vec<&Call> = calls
        .iter()
        .filter(|c| c.tool == Tool::Flaky && !c.ok())
        .collect();
    let inside = flaky_errors.iter().filter(|c| in_window(c)).count();
    extra.push_str(&format!(
        "  flaky errors inside its down window (answered after the kill, sent before the first success on that replica after the restart): {inside}; outside: {}\n",
        flaky_errors.len() - inside
    ));
    let flaky_calls_down = calls
        .iter()
        .filter(|c| c.tool == Tool::Flaky && in_window(c))
        .count();
    extra.push_str(&format!(
        "  flaky calls inside its down window: {flaky_calls_down} ({inside} errors, {} ok: the first successes that end it)\n",
        flaky_calls_down - inside
    ));
    let drained = calls
        .iter()
        .filter(|c| c.on("r1") && c.answered > term && c.answered < r1_exit)
        .count();
    extra.push_str(&format!(
        "  answered by r1 after its SIGTERM (draining, before haproxy took it out): {drained}\n"
    ));
    let text = report(&calls, t0, &timeline, &extra);
    eprintln!("{text}");

    // Assertions over the whole run.
    let lost: Vec<&Call> = calls
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Transport(_)))
        .collect();
    assert!(
        lost.is_empty(),
        "requests without an HTTP answer: {lost:#?}"
    );
    let wrong: Vec<&Call> = calls
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Wrong(_)))
        .collect();
    assert!(wrong.is_empty(), "wrong answers: {wrong:#?}");
    let steady_errors: Vec<&Call> = calls
        .iter()
        .filter(|c| c.tool == Tool::Steady && !c.ok())
        .collect();
    assert!(
        steady_errors.is_empty(),
        "calls to the stable upstream failed: {steady_errors:#?}"
    );
    // A flaky error is accepted only while flaky was down as the replica that answered saw
    // it (answered after the kill, sent before that replica's first success after the
    // restart) and only as JSON-RPC -32603 naming the server.
    for c in flaky_errors {
        assert!(in_window(c), "a flaky error outside its down window: {c:?}");
        match &c.outcome {
            Outcome::Rpc {
                status: 200,
                code: -32603,
                message,
            } if message.contains("upstream server 'flaky'") => {}
            other => panic!("a flaky error that is not a clear -32603: {other:?}"),
        }
    }
    for (replica, back) in [("r1", back_r1), ("r2", back_r2)] {
        let after = back.saturating_duration_since(flaky_listening);
        assert!(
            after <= RECOVERY_BOUND,
            "{replica} routed to flaky again only {after:?} after it listened (bound {RECOVERY_BOUND:?})"
        );
    }
    // Sessions continued across replicas (checked per phase above; restated over the record).
    let r1_start_ok = tasks_without(&calls, |c| c.ok() && c.on("r1") && c.sent > r1_start);
    assert!(
        r1_start_ok.is_empty(),
        "sessions never served by the restarted r1: {r1_start_ok:?}"
    );
    let r2_alone = tasks_without(&calls, |c| {
        c.ok() && c.on("r2") && c.sent > r1_exit && c.answered < r1_start
    });
    assert!(
        r2_alone.is_empty(),
        "sessions not served while r1 was away: {r2_alone:?}"
    );
    assert!(
        by_process.iter().all(|n| *n > 0),
        "each replica process answered: {by_process:?}"
    );
    // The drain took r1 out before its listener closed, and the restarted r1 came back only
    // when it could serve: haproxy never failed to connect, retried or redispatched (it
    // would have saved the requests, but a balancer without retries would not).
    for (server, cols) in &stats {
        for k in ["econ", "eresp", "wretr", "wredis"] {
            let v = cols.get(k).map(String::as_str).unwrap_or_default();
            assert!(
                v.is_empty() || v == "0",
                "haproxy {server} {k} = {v}: a request met a closed or failing replica"
            );
        }
    }
    let elapsed = t0.elapsed();
    eprintln!("chaos: whole test {:.1} s", elapsed.as_secs_f64());
}

/// Step 2: both replicas' config files gain a gateway and a longer `timeout` on both servers
/// (so the reload rebuilds the upstreams the load is using, not only adds something aside);
/// then SIGHUP to r1 and `POST /reload` to r2, each applied while the load runs.
async fn reload_both(r1: &Replica, r2: &Replica, timeline: &mut Timeline) {
    for r in [r1, r2] {
        let text = std::fs::read_to_string(&r.config).expect("read config");
        assert_eq!(text.matches("timeout = \"20s\"").count(), 2, "{text}");
        let text = text.replace("timeout = \"20s\"", "timeout = \"21s\"")
            + &format!("\n[[gateways]]\nname = \"{RELOADED_GATEWAY}\"\nservers = [\"steady\"]\n");
        std::fs::write(&r.config, text).expect("write config");
    }
    timeline.mark("config files edited (servers' timeout changed, a gateway added)");
    let before = generation(r1).await;
    r1.signal("HUP");
    timeline.mark("SIGHUP r1");
    wait_gateway(r1).await;
    let after = generation(r1).await;
    assert!(
        after > before,
        "r1's generation went from {before} to {after}"
    );
    timeline.mark("r1 serves the new gateway");
    let resp = http()
        .post(format!("http://{}/reload", r2.admin))
        .send()
        .await
        .expect("POST /reload reaches r2");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("POST /reload answers JSON");
    assert_eq!(status, 200, "POST /reload on r2: {body}");
    assert_eq!(body["outcome"], "applied", "{body}");
    let report = &body["report"];
    assert_eq!(
        report["gateways"]["added"],
        json!([RELOADED_GATEWAY]),
        "{body}"
    );
    assert_eq!(
        report["servers"]["changed"],
        json!(["steady", "flaky"]),
        "{body}"
    );
    assert_eq!(report["restart_required"], json!([]), "{body}");
    timeline.mark("POST /reload r2 applied");
    wait_gateway(r2).await;
    timeline.mark("r2 serves the new gateway");
}

/// The config generation a replica serves (`/readyz`).
async fn generation(r: &Replica) -> u64 {
    let (_, body) = r.readyz().await.expect("/readyz answers");
    body["generation"]
        .as_u64()
        .unwrap_or_else(|| panic!("/readyz without a generation: {body}"))
}

/// Waits until a replica lists [`RELOADED_GATEWAY`] in `/readyz` and serves `initialize` on it.
async fn wait_gateway(r: &Replica) {
    let what = format!("{} to serve gateway {RELOADED_GATEWAY}", r.name);
    let url = format!("http://{}/mcp/{RELOADED_GATEWAY}", r.listen);
    poll(&what, PHASE_POLLS, POLL_PAUSE, || async {
        let (_, body) = r.readyz().await?;
        body["gateways"].get(RELOADED_GATEWAY)?;
        initialize(&http(), &url, 99).await.ok()
    })
    .await;
}
