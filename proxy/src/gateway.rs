//! The MCP endpoint on Pingora: `/mcp/{gateway}`.
//!
//! Every request is handled in `request_filter` and answered there, in this order:
//! endpoint → authenticate → read and inspect the body → answer locally or route → resolve the
//! upstream credential → forward and stream back → record (in `logging`). The gateway forwards
//! with its own pooled exchange rather than pingora's proxy phase because it must read and
//! rewrite the whole body before choosing an upstream (pingora's retry buffer stops at 64 KiB),
//! retry a lost upstream session, and answer upstream failures as JSON-RPC errors. Before the
//! endpoint step, [`crate::host_check`] refuses a `Host` or `Origin` that is not allowed.

mod caller;
mod endpoint;
pub mod events;
mod fanout;
mod forward;
mod listen;
mod local;
mod modern;
mod oauth;
mod record;
mod resource_call;
mod resource_updates;
mod route;
mod stream;
mod streamed;

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use pingora::connectors::http::Connector;
use pingora::proxy::{ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};

use crate::catalog::GatewayCatalog;
use crate::error::{GatewayError, truncated};
use crate::jsonrpc::{self, MessageKind, Scanned};
use crate::protocol;
use crate::relay;
use crate::reply;
use crate::session::unix_now;
use crate::session_token::SessionClaims;
use crate::state::{Shared, Snapshot};

pub use caller::Caller;
/// The header checks of an MCP request, public so the fuzz targets (`fuzz/`) can reach them.
pub use endpoint::{check_get_headers, check_post_headers, gateway_name};
pub use record::RequestRecord;

/// The pingora service behind every gateway endpoint. Each request loads the current world
/// once ([`GatewayService::current`]) and is served by a [`Gateway`] over it, so a reload never
/// changes the config under a request.
pub struct GatewayService {
    current: Arc<ArcSwap<Shared>>,
    connector: Arc<Connector>,
}

impl GatewayService {
    /// A gateway service over the current world; its upstream connector (pool, CA bundle) is
    /// built from the config it starts with.
    pub fn new(current: Arc<ArcSwap<Shared>>) -> Self {
        let connector = Arc::new(crate::upstream::connector(&current.load().config.proxy));
        GatewayService { current, connector }
    }
}

/// One request's view: the world it loaded and the connector.
pub struct Gateway {
    shared: Arc<Shared>,
    connector: Arc<Connector>,
}

impl Gateway {
    async fn serve(
        &self,
        session: &mut Session,
        rec: &mut RequestRecord,
    ) -> Result<(), GatewayError> {
        if oauth::is_oauth_path(session.req_header().uri.path()) {
            return oauth::serve(self, session, rec).await;
        }
        // DNS-rebinding protection, before anything else reads the request.
        crate::host_check::check(&self.shared.config.proxy, session.req_header())?;
        let snapshot = self.shared.snapshot.load_full();
        let name = endpoint::gateway_name(&session.req_header().uri)?;
        let catalog =
            snapshot
                .gateways
                .get(name)
                .cloned()
                .ok_or_else(|| GatewayError::UnknownGateway {
                    name: truncated(name),
                })?;
        rec.gateway = Some(catalog.name.as_str().to_owned());
        rec.gateway_metrics = Some(catalog.metrics.clone());
        let caller = caller::authenticate(self, session, &catalog, rec).await?;
        let method = session.req_header().method.clone();
        match method {
            Method::POST => self.post(session, rec, &snapshot, &catalog, &caller).await,
            Method::GET => {
                let claims = self.session_claims(session, &catalog)?;
                stream::serve(self, session, rec, &catalog, &claims, &caller).await
            }
            Method::DELETE => self.delete(session, &catalog, &caller).await,
            m => Err(GatewayError::MethodNotAllowed {
                method: truncated(m.as_str()),
                allow: "POST, GET, DELETE",
            }),
        }
    }

    async fn post(
        &self,
        session: &mut Session,
        rec: &mut RequestRecord,
        snapshot: &Snapshot,
        catalog: &Arc<GatewayCatalog>,
        caller: &Caller,
    ) -> Result<(), GatewayError> {
        endpoint::check_post_headers(session.req_header())?;
        let limits = &self.shared.config.proxy;
        if let Some(plan) = streamed::plan(
            session.req_header(),
            snapshot,
            catalog,
            caller,
            limits.max_body_bytes,
        ) {
            rec.modern = true;
            rec.method = Some("tools/call".to_owned());
            let _admitted = self.admit(session, catalog, caller, true)?;
            endpoint::continue_if_expected(session).await?;
            let claims = modern::claims(self, catalog, caller, b"{}".to_vec());
            let mut target = forward::Target::new(plan.server, Bytes::new());
            target.streamed = Some(plan);
            return forward::forward(self, session, rec, snapshot, &claims, caller, target).await;
        }
        let body = endpoint::read_body(session, limits.max_body_bytes).await?;
        rec.request_bytes = body.len();
        let envelope = match jsonrpc::scan(&body, limits.max_json_depth)? {
            Scanned::Single(e) => e,
            Scanned::Batch => return Err(GatewayError::Batch),
        };
        rec.id = envelope.id.map(|s| body.slice(s.start..s.end));
        rec.method = envelope.method.as_deref().map(str::to_owned);
        let method = envelope.method.as_deref().unwrap_or_default();
        // Admitted once the body is read, so a refusal can name the request's id.
        let admitted = self.admit(
            session,
            catalog,
            caller,
            envelope.kind == MessageKind::Request,
        )?;

        if crate::modern::is_modern(&session.req_header().headers, &body, &envelope) {
            let request = modern::Request {
                body: &body,
                envelope: &envelope,
                snapshot,
                catalog,
                caller,
                admitted,
            };
            return modern::serve(self, session, rec, request).await;
        }
        let _admitted = admitted;
        if envelope.kind == MessageKind::Request && method == "initialize" {
            return local::initialize(
                self, session, rec, snapshot, catalog, caller, &body, &envelope,
            )
            .await;
        }
        if method == "server/discover" {
            // The stateless era's probe without its envelope: -32601 tells a client to fall
            // back to initialize.
            return Err(GatewayError::MethodNotFound(method.to_owned()));
        }
        let claims = self.session_claims(session, catalog)?;
        check_version_header(session)?;
        match envelope.kind {
            MessageKind::Response => {
                if let Some(span) = envelope.id
                    && relay::is_relayed(&body[span.start..span.end])
                {
                    let target = route::answer(self, &body, span, catalog, &claims)?;
                    return forward::forward(self, session, rec, snapshot, &claims, caller, target)
                        .await;
                }
                // An answer to nothing the gateway sent: acknowledged and dropped.
                rec.outcome = "accepted";
                return reply::accepted(session).await.map_err(write_failed);
            }
            MessageKind::Notification => {
                match method {
                    "notifications/cancelled" => {
                        if let Some(id) = route::cancelled_request(&body, &envelope) {
                            self.shared.inflight.cancel(claims.session_uid, id);
                        }
                    }
                    "notifications/roots/list_changed" => {
                        let fan = fanout::Request::new(
                            (session, rec),
                            (snapshot, catalog),
                            (&claims, caller),
                        );
                        fanout::notify_all(self, fan, method).await;
                    }
                    // `initialized` and anything else concern the gateway's own session.
                    _ => {}
                }
                rec.outcome = "accepted";
                return reply::accepted(session).await.map_err(write_failed);
            }
            MessageKind::Request => {}
        }
        match method {
            "ping" => local::result(session, rec, b"{}").await,
            "logging/setLevel" => {
                let params = envelope
                    .params
                    .map_or(&b"{}"[..], |s| &body[s.start..s.end]);
                let fan =
                    fanout::Request::new((session, rec), (snapshot, catalog), (&claims, caller));
                fanout::set_level(self, fan, params).await?;
                local::result(session, rec, b"{}").await
            }
            "tools/list" => match caller.grants.and_then(|g| catalog.tools_for(g)) {
                Some(pages) => local::list(session, rec, &body, &envelope, &pages).await,
                None => local::list(session, rec, &body, &envelope, &catalog.tools).await,
            },
            "prompts/list" => local::list(session, rec, &body, &envelope, &catalog.prompts).await,
            "resources/list" => {
                local::list(session, rec, &body, &envelope, &catalog.resources).await
            }
            "resources/templates/list" => {
                local::list(session, rec, &body, &envelope, &catalog.resource_templates).await
            }
            "tools/call"
                if catalog.lazy.is_some()
                    && envelope
                        .name
                        .as_ref()
                        .is_some_and(|n| n.value == crate::catalog::lazy::SEARCH_TOOLS) =>
            {
                local::search_tools(session, rec, &body, &envelope, catalog, caller).await
            }
            "tools/call"
            | "prompts/get"
            | "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "completion/complete" => {
                let target =
                    self.route(session, method, (&body, &envelope), catalog, caller, rec)?;
                forward::forward(self, session, rec, snapshot, &claims, caller, target).await
            }
            other => Err(GatewayError::MethodNotFound(truncated(other))),
        }
    }

    /// The request's place under the gateway's concurrency bound and, for a request, one
    /// token of its rate limit.
    fn admit<'s>(
        &'s self,
        session: &Session,
        catalog: &GatewayCatalog,
        caller: &Caller,
        request: bool,
    ) -> Result<Option<crate::overload::Permit<'s>>, GatewayError> {
        let admitted = match self.shared.admissions.get(catalog.name.as_str()) {
            Some(bound) => Some(bound.try_enter().ok_or_else(|| {
                self.shared
                    .metrics
                    .overloaded("gateway", catalog.name.as_str());
                GatewayError::Overloaded {
                    what: format!("gateway '{}'", catalog.name),
                    limit: bound.limit(),
                    key: "gateways.limits.concurrent",
                }
            })?),
            None => None,
        };
        if request && let Some(limiter) = &catalog.limiter {
            limiter
                .admit(caller::limit_key(caller, session))
                .map_err(|limited| GatewayError::RateLimited {
                    gateway: catalog.name.as_str().to_owned(),
                    limited,
                })?;
        }
        Ok(admitted)
    }

    /// Chooses the upstream of a routed request; a refusal for a rule names the gateway's
    /// protected-resource metadata so the client can ask for more scopes.
    fn route(
        &self,
        session: &Session,
        method: &str,
        (body, envelope): (&Bytes, &jsonrpc::Envelope<'_>),
        catalog: &GatewayCatalog,
        caller: &Caller,
        rec: &mut RequestRecord,
    ) -> Result<forward::Target, GatewayError> {
        route::target(method, envelope, body, catalog, caller, rec).map_err(|e| {
            match (e, &caller.policy) {
                (
                    GatewayError::Forbidden {
                        tool,
                        gateway,
                        reason,
                        scope,
                        ..
                    },
                    Some(p),
                ) => GatewayError::Forbidden {
                    tool,
                    gateway,
                    reason,
                    scope,
                    metadata_url: oauth::metadata_url(session, p),
                },
                (e, _) => e,
            }
        })
    }

    async fn delete(
        &self,
        session: &mut Session,
        catalog: &GatewayCatalog,
        caller: &Caller,
    ) -> Result<(), GatewayError> {
        let claims = self.session_claims(session, catalog)?;
        local::end_session(self, &claims, caller, session.req_header()).await;
        // Its standalone streams on this replica close (none listening is fine).
        let _ = self.shared.session_ends.send(claims.session_uid);
        reply::json(session, 200, Bytes::new(), &[])
            .await
            .map_err(write_failed)
    }

    /// Opens and checks the client's session token: 400 when absent, 404 when not valid here.
    fn session_claims(
        &self,
        session: &Session,
        catalog: &GatewayCatalog,
    ) -> Result<SessionClaims, GatewayError> {
        let header = session
            .req_header()
            .headers
            .get(protocol::SESSION_HEADER)
            .ok_or(GatewayError::MissingSession)?;
        let token = header
            .to_str()
            .map_err(|_| GatewayError::SessionNotFound("malformed session id"))?;
        let claims = self
            .shared
            .sealer
            .open(token, unix_now())
            .map_err(|e| GatewayError::SessionNotFound(session_error_reason(&e)))?;
        if claims.gateway != catalog.name.as_str() {
            return Err(GatewayError::SessionNotFound(
                "session belongs to another gateway",
            ));
        }
        if self.shared.revoked.is_revoked(&claims.session_uid) {
            return Err(GatewayError::SessionNotFound("session was ended"));
        }
        Ok(claims)
    }
}

fn session_error_reason(e: &crate::session_token::SessionTokenError) -> &'static str {
    use crate::session_token::SessionTokenError as E;
    match e {
        E::Expired => "session expired",
        E::Tampered => "session id not issued by this gateway",
        E::TooLarge => "session id too large",
        _ => "malformed session id",
    }
}

fn check_version_header(session: &Session) -> Result<(), GatewayError> {
    match session.req_header().headers.get(protocol::VERSION_HEADER) {
        None => Ok(()),
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| GatewayError::BadHeader("MCP-Protocol-Version is not ASCII"))?;
            if protocol::is_supported(v) {
                Ok(())
            } else {
                Err(GatewayError::UnsupportedVersion(truncated(v)))
            }
        }
    }
}

/// The client went away while we were answering; nothing more can be sent.
#[allow(clippy::boxed_local)] // pingora's errors arrive boxed
fn write_failed(e: Box<Error>) -> GatewayError {
    GatewayError::BodyRead(format!("client connection failed: {}", e.etype().as_str()))
}

#[async_trait]
impl ProxyHttp for GatewayService {
    type CTX = RequestRecord;

    fn new_ctx(&self) -> RequestRecord {
        RequestRecord::start()
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestRecord,
    ) -> pingora::Result<Box<HttpPeer>> {
        // Every request is answered in request_filter; reaching here is a bug, not a route.
        Error::e_explain(
            ErrorType::InternalError,
            "sluice answers every request in request_filter",
        )
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        rec: &mut RequestRecord,
    ) -> pingora::Result<bool> {
        let gw = Gateway {
            shared: self.current.load_full(),
            connector: self.connector.clone(),
        };
        rec.world = Some(gw.shared.clone());
        rec.span = gw.shared.telemetry.start_request(session.req_header());
        if let Err(err) = gw.serve(session, rec).await {
            rec.outcome = err.kind();
            rec.error = Some(err.to_string());
            if matches!(err.http_status(), 400..=499)
                && !matches!(
                    err,
                    GatewayError::Unauthorized { .. }
                        | GatewayError::Forbidden { .. }
                        | GatewayError::RateLimited { .. }
                        | GatewayError::Overloaded { .. }
                        | GatewayError::ClientClosed(_)
                )
            {
                gw.shared.metrics.bad_request(err.kind());
            }
            if session.response_written().is_none() && !matches!(err, GatewayError::ClientClosed(_))
            {
                let id = rec.id.clone();
                reply::error(session, id.as_deref(), &err, rec.modern).await?;
            }
        }
        Ok(true)
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, rec: &mut RequestRecord) {
        let world = rec.world.take().unwrap_or_else(|| self.current.load_full());
        rec.finish(session, e, &world);
    }
}
