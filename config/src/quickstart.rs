//! The embedded config of `sluice up`: one gateway in front of the bundled example server, so
//! a first run needs no file. It is produced as TOML text and loaded like any other file, so it
//! cannot drift from what the loader accepts.

use crate::Config;

impl Config {
    /// The TOML text of the `sluice up` config: server `example` at `example_server_url`,
    /// gateway `quickstart` serving it, `listen = "127.0.0.1:8080"`,
    /// `admin_listen = "127.0.0.1:9090"`, and no `[sessions]` table.
    pub fn quickstart(example_server_url: &str) -> String {
        let url = toml_string(example_server_url);
        format!(
            r#"# The embedded default of `sluice up`.
[proxy]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:9090"
grace_period = "2s"

[[servers]]
name = "example"
url = {url}
timeout = "30s"

[[gateways]]
name = "quickstart"
servers = ["example"]
"#
        )
    }
}

/// `s` as a TOML basic string that reads back as exactly `s`: quotes, backslashes and control
/// characters escaped, and `${` written as `$${` so it is not taken for a variable.
pub(crate) fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.replace("${", "$${").chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
