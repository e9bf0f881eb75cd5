//! Hot reload: SIGHUP, or `POST /reload` on the admin listener (`sluice reload`), re-reads the
//! config file the process was started with and swaps it in without dropping a request.
//!
//! Validate first, then swap: a file with errors is refused whole (every error is returned and
//! logged, `sluice_config_reloads_total{outcome="invalid"}` counts it) and the running world is
//! kept. A valid file becomes a successor world ([`Shared::successor`]) that keeps what did not
//! change: upstreams with their pools, breakers and cached tokens, catalogs, the authenticator
//! and its keys, rate-limit buckets. New or changed servers get their catalogs fetched (and a
//! new authenticator its keys) *before* the swap, bounded by `catalog.init_timeout`, so a
//! reload does not make tools vanish for a moment. The swap itself is one pointer store:
//! requests that already loaded the old world finish on it; standalone streams see the new
//! snapshot and announce `notifications/*/list_changed` for what changed.
//!
//! With `[control]`, the applied config is the file merged with the newest registry snapshot
//! received ([`crate::sync`]): a new snapshot and a reload take the same path (re-read the
//! file, merge the snapshot, validate, swap), so a snapshot is refused exactly like an invalid
//! file, and fixing the file (a name clash, say) and reloading applies the snapshot too.
//!
//! Keys that pingora or the process fixed at start (listeners, threads, shutdown timings, the
//! session key, telemetry, the upstream CA bundle) keep their running values; the reload
//! applies everything else and reports those keys as needing a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;
use sluice_config::{Config, ConfigError, ConfigErrors, Snapshot};

use crate::auth_keys::KeyRefresher;
use crate::catalog::refresh::CatalogRefresher;
use crate::server::StartError;
use crate::state::Shared;
use crate::sync::SnapshotFile;

/// Why a reload was refused; the running config is kept in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The process was not started from a file (`sluice up`).
    #[error(
        "this process was started without a config file (sluice up); there is nothing to re-read"
    )]
    NoSource,
    /// The file, or the file merged with the registry snapshot, has errors.
    #[error("{path}: the new config has {} error(s); the running config is kept:\n{errors}", errors.errors.len())]
    Invalid {
        /// The file.
        path: String,
        /// Every problem, positioned.
        errors: ConfigErrors,
    },
    /// The config is valid but could not be built (a credential client, an identity provider).
    #[error("the new config could not be applied; the running config is kept: {0}")]
    Build(#[from] StartError),
}

/// Names added, removed and changed by a reload.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Changes {
    /// New names.
    pub added: Vec<String>,
    /// Names no longer configured.
    pub removed: Vec<String>,
    /// Names whose settings changed.
    pub changed: Vec<String>,
}

impl Changes {
    fn between<T: PartialEq>(old: &[T], new: &[T], name: impl Fn(&T) -> &str) -> Changes {
        let find = |list: &[T], n: &str| list.iter().position(|x| name(x) == n);
        let mut c = Changes::default();
        for x in new {
            match find(old, name(x)) {
                None => c.added.push(name(x).to_owned()),
                Some(i) if old[i] != *x => c.changed.push(name(x).to_owned()),
                Some(_) => {}
            }
        }
        for x in old {
            if find(new, name(x)).is_none() {
                c.removed.push(name(x).to_owned());
            }
        }
        c
    }
}

/// What an applied reload did.
#[derive(Debug, Serialize)]
pub struct ReloadReport {
    /// The generation now served.
    pub generation: u64,
    /// Servers added, removed, changed.
    pub servers: Changes,
    /// Gateways added, removed, changed.
    pub gateways: Changes,
    /// Keys that changed in the file but keep their running values until a restart.
    pub restart_required: Vec<&'static str>,
    /// New or changed servers whose first catalog fetch had not finished by the swap (their
    /// tools appear when it does).
    pub pending: Vec<String>,
    /// The registry snapshot version merged in, if any.
    pub snapshot_version: Option<u64>,
}

/// Reads `path` and validates it merged with `snapshot` (if any), taking `${VAR}` values from
/// the process environment: the config a proxy with `[control]` serves.
pub fn load_merged(path: &Path, snapshot: Option<&Snapshot>) -> Result<Config, ConfigErrors> {
    let Some(snapshot) = snapshot else {
        return sluice_config::load_file(path);
    };
    let file = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        errors: vec![ConfigError {
            file: file.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read config file: {e}"),
        }],
    })?;
    sluice_config::load_str_with_snapshot(&source, &file, &|k| std::env::var(k).ok(), snapshot)
}

/// The registry side of the reloader: the newest snapshot received, and where applied ones
/// are saved.
struct Registry {
    latest: Option<Arc<Snapshot>>,
    saved: Option<u64>,
    file: Option<SnapshotFile>,
}

/// Re-reads and applies the config file (merged with the newest registry snapshot); one
/// apply at a time.
pub struct Reloader {
    current: Arc<ArcSwap<Shared>>,
    source: Option<PathBuf>,
    registry: tokio::sync::Mutex<Registry>,
}

impl Reloader {
    /// A reloader of `current` from `source` (`None`: started without a file).
    pub fn new(current: Arc<ArcSwap<Shared>>, source: Option<PathBuf>) -> Self {
        Self::with_snapshot(current, source, None, None)
    }

    /// A reloader whose running config already merges `snapshot`, saving the snapshots it
    /// applies later to `file`.
    pub fn with_snapshot(
        current: Arc<ArcSwap<Shared>>,
        source: Option<PathBuf>,
        snapshot: Option<Snapshot>,
        file: Option<SnapshotFile>,
    ) -> Self {
        let saved = snapshot.as_ref().map(|s| s.version);
        Reloader {
            current,
            source,
            registry: tokio::sync::Mutex::new(Registry {
                latest: snapshot.map(Arc::new),
                saved,
                file,
            }),
        }
    }

    /// Reloads the file (merged with the newest snapshot received), logging and counting the
    /// outcome.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let mut registry = self.registry.lock().await;
        self.apply_logged(&mut registry, "file").await
    }

    /// Applies a registry snapshot: the file is re-read and merged with it, exactly as a
    /// reload. A refused snapshot stays the newest received (a later reload retries it, e.g.
    /// after the file was fixed); the running world is kept.
    pub async fn apply_snapshot(&self, snapshot: Snapshot) -> Result<ReloadReport, ReloadError> {
        let mut registry = self.registry.lock().await;
        let trigger = format!("registry snapshot v{}", snapshot.version);
        registry.latest = Some(Arc::new(snapshot));
        self.apply_logged(&mut registry, &trigger).await
    }

    async fn apply_logged(
        &self,
        registry: &mut Registry,
        trigger: &str,
    ) -> Result<ReloadReport, ReloadError> {
        let metrics = self.current.load().metrics.clone();
        let snapshot = registry.latest.clone();
        let outcome = self.apply(snapshot.as_deref()).await;
        if let (Ok(_), Some(snapshot)) = (&outcome, &snapshot)
            && registry.saved != Some(snapshot.version)
        {
            metrics
                .control_snapshot_version
                .set(snapshot.version as i64);
            match &registry.file {
                Some(file) => match file.save(snapshot) {
                    Ok(()) => registry.saved = Some(snapshot.version),
                    Err(e) => tracing::error!(
                        file = %file.path().display(),
                        "cannot save the registry snapshot (the proxy serves it, but would not start from it): {e}"
                    ),
                },
                None => registry.saved = Some(snapshot.version),
            }
        }
        match &outcome {
            Ok(report) => {
                metrics.reload("applied");
                metrics.config_generation.set(report.generation as i64);
                tracing::info!(
                    trigger,
                    snapshot_version = report.snapshot_version,
                    generation = report.generation,
                    servers = ?report.servers,
                    gateways = ?report.gateways,
                    restart_required = ?report.restart_required,
                    pending = ?report.pending,
                    "config reloaded"
                );
                if !report.restart_required.is_empty() {
                    tracing::warn!(keys = ?report.restart_required, "these keys changed but keep their running values until a restart");
                }
            }
            Err(e) => {
                metrics.reload(match e {
                    ReloadError::Invalid { .. } => "invalid",
                    _ => "failed",
                });
                tracing::error!(trigger, "config reload refused: {e}");
            }
        }
        outcome
    }

    async fn apply(&self, snapshot: Option<&Snapshot>) -> Result<ReloadReport, ReloadError> {
        let path = self.source.as_ref().ok_or(ReloadError::NoSource)?;
        let loaded = load_merged(path, snapshot).map_err(|errors| ReloadError::Invalid {
            path: path.display().to_string(),
            errors,
        })?;
        let old = self.current.load_full();
        let (config, restart_required) = keep_fixed(&old.config, loaded);
        let servers = Changes::between(&old.config.servers, &config.servers, |s| s.name.as_str());
        let gateways =
            Changes::between(&old.config.gateways, &config.gateways, |g| g.name.as_str());
        let next = old.successor(config)?;
        let bound = next.config.catalog.init_timeout;

        // Replaced or removed: the old authenticator's key refresher stops after the swap.
        let new_auth = match (&old.auth, &next.auth) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            (None, None) => false,
            _ => true,
        };
        if new_auth && let Some(auth) = &next.auth {
            let first =
                futures_util::future::join_all(auth.providers().iter().map(|p| p.keys.refresh()));
            let _ = tokio::time::timeout(bound, first).await;
            let keys = KeyRefresher::new(
                auth.clone(),
                next.metrics.clone(),
                next.auth_retired.clone(),
            );
            tokio::spawn(async move { keys.run().await });
        }
        let refresher = CatalogRefresher::new(next.clone());
        let connector = Arc::new(crate::upstream::connector(&next.config.proxy));
        tokio::spawn(async move { refresher.run(connector).await });
        next.wait_ready(bound).await;
        let pending = next.pending_servers();
        next.settle();

        // Lazily opened upstream sessions stay valid for servers that kept their upstream.
        next.lazy_sessions.retain_servers(|i| {
            match (old.upstreams.get(i), next.upstreams.get(i)) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
        });
        old.retire();
        self.current.store(next.clone());
        next.activate();
        if new_auth {
            old.auth_retired.send_replace(true);
        }
        for name in &servers.removed {
            next.metrics.forget_server(name);
        }
        for name in &gateways.removed {
            next.metrics.forget_gateway(name);
        }
        Ok(ReloadReport {
            generation: next.generation,
            servers,
            gateways,
            restart_required,
            pending,
            snapshot_version: snapshot.map(|s| s.version),
        })
    }
}

/// The new config with the keys fixed at start set back to their running values, and those
/// keys' names where the file changed them.
fn keep_fixed(running: &Config, mut new: Config) -> (Config, Vec<&'static str>) {
    let mut changed = Vec::new();
    macro_rules! keep {
        ($($key:literal => $($field:ident).+),* $(,)?) => {$(
            if new.$($field).+ != running.$($field).+ {
                changed.push($key);
                new.$($field).+ = running.$($field).+.clone();
            }
        )*};
    }
    keep! {
        "proxy.listen" => proxy.listen,
        "proxy.admin_listen" => proxy.admin_listen,
        "proxy.threads" => proxy.threads,
        "proxy.grace_period" => proxy.grace_period,
        "proxy.drain_delay" => proxy.drain_delay,
        "proxy.upstream_ca_file" => proxy.upstream_ca_file,
        "sessions" => sessions,
        "telemetry" => telemetry,
        "control" => control,
    }
    (new, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        sluice_config::load_str(text, "t.toml", &|_| None).expect("valid test config")
    }

    const BASE: &str = r#"
[proxy]
listen = "127.0.0.1:18080"
admin_listen = "127.0.0.1:19090"
threads = 2

[[servers]]
name = "a"
url = "http://127.0.0.1:1/mcp"

[[servers]]
name = "b"
url = "http://127.0.0.1:2/mcp"

[[gateways]]
name = "dev"
servers = ["a", "b"]
"#;

    #[test]
    fn fixed_keys_keep_their_running_values_and_are_reported() {
        let running = config(BASE);
        let edited = BASE
            .replace("18080", "18081")
            .replace("threads = 2", "threads = 3\nmax_body_bytes = 1024");
        let (applied, changed) = keep_fixed(&running, config(&edited));
        assert_eq!(changed, vec!["proxy.listen", "proxy.threads"]);
        assert_eq!(applied.proxy.listen, running.proxy.listen);
        assert_eq!(applied.proxy.threads, 2);
        // Everything else is applied.
        assert_eq!(applied.proxy.max_body_bytes, 1024);
    }

    #[test]
    fn changes_name_added_removed_and_changed_servers() {
        let old = config(BASE);
        let new = config(
            &BASE
                .replace("127.0.0.1:2/mcp", "127.0.0.1:3/mcp")
                .replace(
                    "[[servers]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\n",
                    "[[servers]]\nname = \"c\"\nurl = \"http://127.0.0.1:1/mcp\"\n",
                )
                .replace("servers = [\"a\", \"b\"]", "servers = [\"c\", \"b\"]"),
        );
        let c = Changes::between(&old.servers, &new.servers, |s| s.name.as_str());
        assert_eq!(
            c,
            Changes {
                added: vec!["c".into()],
                removed: vec!["a".into()],
                changed: vec!["b".into()],
            }
        );
        let same = Changes::between(&old.servers, &old.servers, |s| s.name.as_str());
        assert_eq!(same, Changes::default());
    }
}
