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
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                cfg.sampling_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(cfg.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("sluice");
        Ok(Telemetry {
            tracer: Some(tracer),
            provider: Some(provider),
            propagator,
        })
    }

    /// Starts the server span of a request, continuing the client's trace context.
    pub fn start_request(&self, req: &RequestHeader) -> Option<Context> {
        let tracer = self.tracer.as_ref()?;
        let parent = self.propagator.extract(&HeaderExtractor(req));
        let span = tracer
            .span_builder("mcp")
            .with_kind(SpanKind::Server)
            .start_with_context(tracer, &parent);
        Some(parent.with_span(span))
    }

    /// A child span of `parent` (ended when the returned context's span is ended); `None`
    /// when the parent is not sampled, so an unsampled request builds no further spans.
    pub fn child(&self, parent: &Context, name: &'static str, kind: SpanKind) -> Option<Context> {
        let tracer = self.tracer.as_ref()?;
        if !parent.span().is_recording() {
            return None;
        }
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
