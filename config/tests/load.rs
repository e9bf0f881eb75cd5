//! Valid configurations load with the values written and the documented defaults.

use std::time::Duration;

use sluice_config::{
    CatalogConfig, Config, ConfigErrors, ProxyConfig, ServerConfig, SessionsConfig, load_file,
    load_str,
};

const SECRET: &str = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-xx";

fn env(k: &str) -> Option<String> {
    match k {
        "SLUICE_SESSION_SECRET" => Some(SECRET.into()),
        _ => None,
    }
}

fn load(src: &str) -> Result<Config, ConfigErrors> {
    load_str(src, "test.toml", &env)
}

/// The example of the config contract, every key spelt out.
const CONTRACT: &str = r#"
[proxy]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:9090"     # /healthz, /readyz
threads = 2
max_body_bytes = 4194304
grace_period = "10s"
max_json_depth = 64
upstream_idle_timeout = "50s"

[sessions]
secret = "${SLUICE_SESSION_SECRET}"
ttl = "24h"

[catalog]
refresh = "5m"
page_size = 100
init_timeout = "5s"

[[servers]]
name = "everything"
url = "http://127.0.0.1:3001/mcp"
timeout = "30s"
connect_timeout = "5s"
read_timeout = "30s"

[[gateways]]
name = "dev"
servers = ["everything"]
tools = ["everything__echo"]
"#;

#[test]
fn the_contract_example_loads_with_its_values() {
    let c = load(CONTRACT).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.proxy.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.proxy.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(c.proxy.threads, 2);
    assert_eq!(c.proxy.max_body_bytes, 4_194_304);
    assert_eq!(c.proxy.grace_period, Duration::from_secs(10));
    assert_eq!(c.proxy.max_json_depth, 64);
    assert_eq!(c.proxy.upstream_idle_timeout, Duration::from_secs(50));
    assert_eq!(c.proxy.upstream_ca_file, None);

    let s = c.sessions.as_ref().expect("sessions");
    assert_eq!(s.secret.expose(), SECRET);
    assert_eq!(s.ttl, Duration::from_secs(24 * 3600));

    assert_eq!(c.catalog.refresh, Duration::from_secs(300));
    assert_eq!(c.catalog.page_size, 100);
    assert_eq!(c.catalog.init_timeout, Duration::from_secs(5));

    assert_eq!(c.servers.len(), 1);
    let srv = &c.servers[0];
    assert_eq!(srv.name.as_str(), "everything");
    assert_eq!(srv.url.as_str(), "http://127.0.0.1:3001/mcp");
    assert_eq!(srv.timeout, Duration::from_secs(30));
    assert_eq!(srv.connect_timeout, Duration::from_secs(5));
    assert_eq!(srv.read_timeout, Duration::from_secs(30));

    assert_eq!(c.gateways.len(), 1);
    let g = &c.gateways[0];
    assert_eq!(g.name.to_string(), "dev");
    assert_eq!(g.servers[0], srv.name);
    assert_eq!(g.servers.len(), 1);
    assert_eq!(g.tools, ["everything__echo"]);

    assert_eq!(
        c.summary(),
        "1 server, 1 gateway, listen 127.0.0.1:8080, admin 127.0.0.1:9090"
    );
}

#[test]
fn resource_tools_loads_each_value() {
    for (value, expect) in [
        ("auto", sluice_config::ResourceTools::Auto),
        ("off", sluice_config::ResourceTools::Off),
        ("on", sluice_config::ResourceTools::On),
    ] {
        let c = load(&format!(
            "[[servers]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\nresource_tools = \"{value}\"\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.servers[0].resource_tools, expect);
        assert_eq!(expect.as_str(), value);
    }
}

#[test]
fn defaults_apply_when_keys_and_tables_are_absent() {
    let c = load(
        "[[servers]]\nname = \"a\"\nurl = \"https://example.com/mcp\"\ntimeout = \"7s\"\n\
         [[gateways]]\nname = \"g\"\ntools = [\"a__x\"]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = &c.proxy;
    assert_eq!(p.listen, ProxyConfig::DEFAULT_LISTEN);
    assert_eq!(p.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(p.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(p.threads, ProxyConfig::default_threads());
    assert!(p.threads >= 1);
    assert_eq!(p.max_body_bytes, 4 * 1024 * 1024);
    assert_eq!(p.grace_period, Duration::from_secs(10));
    assert_eq!(p.max_json_depth, 64);
    assert_eq!(p.upstream_idle_timeout, Duration::from_secs(50));
    assert!(c.sessions.is_none(), "no [sessions] table means None");
    assert_eq!(c.catalog.refresh, CatalogConfig::DEFAULT_REFRESH);
    assert_eq!(c.catalog.page_size, 100);
    assert_eq!(c.catalog.init_timeout, Duration::from_secs(5));
    let s = &c.servers[0];
    assert_eq!(s.connect_timeout, ServerConfig::DEFAULT_CONNECT_TIMEOUT);
    assert_eq!(s.resource_tools, sluice_config::ResourceTools::Auto);
    assert_eq!(
        s.read_timeout,
        Duration::from_secs(7),
        "read_timeout follows timeout"
    );
    assert!(c.gateways[0].servers.is_empty());
    assert_eq!(
        c.summary(),
        "1 server, 1 gateway, listen 127.0.0.1:8080, admin 127.0.0.1:9090"
    );
}

#[test]
fn sessions_ttl_defaults_to_a_day() {
    let c = load("[sessions]\nsecret = \"${SLUICE_SESSION_SECRET}\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.sessions.unwrap().ttl, SessionsConfig::DEFAULT_TTL);
}

#[test]
fn an_empty_file_is_a_valid_config_with_nothing_to_serve() {
    let c = load("").unwrap_or_else(|e| panic!("{e}"));
    assert!(c.servers.is_empty() && c.gateways.is_empty());
    assert_eq!(
        c.summary(),
        "0 servers, 0 gateways, listen 127.0.0.1:8080, admin 127.0.0.1:9090"
    );
}

#[test]
fn environment_variables_are_substituted_in_every_string() {
    let env = |k: &str| match k {
        "PORT" => Some("3001".to_owned()),
        "GW" => Some("dev".to_owned()),
        "LISTEN" => Some("[::1]:8443".to_owned()),
        _ => None,
    };
    let c = load_str(
        "[proxy]\nlisten = \"${LISTEN}\"\n[[servers]]\nname = \"a\"\nurl = \"http://127.0.0.1:${PORT}/mcp\"\ntimeout = \"${PORT}ms\"\n\
         [[gateways]]\nname = \"${GW}\"\nservers = [\"a\"]\n",
        "t",
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.proxy.listen.to_string(), "[::1]:8443");
    assert_eq!(c.servers[0].url.port(), Some(3001));
    assert_eq!(c.servers[0].timeout, Duration::from_millis(3001));
    assert_eq!(c.gateways[0].name.as_str(), "dev");
}

#[test]
fn dollar_dollar_brace_is_a_literal_dollar_brace() {
    let c = load("[[servers]]\nname = \"a\"\nurl = \"http://h/mcp?q=$${X}&p=$5\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.servers[0].url.query(), Some("q=${X}&p=$5"));
}

#[test]
fn inline_tables_and_literal_strings_are_accepted() {
    let c = load(
        "proxy = { listen = '0.0.0.0:80', admin_listen = '[::]:81' }\n\
         servers = [{ name = 'a', url = 'https://h:8443/' }]\n\
         gateways = [{ name = 'g', servers = ['a'] }]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.proxy.listen.port(), 80);
    assert_eq!(c.servers[0].url.port(), Some(8443));
}

#[test]
fn the_quickstart_config_loads_cleanly() {
    let text = Config::quickstart("http://127.0.0.1:3001/mcp");
    assert!(!text.contains("[sessions]"));
    let c = load_str(&text, "<quickstart>", &|_| None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.proxy.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.proxy.admin_listen.to_string(), "127.0.0.1:9090");
    assert!(c.sessions.is_none());
    assert_eq!(c.servers.len(), 1);
    assert_eq!(c.servers[0].name.as_str(), "example");
    assert_eq!(c.servers[0].url.as_str(), "http://127.0.0.1:3001/mcp");
    assert_eq!(c.gateways.len(), 1);
    assert_eq!(c.gateways[0].name.as_str(), "quickstart");
    assert_eq!(c.gateways[0].servers.first(), Some(&c.servers[0].name));
}

#[test]
fn the_quickstart_url_is_embedded_verbatim_whatever_it_contains() {
    let url = "http://127.0.0.1:3001/mcp?a=\"b\"&c=\\&d=${NOT_A_VAR}";
    let text = Config::quickstart(url);
    let c = load_str(&text, "<quickstart>", &|_| None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.servers[0].url.as_str(),
        url::Url::parse(url).unwrap().as_str()
    );
}

#[test]
fn load_file_reads_a_file_and_reports_a_missing_one_without_position() {
    let dir = std::env::temp_dir().join(format!("sluice-config-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sluice.toml");
    std::fs::write(&path, Config::quickstart("http://127.0.0.1:1/mcp")).unwrap();
    let c = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.servers.len(), 1);

    let missing = dir.join("missing.toml");
    let e = load_file(&missing).expect_err("missing file");
    assert_eq!(e.errors.len(), 1);
    assert_eq!((e.errors[0].line, e.errors[0].column), (0, 0));
    assert_eq!(e.errors[0].file, missing.display().to_string());
    assert!(e.to_string().contains("cannot read config file"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn auth_sections_load_with_tokens_hashed_and_defaults_applied() {
    let src = r#"
[[auth.tokens]]
name = "ci-bot"
token = "${SLUICE_SESSION_SECRET}"
claims = { team = "platform", groups = ["a", "b"], level = 3, admin = true }

[[auth.providers]]
name = "corp"
issuer = "http://127.0.0.1:8999"
audiences = ["sluice"]

[[servers]]
name = "github"
url = "http://127.0.0.1:3001/mcp"

[[gateways]]
name = "dev"
servers = ["github"]
[gateways.auth]
tokens = true
providers = ["corp"]
[[gateways.auth.rules]]
tools = ["github__*"]
require = { groups = ["eng", "ops"], email_verified = true }
"#;
    let c = load(src).expect("valid");
    let t = &c.auth.tokens[0];
    assert_eq!(t.name, "ci-bot");
    use sha2::Digest;
    let digest: [u8; 32] = sha2::Sha256::digest(SECRET.as_bytes()).into();
    assert_eq!(t.sha256, digest);
    assert_eq!(t.claims["groups"], serde_json::json!(["a", "b"]));
    assert_eq!(t.claims["level"], 3);
    assert!(
        !format!("{c:?}").contains(SECRET),
        "Debug never shows the token"
    );
    let p = &c.auth.providers[0];
    assert_eq!(
        p.algorithms,
        sluice_config::ProviderConfig::DEFAULT_ALGORITHMS
    );
    assert_eq!(p.jwks_refresh, Duration::from_secs(300));
    assert_eq!(p.leeway, Duration::from_secs(30));
    assert!(p.jwks_url.is_none());
    let g = c.gateways[0].auth.as_ref().expect("gateway auth");
    assert!(g.tokens && !g.id_jag);
    assert_eq!(g.providers, ["corp"]);
    assert_eq!(g.rules[0].tools, ["github__*"]);
    assert_eq!(
        g.rules[0].require,
        [
            ("email_verified".to_owned(), vec![serde_json::json!(true)]),
            (
                "groups".to_owned(),
                vec![serde_json::json!("eng"), serde_json::json!("ops")]
            ),
        ]
    );
}

#[test]
fn credentials_load_with_their_defaults() {
    use sluice_config::{ClientAuth, CredentialKind};
    let src = r#"
[[servers]]
name = "gh"
url = "http://127.0.0.1:3001/mcp"
[servers.credential]
type = "oauth_client_credentials"
token_url = "http://127.0.0.1:9/token"
client_id = "sluice"
client_secret = "${SLUICE_SESSION_SECRET}"
scope = "a b"

[[servers]]
name = "jag"
url = "http://127.0.0.1:3002/mcp"
[servers.credential]
type = "id_jag"
idp_token_url = "http://idp/token"
idp_client_id = "c"
idp_client_secret = "s"
as_token_url = "http://as/token"
as_client_id = "c"
as_client_secret = "s"
audience = "http://as"
[servers.catalog_credential]
type = "static"
header = "X-Api-Key"
value = "k"
"#;
    let c = load(src).unwrap_or_else(|e| panic!("{e}"));
    let cc = c.servers[0].credential.as_ref().unwrap();
    assert_eq!(cc.header, "authorization");
    assert_eq!(cc.expiry_margin, Duration::from_secs(30));
    assert_eq!(cc.timeout, Duration::from_secs(10));
    match &cc.kind {
        CredentialKind::ClientCredentials(g) => {
            assert_eq!(g.scopes, ["a", "b"]);
            assert_eq!(g.client.auth, ClientAuth::Basic);
            assert_eq!(g.client.client_secret.expose(), SECRET);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !format!("{c:?}").contains(SECRET),
        "secrets are not printed"
    );
    let jag = c.servers[1].credential.as_ref().unwrap();
    match &jag.kind {
        CredentialKind::IdJag(j) => assert_eq!(j.resource, "http://127.0.0.1:3002/mcp"),
        other => panic!("{other:?}"),
    }
    assert!(jag.acts_for_caller());
    assert_eq!(
        c.servers[1].catalog_credential.as_ref().unwrap().header,
        "x-api-key"
    );
}

#[test]
fn gateway_controls_load_with_their_values_and_defaults() {
    use sluice_config::{ArgumentTest, Effect, RateLimit, ToolsMode};
    let c = load(
        r#"
[[servers]]
name = "db"
url = "http://127.0.0.1:1/mcp"

[[gateways]]
name = "plain"
servers = ["db"]

[[gateways]]
name = "guarded"
servers = ["db"]
tools_mode = "lazy"
policy_default = "deny"

[[gateways.policies]]
name = "no-prod"
tools = ["db__*"]
claims = { groups = ["dba", "ops"] }
arguments = [
  { pointer = "/database", prefix = "prod" },
  { pointer = "/limit", min = 1, max = 1000.5 },
  { pointer = "/mode", equals = 2.5 },
  { pointer = "/sql", regex = "(?i)^select " },
]
effect = "deny"

[gateways.limits]
gateway = "1000/s"
caller = { rate = "600/min", burst = 20 }
tool = "10000/h"
"#,
    )
    .expect("valid config");
    let plain = &c.gateways[0];
    assert_eq!(plain.tools_mode, ToolsMode::Direct);
    assert!(plain.policies.is_empty() && plain.limits.is_empty());
    assert_eq!(plain.policy_default, Effect::Allow);
    let g = &c.gateways[1];
    assert_eq!(g.tools_mode, ToolsMode::Lazy);
    assert_eq!(g.policy_default, Effect::Deny);
    let p = &g.policies[0];
    assert_eq!((p.name.as_str(), p.effect), ("no-prod", Effect::Deny));
    assert_eq!(
        p.claims,
        [(
            "groups".to_owned(),
            vec![serde_json::json!("dba"), serde_json::json!("ops")]
        )]
    );
    let tests: Vec<&ArgumentTest> = p.arguments.iter().map(|a| &a.test).collect();
    assert_eq!(
        tests,
        [
            &ArgumentTest::Prefix("prod".into()),
            &ArgumentTest::Range {
                min: Some(1.0),
                max: Some(1000.5)
            },
            &ArgumentTest::Equals(serde_json::json!(2.5)),
            &ArgumentTest::Regex("(?i)^select ".into()),
        ]
    );
    let s = Duration::from_secs(1);
    assert_eq!(
        g.limits.gateway,
        Some(RateLimit {
            count: 1000,
            period: s,
            burst: 1000
        })
    );
    assert_eq!(
        g.limits.caller,
        Some(RateLimit {
            count: 600,
            period: 60 * s,
            burst: 20
        })
    );
    assert_eq!(
        g.limits.tool,
        Some(RateLimit {
            count: 10000,
            period: 3600 * s,
            burst: 10000
        })
    );
}

#[test]
fn gateways_are_prefixed_unless_prefix_is_false() {
    let c = load(
        r#"
[[servers]]
name = "a"
url = "http://127.0.0.1:1/mcp"
[[servers]]
name = "b"
url = "http://127.0.0.1:2/mcp"

[[gateways]]
name = "prefixed"
tools = ["a__x", "b__x"]

[[gateways]]
name = "bare"
prefix = false
servers = ["a"]
tools = ["a__x", "b__y"]
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.gateways[0].prefix, "prefix defaults to true");
    assert_eq!(
        c.gateways[0].tools,
        ["a__x", "b__x"],
        "prefixes keep them apart"
    );
    assert!(!c.gateways[1].prefix);
    assert_eq!(c.gateways[1].tools, ["a__x", "b__y"]);
}

#[test]
fn host_and_origin_allowlists_load_and_default_from_the_listener() {
    use sluice_config::{Allowlist, HostPort, Origin};
    let loopback = load("").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        loopback.proxy.allowed_hosts,
        sluice_config::default_allowed_hosts(ProxyConfig::DEFAULT_LISTEN)
    );
    let Allowlist::Only(hosts) = &loopback.proxy.allowed_hosts else {
        panic!("a loopback listener checks Host by default");
    };
    assert!(hosts.contains(&HostPort::parse("localhost").unwrap()));
    assert!(matches!(loopback.proxy.allowed_origins, Allowlist::Only(_)));

    let open = load("[proxy]\nlisten = \"0.0.0.0:8080\"\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(open.proxy.allowed_hosts, Allowlist::Any);
    assert_eq!(open.proxy.allowed_origins, Allowlist::Any);

    let set = load(
        "[proxy]\nlisten = \"0.0.0.0:8080\"\n\
         allowed_hosts = [\"MCP.example.com\", \"mcp.internal:8080\", \"[::1]\"]\n\
         allowed_origins = [\"*\"]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        set.proxy.allowed_hosts,
        Allowlist::Only(vec![
            HostPort::parse("mcp.example.com").unwrap(),
            HostPort {
                host: "mcp.internal".into(),
                port: Some(8080)
            },
            HostPort::parse("[::1]").unwrap(),
        ])
    );
    assert_eq!(set.proxy.allowed_origins, Allowlist::Any);

    let star =
        load("[proxy]\nallowed_hosts = [\"*\"]\nallowed_origins = [\"https://app.example\"]\n")
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        star.proxy.allowed_hosts,
        Allowlist::Any,
        "\"*\" turns the default off"
    );
    assert_eq!(
        star.proxy.allowed_origins,
        Allowlist::Only(vec![Origin::parse("https://app.example").unwrap()])
    );
}

#[test]
fn control_loads_with_its_values_and_poll_wait_defaults() {
    let src = "[sessions]\nsecret = \"${SLUICE_SESSION_SECRET}\"\n[control]\nurl = \"http://127.0.0.1:7070\"\ntoken = \"${SLUICE_SESSION_SECRET}\"\nsnapshot_file = \"/var/lib/sluice/snapshot.bin\"\n";
    let c = load(src).unwrap_or_else(|e| panic!("{e}"));
    let control = c.control.expect("[control] loads");
    assert_eq!(control.url.as_str(), "http://127.0.0.1:7070/");
    assert_eq!(control.token.expose(), SECRET);
    assert_eq!(
        control.snapshot_file,
        std::path::PathBuf::from("/var/lib/sluice/snapshot.bin")
    );
    assert_eq!(
        control.poll_wait,
        sluice_config::ControlConfig::DEFAULT_POLL_WAIT
    );
    let c = load(&format!("{src}poll_wait = \"5s\"\n")).unwrap();
    assert_eq!(c.control.unwrap().poll_wait, Duration::from_secs(5));
    assert!(load("").unwrap().control.is_none());
}
