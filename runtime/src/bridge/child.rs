//! The child process: spawned in its own process group, its stdin fed from a bounded queue,
//! its stdout routed line by line, its stderr logged; restarted with jittered backoff when it
//! dies (re-initialized with the cached handshake before requests reach it again).

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, watch};

use super::BridgeError;
use super::message::{Envelope, is_success};
use super::mux::{ChildState, Running, Shared};
use crate::backoff::Backoff;
use crate::lines::{Line, next_line};
use crate::process_group::{ProcessGroup, isolate};
use crate::until_true;

/// Lines queued for the child's stdin (backpressure beyond this).
const STDIN_QUEUE: usize = 256;
/// A child that ran this long before dying counts as healthy: its backoff starts over.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// How long stdout may keep delivering after the child exited (a grandchild holding the pipe).
const DRAIN_BOUND: Duration = Duration::from_secs(2);

/// Runs the child until it exits for good or `stop` turns true.
pub(crate) async fn supervise(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let config = &shared.config;
    let mut backoff = Backoff::new(config.backoff_base, config.backoff_cap);
    let mut generation = 0u64;
    loop {
        generation += 1;
        // Stopping while the child starts drops the half-started child with its group guard.
        let started = tokio::select! {
            outcome = run_once(&shared, generation) => Some(outcome),
            _ = until_true(&mut stop) => None,
        };
        let (reason, ran_for) = match started {
            None => return stopped(&shared, generation),
            Some(Err(e @ BridgeError::Spawn { .. })) if generation == 1 => {
                // A command that cannot start at all is reported, not retried forever.
                shared.close_streams();
                shared.state.send_replace(ChildState::Exited(e));
                return;
            }
            Some(Err(e)) => (e, Duration::ZERO),
            Some(Ok(mut live)) => {
                let since = Instant::now();
                let status = tokio::select! {
                    status = live.child.wait() => status,
                    _ = until_true(&mut stop) => {
                        shared.state.send_replace(ChildState::Exited(BridgeError::ShuttingDown));
                        live.group.terminate(&mut live.child, config.stop_grace).await;
                        return stopped(&shared, generation);
                    }
                };
                // Leftovers of the group die with it; then stdout reaches its end and every
                // answer the child wrote before dying is delivered before the rest are failed.
                live.group.signal(libc::SIGKILL);
                let _ = tokio::time::timeout(DRAIN_BOUND, &mut live.stdout_task).await;
                live.stdout_task.abort();
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                (BridgeError::Exited(status), since.elapsed())
            }
        };
        shared.fail_generation(generation, &reason);
        tracing::warn!("[{}] {reason}", config.name);
        if !config.restart {
            shared.close_streams();
            shared.state.send_replace(ChildState::Exited(reason));
            return;
        }
        shared.state.send_replace(ChildState::Starting);
        if ran_for >= HEALTHY_AFTER {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::info!("[{}] restarting in {delay:?}", config.name);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = until_true(&mut stop) => return stopped(&shared, generation),
        }
        shared.restarts.fetch_add(1, Ordering::Relaxed);
    }
}

fn stopped(shared: &Shared, generation: u64) {
    shared
        .state
        .send_replace(ChildState::Exited(BridgeError::ShuttingDown));
    shared.fail_generation(generation, &BridgeError::ShuttingDown);
    shared.close_streams();
}

/// A started child generation.
struct Live {
    child: Child,
    group: ProcessGroup,
    stdout_task: tokio::task::JoinHandle<()>,
}

/// Spawns one generation, re-initializes it if a client had initialized an earlier one, and
/// publishes it as ready.
async fn run_once(shared: &Arc<Shared>, generation: u64) -> Result<Live, BridgeError> {
    let config = &shared.config;
    let mut command = Command::new(&config.command);
    command
        .args(&config.args)
        .envs(config.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = &config.cwd {
        command.current_dir(dir);
    }
    isolate(&mut command);
    let mut child = command.spawn().map_err(|e| BridgeError::Spawn {
        command: config.command.clone(),
        reason: e.to_string(),
    })?;
    let group = ProcessGroup::of(&child);
    let pid = child.id().unwrap_or_default();
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(BridgeError::Spawn {
            command: config.command.clone(),
            reason: "stdio pipes missing".into(),
        });
    };
    let (stdin_tx, stdin_rx) = mpsc::channel(STDIN_QUEUE);
    let running = Arc::new(Running {
        generation,
        pid,
        stdin: stdin_tx,
    });
    tokio::spawn(write_stdin(stdin, stdin_rx));
    tokio::spawn(log_stderr(shared.clone(), stderr));
    let stdout_task = tokio::spawn(read_stdout(shared.clone(), running.clone(), stdout));
    let live = Live {
        child,
        group,
        stdout_task,
    };
    tracing::info!("[{}] started (pid {pid})", config.name);
    if let Some(init) = shared.cached_init() {
        let mut request = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":"#.to_vec();
        request.extend_from_slice(&init.params);
        request.push(b'}');
        let text = String::from_utf8_lossy(&request).into_owned();
        let envelope = Envelope::parse(&text).map_err(|e| BridgeError::Spawn {
            command: config.command.clone(),
            reason: format!("cached initialize params: {e}"),
        })?;
        let answer = shared.handshake(&running, &text, &envelope).await?;
        if !is_success(&answer) {
            return Err(BridgeError::Spawn {
                command: config.command.clone(),
                reason: format!(
                    "re-initializing the restarted server failed: {}",
                    String::from_utf8_lossy(&answer)
                ),
            });
        }
        tracing::info!("[{}] re-initialized after restart", config.name);
    }
    shared.pid.store(pid, Ordering::Relaxed);
    shared.state.send_replace(ChildState::Ready(running));
    Ok(live)
}

async fn write_stdin(mut stdin: ChildStdin, mut lines: mpsc::Receiver<Bytes>) {
    while let Some(line) = lines.recv().await {
        if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
            break;
        }
    }
}

async fn read_stdout(shared: Arc<Shared>, running: Arc<Running>, stdout: ChildStdout) {
    let mut reader = BufReader::with_capacity(64 << 10, stdout);
    let mut buf = Vec::new();
    let max = shared.config.max_message_bytes;
    loop {
        match next_line(&mut reader, &mut buf, max).await {
            Ok(Some(Line::Complete)) if buf.iter().all(u8::is_ascii_whitespace) => {}
            Ok(Some(Line::Complete)) => shared.route_from_child(&running, &buf),
            Ok(Some(Line::Truncated)) => tracing::warn!(
                "[{}] skipped a stdout line longer than {max} bytes",
                shared.config.name
            ),
            Ok(None) | Err(_) => return,
        }
    }
}

async fn log_stderr(shared: Arc<Shared>, stderr: ChildStderr) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    let max = shared.config.max_log_line_bytes;
    while let Ok(Some(line)) = next_line(&mut reader, &mut buf, max).await {
        let mut text = String::from_utf8_lossy(&buf).into_owned();
        if line == Line::Truncated {
            text.push_str(" …(truncated)");
        }
        shared.log_line(text);
    }
}
