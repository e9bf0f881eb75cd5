//! Invalid configurations: every problem is reported, each at its exact line and column, with
//! a message an operator can act on and never a secret.

mod auth;
mod credentials;
mod environment;
mod policies;
mod positions;
mod references;
mod syntax;
mod values;

use sluice_config::{ConfigErrors, load_str};

pub(crate) const SECRET: &str = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t-xx";

pub(crate) fn env(k: &str) -> Option<String> {
    match k {
        "SLUICE_SESSION_SECRET" => Some(SECRET.into()),
        "SHORT_SECRET" => Some("tiny-secret-value".into()),
        "TOKEN_URL" => Some("ftp://user:tok3n-value@example.com/".into()),
        "NOT_AN_ADDR" => Some("hidden-host-value".into()),
        "DURATION_UNIT" => Some("5 fortnights".into()),
        _ => None,
    }
}

pub(crate) fn refuse(src: &str) -> ConfigErrors {
    match load_str(src, "test.toml", &env) {
        Ok(c) => panic!("config should be refused, got {c:?}"),
        Err(e) => e,
    }
}

/// `(line, column, message)` of every error.
pub(crate) fn errors(src: &str) -> Vec<(usize, usize, String)> {
    refuse(src)
        .errors
        .into_iter()
        .map(|e| (e.line, e.column, e.message))
        .collect()
}

/// The only error of `src`, which must have exactly one.
pub(crate) fn only_error(src: &str) -> (usize, usize, String) {
    let mut e = errors(src);
    assert_eq!(e.len(), 1, "{e:#?}");
    e.remove(0)
}
