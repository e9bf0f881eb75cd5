//! `[servers.credential]`: every mistake reported at its place; a value a header cannot carry
//! is refused at load and never quoted.

use crate::{errors, refuse};

fn server(credential: &str) -> String {
    format!(
        "[[servers]]\nname = \"gh\"\nurl = \"http://h/mcp\"\n[servers.credential]\n{credential}\n"
    )
}

fn messages(src: &str) -> Vec<String> {
    errors(src).into_iter().map(|(_, _, m)| m).collect()
}

#[test]
fn a_static_value_with_cr_lf_is_refused_and_not_quoted() {
    let src = server("type = \"static\"\nvalue = \"Bearer abc\\r\\nX-Injected: evil-secret\"");
    let m = messages(&src);
    assert!(
        m.iter().any(|e| e.contains("servers.credential.value")
            && e.contains("a byte a header cannot carry")),
        "{m:?}"
    );
    assert!(!format!("{:?}", refuse(&src)).contains("evil-secret"));
}

#[test]
fn an_unknown_type_is_named_with_the_nearest_one() {
    let m = messages(&server("type = \"client_credentials\""));
    assert!(
        m.iter()
            .any(|e| e.contains("is not a credential type") && e.contains("one of static")),
        "{m:?}"
    );
}

#[test]
fn each_type_requires_its_keys_and_refuses_others() {
    let m = messages(&server(
        "type = \"oauth_client_credentials\"\nclient_id = \"x\"\nvalue = \"v\"",
    ));
    assert!(
        m.iter()
            .any(|e| e.contains("missing the required key \"token_url\"")),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|e| e.contains("missing the required key \"client_secret\"")),
        "{m:?}"
    );
    assert!(
        m.iter().any(|e| e.contains("unknown key \"value\"")),
        "{m:?}"
    );

    let m = messages(&server("type = \"id_jag\"\nidp_token_url = \"ftp://x\""));
    assert!(
        m.iter()
            .any(|e| e.contains("idp_token_url") && e.contains("http:// or https://")),
        "{m:?}"
    );
    assert!(m.iter().any(|e| e.contains("\"as_token_url\"")), "{m:?}");
    assert!(m.iter().any(|e| e.contains("\"audience\"")), "{m:?}");

    let m = messages(&server(
        "type = \"token_exchange\"\ntoken_url = \"http://idp/token\"\nclient_id = \"c\"\nclient_secret = \"s\"\nscopes = [\"a\"]\nscope = \"a\"\nclient_auth = \"private_key_jwt\"",
    ));
    assert!(
        m.iter().any(|e| e.contains("both scopes and scope")),
        "{m:?}"
    );
    assert!(m.iter().any(|e| e.contains("client_secret_basic")), "{m:?}");
}

#[test]
fn header_names_are_checked() {
    let m = messages(&server(
        "type = \"static\"\nheader = \"Bad Header\"\nvalue = \"v\"",
    ));
    assert!(
        m.iter().any(|e| e.contains("not a valid header name")),
        "{m:?}"
    );
    let m = messages(&server(
        "type = \"static\"\nheader = \"Host\"\nvalue = \"v\"",
    ));
    assert!(
        m.iter()
            .any(|e| e.contains("a header the gateway sets itself")),
        "{m:?}"
    );
}

#[test]
fn a_catalog_credential_cannot_act_for_a_caller() {
    let src = format!(
        "{}[servers.catalog_credential]\ntype = \"jwt_forward\"\n",
        server("type = \"jwt_forward\"")
    );
    let m = messages(&src);
    assert!(
        m.iter()
            .any(|e| e.contains("acts for a caller") && e.contains("catalog")),
        "{m:?}"
    );
}

#[test]
fn per_caller_secrets_files_are_checked_without_quoting_secrets() {
    let dir = std::env::temp_dir().join(format!("sluice-cred-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[callers]]\ntoken = \"alice\"\nsecret = \"line1\\nhidden-secret\"\n",
    )
    .unwrap();
    let src = server(&format!(
        "type = \"per_caller\"\nsecrets_file = \"{}\"",
        bad.display()
    ));
    let m = messages(&src);
    assert!(
        m.iter()
            .any(|e| e.contains("callers entry 1 (token \"alice\")")
                && e.contains("a byte a header cannot carry")),
        "{m:?}"
    );
    assert!(!format!("{:?}", refuse(&src)).contains("hidden-secret"));

    let dup = dir.join("dup.toml");
    std::fs::write(
        &dup,
        "[[callers]]\nissuer = \"https://idp\"\nsubject = \"bob\"\nsecret = \"a\"\n[[callers]]\nissuer = \"https://idp\"\nsubject = \"bob\"\nsecret = \"b\"\n",
    )
    .unwrap();
    let m = messages(&server(&format!(
        "type = \"per_caller\"\nsecrets_file = \"{}\"\nvalue = \"no placeholder\"",
        dup.display()
    )));
    assert!(
        m.iter()
            .any(|e| e.contains("must hold \"{secret}\" exactly once")),
        "{m:?}"
    );
    let m = messages(&server(&format!(
        "type = \"per_caller\"\nsecrets_file = \"{}\"",
        dup.display()
    )));
    assert!(m.iter().any(|e| e.contains("listed twice")), "{m:?}");
    let m = messages(&server(
        "type = \"per_caller\"\nsecrets_file = \"/nonexistent/callers.toml\"",
    ));
    assert!(m.iter().any(|e| e.contains("cannot read it")), "{m:?}");
}
