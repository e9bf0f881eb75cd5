//! The processes a comparison runs (mock upstream, Sluice, nginx) and what `/proc` says about
//! them.
//!
//! CPU time and memory are read for a process *tree* (the process and its children), because
//! nginx does its work in worker processes under a master. Every wait here has a deadline:
//! a target that never comes up fails the comparison with its log, it does not hang it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// A child process, stopped (signal, then SIGKILL after 5 s) when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    stop_signal: &'static str,
    log: PathBuf,
}

impl Proc {
    /// Starts `command` with stdout and stderr going to `{dir}/{name}.log`.
    pub fn spawn(
        name: &str,
        mut command: Command,
        dir: &Path,
        stop_signal: &'static str,
    ) -> Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        Ok(Self {
            name: name.into(),
            child,
            stop_signal,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of its log, for an error message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Fails with the log if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}):\n{}", self.name, self.log_tail());
        }
        Ok(())
    }

    /// Waits (at most `limit`) for the first log line starting with `prefix`; returns the rest.
    pub fn wait_for_line(&mut self, prefix: &str, limit: Duration) -> Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            let file = std::fs::File::open(&self.log)?;
            for line in BufReader::new(file).lines() {
                if let Some(rest) = line?.strip_prefix(prefix) {
                    return Ok(rest.trim().to_string());
                }
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "{} printed no '{prefix}' within {limit:?}:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg(format!("-{}", self.stop_signal))
                .arg(self.child.id().to_string())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A free loopback port (bound and released; the OS does not hand it out again at once).
pub fn free_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Polls `http://{addr}{path}` until it answers 200, for at most `limit`.
pub fn wait_http_ok(proc: &mut Proc, addr: SocketAddr, path: &str, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        proc.check_alive()?;
        match http_get(addr, path) {
            Ok((200, _)) => return Ok(()),
            Ok((status, body)) => last = format!("HTTP {status}: {body}"),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(anyhow!(
        "{} was not ready at http://{addr}{path} within {limit:?} ({last}):\n{}",
        proc.name,
        proc.log_tail()
    ))
}

/// A blocking `GET` with `Connection: close`: status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP answer"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.chars().take(300).collect()))
}

/// CPU time and memory of a process tree at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when it cannot be asked).
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Usage of `pid` and its descendants.
pub fn usage(pid: u32) -> Result<Usage> {
    let parents = parent_map()?;
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| **pp == p).map(|(c, _)| *c));
        i += 1;
    }
    let mut total = Usage::default();
    for p in tree {
        // A child may exit between the scan and the read; it then simply adds nothing.
        if let Ok((_, ticks)) = stat(p) {
            total.cpu_ticks += ticks;
        }
        total.rss_kib += rss_kib(p).unwrap_or(0);
    }
    Ok(total)
}

fn parent_map() -> Result<HashMap<u32, u32>> {
    let mut map = HashMap::new();
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok((ppid, _)) = stat(pid) {
            map.insert(pid, ppid);
        }
    }
    Ok(map)
}

/// `(ppid, utime + stime)` from `/proc/{pid}/stat`.
fn stat(pid: u32) -> Result<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| anyhow!("unreadable /proc/{pid}/stat"))
}

/// The fields after the command name (which may hold spaces and parentheses): state is
/// field 3, ppid 4, utime 14, stime 15.
fn parse_stat(text: &str) -> Option<(u32, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The first executable among `candidates`, or `name` found on `PATH`.
pub fn find_program(name: &str, candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let line =
            "4242 (my (odd) prog) S 17 4242 4242 0 -1 4194560 1 0 0 0 250 31 0 0 20 0 3 0 1 1 1";
        assert_eq!(parse_stat(line), Some((17, 281)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_uses_cpu_and_memory() {
        let before = usage(std::process::id()).unwrap();
        assert!(before.rss_kib > 0);
        // Spin until the kernel has charged at least one more tick (bounded: 5 s).
        let spin = Instant::now();
        let mut x = 0u64;
        let mut now = before;
        while now.cpu_ticks == before.cpu_ticks && spin.elapsed() < Duration::from_secs(5) {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            now = usage(std::process::id()).unwrap();
        }
        assert!(now.cpu_ticks > before.cpu_ticks, "{before:?} {now:?}");
    }
}
