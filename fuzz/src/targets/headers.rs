//! Request header values the gateway reads before anything else: the first byte picks the
//! header, the rest is its value (bytes `http` refuses in a header value are skipped, as
//! pingora's parser would refuse the request). Checked:
//!
//! - `Accept` / `Content-Type` (`check_post_headers`, `check_get_headers`): a POST accepted is
//!   a GET accepted; another `Accept` line allowing both types always makes them acceptable,
//!   and one line refusing everything never turns an accepted request away;
//! - `Host` / `Origin` (`HostPort::parse`, `Origin::parse`, `host_check::check`): a parsed
//!   value is canonical (its rendering parses to itself), case does not matter, an entry
//!   allows itself, and the allowlist check agrees with the parser and the default loopback
//!   names; a refusal's message quotes at most 128 bytes and its JSON body parses;
//! - `Last-Event-ID`: `EventCursor::decode` (bounded, canonical);
//! - `MCP-Protocol-Version`: supported exactly for the listed versions, negotiation keeps them;
//! - `Authorization`: `bearer` returns a trimmed token of the allowed characters, from the
//!   value itself;
//! - the request path: `gateway_name` of any URI names one non-empty path segment.

use std::sync::OnceLock;

use http::HeaderValue;
use pingora::http::RequestHeader;
use sluice_config::{Allowlist, HostPort, Origin, ProxyConfig};
use sluice_proxy::gateway::events::{EventCursor, MAX_CURSOR_LEN};
use sluice_proxy::gateway::{check_get_headers, check_post_headers, gateway_name};
use sluice_proxy::{host_check, protocol};

use super::shown;
use crate::shape;

/// Header material the mutator splices in.
pub const DICTIONARY: &[&[u8]] = &[
    b"application/json",
    b"text/event-stream",
    b"*/*",
    b"application/*",
    b"text/*",
    b", ",
    b";q=0",
    b";q=0.0",
    b";q=1",
    b"; q=0.5",
    b";charset=utf-8",
    b"localhost",
    b"127.0.0.1",
    b"[::1]",
    b"[0:0:0:0:0:0:0:1]",
    b"[::ffff:127.0.0.1]",
    b":8080",
    b":65536",
    b"http://",
    b"https://",
    b"null",
    b"LOCALHOST",
    b"2025-06-18",
    b"2025-11-25",
    b"2025-03-26",
    b"c1.",
    b"Bearer ",
    b"/mcp/",
    b"/mcp/dev",
    b"%2F",
    b"?x=1",
];

/// Which header a value goes to.
const HEADERS: usize = 7;

/// Runs one input.
pub fn run(data: &[u8]) -> u64 {
    let (&which, value) = data.split_first().unwrap_or((&0, &[]));
    let which = usize::from(which) % HEADERS;
    let outcome = match which {
        0 => accept(value),
        1 => content_type(value),
        2 => host(value),
        3 => origin(value),
        4 => last_event_id(value),
        5 => version_and_authorization(value),
        _ => path(value),
    };
    shape(&[which as u64, outcome])
}

fn request(method: &str, headers: &[(&'static str, &[u8])]) -> Option<RequestHeader> {
    let mut req = RequestHeader::build(method, b"/mcp/dev", None).ok()?;
    for (name, value) in headers {
        let value = HeaderValue::from_bytes(value).ok()?;
        req.append_header(*name, value).ok()?;
    }
    Some(req)
}

const JSON: &[u8] = b"application/json";

fn accept(value: &[u8]) -> u64 {
    let Some(post) = request("POST", &[("accept", value), ("content-type", JSON)]) else {
        return 0;
    };
    let get = request("GET", &[("accept", value)]).expect("the same value");
    let post_ok = check_post_headers(&post).is_ok();
    let get_ok = check_get_headers(&get).is_ok();
    assert!(
        !post_ok || get_ok,
        "POST accepts but GET refuses Accept {}",
        shown(value)
    );
    let both = b"application/json, text/event-stream";
    let more = request(
        "POST",
        &[("accept", value), ("accept", both), ("content-type", JSON)],
    )
    .expect("valid values");
    assert!(
        check_post_headers(&more).is_ok(),
        "an Accept line allowing both was not enough next to {}",
        shown(value)
    );
    let refusing = request(
        "POST",
        &[
            ("accept", value),
            ("accept", b"*/*;q=0"),
            ("content-type", JSON),
        ],
    )
    .expect("valid values");
    assert_eq!(
        check_post_headers(&refusing).is_ok(),
        post_ok,
        "a refusing line changed the answer for {}",
        shown(value)
    );
    u64::from(post_ok) << 1 | u64::from(get_ok)
}

fn content_type(value: &[u8]) -> u64 {
    let both = b"application/json, text/event-stream";
    let Some(post) = request("POST", &[("accept", both), ("content-type", value)]) else {
        return 0;
    };
    let ok = check_post_headers(&post).is_ok();
    // The gateway reads the value with `to_str`, which takes visible ASCII only.
    let essence = std::str::from_utf8(value)
        .ok()
        .filter(|v| v.is_ascii())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    assert_eq!(
        ok,
        essence.is_some_and(|e| e.eq_ignore_ascii_case("application/json")),
        "Content-Type {}",
        shown(value)
    );
    1 + u64::from(ok)
}

/// `host[:port]` as the parser's canonical text.
fn render_host(h: &HostPort) -> String {
    match h.port {
        Some(p) => format!("{}:{p}", h.host),
        None => h.host.clone(),
    }
}

fn loopback() -> &'static ProxyConfig {
    static PROXY: OnceLock<ProxyConfig> = OnceLock::new();
    PROXY.get_or_init(ProxyConfig::default)
}

fn loopback_hosts() -> &'static [HostPort] {
    match &loopback().allowed_hosts {
        Allowlist::Only(hosts) => hosts,
        Allowlist::Any => panic!("a loopback listener checks hosts"),
    }
}

fn loopback_origins() -> &'static [Origin] {
    match &loopback().allowed_origins {
        Allowlist::Only(origins) => origins,
        Allowlist::Any => panic!("a loopback listener checks origins"),
    }
}

fn host(value: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(value);
    let parsed = HostPort::parse(text.trim());
    if let Ok(h) = &parsed {
        assert_eq!(
            HostPort::parse(&render_host(h)).as_ref(),
            Ok(h),
            "not canonical: {}",
            shown(value)
        );
        assert_eq!(
            HostPort::parse(&text.trim().to_ascii_uppercase()).as_ref(),
            Ok(h),
            "case matters: {}",
            shown(value)
        );
        assert!(h.allows(h), "an entry refuses itself");
        assert!(!h.host.is_empty());
    }
    let allowed = host_check::host_allowed(loopback_hosts(), &text);
    let expected = parsed
        .as_ref()
        .is_ok_and(|h| ["localhost", "127.0.0.1", "[::1]"].contains(&h.host.as_str()));
    assert_eq!(allowed, expected, "default hosts and Host {}", shown(value));
    if let Some(req) = request("POST", &[("host", value)]) {
        let checked = host_check::check(loopback(), &req);
        // A value that is not visible ASCII never matches (`to_str` refuses it).
        let visible = std::str::from_utf8(value).is_ok_and(|v| v.is_ascii());
        assert_eq!(
            checked.is_ok(),
            allowed && visible,
            "check and host_allowed"
        );
        if let Err(refused) = checked {
            refusal(&refused);
        }
    }
    u64::from(parsed.is_ok()) << 1 | u64::from(allowed)
}

fn origin(value: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(value);
    let parsed = Origin::parse(text.trim());
    if let Ok(o) = &parsed {
        let rendered = format!("{}://{}", o.scheme, render_host(&o.host));
        assert_eq!(
            Origin::parse(&rendered).as_ref(),
            Ok(o),
            "not canonical: {}",
            shown(value)
        );
        assert_eq!(
            Origin::parse(&text.trim().to_ascii_uppercase()).as_ref(),
            Ok(o),
            "case matters: {}",
            shown(value)
        );
        assert!(o.allows(o), "an entry refuses itself");
    }
    let allowed = host_check::origin_allowed(loopback_origins(), &text);
    let expected = parsed.as_ref().is_ok_and(|o| {
        ["http", "https"].contains(&o.scheme.as_str())
            && ["localhost", "127.0.0.1", "[::1]"].contains(&o.host.host.as_str())
    });
    assert_eq!(
        allowed,
        expected,
        "default origins and Origin {}",
        shown(value)
    );
    if let Some(req) = request("POST", &[("host", b"localhost"), ("origin", value)]) {
        let checked = host_check::check(loopback(), &req);
        let visible = std::str::from_utf8(value).is_ok_and(|v| v.is_ascii());
        assert_eq!(
            checked.is_ok(),
            allowed && visible,
            "check and origin_allowed"
        );
        if let Err(refused) = checked {
            refusal(&refused);
        }
    }
    u64::from(parsed.is_ok()) << 1 | u64::from(allowed)
}

fn refusal(refused: &host_check::Refused) {
    if let host_check::Refused::Host(quoted) | host_check::Refused::Origin(quoted) = refused {
        assert!(
            quoted.len() <= 128 + '…'.len_utf8(),
            "quoted {} bytes",
            quoted.len()
        );
    }
    let message = refused.to_string();
    let body = sluice_proxy::reply::error_body(None, -32600, &message);
    let parsed: serde_json::Value = serde_json::from_slice(&body).expect("JSON error body");
    assert_eq!(parsed["error"]["message"], message.as_str());
}

fn last_event_id(value: &[u8]) -> u64 {
    let Ok(header) = HeaderValue::from_bytes(value) else {
        return 0;
    };
    let Ok(text) = header.to_str() else {
        return 1;
    };
    match EventCursor::decode(text) {
        Ok(cursor) => {
            assert!(text.len() <= MAX_CURSOR_LEN);
            assert_eq!(cursor.encode(), text, "non-canonical cursor");
            2
        }
        Err(_) => 3,
    }
}

fn version_and_authorization(value: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(value);
    let supported = protocol::is_supported(&text);
    assert_eq!(
        supported,
        protocol::SUPPORTED_VERSIONS.contains(&text.as_ref())
    );
    let negotiated = protocol::negotiate(Some(&text));
    if supported {
        assert_eq!(negotiated, text, "negotiation changed a supported version");
    } else {
        assert_eq!(negotiated, protocol::LATEST_VERSION);
    }
    let bearer = sluice_auth::bearer(Some(value));
    if let Ok(token) = bearer {
        assert!(
            !token.is_empty() && token == token.trim() && text.contains(token),
            "bearer() gave {token:?} for {}",
            shown(value)
        );
    }
    u64::from(supported) << 1 | u64::from(bearer.is_ok())
}

fn path(value: &[u8]) -> u64 {
    let Ok(uri) = http::Uri::try_from(value) else {
        return 0;
    };
    match gateway_name(&uri) {
        Ok(name) => {
            assert!(
                !name.is_empty() && !name.contains('/'),
                "gateway name {name:?} from {}",
                shown(value)
            );
            assert!(uri.path().starts_with("/mcp/"), "{}", shown(value));
            1
        }
        Err(e) => {
            let _ = e.to_string();
            2
        }
    }
}
