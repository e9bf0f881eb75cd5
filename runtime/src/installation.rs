//! What the runtime is asked to run: a small, backend-neutral description of one self-hosted
//! installation. The control plane maps its registry entries to this type; the runtime knows
//! nothing of templates, gateways or secrets storage (secrets arrive resolved, in `secret_env`,
//! kept apart from `env` so a backend that can store them separately, as Kubernetes does in a
//! Secret, keeps them out of the workload's spec). Fields a backend has no use for are ignored
//! by it: the local backend runs no image and enforces no resources.

use std::time::Duration;

/// One installation to run. Its `Debug` output shows the names of `secret_env`, never their
/// values.
#[derive(Clone, PartialEq, Eq)]
pub struct InstallationSpec {
    /// Unique name (`[a-z0-9-]+`, as the registry enforces).
    pub name: String,
    /// The program.
    pub command: String,
    /// Its arguments; for HTTP servers `{port}` is replaced by the assigned port.
    pub args: Vec<String>,
    /// Environment variables that are not secret.
    pub env: Vec<(String, String)>,
    /// Environment variables holding secrets, already resolved. The local backend passes them
    /// like `env`; the Kubernetes backend stores them in a Secret the container references.
    pub secret_env: Vec<(String, String)>,
    /// How the server speaks MCP.
    pub transport: Transport,
    /// The container image to run in (container backends). For a stdio server it must also
    /// hold the `sluice` binary on `PATH` (the bridge wraps the server); absent, the backend's
    /// own bridge image is used. Ignored by the local backend.
    pub image: Option<String>,
    /// Resource requests and limits (container backends); ignored by the local backend.
    pub resources: Option<Resources>,
}

impl std::fmt::Debug for InstallationSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret_names: Vec<&str> = self.secret_env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("InstallationSpec")
            .field("name", &self.name)
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &self.env)
            .field("secret_env", &secret_names)
            .field("transport", &self.transport)
            .field("image", &self.image)
            .field("resources", &self.resources)
            .finish()
    }
}

/// Resource requests and limits, as Kubernetes quantities (`"250m"`, `"1"`, `"256Mi"`).
/// Each one absent is left to the cluster's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU the scheduler reserves.
    pub cpu_request: Option<String>,
    /// Memory the scheduler reserves.
    pub memory_request: Option<String>,
    /// CPU the container is throttled at.
    pub cpu_limit: Option<String>,
    /// Memory the container is killed at.
    pub memory_limit: Option<String>,
}

/// How a self-hosted server speaks MCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Over stdin/stdout: served through the bridge.
    Stdio,
    /// Streamable HTTP on an assigned loopback port (also in `$PORT`), at `path`.
    Http {
        /// The MCP endpoint path, e.g. `/mcp`.
        path: String,
    },
}

/// Where an installation is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The Streamable HTTP URL the gateway forwards to.
    pub url: String,
}

/// Where an installation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstallationStatus {
    /// Starting, or restarting after an exit (with the last error, if any).
    Starting {
        /// Why the last process ended, if one did.
        last_error: Option<String>,
    },
    /// Running and healthy.
    Running {
        /// The server's (or the bridge child's) pid.
        pid: u32,
        /// Restarts so far.
        restarts: u64,
    },
    /// Running on a cluster: `ready` of `desired` replicas are available and up to date.
    Available {
        /// Replicas ready and running the current spec.
        ready: u32,
        /// Replicas asked for.
        desired: u32,
    },
    /// Not running and not restarted.
    Failed(String),
}

/// Errors of a runtime backend.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// No installation of that name.
    #[error("no installation named `{0}`")]
    Unknown(String),
    /// The installation could not be started or did not become healthy.
    #[error("installation `{name}` did not start: {reason}")]
    Start {
        /// The installation.
        name: String,
        /// Why.
        reason: String,
    },
    /// The spec cannot be run by this backend (an invalid name, a missing image, ...).
    #[error("installation `{name}` cannot run here: {reason}")]
    Invalid {
        /// The installation.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The orchestrator's API refused a request or could not be reached.
    #[error("installation `{name}`: {action} failed: {reason}")]
    Api {
        /// The installation.
        name: String,
        /// What was being done, e.g. `apply Deployment`.
        action: String,
        /// HTTP status of the API's answer, if there was one.
        status: Option<u16>,
        /// The API's message, or the transport error.
        reason: String,
    },
}

/// Bounds a backend applies when starting installations.
#[derive(Debug, Clone)]
pub struct StartBounds {
    /// How long `ensure` waits for a new installation to become healthy.
    pub healthy_within: Duration,
}

impl Default for StartBounds {
    fn default() -> Self {
        StartBounds {
            healthy_within: Duration::from_secs(30),
        }
    }
}

/// What a backend reports, unasked, about what it runs (see [`crate::Runtime::changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Something it runs changed behind the orchestrator's back (deleted, edited, its readiness
    /// moved): reconcile now rather than at the next resync.
    Drifted,
    /// A complete listing of the installations the backend holds (on start and after every
    /// relist). One that the registry does not want there is an orphan, e.g. deleted while
    /// control was down, and is to be removed.
    Present(std::collections::BTreeSet<String>),
}
