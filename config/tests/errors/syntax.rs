//! TOML syntax errors carry their position, and no input whatever makes the loader panic.

use crate::{env, errors, only_error};
use sluice_config::load_str;

#[test]
fn a_toml_syntax_error_has_its_position() {
    let (line, col, msg) = only_error("[proxy]\nlisten = \n");
    assert_eq!((line, col), (2, 10));
    assert!(msg.starts_with("TOML syntax: "), "{msg}");
}

#[test]
fn every_toml_syntax_error_is_reported() {
    let e = errors("a = 1\n[proxy\nb = \"unterminated\nc = 1\na = 2\n");
    assert!(e.len() >= 2, "{e:#?}");
    assert!(
        e.iter().all(|(_, _, m)| m.starts_with("TOML syntax: ")),
        "{e:#?}"
    );
    assert_eq!(e[0].0, 2);
}

#[test]
fn a_duplicate_key_names_the_key() {
    let (line, col, msg) = only_error("[proxy]\nthreads = 1\nthreads = 2\n");
    assert_eq!((line, col), (3, 1));
    assert_eq!(msg, "TOML syntax: duplicate key \"threads\"");
}

#[test]
fn arbitrary_input_never_panics() {
    let nasty = [
        "",
        "[",
        "[[",
        "]]",
        "=",
        "a = ",
        "\u{0}",
        "\u{feff}",
        "\"\\u0000\" = 1",
        "[proxy]\nlisten = 1",
        "[proxy]\nlisten = \"[::1\"",
        "[proxy]\nthreads = 99999999999999999999999999999999999999999",
        "[proxy]\nthreads = -0x1",
        "[proxy]\ngrace_period = \"99999999999999999999999h\"",
        "[proxy]\ngrace_period = \"\"",
        "[proxy]\ngrace_period = 1979-05-27T07:32:00Z",
        "[proxy.listen]\nx = 1",
        "[[proxy]]",
        "[[servers]]\n",
        "[[servers]]\n[[servers]]\n",
        "servers = 3",
        "servers = [[]]",
        "[[gateways]]\nservers = [1, 2]",
        "[[gateways]]\nname = \"g\"\ntools = [\"__\", \"____\", \"a____b\"]",
        "[sessions]\nsecret = 5",
        "[sessions]\nsecret = \"${\"",
        "x = \"${\"",
        "x = \"${}\"",
        "x = \"$\"",
        "x = \"${${${\"",
        "x = \"\"\"\n${A}\n\"\"\"",
        "[[servers]]\nname = \"a\"\nurl = \"http://[::1\"",
        "[[servers]]\nname = \"a\"\nurl = \"http://\"",
        "[[servers]]\nname = \"é\"\nurl = \"http://\u{202e}/\"",
        "a.b.c.d.e.f.g.h = 1",
        "a = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        "a = {{{{{{{{{{{{{{{{{",
        "\r\n\r\n[proxy]\r\nthreads = 0\r\n",
    ];
    for src in nasty {
        let _ = load_str(src, "t", &env);
    }
    let deep = format!("a = {}{}", "[".repeat(5000), "]".repeat(5000));
    let _ = load_str(&deep, "t", &env);

    // Every prefix of a valid file, and every single-character corruption of it.
    let valid = "[proxy]\nlisten = \"127.0.0.1:8080\"\nthreads = 2\n[sessions]\nsecret = \"${SLUICE_SESSION_SECRET}\"\n\
                 [[servers]]\nname = \"a\"\nurl = \"http://h:1/mcp\"\n[[gateways]]\nname = \"g\"\nservers = [\"a\"]\ntools = [\"a__b\"]\n";
    for i in (0..=valid.len()).filter(|&i| valid.is_char_boundary(i)) {
        let _ = load_str(&valid[..i], "t", &env);
        for c in ['"', '[', ']', '=', '$', '{', '\n', '\u{0}', '_', '#', 'é'] {
            let mut s = valid.to_owned();
            if i < s.len() {
                s.replace_range(i..i + 1, c.encode_utf8(&mut [0; 4]));
            } else {
                s.push(c);
            }
            if let Err(e) = load_str(&s, "t", &env) {
                for err in &e.errors {
                    assert!(err.line >= 1 && err.column >= 1, "{s:?}: {err}");
                }
            }
        }
    }
}
