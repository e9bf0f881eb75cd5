//! The access log: one JSON line per request, written by a dedicated thread so a slow
//! stdout or disk never stalls a worker. Lines go through a bounded queue; when it is full a
//! line is dropped and counted (`sluice_access_log_dropped_total`) rather than block a request.
//! Lines are flushed at least every 100 ms. A line holds names, sizes, times and outcomes
//! only — never a token, credential or tool argument.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use serde::Serialize;
use sluice_config::AccessLog as Target;

/// Lines queued before new ones are dropped.
const QUEUE: usize = 16 * 1024;

/// One request, as logged.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    /// RFC 3339 time the request ended.
    pub time: String,
    /// Gateway name.
    pub gateway: Option<&'a str>,
    /// JSON-RPC method.
    pub method: Option<&'a str>,
    /// Tool, prompt or resource the request targeted.
    pub target: Option<&'a str>,
    /// Upstream server.
    pub server: Option<&'a str>,
    /// Authenticated caller (`authority:subject`).
    pub caller: Option<&'a str>,
    /// HTTP status (0 when nothing was sent).
    pub status: u16,
    /// Outcome label.
    pub outcome: &'a str,
    /// Error message, when it failed.
    pub error: Option<&'a str>,
    /// Total duration in milliseconds.
    pub duration_ms: f64,
    /// Time spent with the upstream, in milliseconds.
    pub upstream_ms: Option<f64>,
    /// Request body bytes.
    pub bytes_in: usize,
    /// Response body bytes.
    pub bytes_out: usize,
    /// Trace id, when the request was traced.
    pub trace_id: Option<String>,
}

/// The access log writer.
pub struct AccessLog {
    tx: Option<SyncSender<Vec<u8>>>,
    dropped: IntCounter,
}

impl AccessLog {
    /// Starts the writer for `target`; `dropped` counts lines lost to a full queue.
    pub fn start(target: &Target, dropped: IntCounter) -> io::Result<Self> {
        let out: Box<dyn Write + Send> = match target {
            Target::Off => return Ok(AccessLog { tx: None, dropped }),
            Target::Stdout => Box::new(io::stdout()),
            Target::File(path) => {
                Box::new(OpenOptions::new().create(true).append(true).open(path)?)
            }
        };
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("sluice-access-log".into())
            .spawn(move || write_lines(rx, BufWriter::with_capacity(64 * 1024, out)))?;
        Ok(AccessLog {
            tx: Some(tx),
            dropped,
        })
    }

    /// Whether lines are written at all.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues one line.
    pub fn write(&self, line: &Line<'_>) {
        let Some(tx) = &self.tx else { return };
        let Ok(bytes) = serde_json::to_vec(line) else {
            return;
        };
        match tx.try_send(bytes) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
    }
}

/// Longest a written line waits in the buffer before it is flushed.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Writes lines as they come, flushing when the buffer fills or [`FLUSH_EVERY`] passed, not
/// per line: at thousands of requests a second a flush per line is a syscall per request.
fn write_lines(rx: Receiver<Vec<u8>>, mut out: BufWriter<Box<dyn Write + Send>>) {
    let mut last_flush = Instant::now();
    let mut pending = false;
    loop {
        let wait = if pending {
            FLUSH_EVERY.saturating_sub(last_flush.elapsed())
        } else {
            Duration::from_secs(3600)
        };
        match rx.recv_timeout(wait) {
            Ok(line) => {
                if out
                    .write_all(&line)
                    .and_then(|()| out.write_all(b"\n"))
                    .is_err()
                {
                    return;
                }
                pending = true;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let _ = out.flush();
                return;
            }
        }
        if pending && last_flush.elapsed() >= FLUSH_EVERY {
            if out.flush().is_err() {
                return;
            }
            pending = false;
            last_flush = Instant::now();
        }
    }
}
