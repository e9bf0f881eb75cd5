//! `[telemetry]`: OTLP trace export, sampling, the access log and the metrics switch.

use toml::de::{DeTable, DeValue};

use crate::reader::{Reader, kind};
use crate::schema::{AccessLog, TelemetryConfig};

const KEYS: &[&str] = &[
    "otlp_endpoint",
    "sampling_ratio",
    "service_name",
    "access_log",
    "metrics",
];
const P: &str = "telemetry";

pub(super) fn read(r: &mut Reader<'_>, t: &DeTable<'_>) -> TelemetryConfig {
    r.check_keys(t, KEYS, "[telemetry]");
    let d = TelemetryConfig::default();
    let otlp_endpoint = r.string(t, "otlp_endpoint", P).and_then(|u| {
        match url::Url::parse(&u.value) {
            Ok(mut url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                if url.path() == "/" {
                    url.set_path("/v1/traces");
                }
                Some(url)
            }
            _ => {
                r.problem(
                    u.span.clone(),
                    format!(
                        "telemetry.otlp_endpoint {} must be an http(s) URL of an OTLP/HTTP receiver, e.g. \"http://127.0.0.1:4318\"",
                        u.shown()
                    ),
                );
                None
            }
        }
    });
    let sampling_ratio = match t.get("sampling_ratio") {
        None => d.sampling_ratio,
        Some(v) => {
            let n = match v.get_ref() {
                DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
                DeValue::Integer(i) => i.as_str().parse::<f64>().ok(),
                _ => None,
            };
            match n {
                Some(n) if (0.0..=1.0).contains(&n) => n,
                _ => {
                    r.problem(
                        v.span(),
                        format!(
                            "telemetry.sampling_ratio must be a number from 0.0 to 1.0, not {}",
                            kind(v.get_ref())
                        ),
                    );
                    d.sampling_ratio
                }
            }
        }
    };
    let service_name = r
        .string(t, "service_name", P)
        .map_or(d.service_name.clone(), |s| s.value);
    let access_log =
        r.string(t, "access_log", P)
            .map_or(AccessLog::Stdout, |s| match s.value.as_str() {
                "stdout" => AccessLog::Stdout,
                "off" => AccessLog::Off,
                path => AccessLog::File(path.into()),
            });
    let metrics = r.boolean(t, "metrics", P).unwrap_or(true);
    TelemetryConfig {
        otlp_endpoint,
        sampling_ratio,
        service_name,
        access_log,
        metrics,
    }
}
