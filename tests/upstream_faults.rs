//! An upstream that goes away and comes back, with a real Python SDK server killed and
//! restarted on its port: its calls fail with clear JSON-RPC errors, after `eject_after`
//! failures in a row it is ejected (calls refused at once, saying when to retry, counted in
//! `sluice_upstream_ejections_total` and `sluice_upstream_ejected`), and once the ejection is
//! over a probe that succeeds puts it back in service. And upstreams that hang, reset,
//! half-close or speak garbage on a call (a fault injector) each give a bounded, clear
//! JSON-RPC error while the gateway keeps serving; a slow one within its timeout is served.

mod harness;

use std::time::{Duration, Instant};

use harness::prom::{scrape, sum};
use harness::sdk_peers::python_server;
use harness::{Raw, Sluice, free_port, poll};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upstream_is_ejected_then_probed_back_into_service() {
    let port = free_port();
    let mut upstream = python_server("a", false, Some(port)).await;
    let sluice = Sluice::start(&format!(
        "[[servers]]\nname = \"a\"\nurl = \"http://127.0.0.1:{port}/mcp\"\ntimeout = \"5s\"\neject_after = 2\neject_for = \"1s\"\n\n[[gateways]]\nname = \"dev\"\nservers = [\"a\"]\n"
    ))
    .await;
    poll("the catalog", 600, Duration::from_millis(50), || async {
        let (_, body) = sluice.readyz().await?;
        (body["gateways"]["dev"]["tools"].as_u64().unwrap_or(0) > 0).then_some(())
    })
    .await;
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    let echo = |text: &str| {
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "a__echo", "arguments": {"text": text}}})
        .to_string()
    };
    let ok = raw.post(&echo("up"), Some(&session)).await.message();
    assert_eq!(ok["result"]["content"][0]["text"], "a:up", "{ok}");

    upstream.kill();
    for attempt in 0..2 {
        let failed = raw.post(&echo("down"), Some(&session)).await;
        assert_eq!(failed.error_code(), Some(-32603), "{}", failed.body);
        let message = failed.error_message();
        assert!(
            message.contains("upstream server 'a'"),
            "{attempt}: {message}"
        );
        assert!(!message.contains("ejected"), "{attempt}: {message}");
    }
    let started = Instant::now();
    let ejected = raw.post(&echo("down"), Some(&session)).await;
    assert_eq!(ejected.error_code(), Some(-32603), "{}", ejected.body);
    assert!(
        ejected
            .error_message()
            .contains("is ejected after 2 consecutive failures; retry after"),
        "{}",
        ejected.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused without trying the server"
    );
    let s = scrape(&sluice).await;
    assert_eq!(
        sum(
            &s,
            "sluice_upstream_ejections_total",
            &[("server", "a")],
            true
        ),
        1.0
    );
    assert_eq!(
        sum(&s, "sluice_upstream_ejected", &[("server", "a")], true),
        1.0
    );

    let _back = python_server("a", false, Some(port)).await;
    let served = poll("a probe to succeed", 200, Duration::from_millis(50), || {
        let (raw, session) = (&raw, &session);
        async move {
            let r = raw.post(&echo("back"), Some(session)).await;
            (r.message()["result"]["content"][0]["text"] == "a:back").then_some(r)
        }
    })
    .await;
    assert_eq!(served.status, 200);
    let s = scrape(&sluice).await;
    assert_eq!(
        sum(&s, "sluice_upstream_ejected", &[("server", "a")], true),
        0.0
    );
    assert_eq!(
        sum(
            &s,
            "sluice_upstream_ejections_total",
            &[("server", "a")],
            true
        ),
        1.0,
        "back in service without another ejection"
    );
}

/// How the fault injector answers `tools/call`.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Reads the request and never answers.
    Hang,
    /// Closes the connection with a TCP reset.
    Reset,
    /// Closes its sending half without a byte of response.
    HalfClose,
    /// Answers bytes that are not HTTP.
    Garbage,
    /// Answers correctly, after a delay shorter than the server's timeout.
    Slow,
}

/// A fault injector, not an MCP implementation: a raw TCP server that answers the gateway's
/// catalog calls (`initialize`, `tools/list`, one tool `boom`) with fixed JSON and misbehaves on
/// `tools/call` as `fault` says. No real server misbehaves on demand, hence this.
async fn fault_injector(fault: Fault) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve_faulty(socket, fault));
        }
    });
    addr
}

async fn serve_faulty(mut socket: tokio::net::TcpStream, fault: Fault) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    loop {
        // One request: the head, then Content-Length bytes of body.
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: serde_json::Value =
            serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or_default();
        buf.drain(..head_end + length);
        let id = body["id"].clone();
        let result = match body["method"].as_str() {
            Some("initialize") => json!({"protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}}, "serverInfo": {"name": "faulty", "version": "1"}}),
            Some("tools/list") => json!({"tools": [{"name": "boom", "description": "misbehaves",
                "inputSchema": {"type": "object"}}]}),
            Some("tools/call") => match fault {
                Fault::Hang => {
                    std::future::pending::<()>().await;
                    return;
                }
                Fault::Reset => {
                    let _ = socket.set_zero_linger();
                    return;
                }
                Fault::HalfClose => {
                    let _ = socket.shutdown().await;
                    let _ = socket.read(&mut [0u8; 1]).await;
                    return;
                }
                Fault::Garbage => {
                    let _ = socket.write_all(b"\x00\x01 this is not HTTP\r\n\r\n").await;
                    let _ = socket.flush().await;
                    let _ = socket.read(&mut [0u8; 1]).await;
                    return;
                }
                Fault::Slow => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    json!({"content": [{"type": "text", "text": "late but fine"}]})
                }
            },
            _ => {
                // A notification or DELETE: accepted, no body.
                let _ = socket
                    .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                    .await;
                continue;
            }
        };
        let answer = json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if socket.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_upstreams_give_bounded_clear_errors() {
    let cases = [
        (Fault::Hang, "timed out after 1s"),
        (Fault::Reset, "upstream server 'faulty'"),
        (Fault::HalfClose, "upstream server 'faulty'"),
        (Fault::Garbage, "upstream server 'faulty'"),
    ];
    for (fault, expected) in cases {
        let addr = fault_injector(fault).await;
        let sluice = Sluice::start(&format!(
            "[[servers]]\nname = \"faulty\"\nurl = \"http://{addr}/mcp\"\ntimeout = \"1s\"\n\n[[gateways]]\nname = \"dev\"\nservers = [\"faulty\"]\n"
        ))
        .await;
        sluice.wait_tools("dev", 1).await;
        let raw = Raw::new(sluice.url("dev"));
        let session = raw.initialize().await;
        let call = r#"{"jsonrpc":"2.0","id":"f","method":"tools/call","params":{"name":"faulty__boom","arguments":{}}}"#;
        let started = Instant::now();
        let r = raw.post(call, Some(&session)).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{fault:?}: bounded by the server's timeout"
        );
        assert_eq!(r.status, 200, "{fault:?}: {}", r.body);
        assert_eq!(r.error_code(), Some(-32603), "{fault:?}: {}", r.body);
        assert_eq!(r.json()["id"], "f", "{fault:?}");
        assert!(
            r.error_message().contains(expected),
            "{fault:?}: {}",
            r.error_message()
        );
        // The gateway keeps serving.
        let pong = raw
            .post(
                r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#,
                Some(&session),
            )
            .await;
        assert_eq!(pong.status, 200, "{fault:?}");
    }

    let addr = fault_injector(Fault::Slow).await;
    let sluice = Sluice::start(&format!(
        "[[servers]]\nname = \"faulty\"\nurl = \"http://{addr}/mcp\"\ntimeout = \"5s\"\n\n[[gateways]]\nname = \"dev\"\nservers = [\"faulty\"]\n"
    ))
    .await;
    sluice.wait_tools("dev", 1).await;
    let raw = Raw::new(sluice.url("dev"));
    let session = raw.initialize().await;
    let slow = raw.call_tool(&session, "faulty__boom", json!({})).await;
    assert_eq!(
        slow["result"]["content"][0]["text"], "late but fine",
        "{slow}"
    );
}
