//! `sluice reload`: asks a running proxy to re-read its config file, by `POST /reload` on its
//! admin listener, and prints the answer. A plain HTTP/1.1 exchange over loopback needs no
//! client library.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Bound on the whole exchange: a reload waits at most `catalog.init_timeout` for catalogs.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer read.
const MAX_ANSWER: u64 = 1 << 20;

pub fn run(config: Option<&Path>, admin: Option<&str>) -> ExitCode {
    let addr = match (config, admin) {
        (_, Some(a)) => a.to_owned(),
        (Some(path), None) => match sluice_config::load_file(path) {
            Ok(c) => c.proxy.admin_listen.to_string(),
            Err(e) => {
                eprintln!(
                    "error: {}: cannot find the admin address:\n{e}",
                    path.display()
                );
                return ExitCode::from(2);
            }
        },
        (None, None) => {
            eprintln!("error: give --config FILE (the proxy's config) or --admin HOST:PORT");
            return ExitCode::from(2);
        }
    };
    match post_reload(&addr) {
        Ok((status, body)) => {
            let shown = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or(body);
            if status == 200 {
                println!("{shown}");
                ExitCode::SUCCESS
            } else {
                eprintln!("reload refused (HTTP {status}):\n{shown}");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: no answer from the proxy's admin listener at {addr}: {e}");
            ExitCode::from(3)
        }
    }
}

fn post_reload(addr: &str) -> std::io::Result<(u16, String)> {
    let target = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("the address resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "POST /reload HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status in the answer"))?;
    Ok((status, body.to_owned()))
}
