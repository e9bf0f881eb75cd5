//! Drift as it happens: a watch on Sluice's Deployments in the namespace.
//!
//! Without it the orchestrator notices a Deployment that someone deleted, scaled to zero or
//! edited, or whose pods stopped being ready, only at its next resync; and an installation
//! deleted from the registry while control was down is never removed from the cluster (the
//! orchestrator removes only what it remembers running). kube-runtime's [`watcher`] lists the
//! Deployments labelled `app.kubernetes.io/managed-by: sluice`, then watches them, relisting
//! (with its default backoff) whenever the watch breaks or its resourceVersion expires.
//!
//! Each complete listing becomes [`Change::Present`] (the orchestrator removes the ones the
//! registry does not want: orphans); an event that deletes a Deployment or moves what the
//! orchestrator acts on (its generation, its replicas, their readiness) becomes
//! [`Change::Drifted`]. Events that change nothing of that (a status heartbeat, an annotation)
//! are dropped, so Sluice's own no-op applies do not wake it again. Only Deployments that carry
//! Sluice's labels for an installation of their own name are reported, so nothing else can
//! become an orphan; `remove` checks the labels again before deleting.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use super::render;
use crate::installation::Change;

/// What of a Deployment the orchestrator acts on; a change in it is drift.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    uid: Option<String>,
    generation: Option<i64>,
    replicas: Option<i32>,
    observed_generation: Option<i64>,
    ready: Option<i32>,
    available: Option<i32>,
    updated: Option<i32>,
}

impl Fingerprint {
    fn of(d: &Deployment) -> Self {
        let status = d.status.as_ref();
        Fingerprint {
            uid: d.metadata.uid.clone(),
            generation: d.metadata.generation,
            replicas: d.spec.as_ref().and_then(|s| s.replicas),
            observed_generation: status.and_then(|s| s.observed_generation),
            ready: status.and_then(|s| s.ready_replicas),
            available: status.and_then(|s| s.available_replicas),
            updated: status.and_then(|s| s.updated_replicas),
        }
    }
}

/// Turns watcher events into [`Change`]s.
#[derive(Debug, Default)]
struct Tracker {
    known: BTreeMap<String, Fingerprint>,
    /// During a (re)list: what it has listed so far.
    listing: Option<BTreeMap<String, Fingerprint>>,
}

/// The installation `d` was made by Sluice for, if it carries the labels for its own name.
fn installation(d: &Deployment) -> Option<String> {
    let name = d.metadata.name.as_deref()?;
    render::is_ours(&d.metadata, name).then(|| name.to_owned())
}

impl Tracker {
    fn on(&mut self, event: Event<Deployment>) -> Option<Change> {
        match event {
            Event::Init => {
                self.listing = Some(BTreeMap::new());
                None
            }
            Event::InitApply(d) => {
                if let (Some(listing), Some(name)) = (self.listing.as_mut(), installation(&d)) {
                    listing.insert(name, Fingerprint::of(&d));
                }
                None
            }
            Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let names: BTreeSet<String> = listed.keys().cloned().collect();
                self.known = listed;
                Some(Change::Present(names))
            }
            Event::Apply(d) => {
                let name = installation(&d)?;
                let now = Fingerprint::of(&d);
                (self.known.insert(name, now.clone()).as_ref() != Some(&now))
                    .then_some(Change::Drifted)
            }
            Event::Delete(d) => {
                let name = installation(&d)?;
                self.known.remove(&name);
                Some(Change::Drifted)
            }
        }
    }
}

/// The changes of Sluice's Deployments seen through `api` (a namespaced one). It never ends:
/// errors are logged and the watcher relists after its backoff.
pub(super) fn changes(api: Api<Deployment>) -> BoxStream<'static, Change> {
    let config = watcher::Config::default().labels(&format!("{}=sluice", render::MANAGED_BY));
    let mut tracker = Tracker::default();
    watcher::watcher(api, config)
        .default_backoff()
        .filter_map(move |event| {
            let change = match event {
                Ok(event) => tracker.on(event),
                Err(e) => {
                    tracing::warn!(error = %e, "watching Deployments (retrying)");
                    None
                }
            };
            std::future::ready(change)
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn deployment(name: &str, labelled_for: Option<&str>, ready: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                uid: Some(format!("uid-{name}")),
                generation: Some(1),
                labels: labelled_for.map(render::labels),
                ..Default::default()
            },
            status: Some(k8s_openapi::api::apps::v1::DeploymentStatus {
                ready_replicas: Some(ready),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_listing_names_only_deployments_labelled_for_themselves() {
        let mut t = Tracker::default();
        assert_eq!(t.on(Event::Init), None);
        for d in [
            deployment("files", Some("files"), 1),
            deployment("theirs", None, 1),
            deployment("borrowed", Some("files"), 1),
        ] {
            assert_eq!(t.on(Event::InitApply(d)), None);
        }
        assert_eq!(
            t.on(Event::InitDone),
            Some(Change::Present(BTreeSet::from(["files".to_owned()])))
        );
        // Events on objects that are not Sluice's are not drift.
        assert_eq!(t.on(Event::Delete(deployment("theirs", None, 1))), None);
        assert_eq!(
            t.on(Event::Apply(deployment("borrowed", Some("files"), 0))),
            None
        );
    }

    #[test]
    fn only_what_the_orchestrator_acts_on_is_drift() {
        let mut t = Tracker::default();
        t.on(Event::Init);
        t.on(Event::InitApply(deployment("files", Some("files"), 1)));
        t.on(Event::InitDone);
        // The same object again (a heartbeat, an annotation): nothing to do.
        let mut annotated = deployment("files", Some("files"), 1);
        annotated.metadata.annotations = Some([("a".to_owned(), "b".to_owned())].into());
        assert_eq!(t.on(Event::Apply(annotated)), None);
        assert_eq!(
            t.on(Event::Apply(deployment("files", Some("files"), 0))),
            Some(Change::Drifted)
        );
        assert_eq!(
            t.on(Event::Delete(deployment("files", Some("files"), 0))),
            Some(Change::Drifted)
        );
        // Made again: new to the tracker, so drift.
        assert_eq!(
            t.on(Event::Apply(deployment("files", Some("files"), 0))),
            Some(Change::Drifted)
        );
    }
}
