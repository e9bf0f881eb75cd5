//! `${VAR}` problems are pointed at exactly, and neither secrets nor environment values reach
//! any output.

use crate::{SECRET, env, errors, only_error, refuse};
use sluice_config::load_str;

#[test]
fn a_missing_environment_variable_is_pointed_at_and_named() {
    let (line, col, msg) =
        only_error("[[servers]]\nname = \"a\"\nurl = \"http://h:${PORT}/mcp\"\n");
    assert_eq!(
        (line, col),
        (3, 17),
        "points at ${{PORT}} inside the string"
    );
    assert_eq!(msg, "servers.url: environment variable PORT is not set");
}

#[test]
fn every_missing_variable_of_a_string_is_reported() {
    let e = errors("[[servers]]\nname = \"a\"\nurl = \"http://${HOST}:${PORT}/mcp\"\n");
    let at: Vec<(usize, usize)> = e.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(at, [(3, 15), (3, 23)], "{e:#?}");
    assert!(e[0].2.contains("HOST") && e[1].2.contains("PORT"));
}

#[test]
fn bad_interpolation_syntax_is_reported() {
    let e = errors("[[servers]]\nname = \"a\"\nurl = \"http://${}/${1X}/${OPEN\"\n");
    let m: Vec<&str> = e.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(m.len(), 3, "{m:#?}");
    assert!(
        m[0].contains("\"\" is not an environment variable name"),
        "{}",
        m[0]
    );
    assert!(
        m[1].contains("\"1X\" is not an environment variable name"),
        "{}",
        m[1]
    );
    assert!(m[2].contains("not closed"), "{}", m[2]);
}

#[test]
fn an_escaped_dollar_brace_is_not_a_variable() {
    assert!(
        load_str(
            "[[servers]]\nname = \"a\"\nurl = \"http://h/$${NOT_SET}\"\n",
            "t",
            &env
        )
        .is_ok()
    );
}

#[test]
fn secrets_never_appear_in_debug_display_or_errors() {
    let c = load_str(
        "[sessions]\nsecret = \"${SLUICE_SESSION_SECRET}\"\n",
        "t",
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let sessions = c.sessions.as_ref().unwrap();
    for shown in [
        format!("{c:?}"),
        format!("{c:#?}"),
        format!("{sessions:?}"),
        format!("{}", sessions.secret),
        c.summary(),
    ] {
        assert!(!shown.contains(SECRET), "{shown}");
    }
    assert!(format!("{sessions:?}").contains("***"));

    let from_env = refuse("[sessions]\nsecret = \"${SHORT_SECRET}\"\n");
    let literal = refuse("[sessions]\nsecret = \"tiny-secret-value\"\n");
    for e in [from_env, literal] {
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(shown.contains("at least 32 bytes, but it is 17"), "{shown}");
            assert!(!shown.contains("tiny-secret-value"), "{shown}");
        }
    }
}

#[test]
fn values_from_the_environment_are_shown_as_written_in_errors() {
    let e = refuse(
        "[proxy]\nlisten = \"${NOT_AN_ADDR}\"\n[[servers]]\nname = \"a\"\nurl = \"${TOKEN_URL}\"\n",
    );
    let text = e.to_string();
    assert!(
        !text.contains("tok3n-value") && !text.contains("hidden-host-value"),
        "{text}"
    );
    assert!(
        text.contains("\"${TOKEN_URL}\" (after ${...} substitution)"),
        "{text}"
    );
    assert!(text.contains("\"${NOT_AN_ADDR}\""), "{text}");
    assert!(
        text.contains("servers.url \"${TOKEN_URL}\" (after ${...} substitution) must use http:// or https://\n")
            || text.ends_with("must use http:// or https://"),
        "{text}"
    );
    assert!(
        !text.contains("ftp"),
        "not even the scheme of an environment value: {text}"
    );
}

#[test]
fn parser_reasons_never_quote_environment_values() {
    // Found by the config fuzz target (fuzz/README.md): the regex parser's message quotes the
    // pattern after substitution, so the secret showed in the error, and an unknown
    // policy_default was quoted substituted. Duration and name reasons quote pieces of the
    // value too (the unit, the character).
    let e = refuse(
        "[[servers]]\nname = \"gh\"\nurl = \"http://h/mcp\"\ntimeout = \"${DURATION_UNIT}\"\n\
         [[gateways]]\nname = \"${TOKEN_URL}\"\nservers = [\"gh\"]\npolicy_default = \"${TOKEN_URL}\"\n\
         [[gateways.policies]]\nname = \"p\"\ntools = [\"*\"]\neffect = \"deny\"\n\
         arguments = [{ pointer = \"/x\", regex = \"(${SLUICE_SESSION_SECRET}\" }]\n",
    );
    let text = e.to_string();
    for leaked in [SECRET, "fortnights", "':'", "ftp", "tok3n"] {
        assert!(!text.contains(leaked), "{leaked:?} in {text}");
    }
    for expected in [
        "regex \"(${SLUICE_SESSION_SECRET}\" (after ${...} substitution) is not a valid regular expression: details not shown",
        "servers.timeout: \"${DURATION_UNIT}\" (after ${...} substitution) is not a duration (details not shown",
        "gateways.name \"${TOKEN_URL}\" (after ${...} substitution) is not valid: details not shown",
        "gateways.policy_default must be \"allow\" or \"deny\", not \"${TOKEN_URL}\" (after ${...} substitution)",
    ] {
        assert!(text.contains(expected), "{expected:?} not in {text}");
    }
    // Written in the file, the reasons are shown.
    let text =
        refuse("[[servers]]\nname = \"gh\"\nurl = \"http://h/mcp\"\ntimeout = \"5 fortnights\"\n")
            .to_string();
    assert!(text.contains("unknown time unit \"fortnights\""), "{text}");
}

#[test]
fn a_short_secret_is_refused_at_the_secret() {
    let (line, col, _) = only_error("[sessions]\nttl = \"1h\"\nsecret = \"0123456789\"\n");
    assert_eq!((line, col), (3, 10));
}

#[test]
fn a_sessions_table_without_a_secret_is_refused_at_its_header() {
    let (line, col, msg) = only_error("# sessions\n\n[sessions]\nttl = \"1h\"\n");
    assert_eq!((line, col), (3, 1));
    assert_eq!(
        msg,
        "[sessions] entry is missing the required key \"secret\""
    );
}
