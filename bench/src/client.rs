//! One keep-alive HTTP/1.1 connection per load-generator worker, on hyper's low-level client.
//!
//! A pooled client (reqwest) would add a lock and a pool lookup per request and could open
//! more connections than asked for; a benchmark wants exactly C connections, each carrying one
//! request at a time, and a reconnect counted as an error when the target drops one.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const ACCEPT: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");
const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const PROTOCOL_VERSION: HeaderValue = HeaderValue::from_static(crate::mcp::PROTOCOL_VERSION);
/// The session header.
pub const MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// Where requests go and what every one of them carries.
#[derive(Debug, Clone)]
pub struct Target {
    /// The endpoint's path (and query): requests use the origin form, which every server
    /// takes (uvicorn answers an absolute-form request target with 404).
    target: Uri,
    /// `host:port` to connect to.
    pub authority: String,
    /// The `Host` header, built once.
    host: HeaderValue,
    /// `Authorization: Bearer …`, when the target needs one.
    pub bearer: Option<HeaderValue>,
}

impl Target {
    /// Parses an `http://` URL; `https` is not supported (the benchmark measures proxies on
    /// loopback, where TLS would only measure the TLS library).
    pub fn new(url: &str, bearer: Option<&str>) -> Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("'{url}' is not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(anyhow!("'{url}': only http:// targets are supported"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow!("'{url}' has no host"))?;
        let authority = match authority.port_u16() {
            Some(_) => authority.to_string(),
            None => format!("{}:80", authority.host()),
        };
        let host =
            HeaderValue::from_str(&authority).context("the host is not a valid header value")?;
        let bearer = bearer
            .map(|token| HeaderValue::from_str(&format!("Bearer {token}")))
            .transpose()
            .context("the bearer token is not a valid header value")?;
        let target = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .context("the path is not a request target")?;
        Ok(Self {
            target,
            authority,
            host,
            bearer,
        })
    }
}

/// What came back for one request.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Whether the body is an SSE stream.
    pub fn is_event_stream(&self) -> bool {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
    }
}

/// Why a request got no HTTP reply.
#[derive(Debug)]
pub enum Failure {
    Connect(std::io::Error),
    Timeout,
    /// The connection broke while the request or its answer was in flight.
    Transport(hyper::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "connect: {e}"),
            Failure::Timeout => f.write_str("timed out"),
            Failure::Transport(e) => write!(f, "transport: {e}"),
        }
    }
}

/// One connection, reopened on the next request after it breaks.
pub struct Connection {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
    timeout: Duration,
}

impl Connection {
    pub fn new(target: Target, timeout: Duration) -> Self {
        Self {
            target,
            sender: None,
            timeout,
        }
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, Failure> {
        if let Some(sender) = &self.sender
            && !sender.is_closed()
        {
            return Ok(self.sender.as_mut().expect("checked above"));
        }
        self.sender = None;
        let stream = TcpStream::connect(&self.target.authority)
            .await
            .map_err(Failure::Connect)?;
        stream.set_nodelay(true).map_err(Failure::Connect)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(Failure::Transport)?;
        tokio::spawn(async move {
            // Ends when either side closes; a broken connection shows up on the next send.
            let _ = connection.await;
        });
        Ok(self.sender.insert(sender))
    }

    /// POSTs `body` to the target with the session id, if any; reads the whole answer.
    pub async fn post(
        &mut self,
        body: Bytes,
        session: Option<&HeaderValue>,
    ) -> Result<Reply, Failure> {
        // Every header value is built before the run: a request costs no header allocation.
        let mut request = Request::post(self.target.target.clone())
            .body(Full::new(body))
            .expect("a request built from valid parts");
        let headers = request.headers_mut();
        headers.insert(header::HOST, self.target.host.clone());
        headers.insert(header::CONTENT_TYPE, JSON);
        headers.insert(header::ACCEPT, ACCEPT);
        headers.insert(MCP_PROTOCOL_VERSION, PROTOCOL_VERSION);
        if let Some(bearer) = &self.target.bearer {
            headers.insert(header::AUTHORIZATION, bearer.clone());
        }
        if let Some(session) = session {
            headers.insert(MCP_SESSION_ID, session.clone());
        }
        let timeout = self.timeout;
        let exchange = async {
            let sender = self.sender().await?;
            sender.ready().await.map_err(Failure::Transport)?;
            let response = sender
                .send_request(request)
                .await
                .map_err(Failure::Transport)?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(Failure::Transport)?.to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(failure)) => {
                self.sender = None;
                Err(failure)
            }
            Err(_) => {
                // The answer may still arrive on this connection; never reuse it.
                self.sender = None;
                Err(Failure::Timeout)
            }
        }
    }
}
