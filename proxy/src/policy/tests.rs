use serde_json::json;
use sluice_config::{ArgumentCondition, ArgumentTest, GatewayName, PolicyConfig};

use super::*;

fn gateway(policies: Vec<PolicyConfig>, default: Effect) -> GatewayConfig {
    GatewayConfig {
        name: GatewayName::new("dev").unwrap(),
        servers: Vec::new(),
        tools: Vec::new(),
        prefix: true,
        auth: None,
        tools_mode: Default::default(),
        policies,
        policy_default: default,
        limits: Default::default(),
        builtin_tools: false,
    }
}

fn policy(
    name: &str,
    tools: &[&str],
    args: Vec<(&str, ArgumentTest)>,
    effect: Effect,
) -> PolicyConfig {
    PolicyConfig {
        name: name.into(),
        tools: tools.iter().map(|t| t.to_string()).collect(),
        claims: Vec::new(),
        arguments: args
            .into_iter()
            .map(|(p, test)| ArgumentCondition {
                pointer: p.into(),
                test,
            })
            .collect(),
        effect,
    }
}

fn compiled(policies: Vec<PolicyConfig>, default: Effect) -> Policies {
    let metrics = Metrics::new(true);
    Policies::compile(&gateway(policies, default), &metrics).expect("policies")
}

/// The deciding policy's name and effect for a call of `tool` with these raw arguments.
fn decide(
    p: &Policies,
    tool: &str,
    claims: Option<Value>,
    args: &str,
) -> Result<(String, Effect), ArgumentsError> {
    let claims = claims.map(|c| c.as_object().unwrap().clone());
    let v = p.evaluate(&p.candidates(tool), claims.as_ref(), || {
        arguments::parse_strict(args.as_bytes())
    })?;
    Ok((p.name(v).to_owned(), v.effect))
}

#[test]
fn the_first_matching_policy_decides_and_the_default_closes() {
    let p = compiled(
        vec![
            policy(
                "no-prod",
                &["db__*"],
                vec![("/database", ArgumentTest::Prefix("prod".into()))],
                Effect::Deny,
            ),
            policy("db-ok", &["db__*"], vec![], Effect::Allow),
        ],
        Effect::Deny,
    );
    assert_eq!(
        decide(&p, "db__query", None, r#"{"database":"prod-eu"}"#).unwrap(),
        ("no-prod".into(), Effect::Deny)
    );
    assert_eq!(
        decide(&p, "db__query", None, r#"{"database":"staging"}"#).unwrap(),
        ("db-ok".into(), Effect::Allow)
    );
    assert_eq!(
        decide(&p, "db__query", None, r#"{}"#).unwrap(),
        ("db-ok".into(), Effect::Allow),
        "an absent value never matches"
    );
    assert_eq!(
        decide(&p, "files__read", None, r#"{}"#).unwrap(),
        ("default".into(), Effect::Deny)
    );
    assert!(Policies::compile(&gateway(Vec::new(), Effect::Allow), &Metrics::new(true)).is_none());
}

#[test]
fn key_order_escaped_keys_and_escaped_values_do_not_evade() {
    let p = compiled(
        vec![policy(
            "no-etc",
            &["*"],
            vec![("/path", ArgumentTest::Prefix("/etc/".into()))],
            Effect::Deny,
        )],
        Effect::Allow,
    );
    for args in [
        r#"{"path":"/etc/passwd","mode":"r"}"#,
        r#"{"mode":"r","path":"/etc/passwd"}"#,
        r#"{"p\u0061th":"/etc/passwd"}"#,
        r#"{"path":"\/etc\/passwd"}"#,
        r#"{"path":"\u002fetc/passwd"}"#,
        r#"{"path":["/tmp/a","/etc/shadow"]}"#,
    ] {
        assert_eq!(
            decide(&p, "fs__read", None, args).unwrap().1,
            Effect::Deny,
            "{args}"
        );
    }
    assert_eq!(
        decide(&p, "fs__read", None, r#"{"path":"/tmp/x"}"#)
            .unwrap()
            .1,
        Effect::Allow
    );
}

#[test]
fn duplicate_keys_are_refused_at_any_depth() {
    let p = compiled(
        vec![policy(
            "no-etc",
            &["*"],
            vec![("/path", ArgumentTest::Prefix("/etc/".into()))],
            Effect::Deny,
        )],
        Effect::Allow,
    );
    for args in [
        r#"{"path":"/etc/passwd","path":"/tmp/ok"}"#,
        r#"{"path":"/tmp/ok","p\u0061th":"/etc/passwd"}"#,
        r#"{"opts":{"a":1,"a":2},"path":"/tmp/ok"}"#,
    ] {
        let e = decide(&p, "fs__read", None, args).expect_err(args);
        assert!(e.0.contains("appears twice"), "{e}");
    }
}

#[test]
fn numbers_as_strings_meet_numeric_tests() {
    let p = compiled(
        vec![
            policy(
                "big-refund",
                &["pay__refund"],
                vec![(
                    "/amount",
                    ArgumentTest::Range {
                        min: Some(100.01),
                        max: None,
                    },
                )],
                Effect::Deny,
            ),
            policy(
                "eur-only",
                &["pay__refund"],
                vec![("/currency", ArgumentTest::Equals(json!("EUR")))],
                Effect::Allow,
            ),
        ],
        Effect::Deny,
    );
    for amount in ["5000", "\"5000\"", "\" 5e3 \"", "1e3", "100.5", "\"inf\""] {
        let args = format!(r#"{{"amount":{amount},"currency":"EUR"}}"#);
        assert_eq!(
            decide(&p, "pay__refund", None, &args).unwrap(),
            ("big-refund".into(), Effect::Deny),
            "{args}"
        );
    }
    for amount in ["100", "\"99.99\"", "-5", "\"NaN\""] {
        let args = format!(r#"{{"amount":{amount},"currency":"EUR"}}"#);
        assert_eq!(
            decide(&p, "pay__refund", None, &args).unwrap().0,
            "eur-only",
            "{args}"
        );
    }
    assert_eq!(
        decide(&p, "pay__refund", None, r#"{"amount":1,"currency":"USD"}"#)
            .unwrap()
            .0,
        "default"
    );
}

#[test]
fn claims_regexes_and_allow_over_arrays_are_conservative() {
    let mut admin_only = policy("admins", &["ops__*"], vec![], Effect::Allow);
    admin_only.claims = vec![("groups".into(), vec![json!("admin")])];
    let p = compiled(
        vec![
            admin_only,
            policy(
                "safe-hosts",
                &["ops__ping"],
                vec![(
                    "/hosts",
                    ArgumentTest::Regex(r"^[a-z0-9-]+\.internal$".into()),
                )],
                Effect::Allow,
            ),
        ],
        Effect::Deny,
    );
    let admin = Some(json!({"groups": ["eng", "admin"]}));
    assert_eq!(decide(&p, "ops__reboot", admin, "{}").unwrap().0, "admins");
    assert_eq!(
        decide(&p, "ops__reboot", Some(json!({"groups": "eng"})), "{}")
            .unwrap()
            .0,
        "default"
    );
    assert_eq!(
        decide(&p, "ops__reboot", None, "{}").unwrap().0,
        "default",
        "anonymous callers have no claims"
    );
    assert_eq!(
        decide(
            &p,
            "ops__ping",
            None,
            r#"{"hosts":["a.internal","b.internal"]}"#
        )
        .unwrap()
        .0,
        "safe-hosts"
    );
    assert_eq!(
        decide(
            &p,
            "ops__ping",
            None,
            r#"{"hosts":["a.internal","evil.com"]}"#
        )
        .unwrap()
        .0,
        "default",
        "an allow over an array needs every element"
    );
    assert_eq!(
        decide(&p, "ops__ping", None, r#"{"hosts":[]}"#).unwrap().0,
        "default"
    );
}

#[test]
fn arguments_are_read_only_when_a_policy_tests_them() {
    let p = compiled(
        vec![policy("all", &["*"], vec![], Effect::Allow)],
        Effect::Deny,
    );
    let v = p
        .evaluate(&p.candidates("x__y"), None, || {
            panic!("arguments read needlessly")
        })
        .unwrap();
    assert_eq!(v.effect, Effect::Allow);
}

#[test]
fn pointers_resolve_as_rfc_6901_says() {
    let doc = json!({"a/b": {"m~n": [10, 20]}, "": 1, "list": [0, 1]});
    assert_eq!(lookup(&doc, &tokens("/a~1b/m~0n/1")), Some(&json!(20)));
    assert_eq!(lookup(&doc, &tokens("/")), Some(&json!(1)));
    assert_eq!(lookup(&doc, &tokens("")), Some(&doc));
    assert_eq!(lookup(&doc, &tokens("/list/01")), None, "no leading zeros");
    assert_eq!(lookup(&doc, &tokens("/list/2")), None);
    assert_eq!(lookup(&doc, &tokens("/list/-")), None);
    for p in ["/a~1b/m~0n/1", "/", "", "/list/01", "/list/-", "/x/y"] {
        assert_eq!(
            lookup(&doc, &tokens(p)),
            doc.pointer(p),
            "agrees with serde_json on {p:?}"
        );
    }
}
