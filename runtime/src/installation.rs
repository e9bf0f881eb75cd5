//! What the runtime is asked to run: a small, backend-neutral description of one self-hosted
//! installation. The control plane maps its registry entries to this type; the runtime knows
//! nothing of templates, gateways or secrets storage (secrets arrive resolved in `env`).

use std::time::Duration;

/// One installation to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationSpec {
    /// Unique name (`[a-z0-9-]+`, as the registry enforces).
    pub name: String,
    /// The program.
    pub command: String,
    /// Its arguments; for HTTP servers `{port}` is replaced by the assigned port.
    pub args: Vec<String>,
    /// Environment variables (secrets already resolved).
    pub env: Vec<(String, String)>,
    /// How the server speaks MCP.
    pub transport: Transport,
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
