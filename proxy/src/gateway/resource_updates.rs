//! Resource-update subscriptions of a `subscriptions/listen` (2026-07-28), the revision's
//! replacement for `resources/subscribe`: the client names URIs in
//! `params.notifications.resourceSubscriptions`, and the owners of those URIs announce changes
//! with `notifications/resources/updated`. The gateway owns no resource, so it relays:
//!
//! - each URI's owner is found exactly as `resources/read` routes it
//!   ([`GatewayCatalog::route_resource`]); resource URIs are never renamed by the gateway, so
//!   the URI goes upstream, and comes back, unchanged;
//! - per owner that takes resource subscriptions in the revision (`resources.subscribe` of
//!   its `server/discover`: [`ServerCatalog::modern_resource_subscribe`]) the gateway opens ONE
//!   upstream `subscriptions/listen` carrying every URI it owns, presenting the credential
//!   forwarding would present for this caller ([`forward::resolve_credential`]);
//! - the upstream's acknowledgement decides which of its URIs are honoured; those go into the
//!   client's acknowledgement, and the upstream's `notifications/resources/updated` are relayed
//!   to the client's stream re-tagged with the client's subscription id (the URI as the
//!   upstream sent it: the revision lets it name a sub-resource of a subscribed URI).
//!
//! Left out of the client's acknowledgement, as the revision prescribes for what a server does
//! not honour (the stream itself is not failed): URIs no server of the gateway owns; URIs of
//! owners that do not take subscriptions in the revision; URIs of owners that only speak the
//! handshake era (honouring them would take an upstream session,
//! `resources/subscribe` and that session's GET stream per client listen, which is not built);
//! URIs the owner did not acknowledge within its timeout; owners past the bounds below.
//!
//! Bounds: at most [`MAX_RESOURCE_SUBSCRIPTIONS`] URIs per listen (more is refused with
//! -32602), at most [`MAX_UPSTREAM_LISTENS_PER_LISTEN`] upstream listens per client listen and
//! [`MAX_UPSTREAM_LISTENS`] on this process, one channel of [`CHANNEL_UPDATES`] updates per
//! client listen (a slow client slows the upstream reads rather than growing a buffer), and
//! [`MAX_EVENT_BYTES`] per upstream event.
//!
//! The upstream listens are tasks owned by the [`Relay`]: when the client's stream ends,
//! however it ends, dropping the relay aborts them, which closes their connections and so
//! their upstream subscriptions. When an upstream subscription ends while the client still
//! listens, the [`Relay`] says so and the client's stream ends too, without a result (an
//! abrupt end, after which a client re-listens): it must not silently stop hearing about URIs
//! it was told are honoured.
//!
//! Wire format (the 2026-07-28 schema, as the Python SDK 2.3 `mcp_types` and the conformance
//! package carry it): the filter's `resourceSubscriptions: [uri, ...]`; the acknowledgement's
//! `params.notifications` is the honoured subset, its `resourceSubscriptions` present only when
//! some URI is honoured; `notifications/resources/updated` has `params: {uri, _meta}`, the
//! `_meta` holding `io.modelcontextprotocol/subscriptionId`. Other `_meta` keys of an upstream's
//! update are not relayed: they belong to its subscription, not the client's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pingora::connectors::http::Connector;
use pingora::proxy::Session;
use serde_json::{Value, json};
use sluice_auth::credential::Injected;
use tokio::sync::{Semaphore, SemaphorePermit, mpsc, oneshot};
use tokio::task::JoinSet;

use super::caller::token_for;
use super::forward::resolve_credential;
use super::{Caller, Gateway, RequestRecord};
use crate::catalog::{GatewayCatalog, ServerCatalog};
use crate::sse::SseParser;
use crate::state::Snapshot;
use crate::upstream::{ServerIdx, Upstream, UpstreamError, mcp_client};

/// Most URIs one `subscriptions/listen` may subscribe to; a longer list is refused (-32602).
pub const MAX_RESOURCE_SUBSCRIPTIONS: usize = 64;
/// Most upstream listens one client listen opens (one per owning upstream); the URIs of
/// owners past it are left out of the acknowledgement.
pub const MAX_UPSTREAM_LISTENS_PER_LISTEN: usize = 8;
/// Most upstream listens open for resource updates on this process, across all clients;
/// past it, URIs are left out of acknowledgements until some close.
pub const MAX_UPSTREAM_LISTENS: usize = 1024;
/// Updates waiting for a slow client, across the upstreams of one client listen.
pub const CHANNEL_UPDATES: usize = 64;
/// Largest single upstream event read.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

static UPSTREAM_LISTENS: Semaphore = Semaphore::const_new(MAX_UPSTREAM_LISTENS);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What the upstream listens tell the client's stream.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Relayed {
    /// `notifications/resources/updated` for this URI.
    Updated(String),
    /// The subscription of this upstream ended after it was acknowledged.
    Ended(String),
}

/// The upstream listens behind one client listen; dropping it ends them.
pub(super) struct Relay {
    rx: mpsc::Receiver<Relayed>,
    _listens: JoinSet<()>,
}

impl Relay {
    /// The next update, or the end of an upstream subscription.
    pub(super) async fn next(&mut self) -> Relayed {
        // Every listen that was acknowledged sends `Ended` before its sender goes away, and
        // the relay is only kept with at least one of them: `None` cannot happen but is
        // answered like an end.
        self.rx
            .recv()
            .await
            .unwrap_or_else(|| Relayed::Ended("(all)".into()))
    }
}

/// The caller and what it listens through.
pub(super) struct Listener<'a> {
    pub session: &'a Session,
    pub rec: &'a RequestRecord,
    pub caller: &'a Caller,
    pub snapshot: &'a Snapshot,
    pub catalog: &'a GatewayCatalog,
}

/// Whether the gateway honours any resource subscription (`resources.subscribe` of its
/// 2026-07-28 capabilities): one of its servers speaks the revision and says it takes them.
pub(super) fn any_subscribable(snapshot: &Snapshot, catalog: &GatewayCatalog) -> bool {
    catalog
        .servers
        .iter()
        .filter_map(|&i| snapshot.servers.get(i).and_then(Option::as_ref))
        .any(|c| c.modern_resource_subscribe)
}

/// The requested URIs grouped by their owner, in request order, duplicates dropped: only
/// owners that take resource subscriptions in the 2026-07-28 revision, at most [`MAX_UPSTREAM_LISTENS_PER_LISTEN`].
pub(super) fn owners(
    uris: &[String],
    catalog: &GatewayCatalog,
    servers: &[Option<Arc<ServerCatalog>>],
) -> Vec<(ServerIdx, Vec<String>)> {
    let mut groups: Vec<(ServerIdx, Vec<String>)> = Vec::new();
    for uri in uris {
        let Some(owner) = catalog.route_resource(uri) else {
            continue;
        };
        let subscribable = servers
            .get(owner)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.modern && c.modern_resource_subscribe);
        if !subscribable {
            continue;
        }
        let room = groups.len() < MAX_UPSTREAM_LISTENS_PER_LISTEN;
        match groups.iter_mut().find(|(s, _)| *s == owner) {
            Some((_, owned)) if !owned.contains(uri) => owned.push(uri.clone()),
            Some(_) => {}
            None if room => groups.push((owner, vec![uri.clone()])),
            None => {}
        }
    }
    groups
}

/// Opens the upstream listens for `uris` and waits (each at most its upstream's timeout) for
/// their acknowledgements. Returns the honoured URIs, in request order, and the relay of their
/// updates (`None` when nothing is honoured).
pub(super) async fn open(
    gw: &Gateway,
    who: Listener<'_>,
    uris: &[String],
) -> (Vec<String>, Option<Relay>) {
    let groups = owners(uris, who.catalog, &who.snapshot.servers);
    let (tx, rx) = mpsc::channel(CHANNEL_UPDATES);
    let mut listens = JoinSet::new();
    let mut acks = Vec::new();
    for (server, owned) in groups {
        let upstream = gw.shared.upstreams[server].clone();
        let Ok(permit) = UPSTREAM_LISTENS.try_acquire() else {
            tracing::warn!(server = %upstream.name, limit = MAX_UPSTREAM_LISTENS, "too many upstream listens on this replica; resource subscriptions left out of the acknowledgement");
            continue;
        };
        let token = token_for(upstream.credential.as_ref(), who.session.req_header());
        let subject = who.caller.subject(token.as_deref());
        let credential = match resolve_credential(gw, who.rec, &upstream, subject).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(server = %upstream.name, error = %e, "no credential for the upstream listen; its resource subscriptions are left out");
                continue;
            }
        };
        let (ack_tx, ack_rx) = oneshot::channel();
        let job = Job {
            connector: gw.connector.clone(),
            upstream,
            credential,
            uris: owned,
            _permit: permit,
        };
        listens.spawn(follow(job, ack_tx, tx.clone()));
        acks.push(ack_rx);
    }
    drop(tx);
    // Each listen answers (or drops its sender) within its upstream's timeout.
    let acked: Vec<String> = futures_util::future::join_all(acks)
        .await
        .into_iter()
        .filter_map(Result::ok)
        .flatten()
        .collect();
    let honoured: Vec<String> = uris
        .iter()
        .enumerate()
        // Request order, each URI once.
        .filter(|(i, u)| acked.contains(u) && !uris[..*i].contains(u))
        .map(|(_, u)| u.clone())
        .collect();
    let relay = (!honoured.is_empty()).then_some(Relay {
        rx,
        _listens: listens,
    });
    (honoured, relay)
}

/// One upstream listen to open.
struct Job {
    connector: Arc<Connector>,
    upstream: Arc<Upstream>,
    credential: Option<Injected>,
    uris: Vec<String>,
    _permit: SemaphorePermit<'static>,
}

/// Runs one upstream listen: acknowledges through `ack`, then relays its updates until it
/// ends, and then says so if its URIs were promised to the client.
async fn follow(job: Job, ack: oneshot::Sender<Vec<String>>, tx: mpsc::Sender<Relayed>) {
    let mut ack = Some(ack);
    let mut promised = false;
    let outcome = relay(&job, &mut ack, &mut promised, &tx).await;
    if let Err(e) = &outcome {
        tracing::debug!(server = %job.upstream.name, error = %e, promised, "upstream listen for resource updates ended");
    }
    if promised {
        let _ = tx
            .send(Relayed::Ended(job.upstream.name.as_str().to_owned()))
            .await;
    }
}

async fn relay(
    job: &Job,
    ack: &mut Option<oneshot::Sender<Vec<String>>>,
    promised: &mut bool,
    tx: &mpsc::Sender<Relayed>,
) -> Result<(), UpstreamError> {
    let upstream = &*job.upstream;
    let timed_out = |phase| UpstreamError::Timeout {
        server: upstream.name.clone(),
        after: upstream.timeout,
        phase,
    };
    let deadline = tokio::time::Instant::now() + upstream.timeout;
    let id = format!("sluice-listen-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let open = mcp_client::open_listen(
        &job.connector,
        upstream,
        job.credential.as_ref(),
        &id,
        json!({ "resourceSubscriptions": job.uris }),
    );
    let mut ex = tokio::time::timeout_at(deadline, open)
        .await
        .map_err(|_| timed_out("opening a subscription"))??;
    let mut parser = SseParser::new(MAX_EVENT_BYTES);
    loop {
        let chunk = if ack.is_some() {
            tokio::time::timeout_at(deadline, ex.chunk(upstream))
                .await
                .map_err(|_| timed_out("waiting for a subscription's acknowledgement"))??
        } else {
            ex.chunk(upstream).await?
        };
        let Some(chunk) = chunk else {
            return Ok(());
        };
        let events = parser.push(&chunk).map_err(|e| UpstreamError::Protocol {
            server: upstream.name.clone(),
            reason: e.to_string(),
        })?;
        for event in events {
            if !(event.event.is_empty() || event.event == "message") {
                continue;
            }
            let Ok(message) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            match Frame::of(&message) {
                Frame::Acknowledged(honoured) => {
                    let Some(ack) = ack.take() else { continue };
                    let honoured: Vec<String> = job
                        .uris
                        .iter()
                        .filter(|u| honoured.contains(&u.as_str()))
                        .cloned()
                        .collect();
                    let any = !honoured.is_empty();
                    // The client no longer waits (it left): nothing is promised.
                    if ack.send(honoured).is_err() || !any {
                        return Ok(());
                    }
                    *promised = true;
                }
                Frame::Updated(uri) if *promised => {
                    if tx.send(Relayed::Updated(uri.to_owned())).await.is_err() {
                        return Ok(());
                    }
                }
                // The subscription's result or error: it is over.
                Frame::End => return Ok(()),
                Frame::Updated(_) | Frame::Other => {}
            }
        }
    }
}

/// What one message of an upstream listen stream is to the relay.
#[derive(Debug, PartialEq)]
enum Frame<'m> {
    /// The acknowledgement, with the resource URIs it honours.
    Acknowledged(Vec<&'m str>),
    /// `notifications/resources/updated` for this URI.
    Updated(&'m str),
    /// A response: the subscription's final result or its refusal.
    End,
    /// Anything else (list changes the relay did not ask for, server requests).
    Other,
}

impl<'m> Frame<'m> {
    fn of(message: &'m Value) -> Self {
        match message.get("method").and_then(Value::as_str) {
            Some("notifications/subscriptions/acknowledged") => Frame::Acknowledged(
                message
                    .pointer("/params/notifications/resourceSubscriptions")
                    .and_then(Value::as_array)
                    .map(|uris| uris.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default(),
            ),
            Some("notifications/resources/updated") => message
                .pointer("/params/uri")
                .and_then(Value::as_str)
                .map_or(Frame::Other, Frame::Updated),
            Some(_) => Frame::Other,
            None if message.get("id").is_some() => Frame::End,
            None => Frame::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use sluice_config::{GatewayConfig, GatewayName, ServerName};

    /// A server owning `note://{name}/readme`, of the 2026-07-28 revision or not.
    fn server(name: &str, modern: bool, subscribe: bool) -> Option<Arc<ServerCatalog>> {
        Some(Arc::new(ServerCatalog {
            modern,
            modern_list_changes: false,
            modern_resource_subscribe: subscribe,
            resource_tools: Default::default(),
            handshake: true,
            protocol_version: "2025-11-25".into(),
            stateful: false,
            capabilities: json!({ "resources": {} }),
            tools: Vec::new(),
            prompts: Vec::new(),
            resources: vec![json!({ "uri": format!("note://{name}/readme"), "name": "readme" })],
            resource_templates: Vec::new(),
        }))
    }

    fn catalog(names: &[&str], servers: &[Option<Arc<ServerCatalog>>]) -> GatewayCatalog {
        let cfg = GatewayConfig {
            name: GatewayName::new("dev").expect("valid gateway name"),
            servers: names
                .iter()
                .map(|s| ServerName::new(s).expect("valid server name"))
                .collect(),
            tools: Vec::new(),
            prefix: true,
            auth: None,
            tools_mode: Default::default(),
            policies: Vec::new(),
            policy_default: sluice_config::Effect::Allow,
            limits: Default::default(),
            builtin_tools: false,
        };
        let index: HashMap<String, ServerIdx> = names
            .iter()
            .enumerate()
            .map(|(i, n)| ((*n).to_owned(), i))
            .collect();
        let metrics = crate::metrics::Metrics::new(true).gateway("dev");
        GatewayCatalog::build(&cfg, &index, servers, 100, None, metrics)
    }

    #[test]
    fn uris_go_to_owners_that_take_subscriptions_once_each() {
        let servers = vec![
            server("new", true, true),
            server("quiet", true, false),
            server("old", false, false),
        ];
        let cat = catalog(&["new", "quiet", "old"], &servers);
        let uris: Vec<String> = [
            "note://old/readme",
            "note://new/readme",
            "zzz://nobody",
            "note://quiet/readme",
            "note://new/readme",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            owners(&uris, &cat, &servers),
            vec![(0, vec!["note://new/readme".to_owned()])]
        );
    }

    #[test]
    fn one_client_listen_opens_a_bounded_number_of_upstream_listens() {
        let names: Vec<String> = (0..MAX_UPSTREAM_LISTENS_PER_LISTEN + 2)
            .map(|i| format!("s{i}"))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let servers: Vec<_> = refs.iter().map(|n| server(n, true, true)).collect();
        let cat = catalog(&refs, &servers);
        let uris: Vec<String> = refs.iter().map(|n| format!("note://{n}/readme")).collect();
        let groups = owners(&uris, &cat, &servers);
        assert_eq!(groups.len(), MAX_UPSTREAM_LISTENS_PER_LISTEN);
        assert_eq!(groups[0], (0, vec!["note://s0/readme".to_owned()]));
    }

    #[test]
    fn frames_of_an_upstream_listen_stream() {
        let ack = json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
            "params": {"notifications": {"resourceSubscriptions": ["a://1", 7, "b://2"]}}});
        assert_eq!(Frame::of(&ack), Frame::Acknowledged(vec!["a://1", "b://2"]));
        let bare_ack = json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
            "params": {"notifications": {"toolsListChanged": true}}});
        assert_eq!(Frame::of(&bare_ack), Frame::Acknowledged(vec![]));
        let updated = json!({"jsonrpc": "2.0", "method": "notifications/resources/updated",
            "params": {"uri": "a://1", "_meta": {"io.modelcontextprotocol/subscriptionId": "x"}}});
        assert_eq!(Frame::of(&updated), Frame::Updated("a://1"));
        let no_uri = json!({"jsonrpc": "2.0", "method": "notifications/resources/updated"});
        assert_eq!(Frame::of(&no_uri), Frame::Other);
        let done = json!({"jsonrpc": "2.0", "id": "sluice-listen-1", "result": {}});
        assert_eq!(Frame::of(&done), Frame::End);
        let refused =
            json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "no"}});
        assert_eq!(Frame::of(&refused), Frame::End);
        let other = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
        assert_eq!(Frame::of(&other), Frame::Other);
    }
}
