//! OpenTelemetry traces: one server span per MCP request with children for authentication,
//! the credential step and the upstream exchange, W3C trace context continued from the client
//! and sent upstream, exported over OTLP/HTTP (protobuf) when `telemetry.otlp_endpoint` is set.
//!
//! Spans are batched by the SDK's batch processor on its own thread through a bounded queue
//! (a full queue drops spans, never blocks a request), and exported with the workspace's
//! `reqwest` client on a small dedicated runtime, so export never runs on a worker. With no
//! endpoint there is no tracer at all: every request-path call below returns at its first
//! `if`, and the client's `traceparent` / `tracestate` are passed to the upstream unchanged
//! so the gateway does not break traces it does not record.

use std::time::Duration;

use bytes::Bytes;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider,
};
use pingora::http::RequestHeader;
use sluice_config::TelemetryConfig;

/// The W3C trace-context headers.
pub const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The exporter or its runtime could not be built.
    #[error("telemetry: {0}")]
    Setup(String),
}

/// The process's tracer, if tracing is on.
pub struct Telemetry {
    tracer: Option<SdkTracer>,
    provider: Option<SdkTracerProvider>,
    propagator: TraceContextPropagator,
    /// A new trace is sampled when a random `u64` is below this (`u64::MAX`: always).
    threshold: u64,
}

impl Telemetry {
    /// Builds the tracer for `cfg`; without `otlp_endpoint`, a no-op.
    pub fn new(cfg: &TelemetryConfig) -> Result<Self, TelemetryError> {
        let propagator = TraceContextPropagator::new();
        let Some(endpoint) = &cfg.otlp_endpoint else {
            return Ok(Telemetry {
                tracer: None,
                provider: None,
                propagator,
                threshold: 0,
            });
        };
        let client = ExportClient::start().map_err(TelemetryError::Setup)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(endpoint.as_str())
            .with_protocol(Protocol::HttpBinary)
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| TelemetryError::Setup(e.to_string()))?;
        let batch = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(8192)
                    .with_scheduled_delay(Duration::from_secs(1))
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batch)
            // The sampling decision is made in `start_request`, before the SDK sees the
            // request: every span the SDK is asked for is to be recorded.
            .with_sampler(Sampler::AlwaysOn)
            .with_resource(
                Resource::builder()
                    .with_service_name(cfg.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("sluice");
        let threshold = if cfg.sampling_ratio >= 1.0 {
            u64::MAX
        } else {
            (cfg.sampling_ratio.max(0.0) * u64::MAX as f64) as u64
        };
        Ok(Telemetry {
            tracer: Some(tracer),
            provider: Some(provider),
            propagator,
            threshold,
        })
    }

    /// Starts the server span of a sampled request, continuing the client's trace context;
    /// `None` when the request is not sampled.
    ///
    /// The decision comes first and costs one random number: a client's sampled
    /// `traceparent` is followed, an unsampled one is not (and passes upstream unchanged, as
    /// with tracing off), and a new trace is sampled at `sampling_ratio`. Only sampled
    /// requests reach the SDK, whose span, context and id generation cost an unsampled request
    /// about 2 µs when the SDK's own sampler decided.
    pub fn start_request(&self, req: &RequestHeader) -> Option<Context> {
        let tracer = self.tracer.as_ref()?;
        let parent = if req.headers.contains_key(TRACE_HEADERS[0]) {
            let parent = self.propagator.extract(&HeaderExtractor(req));
            let remote = parent.span().span_context().clone();
            if remote.is_valid() {
                if !remote.is_sampled() {
                    return None;
                }
                parent
            } else if self.sample_new() {
                Context::new()
            } else {
                return None;
            }
        } else if self.sample_new() {
            Context::new()
        } else {
            return None;
        };
        let span = tracer
            .span_builder("mcp")
            .with_kind(SpanKind::Server)
            .start_with_context(tracer, &parent);
        Some(parent.with_span(span))
    }

    fn sample_new(&self) -> bool {
        self.threshold == u64::MAX || rand::random::<u64>() < self.threshold
    }

    /// A child span of `parent`, ended when the returned context's span is ended. Only
    /// sampled requests have a context to be a parent (see [`Telemetry::start_request`]).
    pub fn child(&self, parent: &Context, name: &'static str, kind: SpanKind) -> Option<Context> {
        let tracer = self.tracer.as_ref()?;
        let span = tracer
            .span_builder(name)
            .with_kind(kind)
            .start_with_context(tracer, parent);
        Some(parent.with_span(span))
    }

    /// Writes the trace context of `cx` into an upstream request, or, without tracing, the
    /// client's own `traceparent` / `tracestate` unchanged.
    pub fn inject(
        &self,
        cx: Option<&Context>,
        client: &[(&'static str, http::HeaderValue)],
        upstream: &mut RequestHeader,
    ) {
        match cx {
            Some(cx) => self
                .propagator
                .inject_context(cx, &mut HeaderInjector(upstream)),
            None => {
                for (name, value) in client {
                    let _ = upstream.insert_header(*name, value.clone());
                }
            }
        }
    }

    /// Flushes and stops the exporter (at shutdown).
    pub fn shutdown(&self) {
        if let Some(p) = &self.provider {
            let _ = p.shutdown();
        }
    }
}

/// The client's `traceparent` / `tracestate`, to pass on when the gateway does not trace.
pub fn client_trace_headers(req: &RequestHeader) -> Vec<(&'static str, http::HeaderValue)> {
    TRACE_HEADERS
        .iter()
        .filter_map(|name| req.headers.get(*name).map(|v| (*name, v.clone())))
        .collect()
}

/// Sets attributes on the span of `cx`.
pub fn set(cx: &Context, attrs: impl IntoIterator<Item = KeyValue>) {
    let span = cx.span();
    for kv in attrs {
        span.set_attribute(kv);
    }
}

struct HeaderExtractor<'a>(&'a RequestHeader);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.headers.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.headers.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderInjector<'a>(&'a mut RequestHeader);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let Ok(name) = http::HeaderName::from_bytes(key.as_bytes()) {
            let _ = self.0.insert_header(name, value);
        }
    }
}

/// The OTLP exporter's HTTP client: the workspace's `reqwest` on a one-thread runtime of its
/// own (the SDK's batch thread is not a tokio thread).
#[derive(Debug, Clone)]
struct ExportClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl ExportClient {
    fn start() -> Result<Self, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("sluice-otlp".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = tx.send(Ok(rt.handle().clone()));
                rt.block_on(std::future::pending::<()>());
            })
            .map_err(|e| e.to_string())?;
        let runtime = rx.recv().map_err(|e| e.to_string())??;
        // reqwest panics without a process-wide rustls provider; the binary installs ring
        // first, embedders may not have.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(ExportClient { http, runtime })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let http = self.http.clone();
        let task = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let mut req = http.request(parts.method, parts.uri.to_string()).body(body);
            for (k, v) in &parts.headers {
                req = req.header(k, v);
            }
            let resp = req.send().await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        });
        let (status, body) = task.await??;
        let mut resp = http::Response::new(body);
        *resp.status_mut() = status;
        Ok(resp)
    }
}

/// Span name of an MCP request, following the MCP semantic conventions:
/// `{mcp.method.name} {target}`.
pub fn span_name(method: &str, target: Option<&str>) -> String {
    match target {
        Some(t) => format!("{method} {t}"),
        None => method.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt;
    use pingora::http::RequestHeader;
    use sluice_config::TelemetryConfig;

    use super::Telemetry;

    fn telemetry(ratio: f64) -> Telemetry {
        Telemetry::new(&TelemetryConfig {
            otlp_endpoint: Some("http://127.0.0.1:9/v1/traces".parse().unwrap()),
            sampling_ratio: ratio,
            ..TelemetryConfig::default()
        })
        .unwrap()
    }

    fn request(traceparent: Option<&str>) -> RequestHeader {
        let mut req = RequestHeader::build("POST", b"/mcp/g", None).unwrap();
        if let Some(t) = traceparent {
            req.insert_header("traceparent", t).unwrap();
        }
        req
    }

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    /// The exporter needs a runtime to be built in.
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn the_decision_follows_the_clients_flag_else_the_ratio() {
        let rt = runtime();
        let _guard = rt.enter();
        let (always, never) = (telemetry(1.0), telemetry(0.0));
        let sampled = format!("00-{TRACE}-00f067aa0ba902b7-01");
        let unsampled = format!("00-{TRACE}-00f067aa0ba902b7-00");

        let cx = always
            .start_request(&request(None))
            .expect("a new trace at ratio 1");
        assert!(cx.span().is_recording());
        assert!(never.start_request(&request(None)).is_none());

        let cx = never
            .start_request(&request(Some(&sampled)))
            .expect("a sampled client trace is followed whatever the ratio");
        assert_eq!(cx.span().span_context().trace_id().to_string(), TRACE);
        assert!(always.start_request(&request(Some(&unsampled))).is_none());

        // A malformed traceparent is no parent: the ratio decides a new trace.
        let cx = always
            .start_request(&request(Some("00-garbage")))
            .expect("a new trace");
        assert_ne!(cx.span().span_context().trace_id().to_string(), TRACE);
        assert!(never.start_request(&request(Some("00-garbage"))).is_none());
    }

    #[test]
    fn a_ratio_samples_about_that_share_of_new_traces() {
        let rt = runtime();
        let _guard = rt.enter();
        let t = telemetry(0.25);
        let req = request(None);
        let n = (0..4000)
            .filter(|_| t.start_request(&req).is_some())
            .count();
        // 1000 expected; the bounds are 7 standard deviations (27) either side.
        assert!((800..=1200).contains(&n), "{n} of 4000 sampled at 0.25");
    }
}
