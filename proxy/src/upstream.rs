//! Upstream MCP servers as the data plane sees them: where they are, how long to wait for
//! them, and one HTTP exchange with them over pingora's pooled connector.
//!
//! Both forwarded client calls and the gateway's own calls (initialize, catalog fetches) go
//! through [`Exchange`], so they share connection pools, TLS setup, timeouts and error
//! classification.

pub mod exchange;
pub mod mcp_client;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use sluice_auth::UpstreamCredential;
use sluice_auth::credential::{Caller, CredentialError, Injected};
use sluice_config::{ServerConfig, ServerName};
use thiserror::Error;

pub use exchange::{Exchange, Sending};

/// Index of a server in the snapshot's server list; cheap to copy into routes.
pub type ServerIdx = usize;

/// Why talking to an upstream failed. Messages name the server and never carry secrets.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// The server's host name did not resolve.
    #[error("upstream server '{server}': cannot resolve {authority}")]
    Resolve {
        /// The server.
        server: ServerName,
        /// host:port that failed.
        authority: String,
    },
    /// No connection could be made.
    #[error("upstream server '{server}' refused or failed the connection: {reason}")]
    Connect {
        /// The server.
        server: ServerName,
        /// What the connector said.
        reason: String,
    },
    /// The connection broke while the exchange was in flight.
    #[error("upstream server '{server}' reset the connection: {reason}")]
    Reset {
        /// The server.
        server: ServerName,
        /// What broke.
        reason: String,
    },
    /// The server did not answer in time.
    #[error("upstream server '{server}' timed out after {after:?} ({phase})")]
    Timeout {
        /// The server.
        server: ServerName,
        /// The bound that elapsed.
        after: Duration,
        /// Which wait elapsed.
        phase: &'static str,
    },
    /// The server answered with an HTTP status the gateway cannot pass on as MCP.
    #[error("upstream server '{server}' answered HTTP {status}")]
    Status {
        /// The server.
        server: ServerName,
        /// The HTTP status.
        status: u16,
    },
    /// The server answered something that is not MCP.
    #[error("upstream server '{server}' sent an invalid response: {reason}")]
    Protocol {
        /// The server.
        server: ServerName,
        /// What was wrong.
        reason: String,
    },
    /// No credential could be presented to the server.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The server is ejected after consecutive failures ([`crate::breaker`]).
    #[error(
        "upstream server '{server}' is ejected after {failures} consecutive failures; retry after {:.1} s",
        .retry_after.as_secs_f64()
    )]
    Ejected {
        /// The server.
        server: ServerName,
        /// Time left of the ejection.
        retry_after: Duration,
        /// The failures in a row that ejected it.
        failures: u32,
    },
    /// The server answered the request with a JSON-RPC error.
    #[error("upstream server '{server}' returned error {code}: {message}")]
    JsonRpc {
        /// The server.
        server: ServerName,
        /// JSON-RPC error code.
        code: i64,
        /// JSON-RPC error message.
        message: String,
    },
}

impl UpstreamError {
    /// Whether the failure says the server is unhealthy (counted by its breaker), rather than
    /// that the request or its credential was refused.
    pub fn is_server_fault(&self) -> bool {
        match self {
            UpstreamError::Resolve { .. }
            | UpstreamError::Connect { .. }
            | UpstreamError::Reset { .. }
            | UpstreamError::Timeout { .. }
            | UpstreamError::Protocol { .. } => true,
            UpstreamError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// A configured upstream MCP server, resolved once and shared by every request.
#[derive(Debug)]
pub struct Upstream {
    /// The server's configured name (the tool prefix).
    pub name: ServerName,
    /// Position in the snapshot's server list.
    pub index: ServerIdx,
    /// `host[:port]` for the Host header.
    pub authority: String,
    /// Path and query of the MCP endpoint.
    pub path: String,
    /// Bound on one whole exchange.
    pub timeout: Duration,
    /// Keep-alive idle bound for pooled connections.
    pub idle_timeout: Duration,
    tls: bool,
    host: String,
    port: u16,
    /// Bound on connecting.
    pub connect_timeout: Duration,
    /// Bound on each read or write.
    pub read_timeout: Duration,
    addr: ArcSwapOption<SocketAddr>,
    /// `[servers.credential]`: what requests to this server present.
    pub credential: Option<UpstreamCredential>,
    /// `[servers.catalog_credential]`: what the gateway's own catalog calls present.
    pub catalog_credential: Option<UpstreamCredential>,
    /// `max_concurrent`: the bound on requests forwarded to it at once on this replica.
    pub admission: crate::overload::Admission,
    /// Outlier ejection (`eject_after`, `eject_for`).
    pub breaker: crate::breaker::Breaker,
    /// `resource_tools`: whether its resources are also offered as read-resource tools.
    pub resource_tools: sluice_config::ResourceTools,
    /// Whether this is control's built-in tools server: requests to it say which gateway and
    /// caller they come from.
    pub builtin: bool,
}

impl Upstream {
    /// Builds the upstream from its config; the address is resolved on first use. `credentials`
    /// are built from `cfg.credential` and `cfg.catalog_credential`.
    pub fn new(
        index: ServerIdx,
        cfg: &ServerConfig,
        idle_timeout: Duration,
        credentials: (Option<UpstreamCredential>, Option<UpstreamCredential>),
    ) -> Arc<Self> {
        let tls = cfg.url.scheme() == "https";
        let host = cfg.url.host_str().unwrap_or_default().to_owned();
        let port = cfg
            .url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let authority = match cfg.url.port() {
            Some(p) => format!("{}:{p}", bracket_ipv6(&host)),
            None => bracket_ipv6(&host),
        };
        let mut path = cfg.url.path().to_owned();
        if let Some(q) = cfg.url.query() {
            path.push('?');
            path.push_str(q);
        }
        Arc::new(Upstream {
            name: cfg.name.clone(),
            index,
            authority,
            path,
            timeout: cfg.timeout,
            idle_timeout,
            tls,
            host,
            port,
            connect_timeout: cfg.connect_timeout,
            read_timeout: cfg.read_timeout,
            addr: ArcSwapOption::empty(),
            credential: credentials.0,
            catalog_credential: credentials.1,
            admission: crate::overload::Admission::new(cfg.max_concurrent),
            breaker: crate::breaker::Breaker::new(cfg.eject_after, cfg.eject_for),
            resource_tools: cfg.resource_tools,
            builtin: cfg.builtin,
        })
    }

    /// The credential of the gateway's own catalog calls, which have no caller: the catalog
    /// credential, else the server's credential when it does not act for a caller.
    pub async fn own_credential(&self) -> Result<Option<Injected>, UpstreamError> {
        match self.own() {
            Some(c) => Ok(Some(c.resolve(Caller::default()).await?)),
            None => Ok(None),
        }
    }

    /// The upstream answered 401 to the gateway's own call made with `injected`.
    pub fn own_rejected(&self, injected: &Injected) {
        if let Some(c) = self.own() {
            c.rejected(Caller::default(), &injected.value);
        }
    }

    fn own(&self) -> Option<&UpstreamCredential> {
        self.catalog_credential
            .as_ref()
            .or(self.credential.as_ref().filter(|c| !c.acts_for_caller()))
    }

    /// A peer for one exchange, with every timeout set (pingora sets none by default).
    pub fn peer(&self) -> Result<HttpPeer, UpstreamError> {
        let addr = match self.addr.load_full() {
            Some(a) => *a,
            None => {
                let resolved = (self.host.trim_matches(['[', ']']), self.port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut it| it.next())
                    .ok_or_else(|| UpstreamError::Resolve {
                        server: self.name.clone(),
                        authority: self.authority.clone(),
                    })?;
                self.addr.store(Some(Arc::new(resolved)));
                resolved
            }
        };
        let mut peer = HttpPeer::new(addr, self.tls, self.host.clone());
        let o = &mut peer.options;
        o.connection_timeout = Some(self.connect_timeout);
        o.total_connection_timeout = Some(self.connect_timeout.saturating_mul(2));
        o.read_timeout = Some(self.read_timeout);
        o.write_timeout = Some(self.read_timeout);
        o.idle_timeout = Some(self.idle_timeout);
        o.alpn = if self.tls { ALPN::H2H1 } else { ALPN::H1 };
        Ok(peer)
    }

    /// Forgets the resolved address so the next exchange resolves again.
    pub fn forget_address(&self) {
        self.addr.store(None);
    }
}

/// A pooled connector for upstreams, trusting `proxy.upstream_ca_file` when set.
pub fn connector(proxy: &sluice_config::ProxyConfig) -> pingora::connectors::http::Connector {
    let mut options = pingora::connectors::ConnectorOptions::new(CONNECTION_POOL_SIZE);
    options.ca_file = proxy
        .upstream_ca_file
        .as_ref()
        .map(|p| p.display().to_string());
    pingora::connectors::http::Connector::new(Some(options))
}

/// Idle upstream connections kept per connector.
const CONNECTION_POOL_SIZE: usize = 256;

fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}
