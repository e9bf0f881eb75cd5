//! One HTTP request/response with an upstream over pingora's pooled connector.
//!
//! A request body is normally complete before it is sent (the gateway has read and inspected
//! it); a 2026-07-28 call routed by its headers streams through a [`Sending`] instead. So a failure on a *reused* pooled connection before any response byte arrived means the
//! upstream closed an idle connection and never saw the request: that case, and only that, is
//! retried once on a fresh connection. Connections go back to the pool only when the response
//! was read to its end.
//!
//! On HTTP/1.1, pingora's client flushes the request header on its own and then the body, two
//! `sendto`s where one would do; on loopback each costs the sender the receiver's TCP work too.
//! Bodies up to [`COALESCE_MAX`] therefore go out in one write with the header
//! ([`write_request`]), and the session reads the response as usual.

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::v1::client::{HttpSession as Http1Session, http_req_header_to_wire};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use tokio::io::AsyncWriteExt;

use super::{Upstream, UpstreamError};

/// An exchange whose response header has arrived; the body is read with [`Exchange::chunk`].
pub struct Exchange {
    session: HttpSession,
    peer: HttpPeer,
    status: u16,
}

impl Exchange {
    /// Sends `req` with `body` and waits for the response header.
    pub async fn start(
        connector: &Connector,
        upstream: &Upstream,
        req: RequestHeader,
        body: Bytes,
    ) -> Result<Exchange, UpstreamError> {
        let peer = upstream.peer()?;
        let (session, reused) = connector
            .get_http_session(&peer)
            .await
            .map_err(|e| classify(upstream, &e, Phase::Connect))?;
        match Self::send(session, peer.clone(), upstream, req.clone(), body.clone()).await {
            Err((e, true)) if reused => {
                tracing::debug!(server = %upstream.name, error = %e, "pooled connection was stale, retrying on a new one");
                let (session, _) = connector
                    .get_http_session(&peer)
                    .await
                    .map_err(|e| classify(upstream, &e, Phase::Connect))?;
                Self::send(session, peer, upstream, req, body)
                    .await
                    .map_err(|(e, _)| e)
            }
            other => other.map_err(|(e, _)| e),
        }
    }

    /// Returns the exchange, or the error and whether the request provably never reached the
    /// upstream application (so a retry cannot run a tool twice).
    async fn send(
        session: HttpSession,
        peer: HttpPeer,
        upstream: &Upstream,
        req: RequestHeader,
        body: Bytes,
    ) -> Result<Exchange, (UpstreamError, bool)> {
        let mut session = match write_request(session, &peer, req, body).await {
            Ok(session) => session,
            Err(e) => return Err((classify(upstream, &e, Phase::Write), true)),
        };
        if let Err(e) = session.read_response_header().await {
            let untouched = matches!(e.etype(), ErrorType::ConnectionClosed);
            return Err((classify(upstream, &e, Phase::Read), untouched));
        }
        let status = session.response_header().map_or(0, |h| h.status.as_u16());
        Ok(Exchange {
            session,
            peer,
            status,
        })
    }

    /// The response status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The response header.
    pub fn header(&self) -> Option<&ResponseHeader> {
        self.session.response_header()
    }

    /// A response header value as a string, if present and visible ASCII.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header()?.headers.get(name)?.to_str().ok()
    }

    /// Replaces the per-read timeout (`None` for long-lived streams).
    pub fn set_read_timeout(&mut self, timeout: Option<std::time::Duration>) {
        self.session.set_read_timeout(timeout);
    }

    /// The next body chunk; `None` at the end of the body.
    pub async fn chunk(&mut self, upstream: &Upstream) -> Result<Option<Bytes>, UpstreamError> {
        self.session
            .read_response_body()
            .await
            .map_err(|e| classify(upstream, &e, Phase::Read))
    }

    /// Keeps the exchange when `ok` accepts its status; otherwise ends it and returns the
    /// status as an error naming the server.
    pub async fn expect_status(
        self,
        connector: &Connector,
        upstream: &Upstream,
        ok: impl Fn(u16) -> bool,
    ) -> Result<Exchange, UpstreamError> {
        if ok(self.status) {
            return Ok(self);
        }
        let status = self.status;
        self.finish(connector, upstream).await;
        Err(UpstreamError::Status {
            server: upstream.name.clone(),
            status,
        })
    }

    /// Returns the connection to the pool if the response was read to its end.
    pub async fn finish(mut self, connector: &Connector, upstream: &Upstream) {
        if self.session.response_done() {
            connector
                .release_http_session(self.session, &self.peer, Some(upstream.idle_timeout))
                .await;
        } else {
            self.session.shutdown().await;
        }
    }

    /// Reads the whole body, refusing more than `limit` bytes.
    pub async fn read_to_end(
        &mut self,
        upstream: &Upstream,
        limit: usize,
    ) -> Result<Vec<u8>, UpstreamError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.chunk(upstream).await? {
            if out.len() + chunk.len() > limit {
                return Err(UpstreamError::Protocol {
                    server: upstream.name.clone(),
                    reason: format!("response larger than {limit} bytes"),
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// A request whose body is still being written: the header went out with
/// [`Sending::begin`], body chunks follow with [`Sending::write`] as they arrive from the
/// client, and [`Sending::finish`] sends the last bytes and waits for the response header.
/// Dropping it or [`Sending::abort`] closes the connection, so the upstream never sees a
/// complete request.
pub struct Sending {
    session: HttpSession,
    peer: HttpPeer,
    reused: bool,
}

impl Sending {
    /// Connects (or takes a pooled connection) and writes the request header.
    pub async fn begin(
        connector: &Connector,
        upstream: &Upstream,
        req: RequestHeader,
    ) -> Result<Sending, UpstreamError> {
        let peer = upstream.peer()?;
        let (mut session, reused) = connector
            .get_http_session(&peer)
            .await
            .map_err(|e| classify(upstream, &e, Phase::Connect))?;
        match session.write_request_header(Box::new(req.clone())).await {
            Ok(()) => Ok(Sending {
                session,
                peer,
                reused,
            }),
            Err(e) if reused => {
                tracing::debug!(server = %upstream.name, error = %e, "pooled connection was stale, retrying on a new one");
                let (mut session, _) = connector
                    .get_http_session(&peer)
                    .await
                    .map_err(|e| classify(upstream, &e, Phase::Connect))?;
                session
                    .write_request_header(Box::new(req))
                    .await
                    .map_err(|e| classify(upstream, &e, Phase::Write))?;
                Ok(Sending {
                    session,
                    peer,
                    reused: false,
                })
            }
            Err(e) => Err(classify(upstream, &e, Phase::Write)),
        }
    }

    /// Whether the connection came from the pool: a failure on it may only mean the upstream
    /// had closed it while idle, so the request may be sent again whole on a new one.
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// Writes the next body chunk.
    pub async fn write(&mut self, upstream: &Upstream, chunk: Bytes) -> Result<(), UpstreamError> {
        self.session
            .write_request_body(chunk, false)
            .await
            .map_err(|e| classify(upstream, &e, Phase::Write))
    }

    /// Writes the last bytes, ends the body and waits for the response header. The error says
    /// whether the request provably never reached the upstream application.
    pub async fn finish(
        mut self,
        upstream: &Upstream,
        last: Bytes,
    ) -> Result<Exchange, (UpstreamError, bool)> {
        let written = async {
            self.session.write_request_body(last, true).await?;
            self.session.finish_request_body().await
        };
        if let Err(e) = written.await {
            return Err((classify(upstream, &e, Phase::Write), true));
        }
        if let Err(e) = self.session.read_response_header().await {
            let untouched = matches!(e.etype(), ErrorType::ConnectionClosed);
            return Err((classify(upstream, &e, Phase::Read), untouched));
        }
        let status = self
            .session
            .response_header()
            .map_or(0, |h| h.status.as_u16());
        Ok(Exchange {
            session: self.session,
            peer: self.peer,
            status,
        })
    }

    /// Closes the connection with the body unfinished.
    pub async fn abort(mut self) {
        self.session.shutdown().await;
    }
}

#[derive(Clone, Copy)]
enum Phase {
    Connect,
    Write,
    Read,
}

/// Request bodies up to this size are written together with the header.
const COALESCE_MAX: usize = 64 * 1024;

/// Writes the request: on HTTP/1.1 with a body up to [`COALESCE_MAX`], header and body in one
/// write on the raw stream, then a fresh session over it to read the response (the request
/// always carries `content-length` and is never `HEAD` or an upgrade, the only things the
/// session would have needed to remember about it); otherwise through the session.
async fn write_request(
    session: HttpSession,
    peer: &HttpPeer,
    req: RequestHeader,
    body: Bytes,
) -> Result<HttpSession, Box<Error>> {
    match session {
        HttpSession::H1(h1) if body.len() <= COALESCE_MAX => {
            let mut wire = http_req_header_to_wire(&req).ok_or_else(|| {
                Error::explain(
                    ErrorType::InvalidHTTPHeader,
                    "the request header cannot be written",
                )
            })?;
            wire.extend_from_slice(&body);
            let mut stream = h1.into_inner();
            let write = async {
                stream.write_all(&wire).await?;
                stream.flush().await
            };
            let written = match peer.options.write_timeout {
                Some(limit) => tokio::time::timeout(limit, write).await.map_err(|_| {
                    Error::explain(ErrorType::WriteTimedout, "while writing the request")
                })?,
                None => write.await,
            };
            written.map_err(|e| {
                Error::because(ErrorType::WriteError, "while writing the request", e)
            })?;
            Ok(HttpSession::H1(Http1Session::new_with_options(
                stream, peer,
            )))
        }
        mut session => {
            session.write_request_header(Box::new(req)).await?;
            session.write_request_body(body, true).await?;
            session.finish_request_body().await?;
            Ok(session)
        }
    }
}

/// Maps a pingora error to what an operator needs to know.
fn classify(upstream: &Upstream, e: &Error, phase: Phase) -> UpstreamError {
    let server = upstream.name.clone();
    match e.etype() {
        ErrorType::ConnectTimedout => UpstreamError::Timeout {
            server,
            after: upstream.connect_timeout,
            phase: "connect",
        },
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => UpstreamError::Timeout {
            server,
            after: upstream.read_timeout,
            phase: if matches!(e.etype(), ErrorType::ReadTimedout) {
                "waiting for response"
            } else {
                "sending request"
            },
        },
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::TLSHandshakeFailure
        | ErrorType::TLSHandshakeTimedout
        | ErrorType::InvalidCert
        | ErrorType::HandshakeError
        | ErrorType::SocketError
        | ErrorType::BindError => {
            upstream.forget_address();
            UpstreamError::Connect {
                server,
                reason: reason_of(e),
            }
        }
        ErrorType::InvalidHTTPHeader | ErrorType::H1Error | ErrorType::H2Error => {
            UpstreamError::Protocol {
                server,
                reason: reason_of(e),
            }
        }
        _ => match phase {
            Phase::Connect => UpstreamError::Connect {
                server,
                reason: reason_of(e),
            },
            Phase::Write | Phase::Read => UpstreamError::Reset {
                server,
                reason: reason_of(e),
            },
        },
    }
}

fn reason_of(e: &Error) -> String {
    match (&e.cause, &e.context) {
        (Some(c), _) => format!("{} ({c})", e.etype().as_str()),
        (None, Some(ctx)) => format!("{} ({ctx})", e.etype().as_str()),
        (None, None) => e.etype().as_str().to_owned(),
    }
}
