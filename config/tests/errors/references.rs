//! Server and gateway names are unique and every gateway reference resolves, with the nearest
//! declared server suggested.

use crate::{errors, only_error};

#[test]
fn duplicate_server_and_gateway_names_are_refused_at_the_second() {
    let src = "[[servers]]\nname = \"a\"\nurl = \"http://h/mcp\"\n\
               [[servers]]\nname = \"a\"\nurl = \"http://h/mcp\"\n\
               [[gateways]]\nname = \"g\"\nservers = [\"a\"]\n\
               [[gateways]]\nname = \"g\"\nservers = [\"a\"]\n";
    let e = errors(src);
    let m: Vec<(usize, usize, &str)> = e.iter().map(|(l, c, m)| (*l, *c, m.as_str())).collect();
    assert_eq!(
        m,
        [
            (5, 8, "duplicate server name \"a\""),
            (11, 8, "duplicate gateway name \"g\""),
        ]
    );
}

#[test]
fn unknown_server_references_suggest_the_nearest_declared_server() {
    let src = "[[servers]]\nname = \"github\"\nurl = \"http://h/mcp\"\n\
               [[servers]]\nname = \"filesystem\"\nurl = \"http://h/mcp\"\n\
               [[gateways]]\nname = \"g\"\nservers = [\"githib\"]\ntools = [\"filesytem__read\", \"zzz__x\"]\n";
    let e = errors(src);
    let m: Vec<(usize, usize, &str)> = e.iter().map(|(l, c, m)| (*l, *c, m.as_str())).collect();
    assert_eq!(
        m,
        [
            (9, 12, "unknown server \"githib\"; did you mean \"github\"?"),
            (
                10,
                10,
                "unknown server \"filesytem\"; did you mean \"filesystem\"?"
            ),
            (
                10,
                29,
                "unknown server \"zzz\"; declared servers: github, filesystem"
            ),
        ]
    );
}

#[test]
fn a_reference_with_no_servers_declared_says_so() {
    let (_, _, msg) = only_error("[[gateways]]\nname = \"g\"\nservers = [\"a\"]\n");
    assert_eq!(msg, "unknown server \"a\"; no [[servers]] are declared");
}

#[test]
fn tool_entries_must_be_server_double_underscore_tool() {
    let src = "[[servers]]\nname = \"a\"\nurl = \"http://h/\"\n\
               [[gateways]]\nname = \"g\"\ntools = [\"a_echo\", \"__x\", \"a__\", \"a__ok\", \"a__ok\"]\n";
    let e = errors(src);
    let m: Vec<(usize, usize, &str)> = e.iter().map(|(l, c, m)| (*l, *c, m.as_str())).collect();
    assert_eq!(
        m,
        [
            (
                6,
                10,
                "gateways.tools entry \"a_echo\" must name one tool as \"server__tool\""
            ),
            (
                6,
                20,
                "gateways.tools entry \"__x\" must name one tool as \"server__tool\""
            ),
            (
                6,
                27,
                "gateways.tools entry \"a__\" must name one tool as \"server__tool\""
            ),
            (6, 43, "tool \"a__ok\" is listed twice in this gateway"),
        ]
    );
}

#[test]
fn a_gateway_must_serve_something() {
    let src = "[[servers]]\nname = \"a\"\nurl = \"http://h/\"\n\n[[gateways]]\nname = \"g\"\nservers = []\n";
    let (line, col, msg) = only_error(src);
    assert_eq!((line, col), (5, 1));
    assert!(msg.contains("serves nothing"), "{msg}");
}

#[test]
fn a_gateway_without_prefixes_refuses_two_tools_of_one_name() {
    let src = "[[servers]]\nname = \"a\"\nurl = \"http://h/\"\n\
               [[servers]]\nname = \"b\"\nurl = \"http://h/\"\n\
               [[gateways]]\nname = \"g\"\nprefix = false\ntools = [\"a__x\", \"b__y\", \"b__x\"]\n";
    let (line, col, msg) = only_error(src);
    assert_eq!((line, col), (10, 26), "at the second entry of the name");
    assert_eq!(
        msg,
        "tools \"a__x\" and \"b__x\" are both shown as \"x\" on this gateway, which has prefix = false; list only one of them, or set prefix = true to show them as server__tool"
    );
    let (_, _, msg) = only_error(
        "[[servers]]\nname = \"a\"\nurl = \"http://h/\"\n\
         [[gateways]]\nname = \"g\"\nprefix = \"no\"\nservers = [\"a\"]\n",
    );
    assert_eq!(msg, "gateways.prefix must be true or false, not a string");
}
