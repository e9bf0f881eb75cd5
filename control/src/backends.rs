//! The runtime backends one control process runs, and which of them an installation uses.
//!
//! A control may run more than one backend at once (`[runtime] backends`): a team can keep a
//! quick local process next to servers that belong in the cluster. Each installation names its
//! backend (`runtime`) or takes the control's default (`[runtime] backend`). The admin API
//! refuses, at write time, a `runtime` this control does not run, so a typo or a backend
//! switched off is a 400 naming `installations.runtime` rather than an installation that
//! silently never starts. The orchestrator and the logs route look backends up here, and the
//! orchestrator reconciles on what the backends report changing ([`Backends::changes`]).

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sluice_runtime::{Change, LocalRuntime, Runtime};

use crate::model::{Invalid, RuntimeKind};

/// The backends of one control, with its default.
pub struct Backends {
    default: RuntimeKind,
    runtimes: Vec<(RuntimeKind, Arc<dyn Runtime>)>,
    /// The local backend itself, which stopping control stops (Kubernetes installations
    /// keep running and are adopted again by the next control).
    local: Option<Arc<LocalRuntime>>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("default", &self.default)
            .field("kinds", &self.kinds().collect::<Vec<_>>())
            .finish()
    }
}

impl Backends {
    /// No backend yet; installations that name none go to `default` (add it).
    pub fn new(default: RuntimeKind) -> Self {
        Backends {
            default,
            runtimes: Vec::new(),
            local: None,
        }
    }

    /// With `runtime` serving `kind` (replacing an earlier one of that kind).
    pub fn with(mut self, kind: RuntimeKind, runtime: Arc<dyn Runtime>) -> Self {
        self.runtimes.retain(|(k, _)| *k != kind);
        self.runtimes.push((kind, runtime));
        self
    }

    /// With the local backend, which [`Backends::shutdown`] stops.
    pub fn with_local(self, local: Arc<LocalRuntime>) -> Self {
        let mut out = self.with(RuntimeKind::Local, local.clone());
        out.local = Some(local);
        out
    }

    /// The default backend.
    pub fn default_kind(&self) -> RuntimeKind {
        self.default
    }

    /// The kinds run here.
    pub fn kinds(&self) -> impl Iterator<Item = RuntimeKind> + '_ {
        self.runtimes.iter().map(|(k, _)| *k)
    }

    /// The backend of `kind`, if this control runs it.
    pub fn get(&self, kind: RuntimeKind) -> Option<&Arc<dyn Runtime>> {
        self.runtimes
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, r)| r)
    }

    /// What every backend reports changing, merged, each with its kind (a backend that reports
    /// nothing adds nothing; with none, the stream ends at once).
    pub fn changes(&self) -> BoxStream<'static, (RuntimeKind, Change)> {
        let each = self.runtimes.iter().filter_map(|(kind, runtime)| {
            let kind = *kind;
            runtime.changes().map(|s| s.map(move |c| (kind, c)))
        });
        futures_util::stream::select_all(each).boxed()
    }

    /// Where an installation asking for `wanted` runs.
    pub fn choose(&self, wanted: Option<RuntimeKind>) -> RuntimeKind {
        wanted.unwrap_or(self.default)
    }

    /// Refuses a `runtime` this control does not run, naming the field.
    pub fn check(&self, wanted: Option<RuntimeKind>) -> Result<(), Invalid> {
        let kind = self.choose(wanted);
        if self.get(kind).is_some() {
            return Ok(());
        }
        let run: Vec<&str> = self.kinds().map(RuntimeKind::as_str).collect();
        Err(Invalid::new(
            "installations.runtime",
            format!(
                "this control runs no {kind} backend (it runs: {}); see [runtime] backends",
                if run.is_empty() {
                    "none".to_owned()
                } else {
                    run.join(", ")
                }
            ),
        ))
    }

    /// Stops what the local backend runs (its process groups).
    pub async fn shutdown(&self) {
        if let Some(local) = &self.local {
            local.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_installation_may_name_only_a_backend_run_here() {
        let local = Arc::new(LocalRuntime::new(Default::default()));
        let b = Backends::new(RuntimeKind::Local).with_local(local);
        assert_eq!(b.choose(None), RuntimeKind::Local);
        assert_eq!(b.check(None), Ok(()));
        assert_eq!(b.check(Some(RuntimeKind::Local)), Ok(()));
        let e = b.check(Some(RuntimeKind::Kubernetes)).unwrap_err();
        assert_eq!(e.field, "installations.runtime");
        assert!(
            e.message
                .contains("runs no kubernetes backend (it runs: local)"),
            "{e}"
        );
    }
}
