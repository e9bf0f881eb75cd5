//! Values of the wrong type, format or range are refused with what was expected.

use crate::{env, errors, only_error};
use sluice_config::load_str;

#[test]
fn bad_durations_are_refused() {
    let e = errors(
        "[proxy]\ngrace_period = \"10\"\nupstream_idle_timeout = \"0s\"\n[catalog]\nrefresh = \"-5m\"\ninit_timeout = \"1h\"\n[sessions]\nsecret = \"${SLUICE_SESSION_SECRET}\"\nttl = \"forever\"\n",
    );
    let m: Vec<(usize, usize, &str)> = e.iter().map(|(l, c, m)| (*l, *c, m.as_str())).collect();
    assert_eq!(m.len(), 5, "{m:#?}");
    assert_eq!((m[0].0, m[0].1), (2, 16));
    assert!(m[0].2.contains("\"10\" is not a duration"), "{}", m[0].2);
    assert_eq!(
        m[1].2,
        "proxy.upstream_idle_timeout must be between 1s and 1day, not \"0s\""
    );
    assert!(
        m[2].2
            .starts_with("catalog.refresh: \"-5m\" is not a duration"),
        "{}",
        m[2].2
    );
    assert_eq!(
        m[3].2,
        "catalog.init_timeout must be between 10ms and 5m, not \"1h\""
    );
    assert!(
        m[4].2
            .starts_with("sessions.ttl: \"forever\" is not a duration"),
        "{}",
        m[4].2
    );
}

#[test]
fn bad_urls_are_refused() {
    let src = "[[servers]]\nname = \"a\"\nurl = \"not a url\"\n\
               [[servers]]\nname = \"b\"\nurl = \"file:///etc/passwd\"\n\
               [[servers]]\nname = \"c\"\nurl = \"unix:/run/mcp.sock\"\n\
               [[servers]]\nname = \"d\"\nurl = 5\n";
    let e = errors(src);
    let m: Vec<(usize, usize, &str)> = e.iter().map(|(l, c, m)| (*l, *c, m.as_str())).collect();
    assert_eq!(m.len(), 4, "{m:#?}");
    assert_eq!((m[0].0, m[0].1), (3, 7));
    assert!(m[0].2.contains("is not a URL"), "{}", m[0].2);
    assert!(
        m[1].2.contains("must use http:// or https://, not file://"),
        "{}",
        m[1].2
    );
    assert!(m[2].2.contains("not unix://"), "{}", m[2].2);
    assert_eq!(m[3].2, "servers.url must be a string, not an integer");
}

#[test]
fn bad_socket_addresses_and_clashing_listeners_are_refused() {
    for (src, expect) in [
        (
            "[proxy]\nlisten = \"localhost:8080\"\n",
            "is not an IP address and port",
        ),
        (
            "[proxy]\nlisten = \"127.0.0.1\"\n",
            "is not an IP address and port",
        ),
        (
            "[proxy]\nlisten = \"127.0.0.1:99999\"\n",
            "is not an IP address and port",
        ),
        (
            "[proxy]\nlisten = 8080\n",
            "proxy.listen must be a string, not an integer",
        ),
        (
            "[proxy]\nlisten = \"127.0.0.1:9090\"\n",
            "proxy.listen must differ from proxy.admin_listen",
        ),
    ] {
        let (line, col, msg) = only_error(src);
        assert_eq!((line, col), (2, 10), "{src}");
        assert!(msg.contains(expect), "{src}: {msg}");
    }
    let (line, col, msg) =
        only_error("[proxy]\nlisten = \"0.0.0.0:1\"\nadmin_listen = \"0.0.0.0:1\"\n");
    assert_eq!((line, col), (3, 16));
    assert_eq!(msg, "proxy.admin_listen must differ from proxy.listen");
    assert!(
        load_str(
            "[proxy]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n",
            "t",
            &env
        )
        .is_ok(),
        "port 0 picks a free port for each"
    );
}

#[test]
fn numbers_out_of_range_or_of_the_wrong_type_are_refused() {
    let e = errors(
        "[proxy]\nthreads = 1025\nmax_body_bytes = -1\nmax_json_depth = 1.5\n[catalog]\npage_size = 99999999999999999999999\n",
    );
    let m: Vec<(usize, usize, &str)> = e.iter().map(|(l, c, m)| (*l, *c, m.as_str())).collect();
    assert_eq!(
        m,
        [
            (2, 11, "proxy.threads must be between 1 and 1024, not 1025"),
            (
                3,
                18,
                "proxy.max_body_bytes must be between 1 and 1073741824, not -1"
            ),
            (
                4,
                18,
                "proxy.max_json_depth must be an integer, not a float"
            ),
            (
                6,
                13,
                "catalog.page_size must be between 1 and 10000, not 99999999999999999999999"
            ),
        ]
    );
    assert!(
        load_str(
            "[proxy]\nthreads = 0x10\nmax_body_bytes = 1_048_576\n",
            "t",
            &env
        )
        .is_ok()
    );
}

#[test]
fn concurrency_bounds_are_counts_with_defaults() {
    let e = errors(
        "[[servers]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\nmax_concurrent = 0\n[[gateways]]\nname = \"g\"\nservers = [\"a\"]\n[gateways.limits]\nconcurrent = \"lots\"\n",
    );
    let m: Vec<&str> = e.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(
        m,
        [
            "servers.max_concurrent must be between 1 and 1000000, not 0",
            "gateways.limits.concurrent must be an integer, not a string",
        ]
    );
    let set = load_str(
        "[[servers]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\nmax_concurrent = 8\n[[gateways]]\nname = \"g\"\nservers = [\"a\"]\n[gateways.limits]\nconcurrent = 16\n",
        "t",
        &env,
    )
    .expect("valid");
    assert_eq!(set.servers[0].max_concurrent, 8);
    assert_eq!(set.gateways[0].limits.concurrent, 16);
    let defaults = load_str(
        "[[servers]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\n[[gateways]]\nname = \"g\"\nservers = [\"a\"]\n",
        "t",
        &env,
    )
    .expect("valid");
    assert_eq!(defaults.servers[0].max_concurrent, 1024);
    assert_eq!(defaults.gateways[0].limits.concurrent, 4096);
}

#[test]
fn sections_of_the_wrong_shape_are_refused() {
    let e = errors("proxy = 1\nsessions = \"x\"\nservers = { name = \"a\" }\ngateways = [1]\n");
    let m: Vec<(usize, usize, &str)> = e.iter().map(|(l, c, m)| (*l, *c, m.as_str())).collect();
    assert_eq!(
        m,
        [
            (1, 9, "proxy must be a table ([proxy]), not an integer"),
            (2, 12, "sessions must be a table ([sessions]), not a string"),
            (
                3,
                11,
                "servers must be an array of tables ([[servers]]), not a table"
            ),
            (
                4,
                13,
                "each entry of gateways must be a table, not an integer"
            ),
        ]
    );
}

#[test]
fn a_ca_file_that_cannot_be_read_or_holds_no_certificate_is_refused() {
    let (line, col, msg) = only_error("[proxy]\nupstream_ca_file = \"/nonexistent/ca.pem\"\n");
    assert_eq!((line, col), (2, 20));
    assert!(
        msg.starts_with("proxy.upstream_ca_file: cannot read"),
        "{msg}"
    );

    let path = std::env::temp_dir().join(format!("sluice-config-ca-{}.pem", std::process::id()));
    std::fs::write(&path, "not a certificate").unwrap();
    let (_, _, msg) = only_error(&format!(
        "[proxy]\nupstream_ca_file = {:?}\n",
        path.display().to_string()
    ));
    assert!(msg.contains("holds no PEM certificate"), "{msg}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn bad_host_and_origin_allowlist_entries_are_refused_with_the_reason() {
    let e = errors(
        "[proxy]\nallowed_hosts = [\"::1\", \"a b\", \"x:99999\", \"Localhost\", \"localhost\"]\n\
         allowed_origins = [\"localhost\", \"https://a.example/\", \"*\", \"http://b\"]\n",
    );
    let m: Vec<(usize, usize, &str)> = e.iter().map(|(l, c, m)| (*l, *c, m.as_str())).collect();
    assert_eq!(
        m,
        [
            (
                2,
                18,
                "proxy.allowed_hosts entry \"::1\": write an IPv6 address in brackets, as in \"[::1]\""
            ),
            (
                2,
                25,
                "proxy.allowed_hosts entry \"a b\": \"a b\" is not a host name or IP address"
            ),
            (
                2,
                32,
                "proxy.allowed_hosts entry \"x:99999\": the port \"99999\" is not a number from 0 to 65535"
            ),
            (2, 56, "proxy.allowed_hosts lists \"localhost\" twice"),
            (
                3,
                55,
                "\"*\" allows every value, so it must be the only entry of proxy.allowed_origins"
            ),
        ]
    );
    let e = errors("[proxy]\nallowed_origins = [\"localhost\", \"https://a.example/\"]\n");
    let m: Vec<&str> = e.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(
        m,
        [
            "proxy.allowed_origins entry \"localhost\": an origin starts with a scheme, as in \"https://app.example.com\"",
            "proxy.allowed_origins entry \"https://a.example/\": an origin has no path: write only scheme://host[:port]",
        ]
    );
    let (line, col, msg) = only_error("[proxy]\nallowed_hosts = []\n");
    assert_eq!((line, col), (2, 17));
    assert_eq!(
        msg,
        "proxy.allowed_hosts = [] would refuse every request; list the names clients use, or [\"*\"] to turn the check off"
    );
}

#[test]
fn control_is_checked_key_by_key_and_needs_sessions() {
    let e = errors(
        "[control]\nurl = \"ftp://h\"\ntoken = \"short\"\npoll_wait = \"2m\"\nsnapshot = \"x\"\n",
    );
    let all: Vec<String> = e.iter().map(|(l, c, m)| format!("{l}:{c}: {m}")).collect();
    assert_eq!(
        all,
        [
            "1:1: [control] entry is missing the required key \"snapshot_file\"",
            "1:1: [control] needs [sessions] secret: the saved registry snapshot holds credentials and is encrypted with a key derived from sessions.secret; add [sessions] with secret = \"${SLUICE_SESSION_SECRET}\" (at least 32 bytes)",
            "2:7: control.url \"ftp://h\" must be the http(s) URL of the control process, e.g. \"http://127.0.0.1:7070\"",
            "3:9: control.token must be at least 16 bytes, but it is 5; use one of control's [[proxy_tokens]], e.g. \"${SLUICE_PROXY_TOKEN}\"",
            "4:13: control.poll_wait must be between 1s and 1m, not \"2m\"",
            "5:1: unknown key \"snapshot\" in [control]; did you mean \"snapshot_file\"?",
        ]
    );
    // A token from the environment is never repeated.
    let e = errors("[control]\ntoken = \"${SHORT_SECRET}x\"\n");
    assert!(
        e.iter().all(|(_, _, m)| !m.contains("tiny-secret")),
        "{e:?}"
    );
}

#[test]
fn resource_tools_takes_auto_off_or_on_only() {
    let (line, col, message) = only_error(
        "[[servers]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\nresource_tools = \"always\"\n",
    );
    assert_eq!((line, col), (4, 18));
    assert_eq!(
        message,
        "servers.resource_tools must be \"auto\", \"off\" or \"on\", not \"always\""
    );
    let (line, col, message) = only_error(
        "[[servers]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\nresource_tools = true\n",
    );
    assert_eq!((line, col), (4, 18));
    assert_eq!(
        message,
        "servers.resource_tools must be a string, not a boolean"
    );
}
