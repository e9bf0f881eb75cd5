//! The Sluice control process: the registry of server templates, installations and gateways
//! in sled, the admin HTTP API over it, and the versioned snapshot proxies long-poll.
//!
//! Proxies never read the registry directly: control renders it into a
//! [`sluice_config::Snapshot`] (the config file's own `[[servers]]`/`[[gateways]]` shape), so
//! a proxy validates registry entries exactly as it validates its file and keeps serving its
//! last snapshot while control is down. `store` is the only module that knows sled.
#![warn(missing_docs)]

pub mod api;
pub mod backends;
pub mod callers;
pub mod cli;
pub mod client;
pub mod config;
pub mod discovery;
pub mod mcp_client;
pub mod model;
pub mod orchestrator;
pub mod render;
pub mod secrets;
pub mod store;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub use config::ControlConfig;
pub use secrets::KeyRing;
pub use store::Store;

/// Why control could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The config file.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The secrets key.
    #[error(transparent)]
    Key(#[from] secrets::SecretError),
    /// The registry database.
    #[error("{path}: {source}")]
    Store {
        /// The data directory.
        path: String,
        /// Why.
        source: store::StoreError,
    },
    /// The runtime backend could not be set up.
    #[error("runtime: {0}")]
    Runtime(String),
    /// The listener.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A started control: its API is being served on `addr`.
pub struct Running {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The registry.
    pub store: Arc<Store>,
    api: Arc<api::Api>,
    task: tokio::task::JoinHandle<()>,
    /// The orchestrator's loop and its backends, when self-hosted installations run here.
    orchestrator: Option<(tokio::task::JoinHandle<()>, Arc<backends::Backends>)>,
    /// The discovery loop, unless turned off.
    discovery: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Snapshot long-polls waiting for a change right now.
    pub fn parked_polls(&self) -> usize {
        self.api.parked_polls()
    }

    /// Publishes a write made directly on [`Running::store`] (wakes proxies' polls and the
    /// orchestrator); `version` must be flushed.
    pub fn publish(&self, version: u64) {
        self.api.publish(version);
    }

    /// Follows the registry version as writes are published.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.api.subscribe()
    }

    /// Stops serving, stops the self-hosted installations (their process groups), and
    /// flushes the registry.
    pub async fn stop(self) -> Result<(), store::StoreError> {
        self.task.abort();
        let _ = self.task.await;
        if let Some(task) = self.discovery {
            task.abort();
            let _ = task.await;
        }
        if let Some((task, backends)) = self.orchestrator {
            task.abort();
            let _ = task.await;
            backends.shutdown().await;
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .unwrap_or(Ok(()))
    }
}

/// Opens the registry and serves the API; call inside a Tokio runtime.
pub async fn start(config: &ControlConfig, keys: KeyRing) -> Result<Running, ControlError> {
    let store = Store::open(&config.data_dir, keys).map_err(|source| ControlError::Store {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let store = Arc::new(store);
    let api = api::Api::new(store.clone(), &config.admin_tokens, &config.proxy_tokens).map_err(
        |source| ControlError::Store {
            path: config.data_dir.display().to_string(),
            source,
        },
    )?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ControlError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ControlError::Bind {
        addr: config.listen,
        source,
    })?;
    let runtime = runtime_of(&config.runtime).await?;
    let api = match &runtime {
        Some(backends) => api.with_backends(backends.clone()),
        None => api,
    };
    let api = Arc::new(api);
    let task = tokio::spawn(api::serve(listener, api.clone()));
    let orchestrator = match runtime {
        Some(backends) => {
            let loop_ = orchestrator::Orchestrator::new(
                store.clone(),
                api.clone(),
                backends.clone(),
                config.runtime.resync,
            );
            Some((tokio::spawn(loop_.run()), backends))
        }
        None => None,
    };
    let discovery = (!config.discovery.interval.is_zero()).then(|| {
        tokio::spawn(
            discovery::Discovery::new(
                store.clone(),
                api.clone(),
                config.discovery.interval,
                config.discovery.timeout,
            )
            .run(),
        )
    });
    Ok(Running {
        addr,
        store,
        api,
        task,
        orchestrator,
        discovery,
    })
}

/// The backends `[runtime]` asks for; `None` when nothing runs here.
async fn runtime_of(
    config: &config::RuntimeConfig,
) -> Result<Option<Arc<backends::Backends>>, ControlError> {
    let Some(default) = config.default_kind() else {
        return Ok(None);
    };
    let bounds = sluice_runtime::StartBounds {
        healthy_within: config.healthy_within,
    };
    let mut out = backends::Backends::new(default);
    for kind in config.kinds() {
        out = match kind {
            model::RuntimeKind::Local => {
                out.with_local(Arc::new(sluice_runtime::LocalRuntime::new(bounds.clone())))
            }
            model::RuntimeKind::Kubernetes => {
                out.with(kind, Arc::new(kubernetes(config, bounds.clone()).await?))
            }
        };
    }
    Ok(Some(Arc::new(out)))
}

/// The Kubernetes backend: namespace and bridge image from `[runtime]` or the environment.
async fn kubernetes(
    config: &config::RuntimeConfig,
    bounds: sluice_runtime::StartBounds,
) -> Result<sluice_runtime::KubernetesRuntime, ControlError> {
    let from_env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let namespace = config
        .namespace
        .clone()
        .or_else(|| from_env("SLUICE_KUBERNETES_NAMESPACE"))
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .ok()
                .map(|n| n.trim().to_owned())
        })
        .ok_or_else(|| {
            ControlError::Runtime(
                "[runtime] namespace is not set (nor $SLUICE_KUBERNETES_NAMESPACE, nor a service account's)".into(),
            )
        })?;
    let image = config
        .bridge_image
        .clone()
        .or_else(|| from_env("SLUICE_BRIDGE_IMAGE"))
        .ok_or_else(|| {
            ControlError::Runtime(
                "[runtime] bridge_image is not set (nor $SLUICE_BRIDGE_IMAGE)".into(),
            )
        })?;
    let mut k8s = sluice_runtime::KubernetesConfig::new(namespace, image);
    k8s.bounds = bounds;
    sluice_runtime::KubernetesRuntime::infer(k8s)
        .await
        .map_err(|e| ControlError::Runtime(e.to_string()))
}

/// `sluice control --config FILE`: loads the config and the key from the environment, serves
/// until SIGTERM or Ctrl-C, then flushes.
pub fn run(path: &Path) -> Result<(), ControlError> {
    let config = ControlConfig::load(path)?;
    let keys = KeyRing::from_env(&config.key_env, &config.old_keys_env, &|k| {
        std::env::var(k).ok()
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| ControlError::Bind {
            addr: config.listen,
            source,
        })?;
    runtime.block_on(async {
        let running = start(&config, keys).await?;
        let version = running.store.version().unwrap_or(0);
        tracing::info!(
            listen = %running.addr,
            data_dir = %config.data_dir.display(),
            version,
            "control is serving the admin API"
        );
        // One write, errors ignored: a closed stdout must not stop control.
        let banner = format!("sluice control listening on http://{}\n", running.addr);
        let _ = std::io::Write::write_all(&mut std::io::stdout(), banner.as_bytes());
        wait_for_signal().await;
        tracing::info!("stopping: flushing the registry");
        running.stop().await.map_err(|source| ControlError::Store {
            path: config.data_dir.display().to_string(),
            source,
        })
    })
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler installs");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
