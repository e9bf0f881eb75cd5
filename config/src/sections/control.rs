//! `[control]`: where a proxy fetches the registry snapshot from, with what token, and where
//! it keeps the encrypted copy it starts from when control is down. The token's length is
//! checked, never its value, and no message repeats it.

use std::ops::Range;
use std::time::Duration;

use toml::de::DeTable;

use crate::SecretString;
use crate::reader::Reader;
use crate::schema::{ControlConfig, MIN_CONTROL_TOKEN_BYTES};

const KEYS: &[&str] = &["url", "token", "snapshot_file", "poll_wait"];
const P: &str = "control";

pub(super) fn read(
    r: &mut Reader<'_>,
    t: &DeTable<'_>,
    span: Range<usize>,
) -> Option<ControlConfig> {
    r.check_keys(t, KEYS, "[control]");
    let poll_wait = r
        .duration(
            t,
            "poll_wait",
            P,
            Duration::from_secs(1)..=ControlConfig::MAX_POLL_WAIT,
        )
        .unwrap_or(ControlConfig::DEFAULT_POLL_WAIT);
    let url = r
        .required_string(t, "url", P, "[control]", span.clone())
        .and_then(|u| match url::Url::parse(u.value.trim()) {
            Ok(url)
                if matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.query().is_none()
                    && url.fragment().is_none() =>
            {
                Some(url)
            }
            _ => {
                r.problem(
                    u.span.clone(),
                    format!(
                        "control.url {} must be the http(s) URL of the control process, e.g. \"http://127.0.0.1:7070\"",
                        u.shown()
                    ),
                );
                None
            }
        });
    let token = r
        .required_string(t, "token", P, "[control]", span.clone())
        .and_then(|tok| {
            if tok.value.len() < MIN_CONTROL_TOKEN_BYTES {
                r.problem(
                    tok.span.clone(),
                    format!(
                        "control.token must be at least {MIN_CONTROL_TOKEN_BYTES} bytes, but it is {}; use one of control's [[proxy_tokens]], e.g. \"${{SLUICE_PROXY_TOKEN}}\"",
                        tok.value.len()
                    ),
                );
                return None;
            }
            if tok.value.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                r.problem(
                    tok.span.clone(),
                    "control.token must not contain spaces or control characters",
                );
                return None;
            }
            Some(SecretString::new(tok.value))
        });
    let snapshot_file = r
        .required_string(t, "snapshot_file", P, "[control]", span)
        .and_then(|f| {
            if f.value.trim().is_empty() {
                r.problem(
                    f.span.clone(),
                    "control.snapshot_file must be a file path, e.g. \"/var/lib/sluice/snapshot.bin\"",
                );
                return None;
            }
            Some(f.value.into())
        });
    Some(ControlConfig {
        url: url?,
        token: token?,
        snapshot_file: snapshot_file?,
        poll_wait,
    })
}
