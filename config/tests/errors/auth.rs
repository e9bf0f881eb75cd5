//! `[auth]` and `[gateways.auth]`: every mistake reported at its place, tokens never quoted.

use crate::{errors, refuse};

const SERVERS: &str = "[[servers]]\nname = \"gh\"\nurl = \"http://h/mcp\"\n";

fn messages(src: &str) -> Vec<String> {
    errors(src).into_iter().map(|(_, _, m)| m).collect()
}

#[test]
fn a_token_entry_is_checked_without_quoting_the_token() {
    let src = format!(
        "[[auth.tokens]]\nname = \"bot\"\ntoken = \"short-tok3n\"\n\
         [[auth.tokens]]\nname = \"bot\"\ntoken_sha256 = \"abc\"\n\
         [[auth.tokens]]\nname = \"two\"\n\
         {SERVERS}"
    );
    let m = messages(&src);
    assert!(m.iter().any(|e| e.contains("at least 16 bytes")), "{m:?}");
    assert!(
        m.iter().any(|e| e.contains("duplicate token name")),
        "{m:?}"
    );
    assert!(m.iter().any(|e| e.contains("64 hex digits")), "{m:?}");
    assert!(m.iter().any(|e| e.contains("needs token = ")), "{m:?}");
    let all = format!("{:?}", refuse(&src));
    assert!(
        !all.contains("short-tok3n"),
        "a token never appears in an error"
    );
}

#[test]
fn providers_refuse_hmac_none_and_unknown_algorithms() {
    let src = "[[auth.providers]]\nname = \"corp\"\nissuer = \"http://idp\"\naudiences = [\"s\"]\n\
               algorithms = [\"HS256\", \"none\", \"RS265\"]\n\
               [[auth.providers]]\nname = \"two\"\nissuer = \"not a url\"\n";
    let m = messages(src);
    assert!(
        m.iter().any(|e| e.contains("\"HS256\": HMAC algorithms")),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|e| e.contains("\"none\": unsigned tokens are refused")),
        "{m:?}"
    );
    assert!(
        m.iter().any(|e| e.contains("did you mean \"RS256\"")),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|e| e.contains("issuer \"not a url\" must be an http(s) URL")),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|e| e.contains("missing the required key \"audiences\"")),
        "{m:?}"
    );
}

#[test]
fn gateway_auth_references_resolve_and_must_accept_something() {
    let src = format!(
        "[[auth.providers]]\nname = \"corp\"\nissuer = \"http://idp\"\naudiences = [\"s\"]\n\
         {SERVERS}\
         [[gateways]]\nname = \"a\"\nservers = [\"gh\"]\n[gateways.auth]\nproviders = [\"crop\"]\n\
         [[gateways]]\nname = \"b\"\nservers = [\"gh\"]\n[gateways.auth]\nscopes = [\"x\"]\n\
         [[gateways]]\nname = \"c\"\nservers = [\"gh\"]\n[gateways.auth]\nid_jag = true\ntokens = true\n\
         [[gateways.auth.rules]]\nrequire = {{ groups = \"eng\" }}\n"
    );
    let m = messages(&src);
    assert!(
        m.iter()
            .any(|e| e.contains("unknown provider \"crop\"; did you mean \"corp\"?")),
        "{m:?}"
    );
    assert!(
        m.iter().any(|e| e.contains("accepts no credential")),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|e| e.contains("id_jag = true needs [auth.issuer]")),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|e| e.contains("no [[auth.tokens]] are declared")),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|e| e.contains("missing the required key \"tools\"")),
        "{m:?}"
    );
}

#[test]
fn the_issuer_needs_a_public_url_a_key_trusted_providers_and_clients() {
    let src = "[auth.issuer]\nsigning_key_file = \"/nonexistent/key.pem\"\n";
    let m = messages(src);
    assert!(
        m.iter().any(|e| e.contains("needs auth.public_url")),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|e| e.contains("cannot read \"/nonexistent/key.pem\"")),
        "{m:?}"
    );
    assert!(
        m.iter().any(|e| e.contains("needs trusted_providers")),
        "{m:?}"
    );
    assert!(
        m.iter().any(|e| e.contains("[[auth.issuer.clients]]")),
        "{m:?}"
    );
}
