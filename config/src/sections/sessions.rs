//! `[sessions]`: the key that seals session tokens and their lifetime. The secret's length is
//! checked, never its value, and no message repeats it.

use std::ops::Range;
use std::time::Duration;

use toml::de::DeTable;

use crate::reader::Reader;
use crate::{MIN_SECRET_BYTES, SecretString, SessionsConfig};

const KEYS: &[&str] = &["secret", "ttl"];

pub(super) fn read(
    r: &mut Reader<'_>,
    t: &DeTable<'_>,
    span: Range<usize>,
) -> Option<SessionsConfig> {
    r.check_keys(t, KEYS, "[sessions]");
    let ttl = r
        .duration(
            t,
            "ttl",
            "sessions",
            Duration::from_secs(1)..=Duration::from_secs(30 * 24 * 60 * 60),
        )
        .unwrap_or(SessionsConfig::DEFAULT_TTL);
    let secret = r.required_string(t, "secret", "sessions", "[sessions]", span)?;
    if secret.value.len() < MIN_SECRET_BYTES {
        r.problem(
            secret.span.clone(),
            format!(
                "sessions.secret must be at least {MIN_SECRET_BYTES} bytes, but it is {}; \
                 generate one with e.g. `openssl rand -base64 48`",
                secret.value.len()
            ),
        );
        return None;
    }
    Some(SessionsConfig {
        secret: SecretString::new(secret.value),
        ttl,
    })
}
