use super::*;

fn env(k: &str) -> Option<String> {
    match k {
        "SECRET" => Some("s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-xx".into()),
        "PORT" => Some("3001".into()),
        _ => None,
    }
}

fn load(src: &str) -> Result<Config, ConfigErrors> {
    load_str(src, "test.toml", &env)
}

fn errors(src: &str) -> Vec<(usize, usize, String)> {
    load(src)
        .expect_err("config should be refused")
        .errors
        .into_iter()
        .map(|e| (e.line, e.column, e.message))
        .collect()
}

const CONTRACT: &str = r#"
[proxy]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:9090"
threads = 2
max_body_bytes = 4194304
grace_period = "10s"

[sessions]
secret = "${SECRET}"
ttl = "24h"

[[servers]]
name = "everything"
url = "http://127.0.0.1:${PORT}/mcp"
timeout = "30s"

[[gateways]]
name = "dev"
servers = ["everything"]
tools = ["everything__echo"]
"#;

#[test]
fn the_contract_example_loads_with_its_values() {
    let c = load(CONTRACT).expect("valid");
    assert_eq!(c.proxy.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.proxy.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(c.proxy.threads, 2);
    assert_eq!(c.proxy.max_body_bytes, 4_194_304);
    assert_eq!(c.proxy.grace_period, Duration::from_secs(10));
    let s = c.sessions.as_ref().expect("sessions");
    assert_eq!(s.secret.expose(), "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-xx");
    assert_eq!(s.ttl, Duration::from_secs(86_400));
    assert_eq!(c.servers[0].name.as_str(), "everything");
    assert_eq!(c.servers[0].url.as_str(), "http://127.0.0.1:3001/mcp");
    assert_eq!(
        c.servers[0].read_timeout,
        Duration::from_secs(30),
        "read_timeout defaults to timeout"
    );
    assert_eq!(c.gateways[0].name.as_str(), "dev");
    assert_eq!(c.gateways[0].tools, ["everything__echo"]);
    assert_eq!(
        c.summary(),
        "1 server, 1 gateway, listen 127.0.0.1:8080, admin 127.0.0.1:9090"
    );
}

#[test]
fn defaults_apply_to_an_almost_empty_file() {
    let c = load("[[servers]]\nname = \"a\"\nurl = \"https://example.com/mcp\"\n").expect("valid");
    assert_eq!(c.proxy.max_body_bytes, 4 << 20);
    assert_eq!(c.proxy.max_json_depth, 64);
    assert_eq!(c.catalog.page_size, 100);
    assert!(c.sessions.is_none());
    assert_eq!(c.servers[0].connect_timeout, Duration::from_secs(5));
}

#[test]
fn every_error_is_reported_with_its_line_and_column() {
    let src = "[proxy]\nlistn = \"127.0.0.1:1\"\nthreads = 0\ngrace_period = \"soon\"\n\n[[servers]]\nname = \"Bad_Name\"\nurl = \"ftp://x\"\n\n[[gateways]]\nname = \"dev\"\nservers = [\"everythin\"]\n";
    let e = errors(src);
    let at: Vec<(usize, usize)> = e.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(
        at,
        [(2, 1), (3, 11), (4, 16), (7, 8), (8, 7), (12, 12)],
        "{e:#?}"
    );
    assert!(e[0].2.contains("did you mean \"listen\""), "{}", e[0].2);
    assert!(e[1].2.contains("between 1 and 1024"));
    assert!(e[2].2.contains("invalid duration"));
    assert!(e[3].2.contains("'B'") || e[3].2.contains("names use only"));
    assert!(e[4].2.contains("http:// or https://"));
    assert!(e[5].2.contains("unknown server \"everythin\""));
}

#[test]
fn a_missing_environment_variable_names_the_variable_not_a_value() {
    let e = errors("[sessions]\nsecret = \"${NOPE}\"\n");
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].0, e[0].1), (2, 10));
    assert!(e[0].2.contains("NOPE is not set"));
}

#[test]
fn dollar_dollar_brace_is_a_literal() {
    let c = load("[[servers]]\nname = \"a\"\nurl = \"http://h/mcp?q=$${X}\"\n").expect("valid");
    assert_eq!(c.servers[0].url.query(), Some("q=${X}"));
}

#[test]
fn secrets_never_appear_in_debug_output_or_errors() {
    let c = load(CONTRACT).expect("valid");
    assert!(!format!("{c:?}").contains("s3cr3t"));
    let short = load_str("[sessions]\nsecret = \"${S}\"\n", "t", &|_| {
        Some("tiny-secret-value".into())
    });
    let text = short.expect_err("too short").to_string();
    assert!(text.contains("at least 32 bytes"), "{text}");
    assert!(!text.contains("tiny-secret-value"), "{text}");
}

#[test]
fn duplicates_and_bad_tool_references_are_refused() {
    let src = "[[servers]]\nname = \"a\"\nurl = \"http://h/mcp\"\n[[servers]]\nname = \"a\"\nurl = \"http://h/mcp\"\n[[gateways]]\nname = \"g\"\ntools = [\"a_echo\", \"b__x\"]\n[[gateways]]\nname = \"g\"\nservers = [\"a\"]\n";
    let e = errors(src);
    let messages: Vec<&str> = e.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(messages.len(), 4, "{messages:#?}");
    assert!(messages[0].contains("duplicate server name"));
    assert!(messages[1].contains("server__tool"));
    assert!(messages[2].contains("unknown server \"b\""));
    assert!(messages[3].contains("duplicate gateway name"));
}

#[test]
fn bad_addresses_and_types_are_refused() {
    let e = errors(
        "[proxy]\nlisten = \"localhost\"\nmax_body_bytes = \"big\"\n[catalog]\npage_size = 0\n",
    );
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(e[0].2.contains("not an address"));
    assert!(e[1].2.contains("must be an integer"));
    assert!(e[2].2.contains("between 1 and 10000"));
}

#[test]
fn toml_syntax_errors_have_a_position() {
    let e = errors("[proxy]\nlisten = \n");
    assert!(!e.is_empty());
    assert_eq!(e[0].0, 2);
    assert!(e[0].2.starts_with("TOML syntax"));
}

#[test]
fn the_quickstart_config_is_valid() {
    let c = load(&Config::quickstart("http://127.0.0.1:3001/mcp")).expect("quickstart loads");
    assert_eq!(c.gateways[0].name.as_str(), "quickstart");
    assert_eq!(c.servers[0].name.as_str(), "example");
}

#[test]
fn garbage_never_panics() {
    let nasty = [
        "",
        "[",
        "[[",
        "]]",
        "=",
        "a = ",
        "[proxy]\nlisten = 1",
        "[[servers]]\n",
        "servers = 3",
        "[[gateways]]\nservers = [1, 2]",
        "\u{0}",
        "[sessions]\nsecret = 5",
        "[proxy]\nthreads = 99999999999999999999",
        "[proxy]\ngrace_period = \"-1s\"",
        "x = \"${\"",
        "x = \"${1A}\"",
        "[[servers]]\nname=\"a\"\nurl=\"http://[::1\"",
    ];
    for src in nasty {
        let _ = load(src);
    }
    for i in 0..CONTRACT.len() {
        if CONTRACT.is_char_boundary(i) {
            let _ = load(&CONTRACT[..i]);
        }
    }
}

#[test]
fn names_are_validated() {
    assert!(ServerName::new("github-2").is_ok());
    assert!(ServerName::new("").is_err());
    assert!(ServerName::new("a__b").is_err());
    assert!(GatewayName::new("Dev").is_err());
    assert!(ServerName::new(&"a".repeat(65)).is_err());
}

#[test]
fn an_unreadable_or_empty_ca_file_is_refused() {
    let e = errors("[proxy]\nupstream_ca_file = \"/nonexistent/ca.pem\"\n");
    assert_eq!((e[0].0, e[0].1), (2, 20));
    assert!(e[0].2.contains("cannot read"));
    let path = std::env::temp_dir().join(format!(
        "sluice-config-test-{}-empty.pem",
        std::process::id()
    ));
    std::fs::write(&path, "not a certificate").unwrap();
    let e = errors(&format!(
        "[proxy]\nupstream_ca_file = {:?}\n",
        path.display().to_string()
    ));
    assert!(e[0].2.contains("no PEM certificate"), "{e:?}");
    let _ = std::fs::remove_file(path);
}
