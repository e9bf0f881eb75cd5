//! A FAKE Kubernetes API server for the backend's tests (shared by `kubernetes.rs` and
//! `orchestrator.rs`): not a cluster.
//!
//! No Kubernetes API server can run here, so kube's client talks to an in-memory `tower_test`
//! mock service, and [`FakeApi`] answers it with a few lines of bookkeeping that imitate the
//! API server's semantics that the backend relies on (GET 404 for a missing object,
//! server-side apply storing the object, resourceVersion and generation bumped only when the
//! stored object changes, pods listed by label, pod logs, DELETE with a UID precondition).
//! Every request is recorded, so tests can assert the exact requests made.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};
use sluice_runtime::{KubernetesConfig, KubernetesRuntime};

/// The namespace of the fake's client.
pub const NS: &str = "mcp";

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
}

/// A FAKE Kubernetes API server (see the module docs): not a cluster.
#[derive(Clone)]
pub struct FakeApi(Arc<Mutex<State>>);

impl FakeApi {
    /// A fake and a runtime whose kube client talks to it.
    pub fn start(config: KubernetesConfig) -> (FakeApi, KubernetesRuntime) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = FakeApi(Arc::new(Mutex::new(State {
            rollouts_complete: true,
            ..State::default()
        })));
        let serving = fake.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let response = serving.answer(request).await;
                respond.send_response(response);
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

    async fn answer(&self, request: Request<Body>) -> Response<Body> {
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
                state.objects.insert(path, applied.clone());
                json_response(200, applied)
            }
            "DELETE" => match state.objects.remove(&path) {
                Some(object) => json_response(200, object),
                None => not_found(&path),
            },
            _ => json_response(405, json!({"code": 405})),
        }
    }
}

fn json_response(status: u16, value: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&value).unwrap()))
        .unwrap()
}

fn text(status: u16, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(body.into_bytes()))
        .unwrap()
}

fn not_found(path: &str) -> Response<Body> {
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
