//! `sluice-runtime`: where self-hosted MCP servers run.
//!
//! Most MCP servers speak only stdio. The [`bridge`] serves one such server as Streamable HTTP
//! (`sluice bridge -- CMD ARGS…`, also the entrypoint wrapper in containers), so the gateway
//! reaches every self-hosted server the same way: over HTTP. Process groups, bounded line
//! reading and restart backoff are shared by the bridge and the runtime backends.
//!
//! Two backends implement [`Runtime`]: [`local`] (child processes on this machine) and
//! [`kubernetes`] (a Deployment, Service and Secret per installation, through `kube`).

#![warn(missing_docs)]

mod backoff;
pub mod bridge;
mod installation;
pub mod kubernetes;
mod lines;
pub mod local;
pub mod process_group;

pub use backoff::Backoff;
pub use bridge::{Bridge, BridgeConfig, BridgeError, BridgeStatus};
pub use installation::{
    Change, Endpoint, InstallationSpec, InstallationStatus, Resources, RuntimeError, StartBounds,
    Transport,
};
pub use kubernetes::{KubernetesConfig, KubernetesRuntime};
pub use local::LocalRuntime;

/// Where self-hosted installations run. The orchestrator (in the control plane) calls
/// `ensure` for every desired installation on each reconcile pass and `remove` for the ones
/// that are gone; a backend keeps each installation running (restarting it with backoff) and
/// reports its status and recent logs for the registry and `sluice ctl`.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync {
    /// Starts `spec` if it is not running, restarts it if it changed, and returns where it is
    /// reached once it is healthy (bounded); an unchanged running installation is left alone.
    async fn ensure(&self, spec: &InstallationSpec) -> Result<Endpoint, RuntimeError>;
    /// Where an installation stands.
    async fn status(&self, name: &str) -> Result<InstallationStatus, RuntimeError>;
    /// Its most recent log lines (stdout and stderr of the server), oldest first.
    async fn logs(&self, name: &str) -> Result<Vec<String>, RuntimeError>;
    /// Stops it and deletes what the backend made for it.
    async fn remove(&self, name: &str) -> Result<(), RuntimeError>;
    /// What changes under the backend as it happens, for an orchestrator to reconcile on
    /// (each call starts a new watch; it retries with backoff and never ends). `None`, the
    /// default, for a backend that sees no drift of its own (the local backend supervises its
    /// processes itself and they die with control).
    fn changes(&self) -> Option<futures_util::stream::BoxStream<'static, Change>> {
        None
    }
}

/// Resolves when `flag` turns true or its sender is gone (a stop signal). The watch guard is
/// not held across an await, which keeps the callers' futures `Send`.
pub(crate) async fn until_true(flag: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|f| *f).await;
}
