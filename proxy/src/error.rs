//! Every way a request can fail at the gateway, and the one mapping from those failures to an
//! HTTP status and a JSON-RPC error object. Handlers return [`GatewayError`]; only
//! [`crate::reply`] turns it into bytes.

use thiserror::Error;

use crate::jsonrpc::ScanError;
use crate::upstream::UpstreamError;

/// JSON-RPC parse error.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC invalid request.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC method not found.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC invalid params.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC internal error.
pub const INTERNAL_ERROR: i64 = -32603;
/// Implementation-defined server error: the caller is not authenticated or not allowed.
pub const UNAUTHORIZED: i64 = -32001;
/// Implementation-defined server error: a tool-invocation policy refused the call.
pub const POLICY_DENIED: i64 = -32003;
/// Implementation-defined server error: a rate limit refused the request (HTTP 429).
pub const RATE_LIMITED: i64 = -32029;
/// Implementation-defined server error: a concurrency bound refused the request (HTTP 503).
pub const OVERLOADED: i64 = -32030;
/// MCP 2026-07-28: a routing header disagrees with the body (HTTP 400).
pub const HEADER_MISMATCH: i64 = -32020;
/// MCP 2026-07-28: the envelope's protocol version is not served (HTTP 400).
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// A request the gateway refuses or could not complete.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The path is not an MCP endpoint.
    #[error("no MCP endpoint at {path}; gateways are served at /mcp/{{gateway}}")]
    NotFound {
        /// The requested path (truncated).
        path: String,
    },
    /// The path names no configured gateway.
    #[error("unknown gateway '{name}'")]
    UnknownGateway {
        /// The requested gateway name (truncated).
        name: String,
    },
    /// HTTP method not served on this endpoint.
    #[error("method {method} is not allowed on an MCP endpoint (allowed: {allow})")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// What is allowed.
        allow: &'static str,
    },
    /// `Accept` does not allow what the endpoint answers with (the text says what).
    #[error("Accept must allow {0}")]
    NotAcceptable(&'static str),
    /// `Content-Type` is not JSON.
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// Body larger than `max_body_bytes`.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The body could not be read from the client.
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    /// The body is not a valid JSON-RPC message.
    #[error("{0}")]
    Scan(#[from] ScanError),
    /// A JSON-RPC batch on a version without batches.
    #[error("JSON-RPC batches are not supported (removed in protocol version 2025-06-18)")]
    Batch,
    /// A non-initialize request without `Mcp-Session-Id`.
    #[error("missing Mcp-Session-Id header: send initialize first")]
    MissingSession,
    /// The session id is tampered, expired, for another gateway or ended.
    #[error("session not found: {0}; initialize a new session")]
    SessionNotFound(&'static str),
    /// `MCP-Protocol-Version` names a version the gateway does not speak.
    #[error("unsupported MCP-Protocol-Version '{0}'")]
    UnsupportedVersion(String),
    /// A request header is not valid.
    #[error("invalid header: {0}")]
    BadHeader(&'static str),
    /// JSON-RPC method the gateway does not serve.
    #[error("method not found: {0}")]
    MethodNotFound(String),
    /// Tool not shown by this gateway.
    #[error("unknown tool '{name}' on gateway '{gateway}'{}", hint(.similar))]
    UnknownTool {
        /// Requested name.
        name: String,
        /// The gateway.
        gateway: String,
        /// Close matches.
        similar: Vec<String>,
    },
    /// Prompt not shown by this gateway.
    #[error("unknown prompt '{name}' on gateway '{gateway}'")]
    UnknownPrompt {
        /// Requested name.
        name: String,
        /// The gateway.
        gateway: String,
    },
    /// No server of this gateway owns the URI.
    #[error("no server of gateway '{gateway}' owns resource '{uri}'")]
    UnknownResource {
        /// Requested URI (truncated).
        uri: String,
        /// The gateway.
        gateway: String,
    },
    /// Parameters are missing or of the wrong type.
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// A list cursor that names no page.
    #[error("invalid cursor")]
    BadCursor,
    /// The upstream failed.
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    /// The client closed its connection before the answer was complete.
    #[error("client closed the connection ({0})")]
    ClientClosed(&'static str),
    /// The gateway itself failed (a bug or a limit), not the client or an upstream.
    #[error("internal gateway error: {0}")]
    Internal(String),
    /// The request's credential is missing or refused (401).
    #[error("unauthorized: {error}")]
    Unauthorized {
        /// Why.
        error: sluice_auth::AuthError,
        /// The gateway's protected-resource metadata URL.
        metadata_url: String,
    },
    /// The caller may not use this tool (403).
    #[error("tool '{tool}' is not allowed for this caller on gateway '{gateway}': {reason}")]
    Forbidden {
        /// The tool (truncated).
        tool: String,
        /// The gateway.
        gateway: String,
        /// Which rule refused it and what it requires (from the config, no secrets).
        reason: String,
        /// The gateway's protected-resource metadata URL.
        metadata_url: String,
        /// Scopes the gateway advertises, for the challenge.
        scope: Option<String>,
    },
    /// A tool-invocation policy refused the call.
    #[error("tool '{tool}' call refused by policy '{policy}' of gateway '{gateway}'")]
    PolicyDenied {
        /// The tool (truncated).
        tool: String,
        /// The gateway.
        gateway: String,
        /// The deciding policy's name (`default` = the gateway's `policy_default`).
        policy: String,
    },
    /// A rate limit refused the request (429).
    #[error(
        "rate limit exceeded: the {} limit of gateway '{gateway}' ({}); retry after {:.3} s",
        .limited.scope.as_str(),
        .limited.limit,
        .limited.retry_after.as_secs_f64()
    )]
    RateLimited {
        /// The gateway.
        gateway: String,
        /// Which limit and when to retry.
        limited: crate::rate_limit::Limited,
    },
    /// A name two servers of a gateway without prefixes both offer, so it is withheld.
    #[error(
        "{kind} '{name}' of gateway '{gateway}' is withheld: servers {servers} all offer it, and the gateway shows names without a server prefix (prefix = false), so the call could reach either"
    )]
    Withheld {
        /// `tool`, `prompt`, `resource` or `resource template`.
        kind: crate::catalog::conflicts::Kind,
        /// The name, URI or URI template (truncated).
        name: String,
        /// The gateway.
        gateway: String,
        /// The servers offering it, quoted.
        servers: String,
    },
    /// The request's `Host` or `Origin` is not allowed here (DNS-rebinding protection, 403).
    #[error("{0}")]
    HostNotAllowed(#[from] crate::host_check::Refused),
    /// The upstream lost the session and it could not be re-opened.
    #[error(
        "upstream server '{0}' lost the session and could not open a new one; initialize a new session"
    )]
    UpstreamSessionLost(String),
    /// A concurrency bound refused the request (503): retry shortly, or on another replica.
    #[error(
        "overloaded: {what} already has {limit} requests in flight on this replica ({key}); retry after 1 s"
    )]
    Overloaded {
        /// `gateway 'g'` or `server 's'`.
        what: String,
        /// The bound.
        limit: usize,
        /// The config key that sets it.
        key: &'static str,
    },
    /// A 2026-07-28 routing header (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`)
    /// disagrees with the body, is missing, or is repeated.
    #[error("{0}")]
    HeaderMismatch(String),
    /// A 2026-07-28 request whose `params._meta` envelope is missing or malformed.
    #[error("invalid request envelope: {0}")]
    InvalidEnvelope(String),
    /// A 2026-07-28 envelope names a protocol version the gateway does not serve.
    #[error("unsupported protocol version '{requested}'")]
    UnsupportedModernVersion {
        /// The version asked for (truncated).
        requested: String,
    },
    /// A request the 2026-07-28 revision does not have (a client's answer to a server
    /// request, which that revision never sends).
    #[error("{0}")]
    NotInRevision(&'static str),
    /// A method the 2026-07-28 revision removed or never had (HTTP 404, as it says).
    #[error("method not found in protocol revision 2026-07-28: {0}")]
    NoMethodInRevision(String),
    /// A client's response to a request the gateway never relayed to it.
    #[error("cannot route this response: {0}")]
    UnknownResponse(#[from] crate::relay::RelayError),
    /// An upstream of the 2026-07-28 revision answered a handshake-era client's request with
    /// an `InputRequiredResult`, which such a client cannot answer.
    #[error(
        "server '{server}' needs more input from the client to finish this request (an InputRequiredResult of protocol revision 2026-07-28), which a client of the handshake era cannot give: use a client that speaks 2026-07-28"
    )]
    InputRequired {
        /// The upstream that asked.
        server: String,
    },
}

fn hint(similar: &[String]) -> String {
    if similar.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", similar.join(", "))
    }
}

impl GatewayError {
    /// The HTTP status of the response carrying this error.
    pub fn http_status(&self) -> u16 {
        match self {
            GatewayError::NotFound { .. }
            | GatewayError::UnknownGateway { .. }
            | GatewayError::NoMethodInRevision(_) => 404,
            GatewayError::SessionNotFound(_) | GatewayError::UpstreamSessionLost(_) => 404,
            GatewayError::MethodNotAllowed { .. } => 405,
            GatewayError::NotAcceptable(_) => 406,
            GatewayError::UnsupportedMediaType => 415,
            GatewayError::PayloadTooLarge { .. } => 413,
            GatewayError::BodyRead(_)
            | GatewayError::Scan(_)
            | GatewayError::Batch
            | GatewayError::MissingSession
            | GatewayError::UnsupportedVersion(_)
            | GatewayError::BadHeader(_)
            | GatewayError::UnknownResponse(_)
            | GatewayError::HeaderMismatch(_)
            | GatewayError::InvalidEnvelope(_)
            | GatewayError::UnsupportedModernVersion { .. }
            | GatewayError::NotInRevision(_) => 400,
            // JSON-RPC level failures of a well-formed request travel in a 200.
            GatewayError::MethodNotFound(_)
            | GatewayError::UnknownTool { .. }
            | GatewayError::UnknownPrompt { .. }
            | GatewayError::UnknownResource { .. }
            | GatewayError::Withheld { .. }
            | GatewayError::InvalidParams(_)
            | GatewayError::BadCursor
            | GatewayError::PolicyDenied { .. }
            | GatewayError::InputRequired { .. }
            | GatewayError::Upstream(_) => 200,
            GatewayError::RateLimited { .. } => 429,
            GatewayError::Overloaded { .. } => 503,
            GatewayError::Internal(_) => 500,
            GatewayError::Unauthorized { .. } => 401,
            GatewayError::Forbidden { .. } | GatewayError::HostNotAllowed(_) => 403,
            // Nobody is left to read it; 499 is what proxies log for this.
            GatewayError::ClientClosed(_) => 499,
        }
    }

    /// The JSON-RPC error code.
    pub fn jsonrpc_code(&self) -> i64 {
        match self {
            GatewayError::Scan(e) => e.json_rpc_code(),
            GatewayError::BodyRead(_) => PARSE_ERROR,
            GatewayError::MethodNotFound(_) | GatewayError::NoMethodInRevision(_) => {
                METHOD_NOT_FOUND
            }
            GatewayError::UnknownTool { .. }
            | GatewayError::UnknownPrompt { .. }
            | GatewayError::UnknownResource { .. }
            | GatewayError::Withheld { .. }
            | GatewayError::InvalidParams(_)
            | GatewayError::InvalidEnvelope(_)
            | GatewayError::BadCursor => INVALID_PARAMS,
            GatewayError::HeaderMismatch(_) => HEADER_MISMATCH,
            GatewayError::UnsupportedModernVersion { .. } => UNSUPPORTED_PROTOCOL_VERSION,
            GatewayError::Upstream(_) | GatewayError::Internal(_) => INTERNAL_ERROR,
            GatewayError::Unauthorized { .. } | GatewayError::Forbidden { .. } => UNAUTHORIZED,
            GatewayError::PolicyDenied { .. } => POLICY_DENIED,
            GatewayError::RateLimited { .. } => RATE_LIMITED,
            GatewayError::Overloaded { .. } => OVERLOADED,
            GatewayError::InputRequired { .. } => crate::modern::MISSING_REQUIRED_CLIENT_CAPABILITY,
            _ => INVALID_REQUEST,
        }
    }

    /// A short stable label for logs and (later) metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayError::NotFound { .. } => "not_found",
            GatewayError::UnknownGateway { .. } => "unknown_gateway",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::NotAcceptable(_) => "not_acceptable",
            GatewayError::UnsupportedMediaType => "unsupported_media_type",
            GatewayError::PayloadTooLarge { .. } => "payload_too_large",
            GatewayError::BodyRead(_) => "body_read",
            GatewayError::Scan(ScanError::Syntax { .. } | ScanError::TooDeep { .. }) => {
                "parse_error"
            }
            GatewayError::Scan(ScanError::DuplicateKey { .. } | ScanError::EscapedKey { .. }) => {
                "ambiguous_envelope"
            }
            GatewayError::Scan(_) => "invalid_request",
            GatewayError::Batch => "batch",
            GatewayError::MissingSession => "missing_session",
            GatewayError::SessionNotFound(_) => "session_not_found",
            GatewayError::UnsupportedVersion(_) => "unsupported_version",
            GatewayError::BadHeader(_) => "bad_header",
            GatewayError::MethodNotFound(_) => "method_not_found",
            GatewayError::UnknownTool { .. } => "unknown_tool",
            GatewayError::UnknownPrompt { .. } => "unknown_prompt",
            GatewayError::UnknownResource { .. } => "unknown_resource",
            GatewayError::Withheld { .. } => "name_conflict",
            GatewayError::HostNotAllowed(r) => r.kind(),
            GatewayError::InvalidParams(_) => "invalid_params",
            GatewayError::BadCursor => "bad_cursor",
            GatewayError::Upstream(UpstreamError::Timeout { .. }) => "upstream_timeout",
            GatewayError::Upstream(UpstreamError::Ejected { .. }) => "upstream_ejected",
            GatewayError::Upstream(UpstreamError::Credential(e)) => e.reason(),
            GatewayError::Upstream(_) => "upstream_error",
            GatewayError::UpstreamSessionLost(_) => "upstream_session_lost",
            GatewayError::Internal(_) => "internal",
            GatewayError::ClientClosed(_) => "client_closed",
            GatewayError::Unauthorized { .. } => "unauthorized",
            GatewayError::Forbidden { .. } => "forbidden",
            GatewayError::PolicyDenied { .. } => "policy_denied",
            GatewayError::RateLimited { .. } => "rate_limited",
            GatewayError::UnknownResponse(_) => "unknown_response",
            GatewayError::Overloaded { .. } => "overloaded",
            GatewayError::HeaderMismatch(_) => "header_mismatch",
            GatewayError::InvalidEnvelope(_) => "invalid_envelope",
            GatewayError::UnsupportedModernVersion { .. } => "unsupported_version",
            GatewayError::NotInRevision(_) => "not_in_revision",
            GatewayError::NoMethodInRevision(_) => "method_not_found",
            GatewayError::InputRequired { .. } => "input_required",
        }
    }

    /// The JSON-RPC error's `data`, where the protocol defines one.
    pub fn data(&self) -> Option<serde_json::Value> {
        match self {
            GatewayError::UnsupportedModernVersion { requested } => Some(serde_json::json!({
                "supported": crate::modern::all_versions(),
                "requested": requested,
            })),
            // SEP-2164: a resource that is not there names its URI.
            GatewayError::UnknownResource { uri, .. } => Some(serde_json::json!({ "uri": uri })),
            _ => None,
        }
    }
}

/// Cuts untrusted text echoed into an error to a bounded length.
pub fn truncated(s: &str) -> String {
    const MAX: usize = 128;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl GatewayError {
    /// The `WWW-Authenticate` challenge of a 401 or 403 (RFC 6750 §3, RFC 9728 §5.1).
    pub fn challenge(&self) -> Option<String> {
        let quoted = |s: &str| s.replace(['"', '\\'], "'");
        match self {
            GatewayError::Unauthorized {
                error,
                metadata_url,
            } => Some(if error.token_presented() {
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\", resource_metadata=\"{}\"",
                    quoted(&error.to_string()),
                    quoted(metadata_url)
                )
            } else {
                format!("Bearer resource_metadata=\"{}\"", quoted(metadata_url))
            }),
            GatewayError::Forbidden {
                metadata_url,
                scope,
                ..
            } => {
                let scope = scope
                    .as_deref()
                    .map(|s| format!(", scope=\"{}\"", quoted(s)))
                    .unwrap_or_default();
                Some(format!(
                    "Bearer error=\"insufficient_scope\"{scope}, resource_metadata=\"{}\"",
                    quoted(metadata_url)
                ))
            }
            _ => None,
        }
    }
}
