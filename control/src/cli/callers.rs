//! `sluice ctl installations callers | set-caller | unset-caller`: per-caller secrets. The
//! secret is read from a file or stdin, never taken as an argument, since arguments are
//! visible to every user in the process list and stay in shell history.

use std::io::Read as _;
use std::path::PathBuf;

use clap::Args;
use serde_json::{Value, json};

/// Which caller: a JWT's issuer and subject, or a static gateway token's name as subject.
#[derive(Debug, Args)]
pub(super) struct CallerArgs {
    /// The installation.
    pub name: String,
    /// The caller's JWT issuer; leave out for a static gateway token.
    #[arg(long, default_value = "")]
    pub issuer: String,
    /// The caller's JWT subject, or the static gateway token's name.
    #[arg(long)]
    pub subject: String,
}

/// Where the secret comes from.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(super) struct SecretSource {
    /// Read the secret from this file (one trailing newline is dropped).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Read the secret from stdin (one trailing newline is dropped).
    #[arg(long)]
    pub secret_stdin: bool,
}

/// Largest secret read (the API refuses more than 8 KiB anyway).
const MAX_READ: u64 = 64 * 1024;

fn without_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

/// The secret from `--secret-file` or `--secret-stdin`. Errors name the source, never the
/// content.
pub(super) fn read_secret(source: &SecretSource) -> Result<String, String> {
    let mut text = String::new();
    match &source.secret_file {
        Some(path) => std::fs::File::open(path)
            .and_then(|f| f.take(MAX_READ).read_to_string(&mut text))
            .map_err(|e| format!("--secret-file {}: {e}", path.display()))?,
        None => std::io::stdin()
            .take(MAX_READ)
            .read_to_string(&mut text)
            .map_err(|e| format!("--secret-stdin: {e}"))?,
    };
    let secret = without_newline(text);
    if secret.is_empty() {
        return Err("the secret is empty".into());
    }
    Ok(secret)
}

/// `PUT` body.
pub(super) fn set_body(caller: &CallerArgs, secret: String) -> Value {
    json!({"issuer": caller.issuer, "subject": caller.subject, "secret": secret})
}

/// `DELETE` path: the caller as percent-encoded query parameters.
pub(super) fn unset_path(caller: &CallerArgs) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("issuer", &caller.issuer)
        .append_pair("subject", &caller.subject)
        .finish();
    format!("/v1/installations/{}/callers?{query}", caller.name)
}

/// One line for a set or removed secret.
pub(super) fn written(what: &str, body: &Value) -> String {
    let who = match body["issuer"].as_str() {
        Some("") | None => format!("token {}", super::text(&body["subject"])),
        Some(issuer) => format!("{} of {issuer}", super::text(&body["subject"])),
    };
    format!(
        "{what} for {who} on {} (version {})\n",
        super::text(&body["installation"]),
        body["version"]
    )
}

/// The table of callers with a secret.
pub(super) fn table(body: &Value) -> String {
    let rows: Vec<Vec<String>> = body["callers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let issuer = c["issuer"].as_str().unwrap_or("");
            let kind = if issuer.is_empty() { "token" } else { "jwt" };
            let at = c["updated_at"].as_u64().unwrap_or(0);
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at);
            vec![
                kind.to_owned(),
                super::text(&c["subject"]),
                if issuer.is_empty() {
                    "-".into()
                } else {
                    issuer.to_owned()
                },
                super::text(&c["version"]),
                humantime::format_rfc3339_seconds(at).to_string(),
            ]
        })
        .collect();
    super::table(&["KIND", "SUBJECT", "ISSUER", "VERSION", "UPDATED"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuer_url_is_percent_encoded_into_the_query() {
        let c = CallerArgs {
            name: "gh".into(),
            issuer: "https://idp.example/realms/a b?x=1&y".into(),
            subject: "bob@example.com".into(),
        };
        let path = unset_path(&c);
        assert_eq!(
            path,
            "/v1/installations/gh/callers?issuer=https%3A%2F%2Fidp.example%2Frealms%2Fa+b%3Fx%3D1%26y&subject=bob%40example.com"
        );
        assert_eq!(without_newline("k-1\r\n".into()), "k-1");
        assert_eq!(without_newline("k-1\n\n".into()), "k-1\n");
    }
}
