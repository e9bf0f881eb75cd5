//! DNS-rebinding protection for the MCP endpoints: a request's `Host`, and its `Origin` when it
//! has one, must be allowed by `proxy.allowed_hosts` / `proxy.allowed_origins`.
//!
//! A gateway on loopback is reachable from every web page its user opens: a page can re-point
//! its own domain at 127.0.0.1 (DNS rebinding), after which the browser sends the page's
//! requests to the gateway as if they were same-origin, and an open gateway would run tools for
//! it. Those requests still carry the attacker's name in `Host` and the page's origin in
//! `Origin`, which is what this check refuses (the MCP specification asks servers to validate
//! both). It runs first, before authentication, so open gateways are protected too, and costs a
//! few string comparisons.
//!
//! A request without `Origin` is allowed: clients that are not browsers do not send one, and a
//! browser always does on the cross-origin POST an attack needs. A request without `Host` is
//! refused while hosts are checked, since HTTP/1.1 requires one.

use http::header::{HOST, ORIGIN};
use pingora::http::RequestHeader;
use sluice_config::{Allowlist, HostPort, Origin, ProxyConfig};
use thiserror::Error;

use crate::error::truncated;

/// Why a request was refused before anything else looked at it (HTTP 403).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refused {
    /// No `Host` header (nor an absolute request target) while hosts are checked.
    #[error(
        "the request has no Host header; this gateway serves only requests naming a host in proxy.allowed_hosts (DNS-rebinding protection)"
    )]
    MissingHost,
    /// A `Host` no entry allows (the value, truncated).
    #[error(
        "Host header '{0}' is not allowed (DNS-rebinding protection); if clients reach the gateway by this name, add it to proxy.allowed_hosts"
    )]
    Host(String),
    /// An `Origin` no entry allows (the value, truncated).
    #[error(
        "Origin header '{0}' is not allowed (DNS-rebinding protection); if pages of this origin may use the gateway, add it to proxy.allowed_origins"
    )]
    Origin(String),
}

impl Refused {
    /// The label of the access log and of `sluice_bad_requests_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Refused::MissingHost => "missing_host",
            Refused::Host(_) => "host_not_allowed",
            Refused::Origin(_) => "origin_not_allowed",
        }
    }
}

/// Checks a request's `Host` and `Origin` against the proxy's allowlists.
pub fn check(proxy: &ProxyConfig, req: &RequestHeader) -> Result<(), Refused> {
    if let Allowlist::Only(allowed) = &proxy.allowed_hosts {
        let mut named = false;
        for value in req.headers.get_all(HOST) {
            named = true;
            if !value.to_str().is_ok_and(|v| host_allowed(allowed, v)) {
                return Err(Refused::Host(shown(value.as_bytes())));
            }
        }
        // An absolute request target names the host too, and wins over Host (RFC 9112 §3.2.2).
        if let Some(authority) = req.uri.authority() {
            named = true;
            if !host_allowed(allowed, authority.as_str()) {
                return Err(Refused::Host(truncated(authority.as_str())));
            }
        }
        if !named {
            return Err(Refused::MissingHost);
        }
    }
    if let Allowlist::Only(allowed) = &proxy.allowed_origins {
        for value in req.headers.get_all(ORIGIN) {
            if !value.to_str().is_ok_and(|v| origin_allowed(allowed, v)) {
                return Err(Refused::Origin(shown(value.as_bytes())));
            }
        }
    }
    Ok(())
}

/// Whether a `Host` value (`host[:port]`) is allowed by one of `allowed`. A value that is not a
/// host with an optional port is not.
pub fn host_allowed(allowed: &[HostPort], value: &str) -> bool {
    HostPort::parse(value.trim()).is_ok_and(|h| allowed.iter().any(|a| a.allows(&h)))
}

/// Whether an `Origin` value (`scheme://host[:port]`) is allowed by one of `allowed`. `null`
/// (an opaque origin) and anything else that is not an origin are not.
pub fn origin_allowed(allowed: &[Origin], value: &str) -> bool {
    Origin::parse(value.trim()).is_ok_and(|o| allowed.iter().any(|a| a.allows(&o)))
}

/// A header value as text for the error, bounded.
fn shown(value: &[u8]) -> String {
    truncated(&String::from_utf8_lossy(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::{default_allowed_hosts, default_allowed_origins};

    fn hosts(entries: &[&str]) -> Vec<HostPort> {
        entries
            .iter()
            .map(|e| HostPort::parse(e).unwrap())
            .collect()
    }

    fn origins(entries: &[&str]) -> Vec<Origin> {
        entries.iter().map(|e| Origin::parse(e).unwrap()).collect()
    }

    fn request(headers: &[(&'static str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("POST", b"/mcp/dev", None).unwrap();
        for (k, v) in headers {
            req.append_header(*k, *v).unwrap();
        }
        req
    }

    fn loopback() -> ProxyConfig {
        ProxyConfig::default()
    }

    #[test]
    fn hosts_match_with_any_port_or_the_listed_port() {
        let allowed = hosts(&["localhost", "mcp.example:8443"]);
        assert!(host_allowed(&allowed, "localhost"));
        assert!(host_allowed(&allowed, "localhost:8080"));
        assert!(host_allowed(&allowed, "mcp.example:8443"));
        assert!(!host_allowed(&allowed, "mcp.example:443"));
        assert!(!host_allowed(&allowed, "mcp.example"));
    }

    #[test]
    fn hosts_match_case_insensitively_and_exactly() {
        let allowed = hosts(&["localhost", "Mcp.Example"]);
        assert!(host_allowed(&allowed, "LOCALHOST:1"));
        assert!(host_allowed(&allowed, "mcp.EXAMPLE"));
        assert!(
            !host_allowed(&allowed, "sub.mcp.example"),
            "no suffix match"
        );
        assert!(!host_allowed(&allowed, "localhost.evil.example"));
        assert!(!host_allowed(&allowed, "localhostx"));
        assert!(!host_allowed(&allowed, ""));
        assert!(!host_allowed(&allowed, "localhost:x"), "malformed");
    }

    #[test]
    fn ipv6_hosts_need_brackets_and_compare_canonically() {
        let allowed = hosts(&["[::1]", "[2001:db8::1]:9"]);
        assert!(host_allowed(&allowed, "[::1]"));
        assert!(host_allowed(&allowed, "[::1]:8080"));
        assert!(host_allowed(&allowed, "[0:0:0:0:0:0:0:1]:8080"));
        assert!(host_allowed(&allowed, "[2001:DB8::1]:9"));
        assert!(!host_allowed(&allowed, "[2001:db8::1]:10"));
        assert!(!host_allowed(&allowed, "::1"));
        assert!(!host_allowed(&allowed, "[::2]"));
    }

    #[test]
    fn origins_match_scheme_host_and_port() {
        let allowed = origins(&["http://localhost", "https://app.example:8443"]);
        assert!(origin_allowed(&allowed, "http://localhost:6274"));
        assert!(origin_allowed(&allowed, "HTTP://LocalHost"));
        assert!(
            !origin_allowed(&allowed, "https://localhost"),
            "other scheme"
        );
        assert!(origin_allowed(&allowed, "https://app.example:8443"));
        assert!(!origin_allowed(&allowed, "https://app.example"));
        assert!(!origin_allowed(&allowed, "null"));
        assert!(!origin_allowed(&allowed, "http://localhost.evil.example"));
    }

    #[test]
    fn the_loopback_default_accepts_loopback_names_and_refuses_others() {
        let cfg = loopback();
        assert_eq!(check(&cfg, &request(&[("host", "localhost:8080")])), Ok(()));
        assert_eq!(check(&cfg, &request(&[("host", "127.0.0.1")])), Ok(()));
        assert_eq!(check(&cfg, &request(&[("host", "[::1]:1")])), Ok(()));
        assert_eq!(
            check(
                &cfg,
                &request(&[
                    ("host", "127.0.0.1:1"),
                    ("origin", "https://localhost:3000")
                ])
            ),
            Ok(())
        );
        assert_eq!(
            check(&cfg, &request(&[("host", "evil.example")])),
            Err(Refused::Host("evil.example".into()))
        );
        assert_eq!(
            check(
                &cfg,
                &request(&[("host", "localhost"), ("origin", "http://evil.example")])
            ),
            Err(Refused::Origin("http://evil.example".into()))
        );
        assert_eq!(check(&cfg, &request(&[])), Err(Refused::MissingHost));
        assert_eq!(
            check(
                &cfg,
                &request(&[("host", "localhost"), ("host", "evil.example")])
            ),
            Err(Refused::Host("evil.example".into())),
            "every Host value must be allowed"
        );
    }

    #[test]
    fn an_absolute_target_must_name_an_allowed_host_too() {
        let mut req = request(&[("host", "localhost")]);
        req.set_uri("http://evil.example/mcp/dev".parse().unwrap());
        assert_eq!(
            check(&loopback(), &req),
            Err(Refused::Host("evil.example".into()))
        );
    }

    #[test]
    fn star_and_non_loopback_defaults_check_nothing() {
        let mut cfg = loopback();
        cfg.allowed_hosts = Allowlist::Any;
        cfg.allowed_origins = Allowlist::Any;
        assert_eq!(
            check(
                &cfg,
                &request(&[("host", "evil.example"), ("origin", "null")])
            ),
            Ok(())
        );
        assert_eq!(check(&cfg, &request(&[])), Ok(()));
        let public = "0.0.0.0:8080".parse().unwrap();
        cfg.allowed_hosts = default_allowed_hosts(public);
        cfg.allowed_origins = default_allowed_origins(public);
        assert_eq!(check(&cfg, &request(&[("host", "mcp.example")])), Ok(()));
    }

    #[test]
    fn refusals_name_the_header_the_value_and_the_key_to_change() {
        let long = format!("{}.example", "a".repeat(300));
        let err = check(&loopback(), &request(&[("host", &long)])).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("Host header 'aaaa"), "{text}");
        assert!(text.contains("proxy.allowed_hosts"), "{text}");
        assert!(text.len() < 300, "the value is truncated: {text}");
        assert_eq!(err.kind(), "host_not_allowed");
        let err = Refused::Origin("http://evil.example".into());
        assert!(err.to_string().contains("proxy.allowed_origins"));
        assert_eq!(err.kind(), "origin_not_allowed");
        assert_eq!(Refused::MissingHost.kind(), "missing_host");
    }
}
