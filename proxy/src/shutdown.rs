//! Shutdown in the order a load balancer needs. On SIGTERM, `/readyz` turns 503
//! (`"draining": true`) while the MCP listener keeps serving for `proxy.drain_delay`, so the
//! balancer's health checks take the replica out of rotation before anything is refused; only
//! then does pingora close the listeners and let in-flight requests finish within
//! `proxy.grace_period`. SIGINT during the delay, or at any time, shuts down at once; SIGQUIT
//! is pingora's graceful upgrade (listening sockets handed to a new process).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The shutdown watcher: SIGTERM drains first.
pub struct DrainFirst {
    draining: Arc<AtomicBool>,
    delay: Duration,
}

impl DrainFirst {
    /// A watcher that sets `draining` (every world's `/readyz` flag) for `delay` after SIGTERM.
    pub fn new(draining: Arc<AtomicBool>, delay: Duration) -> Self {
        DrainFirst { draining, delay }
    }
}

/// A signal stream, or one that never fires when the handler cannot be installed (logged).
fn listen(kind: SignalKind, name: &str) -> Option<Signal> {
    match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(signal = name, error = %e, "cannot listen for this signal");
            None
        }
    }
}

async fn next(s: &mut Option<Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[async_trait]
impl ShutdownSignalWatch for DrainFirst {
    async fn recv(&self) -> ShutdownSignal {
        let mut term = listen(SignalKind::terminate(), "SIGTERM");
        let mut int = listen(SignalKind::interrupt(), "SIGINT");
        let mut quit = listen(SignalKind::quit(), "SIGQUIT");
        tokio::select! {
            () = next(&mut quit) => return ShutdownSignal::GracefulUpgrade,
            () = next(&mut int) => return ShutdownSignal::FastShutdown,
            () = next(&mut term) => {}
        }
        self.draining.store(true, Ordering::Release);
        tracing::info!(drain_delay = ?self.delay, "SIGTERM: readiness is now false; the listener closes after the drain delay");
        tokio::select! {
            () = tokio::time::sleep(self.delay) => {}
            () = next(&mut int) => return ShutdownSignal::FastShutdown,
        }
        tracing::info!("closing the listeners; in-flight requests drain within the grace period");
        ShutdownSignal::GracefulTerminate
    }
}
