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
//! Keys that pingora or the process fixed at start (listeners, threads, shutdown timings, the
//! session key, telemetry, the upstream CA bundle) keep their running values; the reload
//! applies everything else and reports those keys as needing a restart.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;
use sluice_config::{Config, ConfigErrors};

use crate::auth_keys::KeyRefresher;
use crate::catalog::refresh::CatalogRefresher;
use crate::server::StartError;
use crate::state::Shared;

/// Why a reload was refused; the running config is kept in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The process was not started from a file (`sluice up`).
    #[error(
        "this process was started without a config file (sluice up); there is nothing to re-read"
    )]
    NoSource,
    /// The file has errors.
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
}

/// Re-reads and applies the config file; one reload at a time.
pub struct Reloader {
    current: Arc<ArcSwap<Shared>>,
    source: Option<PathBuf>,
    lock: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// A reloader of `current` from `source` (`None`: started without a file).
    pub fn new(current: Arc<ArcSwap<Shared>>, source: Option<PathBuf>) -> Self {
        Reloader {
            current,
            source,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Reloads, logging and counting the outcome.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.lock.lock().await;
        let metrics = self.current.load().metrics.clone();
        let outcome = self.apply().await;
        match &outcome {
            Ok(report) => {
                metrics.reload("applied");
                metrics.config_generation.set(report.generation as i64);
                tracing::info!(
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
                tracing::error!("config reload refused: {e}");
            }
        }
        outcome
    }

    async fn apply(&self) -> Result<ReloadReport, ReloadError> {
        let path = self.source.as_ref().ok_or(ReloadError::NoSource)?;
        let loaded = sluice_config::load_file(path).map_err(|errors| ReloadError::Invalid {
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

        let new_auth = match (&old.auth, &next.auth) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            (_, b) => b.is_some(),
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
