//! Every problem of a file is reported at its exact line and column, in file order.

use crate::{errors, only_error, refuse};

#[test]
fn every_error_in_a_file_is_reported_with_its_line_and_column() {
    let src = r#"[proxy]
listn = "127.0.0.1:1"
threads = 0
grace_period = "soon"
admin_listen = "localhost"

[sessions]
secret = "${MISSING_SECRET}"

[[servers]]
name = "everything"
url = "ftp://x"
timeout = 30

[[servers]]
name = "Bad_Name"
url = "http://h/mcp"

[[gateways]]
name = "dev"
servers = ["everythin"]
tools = ["echo", "nope__x"]
"#;
    let e = errors(src);
    let at: Vec<(usize, usize)> = e.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(
        at,
        [
            (2, 1),
            (3, 11),
            (4, 16),
            (5, 16),
            (8, 11),
            (12, 7),
            (13, 11),
            (16, 8),
            (21, 12),
            (22, 10),
            (22, 18),
        ],
        "{e:#?}"
    );
    let m: Vec<&str> = e.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(
        m[0],
        "unknown key \"listn\" in [proxy]; did you mean \"listen\"?"
    );
    assert_eq!(m[1], "proxy.threads must be between 1 and 1024, not 0");
    assert!(
        m[2].starts_with("proxy.grace_period: \"soon\" is not a duration"),
        "{}",
        m[2]
    );
    assert!(
        m[3].starts_with("proxy.admin_listen: \"localhost\" is not an IP address and port"),
        "{}",
        m[3]
    );
    assert_eq!(
        m[4],
        "sessions.secret: environment variable MISSING_SECRET is not set"
    );
    assert_eq!(
        m[5],
        "servers.url \"ftp://x\" must use http:// or https://, not ftp://"
    );
    assert_eq!(
        m[6],
        "servers.timeout must be a duration string such as \"10s\", not an integer"
    );
    assert_eq!(
        m[7],
        "servers.name \"Bad_Name\" is not valid: a name may contain only a-z, 0-9 and '-', not 'B'"
    );
    assert_eq!(
        m[8], "unknown server \"everythin\"; did you mean \"everything\"?",
        "a server with a bad url is still declared"
    );
    assert_eq!(
        m[9],
        "gateways.tools entry \"echo\" must name one tool as \"server__tool\""
    );
    assert_eq!(
        m[10],
        "unknown server \"nope\"; declared servers: everything"
    );
}

#[test]
fn errors_display_as_file_line_column_message_one_per_line() {
    let e = refuse("[proxy]\nthreads = 0\n\n[catalog]\npage_size = 0\n");
    assert_eq!(
        e.to_string(),
        "test.toml:2:11: proxy.threads must be between 1 and 1024, not 0\n\
         test.toml:5:13: catalog.page_size must be between 1 and 10000, not 0"
    );
}

#[test]
fn unknown_keys_suggest_the_nearest_valid_key_everywhere() {
    let e = errors(
        "server = []\n[catalog]\npage-size = 5\n[[servers]]\nnmae = \"a\"\nname = \"a\"\nurl = \"http://h/\"\n\
         [[gateways]]\nname = \"g\"\nservers = [\"a\"]\ntool = []\n[sessions]\nsecret = \"${SLUICE_SESSION_SECRET}\"\nttl = \"1h\"\nbanana = 1\n",
    );
    let m: Vec<(usize, usize, &str)> = e.iter().map(|(l, c, m)| (*l, *c, m.as_str())).collect();
    assert_eq!(
        m,
        [
            (
                1,
                1,
                "unknown key \"server\" in the top level; did you mean \"servers\"?"
            ),
            (
                3,
                1,
                "unknown key \"page-size\" in [catalog]; did you mean \"page_size\"?"
            ),
            (
                5,
                1,
                "unknown key \"nmae\" in [[servers]]; did you mean \"name\"?"
            ),
            (
                11,
                1,
                "unknown key \"tool\" in [[gateways]]; did you mean \"tools\"?"
            ),
            (
                15,
                1,
                "unknown key \"banana\" in [sessions]; expected one of: secret, ttl"
            ),
        ]
    );
}

#[test]
fn required_keys_are_reported_at_the_entry_header() {
    let e = errors(
        "[[servers]]\nurl = \"http://h/\"\n\n[[servers]]\nname = \"b\"\n\n[[gateways]]\nservers = [\"b\"]\n",
    );
    let m: Vec<(usize, usize, &str)> = e.iter().map(|(l, c, m)| (*l, *c, m.as_str())).collect();
    assert_eq!(
        m,
        [
            (
                1,
                1,
                "[[servers]] entry is missing the required key \"name\""
            ),
            (
                4,
                1,
                "[[servers]] entry is missing the required key \"url\""
            ),
            (
                7,
                1,
                "[[gateways]] entry is missing the required key \"name\""
            ),
        ]
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    let (line, col, _) = only_error("# é\n[proxy] # ü\nthreads = \"ünf\"\n");
    assert_eq!((line, col), (3, 11));
    let (line, col, _) = only_error("[proxy]\nlisten = \"é\"  \n");
    assert_eq!((line, col), (2, 10));
    let (line, col, _) = only_error("\u{feff}[proxy]\nthreds = 1\n");
    assert_eq!((line, col), (2, 1));
}
