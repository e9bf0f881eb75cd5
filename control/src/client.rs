//! A minimal HTTP/1.1 client for the admin API, used by `sluice ctl` and the tests: one
//! connection per request (a CLI makes one or two), plain `http://` only because the API is
//! meant for loopback or a TLS-terminating proxy in front of it.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Bound on one whole request, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not `http://host:port[/prefix]`.
    #[error("invalid control URL {0:?}: expected http://host:port")]
    Url(String),
    /// Nothing accepted the connection.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The connection failed mid-request, or the answer was not JSON.
    #[error("control at {addr} answered badly: {reason}")]
    Protocol {
        /// `host:port`.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// An answer: status and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
}

/// An admin API client.
#[derive(Debug, Clone)]
pub struct Client {
    authority: String,
    prefix: String,
    token: Option<String>,
}

impl Client {
    /// A client of `url` (`http://host:port`, optionally with a path prefix) sending `token`.
    pub fn new(url: &str, token: Option<String>) -> Result<Self, ClientError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| ClientError::Url(url.to_owned()))?;
        let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            return Err(ClientError::Url(url.to_owned()));
        }
        Ok(Client {
            authority: authority.to_owned(),
            prefix: prefix.trim_end_matches('/').to_owned(),
            token,
        })
    }

    fn protocol(&self, reason: impl std::fmt::Display) -> ClientError {
        ClientError::Protocol {
            addr: self.authority.clone(),
            reason: reason.to_string(),
        }
    }

    /// Sends `method path` (path from `/v1/...`) with an optional JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.send(method, path, body))
            .await
            .map_err(|_| self.protocol("timed out"))?
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|source| ClientError::Connect {
                addr: self.authority.clone(),
                source,
            })?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.protocol(e))?;
        tokio::spawn(connection);
        let uri = if self.prefix.is_empty() {
            path.to_owned()
        } else {
            format!("/{}{path}", self.prefix)
        };
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, &self.authority);
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let payload = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(payload)).map_err(|e| self.protocol(e))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.protocol(e))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.protocol(e))?
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| self.protocol(format!("not JSON: {e}")))?
        };
        Ok(Answer { status, body })
    }
}
