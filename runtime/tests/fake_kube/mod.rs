//! A FAKE Kubernetes API server for the backend's tests (shared by `kubernetes.rs` and
//! `orchestrator.rs`): not a cluster.
//!
//! No Kubernetes API server can run here, so kube's client talks to an in-memory `tower_test`
//! mock service, and [`FakeApi`] answers it with a few lines of bookkeeping that imitate the
//! API server's semantics that the backend relies on (GET 404 for a missing object,
//! server-side apply storing the object, resourceVersion and generation bumped only when the
//! stored object changes, pods listed by label, pod logs, DELETE with a UID precondition,
//! Deployments listed by label with a resourceVersion and watched: a WATCH is answered with a
//! body that stays open and carries one JSON event a line for every Deployment the fake
//! changes or deletes). Every request is recorded, so tests can assert the exact requests
//! made, and [`FakeApi::until`] waits for a request to arrive.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use kube::client::Body;
use serde_json::{Value, json};
use sluice_runtime::{KubernetesConfig, KubernetesRuntime};
use tokio::sync::mpsc::UnboundedSender;

/// The namespace of the fake's client.
pub const NS: &str = "mcp";

/// How long [`FakeApi::until`] waits.
const BOUND: Duration = Duration::from_secs(60);

/// What the fake answers with: whole bodies, and open ones for watches.
type FakeBody = UnsyncBoxBody<Bytes, Infallible>;

/// One request the fake saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Option<Value>,
}

#[derive(Default)]
pub struct State {
    pub objects: BTreeMap<String, Value>,
    pub seen: Vec<Seen>,
    pub next_version: u64,
    /// Whether Deployments read after an apply report their rollout done.
    pub rollouts_complete: bool,
    /// Open Deployment watches: their label selector and where their events go.
    pub watches: Vec<(String, UnboundedSender<Bytes>)>,
}

impl State {
    /// Sends a watch event for the Deployment `object` to the watches it matches.
    fn event(&mut self, kind: &str, object: &Value) {
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap();
        line.push(b'\n');
        let line = Bytes::from(line);
        self.watches.retain(|(selector, tx)| {
            !matches_selector(object, selector) || tx.send(line.clone()).is_ok()
        });
    }
}

/// A FAKE Kubernetes API server (see the module docs): not a cluster.
#[derive(Clone)]
pub struct FakeApi(Arc<Mutex<State>>, Arc<tokio::sync::watch::Sender<usize>>);

impl FakeApi {
    /// A fake and a runtime whose kube client talks to it.
    pub fn start(config: KubernetesConfig) -> (FakeApi, KubernetesRuntime) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<FakeBody>>();
        let fake = FakeApi(
            Arc::new(Mutex::new(State {
                rollouts_complete: true,
                ..State::default()
            })),
            Arc::new(tokio::sync::watch::Sender::new(0)),
        );
        let serving = fake.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let response = serving.answer(request).await;
                respond.send_response(response);
                serving.1.send_modify(|n| *n += 1);
            }
        });
        let client = kube::Client::new(service, NS);
        (fake, KubernetesRuntime::new(client, config))
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    /// The requests seen so far, and forgets them.
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state().seen)
    }

    pub fn object(&self, path: &str) -> Option<Value> {
        self.state().objects.get(path).cloned()
    }

    pub fn put(&self, path: &str, object: Value) {
        self.state().objects.insert(path.to_owned(), object);
    }

    /// Deletes a Deployment behind Sluice's back (as `kubectl delete` would): its watches
    /// see it go.
    pub fn delete_behind(&self, path: &str) {
        let mut state = self.state();
        let object = state.objects.remove(path).expect("the object to delete");
        state.event("DELETED", &object);
    }

    /// Waits, bounded, until `done` holds of the state, checking after every answered request.
    pub async fn until(&self, what: &str, done: impl Fn(&State) -> bool) {
        let mut answered = self.1.subscribe();
        let wait = async {
            while !done(&self.state()) {
                answered.changed().await.expect("the fake is up");
            }
        };
        if tokio::time::timeout(BOUND, wait).await.is_err() {
            let seen: Vec<String> = self
                .state()
                .seen
                .iter()
                .map(|s| format!("{} {}?{}", s.method, s.path, s.query))
                .collect();
            panic!("{what}: not within {BOUND:?}; seen {seen:#?}");
        }
    }

    async fn answer(&self, request: Request<Body>) -> Response<FakeBody> {
        let (parts, body) = request.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().unwrap_or_default().to_owned();
        let method = parts.method.as_str().to_owned();
        let mut state = self.state();
        state.seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            body: body.clone(),
        });
        match method.as_str() {
            "GET" if path.ends_with("/log") => {
                let lines: Vec<String> = (1..=5).map(|i| format!("line {i}")).collect();
                text(200, lines.join("\n") + "\n")
            }
            "GET" if path.ends_with("/pods") => {
                let prefix = format!("{path}/");
                let wanted = query_value(&query, "labelSelector").unwrap_or_default();
                let items: Vec<Value> = state
                    .objects
                    .iter()
                    .filter(|(p, o)| p.starts_with(&prefix) && matches_selector(o, &wanted))
                    .map(|(_, o)| o.clone())
                    .collect();
                json_response(
                    200,
                    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}),
                )
            }
            "GET" if path.ends_with("/deployments") => {
                let prefix = format!("{path}/");
                let selector = query_value(&query, "labelSelector").unwrap_or_default();
                if query_value(&query, "watch").as_deref() == Some("true") {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
                    state.watches.push((selector, tx));
                    let events = futures_util::stream::unfold(rx, |mut rx| async move {
                        let line = rx.recv().await?;
                        Some((Ok::<_, Infallible>(Frame::data(line)), rx))
                    });
                    return Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(StreamBody::new(events).boxed_unsync())
                        .unwrap();
                }
                let items: Vec<Value> = state
                    .objects
                    .iter()
                    .filter(|(p, o)| p.starts_with(&prefix) && matches_selector(o, &selector))
                    .map(|(_, o)| o.clone())
                    .collect();
                let version = state.next_version.to_string();
                json_response(
                    200,
                    json!({"kind": "DeploymentList", "apiVersion": "apps/v1",
                           "metadata": {"resourceVersion": version}, "items": items}),
                )
            }
            "GET" => {
                let complete = state.rollouts_complete;
                match state.objects.get_mut(&path) {
                    Some(object) => {
                        if complete && path.contains("/deployments/") {
                            let generation = object["metadata"]["generation"].clone();
                            object["status"] = json!({
                                "observedGeneration": generation, "replicas": 1,
                                "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                            });
                        }
                        json_response(200, object.clone())
                    }
                    None => not_found(&path),
                }
            }
            "PATCH" => {
                let Some(mut applied) = body else {
                    return json_response(400, json!({"code": 400}));
                };
                let previous = state.objects.get(&path).cloned();
                let strip = |o: &Value| {
                    let mut o = o.clone();
                    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                        for server_field in
                            ["uid", "resourceVersion", "generation", "creationTimestamp"]
                        {
                            m.remove(server_field);
                        }
                    }
                    if let Some(o) = o.as_object_mut() {
                        o.remove("status");
                    }
                    o
                };
                let unchanged = previous
                    .as_ref()
                    .is_some_and(|p| strip(p) == strip(&applied));
                let (uid, version, generation) = match &previous {
                    Some(p) if unchanged => (
                        p["metadata"]["uid"].clone(),
                        p["metadata"]["resourceVersion"].clone(),
                        p["metadata"]["generation"].clone(),
                    ),
                    _ => {
                        state.next_version += 1;
                        let generation = previous
                            .as_ref()
                            .and_then(|p| p["metadata"]["generation"].as_i64())
                            .unwrap_or(0)
                            + 1;
                        let uid = previous
                            .as_ref()
                            .map(|p| p["metadata"]["uid"].clone())
                            .unwrap_or_else(|| json!(format!("uid-{}", state.next_version)));
                        (
                            uid,
                            json!(state.next_version.to_string()),
                            json!(generation),
                        )
                    }
                };
                let meta = &mut applied["metadata"];
                meta["uid"] = uid;
                meta["resourceVersion"] = version;
                meta["generation"] = generation;
                meta["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
                // Like the API server, an apply answers with the whole object, status included.
                if let Some(status) = previous.as_ref().and_then(|p| p.get("status")) {
                    applied["status"] = status.clone();
                }
                if !unchanged && path.contains("/deployments/") {
                    let kind = if previous.is_some() {
                        "MODIFIED"
                    } else {
                        "ADDED"
                    };
                    state.event(kind, &applied);
                }
                state.objects.insert(path, applied.clone());
                json_response(200, applied)
            }
            "DELETE" => match state.objects.remove(&path) {
                Some(object) => {
                    if path.contains("/deployments/") {
                        state.event("DELETED", &object);
                    }
                    json_response(200, object)
                }
                None => not_found(&path),
            },
            _ => json_response(405, json!({"code": 405})),
        }
    }
}

fn whole(bytes: Vec<u8>) -> FakeBody {
    Full::new(Bytes::from(bytes)).boxed_unsync()
}

fn json_response(status: u16, value: Value) -> Response<FakeBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(whole(serde_json::to_vec(&value).unwrap()))
        .unwrap()
}

fn text(status: u16, body: String) -> Response<FakeBody> {
    Response::builder()
        .status(status)
        .body(whole(body.into_bytes()))
        .unwrap()
}

fn not_found(path: &str) -> Response<FakeBody> {
    json_response(
        404,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("{path} not found"), "reason": "NotFound", "code": 404}),
    )
}

pub fn query_value(query: &str, key: &str) -> Option<String> {
    url_pairs(query).find(|(k, _)| k == key).map(|(_, v)| v)
}

pub fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k), decode(v))
    })
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn matches_selector(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        object["metadata"]["labels"][k] == json!(v)
    })
}

/// An object as found in the cluster at `path` (a Secret, Service or Deployment of the fake's
/// namespace), labelled as Sluice's for installation `labelled_for` when that is given.
pub fn found(path: &str, labelled_for: Option<&str>) -> Value {
    let name = path.rsplit('/').next().unwrap_or_default();
    let (api_version, kind) = if path.contains("/deployments/") {
        ("apps/v1", "Deployment")
    } else if path.contains("/services/") {
        ("v1", "Service")
    } else {
        ("v1", "Secret")
    };
    let labels = match labelled_for {
        Some(i) => json!({"app.kubernetes.io/managed-by": "sluice", "sluice.dev/installation": i}),
        None => json!({"app": name}),
    };
    json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}-found"),
                     "resourceVersion": "1", "generation": 1, "labels": labels},
    })
}
