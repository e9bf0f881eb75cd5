//! The admin HTTP API (JSON over HTTP/1.1, bearer tokens), the proxies' snapshot long-poll
//! and the built-in tools' endpoint. Admin tokens may use everything but those two; proxy
//! tokens only those two: the snapshot is the one response that carries decrypted secrets,
//! and the built-in tools are called through a gateway, whose rules decide. Tokens are compared
//! through SHA-256 digests in constant time, every token every time, so timing tells neither
//! a token's bytes nor its length nor which one matched.
//!
//! A write answers only after it is flushed to disk, and then wakes every long-poll; a
//! snapshot is flushed before it is sent. So no client ever sees a version that a crash of
//! control could lose.

mod builtin;
mod callers;
mod errors;
pub mod routes;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use errors::ApiError;
use routes::{NoRoute, RouteId};

use crate::config::Token;
use crate::model::{
    Gateway, Installation, InstallationInput, RunState, RuntimeKind, SECRET_PLACEHOLDER, Template,
};
use crate::store::{Mode, Store, StoreError, Versioned};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Longest a snapshot long-poll waits (`wait=` is capped to it).
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Default long-poll wait.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// Header carrying the registry version on snapshot answers.
pub const VERSION_HEADER: &str = "sluice-version";
/// Connections served at once (each long-polling proxy holds one).
pub const MAX_CONNECTIONS: usize = 4096;
/// Bound on reading a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

type Reply = Result<Response<Full<Bytes>>, ApiError>;

/// The gateways a proxy token's snapshots are scoped to (`None`: all).
type Scope = Option<Arc<[String]>>;

/// Who a request authenticated as.
enum Caller {
    Admin(String),
    /// A proxy token's name, with the gateways its snapshots are scoped to, if any.
    Proxy(String, Scope),
}

/// The API's state.
pub struct Api {
    store: Arc<Store>,
    admin: Vec<([u8; 32], String)>,
    proxies: Vec<([u8; 32], String, Scope)>,
    version: watch::Sender<u64>,
    /// Receivers of `version` held by control's own tasks.
    followers: std::sync::atomic::AtomicUsize,
    /// Where self-hosted installations run (for their logs and the check of their
    /// `runtime`), when they run here.
    backends: Option<Arc<crate::backends::Backends>>,
}

fn digest(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn query(req: &Request<Incoming>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn query_u64(q: &BTreeMap<String, String>, key: &str) -> Result<Option<u64>, ApiError> {
    q.get(key)
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!("{key} must be a non-negative integer"),
                )
            })
        })
        .transpose()
}

/// A request's body, bounded by [`MAX_BODY_BYTES`].
async fn read_bytes(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("bodies are limited to {MAX_BODY_BYTES} bytes"),
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the body could not be read",
                )
            }
        })
}

async fn body<T: DeserializeOwned>(
    req: Request<Incoming>,
    collection: &str,
) -> Result<T, ApiError> {
    let bytes = read_bytes(req).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_json(collection, &e))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "admin API task failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
}

fn with_meta<T: serde::Serialize>(v: &Versioned<T>) -> Value {
    let mut out = serde_json::to_value(&v.item).expect("registry objects serialise");
    if let Value::Object(m) = &mut out {
        m.insert("version".into(), v.version.into());
        m.insert("updated_at".into(), v.updated_at.into());
    }
    out
}

/// An installation as shown: secret values replaced by `"<secret>"`, and its status (for a
/// self-hosted one, the orchestrator's last run state, and the backend it runs or will run
/// on: its own `runtime`, else `default`).
fn installation_view(
    v: &Versioned<Installation>,
    template: Option<&Template>,
    run: Option<&Versioned<RunState>>,
    default: Option<RuntimeKind>,
) -> Value {
    let mut out = with_meta(v);
    // Also fields a template made secret after the value was stored in clear.
    let secret_now = template
        .iter()
        .flat_map(|t| &t.fields)
        .filter(|f| f.secret && v.item.values.contains_key(&f.name))
        .map(|f| &f.name);
    for s in v.item.secrets.iter().chain(secret_now) {
        out["values"][s] = Value::String(SECRET_PLACEHOLDER.into());
    }
    let (state, detail) = match template.map(|t| t.transport) {
        Some(crate::model::Transport::Http) => {
            ("configured", "served by proxies from the snapshot")
        }
        Some(crate::model::Transport::Stdio) => match run {
            Some(run) => {
                let mut status = serde_json::to_value(&run.item).unwrap_or_default();
                status["detail"] = json!("self-hosted, run by the orchestrator");
                status["updated_at"] = json!(run.updated_at);
                out["status"] = status;
                return out;
            }
            None => {
                let mut status = json!({"state": "pending", "detail": "self-hosted: waiting for the orchestrator"});
                if let Some(kind) = v.item.runtime.or(default) {
                    status["runtime"] = json!(kind);
                }
                out["status"] = status;
                return out;
            }
        },
        None => ("broken", "its template is missing"),
    };
    out["status"] = json!({"state": state, "detail": detail});
    out
}

fn check_path_name(path: &str, body: &str, collection: &str) -> Result<(), ApiError> {
    if path.is_empty() || path == body {
        Ok(())
    } else {
        Err(ApiError::invalid(&crate::model::Invalid::new(
            format!("{collection}.name"),
            format!("the body names {body:?} but the path {path:?}"),
        )))
    }
}

fn mode_of(route: RouteId) -> (Mode, StatusCode) {
    match route {
        RouteId::CreateTemplate | RouteId::CreateInstallation | RouteId::CreateGateway => {
            (Mode::Create, StatusCode::CREATED)
        }
        _ => (Mode::Replace, StatusCode::OK),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Assignment {
    entry: String,
}

impl Api {
    /// The API over `store`, with the tokens of the config.
    pub fn new(store: Arc<Store>, admin: &[Token], proxies: &[Token]) -> Result<Self, StoreError> {
        let (version, _) = watch::channel(store.version()?);
        let d = |t: &Token| digest(t.token.expose().as_bytes());
        Ok(Api {
            store,
            admin: admin.iter().map(|t| (d(t), t.name.clone())).collect(),
            proxies: proxies
                .iter()
                .map(|t| (d(t), t.name.clone(), t.gateways.as_deref().map(Arc::from)))
                .collect(),
            version,
            followers: Default::default(),
            backends: None,
        })
    }

    /// The API with the backends self-hosted installations run on: their logs, and the
    /// check that an installation's `runtime` is one of them.
    pub fn with_backends(mut self, backends: Arc<crate::backends::Backends>) -> Self {
        self.backends = Some(backends);
        self
    }

    fn default_runtime(&self) -> Option<RuntimeKind> {
        self.backends.as_ref().map(|b| b.default_kind())
    }

    /// Snapshot long-polls waiting for a change right now.
    pub fn parked_polls(&self) -> usize {
        self.version
            .receiver_count()
            .saturating_sub(self.followers.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn authenticate(&self, req: &Request<Incoming>) -> Option<Caller> {
        let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, presented) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let d = digest(presented.as_bytes());
        let mut found = None;
        for (token, name) in &self.admin {
            if bool::from(token.ct_eq(&d)) {
                found = Some(Caller::Admin(name.clone()));
            }
        }
        for (token, name, scope) in &self.proxies {
            if bool::from(token.ct_eq(&d)) {
                found = Some(Caller::Proxy(name.clone(), scope.clone()));
            }
        }
        found
    }

    /// Answers one request; errors become JSON responses.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let reply = self.dispatch(req).await;
        Ok(reply.unwrap_or_else(|e| json_response(e.status, &e.body)))
    }

    /// Runs a store write off the async threads, flushes it, and wakes the long-polls.
    async fn write<F>(&self, f: F) -> Result<u64, ApiError>
    where
        F: FnOnce(&Store) -> Result<u64, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        let version = tokio::task::spawn_blocking(move || {
            let version = f(&store)?;
            store.flush_through(version).map(|()| version)
        })
        .await
        .map_err(internal)??;
        self.publish(version);
        Ok(version)
    }

    /// Wakes the long-polls (and the orchestrator) for a flushed write of `version`.
    pub fn publish(&self, version: u64) {
        self.version.send_if_modified(|v| {
            let newer = version > *v;
            if newer {
                *v = version;
            }
            newer
        });
    }

    /// Follows the registry version as writes are published (control's own tasks; not
    /// counted as parked polls).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.followers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.version.subscribe()
    }

    async fn dispatch(&self, req: Request<Incoming>) -> Reply {
        let path = req.uri().path().to_owned();
        let (route, params) = match routes::find(req.method().as_str(), &path) {
            Ok((r, p)) => (r, p.into_iter().map(str::to_owned).collect::<Vec<_>>()),
            Err(NoRoute::NotFound) => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no such route",
                ));
            }
            Err(NoRoute::MethodNotAllowed) => {
                return Err(ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{} is not allowed on {path}", req.method()),
                ));
            }
        };
        if route == RouteId::Healthz {
            return Ok(json_response(StatusCode::OK, &json!({"status": "ok"})));
        }
        let caller = self.authenticate(&req).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required",
            )
        })?;
        let actor = match (caller, route) {
            (Caller::Proxy(_, scope), RouteId::Snapshot) => {
                return self.snapshot(&req, scope.as_deref()).await;
            }
            (Caller::Proxy(name, scope), RouteId::Mcp) => {
                return self.builtin(req, &name, scope.as_deref()).await;
            }
            (Caller::Admin(_), RouteId::Mcp) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "the built-in tools are called through a gateway: only proxy tokens may use /v1/mcp",
                ));
            }
            (Caller::Admin(_), RouteId::Snapshot) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "snapshots hold secrets: only proxy tokens may fetch them",
                ));
            }
            (Caller::Proxy(..), _) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "proxy tokens may only fetch snapshots and call the built-in tools",
                ));
            }
            (Caller::Admin(name), _) => name,
        };
        let name = params.first().cloned().unwrap_or_default();
        let store = &self.store;
        let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
        match route {
            RouteId::Healthz | RouteId::Snapshot | RouteId::Mcp => unreachable!("answered above"),
            RouteId::Version => ok(json!({"version": store.version()?})),
            RouteId::Audit => {
                let q = query(&req);
                let after = query_u64(&q, "after")?.unwrap_or(0);
                let limit = query_u64(&q, "limit")?.unwrap_or(100).clamp(1, 1000) as usize;
                ok(json!({"entries": store.audit(after, limit)?}))
            }
            RouteId::InstallationTools => ok(self.offer(&name)?),
            RouteId::InstallationLogs => {
                self.installation(&name)?;
                let not_here = || {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        format!("installation {name:?} is not run by this control (no logs)"),
                    )
                };
                let backends = self.backends.as_ref().ok_or_else(not_here)?;
                let asked = store.installation(&name)?.and_then(|i| i.item.runtime);
                let kind = store
                    .run_state(&name)?
                    .and_then(|r| r.item.runtime)
                    .unwrap_or_else(|| backends.choose(asked));
                let runtime = backends.get(kind).ok_or_else(not_here)?;
                let lines = runtime.logs(&name).await.map_err(|_| not_here())?;
                let s = store.clone();
                let n = name.clone();
                let secrets = tokio::task::spawn_blocking(move || s.secret_values(&n))
                    .await
                    .map_err(internal)??;
                let lines: Vec<String> = lines
                    .into_iter()
                    .map(|l| crate::orchestrator::mask(l, &secrets))
                    .collect();
                ok(json!({"name": name, "lines": lines}))
            }
            RouteId::ListCallers | RouteId::SetCaller | RouteId::UnsetCaller => {
                self.callers(route, req, actor, name).await
            }
            RouteId::ListTemplates => {
                let items: Vec<Value> = store.templates()?.iter().map(with_meta).collect();
                ok(json!({"templates": items}))
            }
            RouteId::GetTemplate => ok(with_meta(&self.template(&name)?)),
            RouteId::CreateTemplate | RouteId::ReplaceTemplate => {
                let (mode, status) = mode_of(route);
                let t: Template = body(req, "templates").await?;
                check_path_name(&name, &t.name, "templates")?;
                let n = t.name.clone();
                self.write(move |s| s.put_template(&actor, t, mode)).await?;
                Ok(json_response(status, &with_meta(&self.template(&n)?)))
            }
            RouteId::DeleteTemplate => {
                let n = name.clone();
                let version = self.write(move |s| s.delete_template(&actor, &n)).await?;
                ok(json!({"deleted": name, "version": version}))
            }
            RouteId::ListInstallations => ok(json!({"installations": self.installation_views()?})),
            RouteId::GetInstallation => ok(self.installation(&name)?),
            RouteId::CreateInstallation | RouteId::ReplaceInstallation => {
                let (mode, status) = mode_of(route);
                let i: InstallationInput = body(req, "installations").await?;
                check_path_name(&name, &i.name, "installations")?;
                let n = i.name.clone();
                self.put_installation(actor, i, mode).await?;
                Ok(json_response(status, &self.installation(&n)?))
            }
            RouteId::DeleteInstallation => {
                let n = name.clone();
                let version = self
                    .write(move |s| s.delete_installation(&actor, &n))
                    .await?;
                ok(json!({"deleted": name, "version": version}))
            }
            RouteId::ListGateways => {
                let items: Vec<Value> = store.gateways()?.iter().map(with_meta).collect();
                ok(json!({"gateways": items}))
            }
            RouteId::GetGateway => ok(with_meta(&self.gateway(&name)?)),
            RouteId::CreateGateway | RouteId::ReplaceGateway => {
                let (mode, status) = mode_of(route);
                let g: Gateway = body(req, "gateways").await?;
                check_path_name(&name, &g.name, "gateways")?;
                let n = g.name.clone();
                self.write(move |s| s.put_gateway(&actor, g, mode)).await?;
                Ok(json_response(status, &with_meta(&self.gateway(&n)?)))
            }
            RouteId::DeleteGateway => {
                let n = name.clone();
                let version = self.write(move |s| s.delete_gateway(&actor, &n)).await?;
                ok(json!({"deleted": name, "version": version}))
            }
            RouteId::Assign => {
                let a: Assignment = body(req, "assignments").await?;
                let n = name.clone();
                self.write(move |s| s.assign(&actor, &n, &a.entry)).await?;
                Ok(json_response(
                    StatusCode::CREATED,
                    &with_meta(&self.gateway(&name)?),
                ))
            }
            RouteId::Unassign => {
                let entry = params.get(1).cloned().unwrap_or_default();
                let n = name.clone();
                self.write(move |s| s.unassign(&actor, &n, &entry)).await?;
                ok(with_meta(&self.gateway(&name)?))
            }
        }
    }

    fn template(&self, name: &str) -> Result<Versioned<Template>, ApiError> {
        self.store.template(name)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("template {name:?} does not exist"),
            )
        })
    }

    fn gateway(&self, name: &str) -> Result<Versioned<Gateway>, ApiError> {
        self.store.gateway(name)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("gateway {name:?} does not exist"),
            )
        })
    }

    fn stored_installation(&self, name: &str) -> Result<Versioned<Installation>, ApiError> {
        self.store.installation(name)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("installation {name:?} does not exist"),
            )
        })
    }

    /// What discovery found on an installation's server, with the read-resource tools
    /// proxies make of it ([`crate::discovery::view`]).
    fn offer(&self, name: &str) -> Result<Value, ApiError> {
        let i = self.stored_installation(name)?;
        let found = self.store.discovered(name)?;
        Ok(crate::discovery::view(&i.item, found.as_ref()))
    }

    /// Writes an installation after the checks only this control can make (a runtime it
    /// runs): the one path of the API's route and the built-in `install` tool.
    async fn put_installation(
        &self,
        actor: String,
        i: InstallationInput,
        mode: Mode,
    ) -> Result<u64, ApiError> {
        let asked = i.runtime_kind().map_err(|e| ApiError::invalid(&e))?;
        if let (Some(backends), Some(_)) = (&self.backends, asked) {
            backends.check(asked).map_err(|e| ApiError::invalid(&e))?;
        }
        self.write(move |s| s.put_installation(&actor, i, mode))
            .await
    }

    /// Every installation as shown, templates read once.
    fn installation_views(&self) -> Result<Vec<Value>, ApiError> {
        let templates: BTreeMap<String, Template> = self
            .store
            .templates()?
            .into_iter()
            .map(|t| (t.item.name.clone(), t.item))
            .collect();
        let mut items: Vec<Value> = Vec::new();
        for i in self.store.installations()? {
            let run = self.store.run_state(&i.item.name)?;
            items.push(installation_view(
                &i,
                templates.get(&i.item.template),
                run.as_ref(),
                self.default_runtime(),
            ));
        }
        Ok(items)
    }

    fn installation(&self, name: &str) -> Result<Value, ApiError> {
        let i = self.stored_installation(name)?;
        let t = self.store.template(&i.item.template)?;
        let run = self.store.run_state(name)?;
        Ok(installation_view(
            &i,
            t.as_ref().map(|t| &t.item),
            run.as_ref(),
            self.default_runtime(),
        ))
    }

    /// `GET /v1/snapshot?after=V&wait=S`: at once when the version differs from `V` (newer,
    /// or older after control lost or restored data) or `after` is absent; else when a write
    /// lands, or 304 after `wait` seconds. A token scoped to gateways gets only those and the
    /// servers they show.
    async fn snapshot(&self, req: &Request<Incoming>, scope: Option<&[String]>) -> Reply {
        let q = query(req);
        let wait = query_u64(&q, "wait")?
            .map_or(DEFAULT_WAIT, Duration::from_secs)
            .min(MAX_WAIT);
        if let Some(after) = query_u64(&q, "after")? {
            let mut rx = self.version.subscribe();
            match tokio::time::timeout(wait, rx.wait_for(|v| *v != after)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(internal(e)),
                Err(_) => {
                    let mut r = Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = StatusCode::NOT_MODIFIED;
                    r.headers_mut()
                        .insert(VERSION_HEADER, HeaderValue::from(after));
                    return Ok(r);
                }
            }
        }
        let store = self.store.clone();
        let snapshot = tokio::task::spawn_blocking(move || {
            let snapshot = store.snapshot()?;
            store.flush_through(snapshot.version).map(|()| snapshot)
        })
        .await
        .map_err(internal)??;
        let snapshot = match scope {
            Some(gateways) => crate::render::scoped(snapshot, gateways),
            None => snapshot,
        };
        let body = serde_json::to_value(&snapshot).expect("snapshots serialise");
        let mut r = json_response(StatusCode::OK, &body);
        r.headers_mut()
            .insert(VERSION_HEADER, HeaderValue::from(snapshot.version));
        Ok(r)
    }
}

/// Waits for the next published write or `at_most`, whichever is first; `false` once the
/// API is gone (control stopping). The pace of control's reconcile loops.
pub async fn next_write_or(changes: &mut watch::Receiver<u64>, at_most: Duration) -> bool {
    tokio::select! {
        changed = changes.changed() => changed.is_ok(),
        () = tokio::time::sleep(at_most) => true,
    }
}

/// Serves the API on `listener` until the task is dropped. At most [`MAX_CONNECTIONS`] are
/// served at once; further ones wait in the listen backlog.
pub async fn serve(listener: TcpListener, api: Arc<Api>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, say: back off briefly and keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let api = api.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| api.clone().handle(req));
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(slot);
        });
    }
}
