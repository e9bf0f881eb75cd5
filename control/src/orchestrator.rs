//! The orchestrator: runs the registry's self-hosted (`stdio`) installations on their runtime
//! backends and writes where each stands back into the registry.
//!
//! It is a reconcile loop, as Kubernetes controllers are: on every published registry write, on
//! every change a backend reports ([`Backends::changes`]: the Kubernetes backend watches its
//! Deployments, so a deleted, edited or unready one is corrected at once; a burst of events within
//! [`DEBOUNCE`] is one pass), and every `[runtime] resync` in between, it compares the
//! installations that should run with the ones it runs, calls `ensure` for each desired one (which
//! starts, restarts on change, or leaves alone), `remove` for each one gone, and checks health with
//! an MCP `initialize` against the endpoint. What it sees becomes the installation's [`RunState`];
//! a changed state is one audited write (actor `orchestrator`) that bumps the registry version, so
//! proxies learn a new endpoint URL through their snapshot like any other change, and an unchanged
//! state writes nothing, so a steady registry stays quiet. Restarts after exits are the backend's
//! (jittered exponential backoff); a start that fails is retried with the same backoff
//! ([`START_BACKOFF`] doubling to [`START_BACKOFF_CAP`]), not on every pass. Errors are stored with
//! the installation's secret values masked.
//!
//! Each installation runs on the backend it names (`runtime`) or the control's default
//! ([`Backends`]). The orchestrator remembers which backend runs what: an installation whose
//! backend changed is removed from the old one before it is ensured on the new one, and an
//! installation it meets for the first time (after control started) is removed from every
//! other backend first, so a switch made while control was down leaves nothing behind.
//! What a backend lists as present there but the registry does not want there (an
//! installation deleted while control was down) is an orphan, removed on the next pass; the
//! backend lists only what carries its own labels, and `remove` deletes only that.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use sluice_runtime::{Backoff, Change, InstallationSpec, InstallationStatus, Resources, Transport};
use tokio::time::Instant;

use crate::api::Api;
use crate::backends::Backends;
use crate::model::{RunState, RuntimeKind, SECRET_PLACEHOLDER, SelfHosted};
use crate::store::Store;

/// First wait before a failed start is tried again.
pub const START_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between tries of a start that keeps failing.
pub const START_BACKOFF_CAP: Duration = Duration::from_secs(300);

/// After a backend reports a change, how long more changes are gathered into the same pass.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// What backends listed as present, by backend: checked for orphans on the next pass.
type Present = BTreeMap<RuntimeKind, BTreeSet<String>>;

/// How long an MCP `initialize` health check may take.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// The reconcile loop over a store and its backends.
pub struct Orchestrator {
    store: Arc<Store>,
    api: Arc<Api>,
    backends: Arc<Backends>,
    resync: Duration,
    /// Installations whose start failed: their backoff and when to try again.
    failing: std::sync::Mutex<std::collections::HashMap<String, (Backoff, Instant)>>,
    /// True while it waits with nothing pending (see [`Orchestrator::idle`]).
    idle: tokio::sync::watch::Sender<bool>,
}

impl Orchestrator {
    /// An orchestrator publishing its writes through `api` (which wakes proxies' polls).
    pub fn new(
        store: Arc<Store>,
        api: Arc<Api>,
        backends: Arc<Backends>,
        resync: Duration,
    ) -> Self {
        Orchestrator {
            store,
            api,
            backends,
            resync,
            failing: Default::default(),
            idle: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Whether it waits with nothing pending: no registry write and no backend change that
    /// it has not reconciled yet, so only a new one (or the resync) wakes it. Tests use it to
    /// know the next pass was woken by what they do.
    pub fn idle(&self) -> tokio::sync::watch::Receiver<bool> {
        self.idle.subscribe()
    }

    /// Reconciles until dropped.
    pub async fn run(self) {
        let mut waits = Waits {
            writes: self.api.subscribe(),
            drift: self.backends.changes(),
            drift_open: true,
            present: Present::new(),
        };
        let mut running: BTreeMap<String, RuntimeKind> = BTreeMap::new();
        loop {
            self.pass(&mut running, &mut waits.present).await;
            if !self.wait(&mut waits).await {
                return;
            }
        }
    }

    /// Waits for the next reason to pass: a write, a backend's change, the resync; false when
    /// the registry is gone. What is already pending wakes it at once.
    async fn wait(&self, w: &mut Waits) -> bool {
        match w.writes.has_changed() {
            Ok(true) => {
                w.writes.mark_unchanged();
                return true;
            }
            Ok(false) => {}
            Err(_) => return false,
        }
        if w.drift_open {
            match w.drift.next().now_or_never() {
                Some(Some(first)) => {
                    gather(&mut w.drift, first, &mut w.present).await;
                    return true;
                }
                Some(None) => w.drift_open = false,
                None => {}
            }
        }
        self.idle.send_replace(true);
        let woke = loop {
            tokio::select! {
                woke = crate::api::next_write_or(&mut w.writes, self.resync) => break Ok(woke),
                change = w.drift.next(), if w.drift_open => match change {
                    Some(first) => break Err(first),
                    None => w.drift_open = false,
                }
            }
        };
        self.idle.send_replace(false);
        match woke {
            Ok(woke) => woke,
            Err(first) => {
                gather(&mut w.drift, first, &mut w.present).await;
                true
            }
        }
    }

    /// The orphans this registry can account for: installations it has (on another backend)
    /// or once had. Others carry Sluice's labels but are not this registry's (another
    /// control's, or this one started on an empty store) and are left alone, with a warning.
    async fn accounted_for(
        &self,
        orphans: Vec<String>,
        wanted: &BTreeMap<String, RuntimeKind>,
    ) -> Vec<String> {
        let (known, unknown): (Vec<String>, Vec<String>) =
            orphans.into_iter().partition(|n| wanted.contains_key(n));
        if unknown.is_empty() {
            return known;
        }
        let store = self.store.clone();
        let checked = tokio::task::spawn_blocking(move || {
            unknown
                .into_iter()
                .map(|n| store.ever_installed(&n).map(|ours| (n, ours)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
        let mut out = known;
        match checked {
            Ok(Ok(list)) => {
                for (name, ours) in list {
                    if ours {
                        out.push(name);
                    } else {
                        tracing::warn!(installation = %name, "left alone: labelled as Sluice's but never in this registry");
                    }
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "orchestrator cannot read the audit log"),
            Err(e) => tracing::error!(error = %e, "orchestrator task failed"),
        }
        out
    }

    /// One pass: removes what is gone or moved, ensures and checks what is desired.
    /// `running` is which backend runs each installation this orchestrator started.
    /// `present` is what backends listed since the last pass; what of it the registry does not
    /// want on that backend is removed.
    async fn pass(&self, running: &mut BTreeMap<String, RuntimeKind>, present: &mut Present) {
        let store = self.store.clone();
        let desired = match tokio::task::spawn_blocking(move || store.self_hosted()).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "orchestrator cannot read the registry");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "orchestrator task failed");
                return;
            }
        };
        let wanted: BTreeMap<String, RuntimeKind> = desired
            .iter()
            .map(|d| (d.name.clone(), self.backends.choose(d.runtime)))
            .collect();
        for (kind, names) in std::mem::take(present) {
            // What this orchestrator runs there is handled below, as stale.
            let orphans: Vec<String> = names
                .into_iter()
                .filter(|n| wanted.get(n) != Some(&kind) && running.get(n) != Some(&kind))
                .collect();
            for name in self.accounted_for(orphans, &wanted).await {
                tracing::info!(installation = %name, runtime = %kind, "removing an orphan the registry does not want there");
                self.remove_from(kind, &name).await;
            }
        }
        let stale: Vec<(String, RuntimeKind)> = running
            .iter()
            .filter(|(name, kind)| wanted.get(*name) != Some(*kind))
            .map(|(n, k)| (n.clone(), *k))
            .collect();
        for (name, kind) in stale {
            self.remove_from(kind, &name).await;
            running.remove(&name);
            self.lock_failing().remove(&name);
            match wanted.get(&name) {
                Some(to) => {
                    tracing::info!(installation = %name, from = %kind, to = %to, "moving to another runtime")
                }
                None => {
                    tracing::info!(installation = %name, "self-hosted installation stopped");
                    self.record(move |s| s.clear_run_state(&name)).await;
                }
            }
        }
        let now = Instant::now();
        let due: Vec<&SelfHosted> = {
            let mut failing = self.lock_failing();
            failing.retain(|name, _| wanted.contains_key(name));
            desired
                .iter()
                .filter(|d| failing.get(&d.name).is_none_or(|(_, at)| *at <= now))
                .collect()
        };
        let passes = due.into_iter().map(|d| {
            let kind = self.backends.choose(d.runtime);
            self.reconcile(d, kind, !running.contains_key(&d.name))
        });
        for (name, kind, state) in futures_util::future::join_all(passes).await {
            if let Some(kind) = kind {
                running.insert(name.clone(), kind);
            }
            self.note_outcome(&name, &state);
            self.record(move |s| s.set_run_state(&name, &state)).await;
        }
    }

    fn lock_failing(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (Backoff, Instant)>> {
        self.failing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes `name` from the backend of `kind` (what is not there is no error).
    async fn remove_from(&self, kind: RuntimeKind, name: &str) {
        let Some(runtime) = self.backends.get(kind) else {
            return;
        };
        match runtime.remove(name).await {
            Ok(()) | Err(sluice_runtime::RuntimeError::Unknown(_)) => {}
            Err(e) => tracing::warn!(installation = %name, runtime = %kind, error = %e, "remove"),
        }
    }

    /// Schedules the next try of a failed start, or forgets the failures of a started one.
    fn note_outcome(&self, name: &str, state: &RunState) {
        let mut failing = self.lock_failing();
        if state.state == "failed" {
            let (backoff, at) = failing.entry(name.to_owned()).or_insert_with(|| {
                (
                    Backoff::new(START_BACKOFF, START_BACKOFF_CAP),
                    Instant::now(),
                )
            });
            *at = Instant::now() + backoff.next_delay();
        } else {
            failing.remove(name);
        }
    }

    /// Ensures one installation on the backend of `kind` and says where it stands (and
    /// which backend now runs it, `None` when this control runs no such backend). On
    /// `first_sight`, it is first removed from every other backend.
    async fn reconcile(
        &self,
        d: &SelfHosted,
        kind: RuntimeKind,
        first_sight: bool,
    ) -> (String, Option<RuntimeKind>, RunState) {
        let masked = |text: String| mask(text, &d.secrets);
        let failed = |why: String| RunState {
            state: "failed".into(),
            url: None,
            last_error: Some(masked(why)),
            restarts: 0,
            runtime: Some(kind),
        };
        let Some(runtime) = self.backends.get(kind) else {
            let why = format!("this control runs no {kind} backend (see [runtime] backends)");
            return (d.name.clone(), None, failed(why));
        };
        if first_sight {
            for other in self.backends.kinds().filter(|k| *k != kind) {
                self.remove_from(other, &d.name).await;
            }
        }
        let state = match runtime.ensure(&spec(d)).await {
            Err(e) => failed(e.to_string()),
            Ok(endpoint) => {
                let (restarts, exited) = match runtime.status(&d.name).await {
                    Ok(InstallationStatus::Running { restarts, .. }) => (restarts, None),
                    Ok(InstallationStatus::Starting { last_error }) => (0, last_error),
                    Ok(InstallationStatus::Failed(e)) => (0, Some(e)),
                    Ok(_) => (0, None),
                    Err(e) => (0, Some(e.to_string())),
                };
                let health = initialize(&endpoint.url).await;
                let (state, last_error) = match (exited, health) {
                    (None, Ok(())) => ("running", None),
                    (Some(e), _) => ("starting", Some(masked(e))),
                    (None, Err(e)) => ("starting", Some(masked(e))),
                };
                RunState {
                    state: state.into(),
                    url: Some(endpoint.url),
                    last_error,
                    restarts,
                    runtime: Some(kind),
                }
            }
        };
        (d.name.clone(), Some(kind), state)
    }

    /// Runs one store write off the async threads, flushes it and publishes its version.
    async fn record<F>(&self, write: F)
    where
        F: FnOnce(&Store) -> Result<Option<u64>, crate::store::StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        let written = tokio::task::spawn_blocking(move || {
            let version = write(&store)?;
            if let Some(v) = version {
                store.flush_through(v)?;
            }
            Ok::<_, crate::store::StoreError>(version)
        })
        .await;
        match written {
            Ok(Ok(Some(version))) => self.api.publish(version),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "orchestrator cannot write a run state"),
            Err(e) => tracing::error!(error = %e, "orchestrator task failed"),
        }
    }
}

/// What the orchestrator waits on between passes.
struct Waits {
    writes: tokio::sync::watch::Receiver<u64>,
    drift: BoxStream<'static, (RuntimeKind, Change)>,
    /// Until every backend's change stream has ended.
    drift_open: bool,
    /// What backends listed since the last pass.
    present: Present,
}

/// Takes `first` and what else the backends report within [`DEBOUNCE`] into one pass.
async fn gather(
    drift: &mut BoxStream<'static, (RuntimeKind, Change)>,
    first: (RuntimeKind, Change),
    present: &mut Present,
) {
    let mut note = |(kind, change): (RuntimeKind, Change)| {
        if let Change::Present(names) = change {
            present.insert(kind, names);
        }
    };
    note(first);
    let until = Instant::now() + DEBOUNCE;
    while let Ok(Some(change)) = tokio::time::timeout_at(until, drift.next()).await {
        note(change);
    }
}

/// The runtime's description of a self-hosted installation.
fn spec(d: &SelfHosted) -> InstallationSpec {
    let mut command = d.command.iter();
    let resource = |k: &str| d.resources.get(k).cloned();
    InstallationSpec {
        name: d.name.clone(),
        command: command.next().cloned().unwrap_or_default(),
        args: command.cloned().collect(),
        env: d.env.clone(),
        secret_env: d.secret_env.clone(),
        transport: Transport::Stdio,
        image: d.image.clone(),
        resources: (!d.resources.is_empty()).then(|| Resources {
            cpu_request: resource("cpu_request"),
            memory_request: resource("memory_request"),
            cpu_limit: resource("cpu_limit"),
            memory_limit: resource("memory_limit"),
        }),
    }
}

/// `text` with every secret value replaced by the placeholder.
pub fn mask(mut text: String, secrets: &[String]) -> String {
    for s in secrets {
        text = text.replace(s.as_str(), SECRET_PLACEHOLDER);
    }
    text
}

/// An MCP `initialize` against `url` (then the session it opened is ended): the health check.
async fn initialize(url: &str) -> Result<(), String> {
    let session = crate::mcp_client::McpSession::open(url, None, HEALTH_TIMEOUT)
        .await
        .map_err(|e| format!("health check: {e}"))?;
    session.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_carry_secret_values() {
        let text = "installation `x` did not start: mcp-files --token s3cr3t-value exited".into();
        assert_eq!(
            mask(text, &["s3cr3t-value".to_owned()]),
            "installation `x` did not start: mcp-files --token <secret> exited"
        );
    }

    #[test]
    fn the_command_becomes_program_and_arguments() {
        let d = SelfHosted {
            name: "files".into(),
            command: vec!["mcp-files".into(), "/srv".into()],
            env: vec![("MODE".into(), "ro".into())],
            secret_env: vec![("TOKEN".into(), "t".into())],
            image: Some("ghcr.io/x/files:1".into()),
            resources: [("memory_limit".to_owned(), "256Mi".to_owned())].into(),
            secrets: vec!["t".into()],
            runtime: None,
        };
        let s = spec(&d);
        assert_eq!(s.command, "mcp-files");
        assert_eq!(s.args, ["/srv"]);
        assert_eq!(s.env, [("MODE".to_owned(), "ro".to_owned())]);
        assert_eq!(s.secret_env, [("TOKEN".to_owned(), "t".to_owned())]);
        assert_eq!(s.image.as_deref(), Some("ghcr.io/x/files:1"));
        let r = s.resources.expect("resources");
        assert_eq!(r.memory_limit.as_deref(), Some("256Mi"));
        assert_eq!(r.cpu_request, None);
        assert_eq!(s.transport, Transport::Stdio);
    }
}
