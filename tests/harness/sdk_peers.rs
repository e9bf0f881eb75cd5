//! The official Python and TypeScript MCP SDKs as separate processes: Python `mcp` servers
//! (stateful with SSE, stateless with JSON), `@modelcontextprotocol/server-everything`, and
//! command-line clients of both SDKs that print one JSON line. `scripts/setup.sh` installs them.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{ChildGuard, free_port, wait_for_port};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn python() -> PathBuf {
    let p = repo().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh",
        p.display()
    );
    p
}

pub fn node_peers() -> PathBuf {
    let p = repo().join("tests/peers/node");
    assert!(
        p.join("node_modules").exists(),
        "{}/node_modules is missing: run scripts/setup.sh",
        p.display()
    );
    p
}

/// Starts `tests/peers/python/server.py`; its stderr stays readable via [`wait_for_line`].
pub async fn python_server(name: &str, stateful: bool, port: Option<u16>) -> ChildGuard {
    python_server_with(name, stateful, port, &[]).await
}

/// A test CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem,
/// key.pem), in a fresh temp dir.
pub fn test_certificates() -> (PathBuf, PathBuf, PathBuf) {
    let dir = super::temp_path("tls");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let status = Command::new(python())
        .arg(repo().join("tests/peers/python/make_cert.py"))
        .arg(&dir)
        .status()
        .expect("run make_cert.py");
    assert!(status.success(), "make_cert.py failed");
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

/// Like [`python_server`] with extra arguments (e.g. `--certfile`).
pub async fn python_server_with(
    name: &str,
    stateful: bool,
    port: Option<u16>,
    extra: &[&str],
) -> ChildGuard {
    let port = port.unwrap_or_else(free_port);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let child = Command::new(python())
        .arg(repo().join("tests/peers/python/server.py"))
        .args(["--port", &port.to_string(), "--name", name, "--mode"])
        .arg(if stateful { "stateful" } else { "stateless" })
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python MCP server");
    let guard = ChildGuard { child, addr };
    wait_for_port(addr).await;
    guard
}

/// Starts `tests/peers/python/conformance_server.py` (stateful, every scenario of the official
/// conformance suite: sampling, elicitation, progress, ...) on a free port. The port is bound
/// only once the app is ready, so waiting for it is a sound readiness check.
pub async fn conformance_server() -> ChildGuard {
    let port = free_port();
    let child = Command::new(python())
        .arg(repo().join("tests/peers/python/conformance_server.py"))
        .args(["--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the conformance server");
    let guard = ChildGuard {
        child,
        addr: format!("127.0.0.1:{port}").parse().expect("addr"),
    };
    wait_for_port(guard.addr).await;
    guard
}

/// Starts server-everything in Streamable HTTP mode.
pub async fn everything_server() -> ChildGuard {
    let port = free_port();
    let child = Command::new(node_peers().join("everything.sh"))
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn server-everything");
    let guard = ChildGuard {
        child,
        addr: format!("127.0.0.1:{port}").parse().expect("addr"),
    };
    wait_for_port(guard.addr).await;
    guard
}

/// Reads the child's stderr until a line containing `marker` (bounded by `limit` lines).
pub fn wait_for_line(guard: &mut ChildGuard, marker: &str, limit: usize) {
    let stderr = guard.child.stderr.as_mut().expect("stderr is piped");
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    for _ in 0..limit {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.contains(marker) {
            return;
        }
    }
    panic!("the server never printed {marker:?}");
}

/// Which SDK client to run.
#[derive(Debug, Clone, Copy)]
pub enum SdkClient {
    /// `tests/peers/python/client.py`.
    Python,
    /// `tests/peers/node/client.mjs` (`@modelcontextprotocol/sdk` 1.x: the handshake era only).
    Node,
    /// `tests/peers/node/modern_client.mjs` (`@modelcontextprotocol/client` 2.x, the release
    /// line that speaks 2026-07-28; `--mode 2026-07-28` pins it, its default here).
    NodeModern,
}

/// Runs an SDK client against `url`, optionally calling `tool` with `args`; returns its JSON.
pub async fn run_client(client: SdkClient, url: &str, tool: Option<(&str, &Value)>) -> Value {
    run_client_with(client, url, tool, &[]).await
}

/// [`run_client`] with extra arguments (e.g. `--mode 2026-07-28` for the Python client or
/// [`SdkClient::NodeModern`]).
pub async fn run_client_with(
    client: SdkClient,
    url: &str,
    tool: Option<(&str, &Value)>,
    extra: &[&str],
) -> Value {
    let mut cmd = match client {
        SdkClient::Python => {
            let mut c = tokio::process::Command::new(python());
            c.arg(repo().join("tests/peers/python/client.py"));
            c
        }
        SdkClient::Node => {
            let mut c = tokio::process::Command::new("node");
            c.arg(node_peers().join("client.mjs"));
            c
        }
        SdkClient::NodeModern => {
            let mut c = tokio::process::Command::new("node");
            c.arg(node_peers().join("modern_client.mjs"));
            c
        }
    };
    cmd.arg(url).args(extra);
    if let Some((name, args)) = tool {
        cmd.args(["--call", name, "--args", &args.to_string()]);
    }
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{client:?} client timed out against {url}"))
        .expect("run SDK client");
    assert!(
        out.status.success(),
        "{client:?} client failed against {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{client:?} client printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
