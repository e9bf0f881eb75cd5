//! A one-line progress bar with the live rate, on stderr when it is a terminal.
//!
//! Workers bump two relaxed atomics per answer; a separate task reads them once per
//! `TICK` and redraws the line, so drawing never slows the hot path.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

const TICK: Duration = Duration::from_millis(500);
const WIDTH: usize = 30;

/// Answers and errors so far.
#[derive(Default)]
pub struct Live {
    answered: AtomicU64,
    errors: AtomicU64,
}

impl Live {
    pub fn count(&self, error: bool) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The running progress line; [`Bar::finish`] clears it.
pub struct Bar {
    task: Option<JoinHandle<()>>,
}

impl Bar {
    /// Starts drawing `label` and the counters of `live` over `duration`, if stderr is a
    /// terminal; otherwise draws nothing.
    pub fn start(label: String, duration: Duration, live: Arc<Live>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { task: None };
        }
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut last = (started, 0u64);
            let mut tick = tokio::time::interval(TICK);
            loop {
                tick.tick().await;
                let now = Instant::now();
                let answered = live.answered.load(Ordering::Relaxed);
                let errors = live.errors.load(Ordering::Relaxed);
                let rate =
                    (answered - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-9);
                last = (now, answered);
                let done =
                    now.duration_since(started).as_secs_f64() / duration.as_secs_f64().max(1e-9);
                let filled = ((done.min(1.0)) * WIDTH as f64) as usize;
                eprint!(
                    "\r{label:<24} [{}{}] {:>5.1}s {:>10.0} req/s  errors {errors}\x1b[K",
                    "#".repeat(filled),
                    "-".repeat(WIDTH - filled),
                    now.duration_since(started).as_secs_f64(),
                    rate,
                );
                let _ = std::io::stderr().flush();
            }
        });
        Self { task: Some(task) }
    }

    pub fn finish(self) {
        if let Some(task) = self.task {
            task.abort();
            eprint!("\r\x1b[K");
        }
    }
}
