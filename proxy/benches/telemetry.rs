//! The per-request tracing work of an unsampled request (sampling ratio 0, exporter never
//! reached): start the server span from the request headers, inject its context into the
//! upstream request, end it. Compared with the same steps when tracing is off.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::TraceContextExt;
use pingora::http::RequestHeader;
use sluice_config::TelemetryConfig;
use sluice_proxy::telemetry::{Telemetry, client_trace_headers};

fn request() -> RequestHeader {
    let mut req = RequestHeader::build("POST", b"/mcp/bench", None).unwrap();
    req.insert_header("content-type", "application/json")
        .unwrap();
    req.insert_header("accept", "application/json, text/event-stream")
        .unwrap();
    req
}

fn per_request(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let on = Telemetry::new(&TelemetryConfig {
        otlp_endpoint: Some("http://127.0.0.1:9/v1/traces".parse().unwrap()),
        sampling_ratio: 0.0,
        ..TelemetryConfig::default()
    })
    .unwrap();
    let off = Telemetry::new(&TelemetryConfig::default()).unwrap();
    let req = request();
    for (name, t) in [("unsampled", &on), ("off", &off)] {
        c.bench_function(&format!("tracing/{name}"), |b| {
            b.iter(|| {
                let cx = t.start_request(black_box(&req));
                let client = client_trace_headers(&req);
                let mut up = request();
                t.inject(cx.as_ref(), &client, &mut up);
                if let Some(cx) = cx {
                    cx.span().end();
                }
                up
            })
        });
    }
}

criterion_group!(benches, per_request);
criterion_main!(benches);
