//! The allowlists that protect a gateway from DNS rebinding (`proxy.allowed_hosts`,
//! `proxy.allowed_origins`).
//!
//! A web page can point its own domain at 127.0.0.1 after the page loaded, and then make the
//! browser send requests to a gateway on the user's machine as if they were same-origin. Such a
//! request still names the attacker's domain in `Host` (and its page in `Origin`), so a gateway
//! that knows the names it is reached by can refuse it; the MCP specification asks servers to
//! check both.
//!
//! The grammar lives here, beside the config, so entries are checked at load and the proxy
//! reads request headers with the very same parser: an entry and a header that look alike
//! always compare alike.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Which values of a request header are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowlist<T> {
    /// Every value, and no header at all (`"*"`, or the default off loopback): no check.
    Any,
    /// Only values one of these entries allows.
    Only(Vec<T>),
}

/// A host with an optional port, as written in an allowlist entry or a `Host` header:
/// `name`, `name:port`, `192.0.2.1:port`, `[2001:db8::1]:port`. The host is kept in lower case,
/// and an IPv6 address in its canonical bracketed form, so comparing two is comparing strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// The host, lower-cased; IPv6 addresses in brackets.
    pub host: String,
    /// The port, when one is written.
    pub port: Option<u16>,
}

/// Why a text is not a host with an optional port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Nothing before the port.
    #[error("the host is empty")]
    Empty,
    /// A port that is not a number up to 65535.
    #[error("the port {0:?} is not a number from 0 to 65535")]
    BadPort(String),
    /// Characters no host name has.
    #[error("{0:?} is not a host name or IP address")]
    BadHost(String),
    /// An IPv6 address without brackets, where its colons cannot be told from a port's.
    #[error("write an IPv6 address in brackets, as in \"[::1]\"")]
    UnbracketedIpv6,
    /// Brackets around something that is not an IPv6 address.
    #[error("{0:?} is not an IPv6 address")]
    BadIpv6(String),
}

impl HostPort {
    /// Parses `host`, `host:port` or `[v6]` / `[v6]:port`.
    pub fn parse(text: &str) -> Result<Self, HostError> {
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (v6, after) = rest
                .split_once(']')
                .ok_or_else(|| HostError::BadIpv6(text.to_owned()))?;
            let addr: Ipv6Addr = v6
                .parse()
                .map_err(|_| HostError::BadIpv6(format!("[{v6}]")))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| HostError::BadPort(p.to_owned()))?,
                ),
            };
            (format!("[{addr}]"), port)
        } else {
            if text.parse::<Ipv6Addr>().is_ok() {
                return Err(HostError::UnbracketedIpv6);
            }
            let (host, port) = match text.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            };
            if host.is_empty() {
                return Err(HostError::Empty);
            }
            let host_char =
                |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~');
            if !host.chars().all(host_char) {
                return Err(HostError::BadHost(host.to_owned()));
            }
            (host.to_ascii_lowercase(), port)
        };
        let port = match port {
            None => None,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(
                p.parse::<u16>()
                    .map_err(|_| HostError::BadPort(p.to_owned()))?,
            ),
            Some(p) => return Err(HostError::BadPort(p.to_owned())),
        };
        Ok(HostPort { host, port })
    }

    /// Whether this entry allows `request`: the same host, and the same port when the entry
    /// names one (an entry without a port allows any port, and none).
    pub fn allows(&self, request: &HostPort) -> bool {
        self.host == request.host && self.port.is_none_or(|p| request.port == Some(p))
    }

    /// A host without a port (for defaults).
    fn any_port(host: &str) -> Self {
        HostPort {
            host: host.to_owned(),
            port: None,
        }
    }
}

/// An origin, as written in an allowlist entry or an `Origin` header: `scheme://host` or
/// `scheme://host:port`, with no path. The scheme is kept in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The scheme, lower-cased (`http`, `https`, ...).
    pub scheme: String,
    /// The host and optional port.
    pub host: HostPort,
}

/// Why a text is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// No `scheme://` in front.
    #[error("an origin starts with a scheme, as in \"https://app.example.com\"")]
    NoScheme,
    /// A scheme with characters schemes do not have.
    #[error("{0:?} is not a URL scheme")]
    BadScheme(String),
    /// A path, query or fragment after the host.
    #[error("an origin has no path: write only scheme://host[:port]")]
    HasPath,
    /// The part after `scheme://` is not a host with an optional port.
    #[error("{0}")]
    Host(#[from] HostError),
}

impl Origin {
    /// Parses `scheme://host[:port]`.
    pub fn parse(text: &str) -> Result<Self, OriginError> {
        let (scheme, rest) = text.split_once("://").ok_or(OriginError::NoScheme)?;
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(OriginError::BadScheme(scheme.to_owned()));
        }
        if rest.contains(['/', '?', '#']) {
            return Err(OriginError::HasPath);
        }
        Ok(Origin {
            scheme: scheme.to_ascii_lowercase(),
            host: HostPort::parse(rest)?,
        })
    }

    /// Whether this entry allows `request`: the same scheme and a host the entry's allows.
    pub fn allows(&self, request: &Origin) -> bool {
        self.scheme == request.scheme && self.host.allows(&request.host)
    }
}

/// The names a loopback gateway is reached by: `localhost`, `127.0.0.1`, `[::1]`, and the
/// listen address itself when it is another loopback address (`127.0.0.2`).
fn loopback_names(listen: SocketAddr) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
        .map(str::to_owned)
        .into();
    let own = match listen.ip() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    if !names.contains(&own) {
        names.push(own);
    }
    names
}

/// Default `allowed_hosts`: the loopback names with any port when `listen` is a loopback
/// address; no check otherwise (the gateway cannot know the names a balancer gives it).
pub fn default_allowed_hosts(listen: SocketAddr) -> Allowlist<HostPort> {
    if !listen.ip().is_loopback() {
        return Allowlist::Any;
    }
    Allowlist::Only(
        loopback_names(listen)
            .iter()
            .map(|n| HostPort::any_port(n))
            .collect(),
    )
}

/// Default `allowed_origins`: `http://` and `https://` of the loopback names with any port when
/// `listen` is a loopback address; no check otherwise.
pub fn default_allowed_origins(listen: SocketAddr) -> Allowlist<Origin> {
    if !listen.ip().is_loopback() {
        return Allowlist::Any;
    }
    Allowlist::Only(
        loopback_names(listen)
            .iter()
            .flat_map(|n| {
                ["http", "https"].map(|scheme| Origin {
                    scheme: scheme.to_owned(),
                    host: HostPort::any_port(n),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: Option<u16>) -> HostPort {
        HostPort {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn hosts_parse_with_and_without_ports_in_lower_case() {
        assert_eq!(HostPort::parse("LocalHost"), Ok(hp("localhost", None)));
        assert_eq!(
            HostPort::parse("localhost:8080"),
            Ok(hp("localhost", Some(8080)))
        );
        assert_eq!(HostPort::parse("127.0.0.1:1"), Ok(hp("127.0.0.1", Some(1))));
        assert_eq!(HostPort::parse("[::1]"), Ok(hp("[::1]", None)));
        assert_eq!(
            HostPort::parse("[0:0:0:0:0:0:0:1]:9"),
            Ok(hp("[::1]", Some(9))),
            "IPv6 in canonical form"
        );
        assert_eq!(
            HostPort::parse("[2001:DB8::A]"),
            Ok(hp("[2001:db8::a]", None))
        );
    }

    #[test]
    fn malformed_hosts_are_refused_with_the_reason() {
        assert_eq!(HostPort::parse(""), Err(HostError::Empty));
        assert_eq!(HostPort::parse(":80"), Err(HostError::Empty));
        assert_eq!(HostPort::parse("::1"), Err(HostError::UnbracketedIpv6));
        assert_eq!(
            HostPort::parse("a:b:c"),
            Err(HostError::BadPort("b:c".into()))
        );
        assert_eq!(HostPort::parse("a:"), Err(HostError::BadPort("".into())));
        assert_eq!(
            HostPort::parse("a:70000"),
            Err(HostError::BadPort("70000".into()))
        );
        assert_eq!(
            HostPort::parse("a:+1"),
            Err(HostError::BadPort("+1".into()))
        );
        assert_eq!(
            HostPort::parse("evil.example/x"),
            Err(HostError::BadHost("evil.example/x".into()))
        );
        assert_eq!(
            HostPort::parse("a b"),
            Err(HostError::BadHost("a b".into()))
        );
        assert_eq!(
            HostPort::parse("[::1"),
            Err(HostError::BadIpv6("[::1".into()))
        );
        assert_eq!(
            HostPort::parse("[nope]"),
            Err(HostError::BadIpv6("[nope]".into()))
        );
        assert_eq!(
            HostPort::parse("[::1]80"),
            Err(HostError::BadPort("80".into()))
        );
    }

    #[test]
    fn an_entry_without_a_port_allows_any_port_and_one_with_a_port_only_that_port() {
        let any = HostPort::parse("localhost").unwrap();
        let one = HostPort::parse("localhost:8080").unwrap();
        let req = |s: &str| HostPort::parse(s).unwrap();
        assert!(any.allows(&req("localhost")));
        assert!(any.allows(&req("LOCALHOST:9")));
        assert!(one.allows(&req("localhost:8080")));
        assert!(!one.allows(&req("localhost:8081")));
        assert!(!one.allows(&req("localhost")));
        assert!(
            !any.allows(&req("localhost.evil.example")),
            "no suffix matching"
        );
        assert!(!any.allows(&req("evil-localhost")));
    }

    #[test]
    fn origins_parse_scheme_and_host_without_a_path() {
        let o = Origin::parse("HTTPS://App.Example.com:8443").unwrap();
        assert_eq!(o.scheme, "https");
        assert_eq!(o.host, hp("app.example.com", Some(8443)));
        assert_eq!(Origin::parse("localhost"), Err(OriginError::NoScheme));
        assert_eq!(Origin::parse("null"), Err(OriginError::NoScheme));
        assert_eq!(
            Origin::parse("https://a.example/"),
            Err(OriginError::HasPath)
        );
        assert_eq!(
            Origin::parse("1x://a"),
            Err(OriginError::BadScheme("1x".into()))
        );
        assert_eq!(
            Origin::parse("http://"),
            Err(OriginError::Host(HostError::Empty))
        );
        let entry = Origin::parse("http://localhost").unwrap();
        assert!(entry.allows(&Origin::parse("http://localhost:3000").unwrap()));
        assert!(!entry.allows(&Origin::parse("https://localhost").unwrap()));
    }

    #[test]
    fn loopback_listeners_default_to_loopback_names_and_others_to_no_check() {
        let on = |a: &str| a.parse::<SocketAddr>().unwrap();
        let Allowlist::Only(hosts) = default_allowed_hosts(on("127.0.0.1:8080")) else {
            panic!("loopback is checked");
        };
        let names: Vec<&str> = hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(names, ["localhost", "127.0.0.1", "[::1]"]);
        assert!(hosts.iter().all(|h| h.port.is_none()));
        let Allowlist::Only(hosts) = default_allowed_hosts(on("127.0.0.2:1")) else {
            panic!("loopback is checked");
        };
        assert_eq!(hosts.last().map(|h| h.host.as_str()), Some("127.0.0.2"));
        let Allowlist::Only(origins) = default_allowed_origins(on("[::1]:8080")) else {
            panic!("loopback is checked");
        };
        assert_eq!(origins.len(), 6);
        assert!(origins.contains(&Origin::parse("https://[::1]").unwrap()));
        assert_eq!(default_allowed_hosts(on("0.0.0.0:8080")), Allowlist::Any);
        assert_eq!(default_allowed_origins(on("[::]:8080")), Allowlist::Any);
        assert_eq!(default_allowed_hosts(on("192.0.2.7:80")), Allowlist::Any);
    }
}
