//! Logging and tracing set-up for Gloss binaries.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;

/// Keeps the OTLP exporter alive; flushes pending spans when dropped.
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::TracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("gloss: flushing traces failed: {e}");
            }
        }
    }
}

/// Installs the global subscriber: human-readable logs on stderr filtered by `GLOSS_LOG` (or
/// `RUST_LOG`, default `info`), plus OTLP export over gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is
/// set. Must be called inside a Tokio runtime when OTLP is enabled.
pub fn init(service: &'static str) -> Telemetry {
    init_with(service, "info,openraft=warn,h2=warn,tower=warn")
}

/// [`init`] with another default log filter (command-line tools log warnings only).
pub fn init_with(service: &'static str, default_filter: &str) -> Telemetry {
    let filter = std::env::var("GLOSS_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| default_filter.into());
    // Each layer has its own filter: quieter logs must not switch traces off.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(EnvFilter::new(filter));
    let registry = tracing_subscriber::registry().with(fmt);
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty());
    let Some(endpoint) = endpoint else {
        let _ = registry.try_init();
        return Telemetry { provider: None };
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build();
    match exporter {
        Ok(exporter) => {
            let provider = opentelemetry_sdk::trace::TracerProvider::builder()
                .with_batch_exporter(exporter, opentelemetry_sdk::runtime::Tokio)
                .with_resource(opentelemetry_sdk::Resource::new([
                    opentelemetry::KeyValue::new("service.name", service),
                ]))
                .build();
            let tracer = provider.tracer(service);
            // Gloss's own spans; the transport crates (the exporter among them) stay out, so that
            // exporting spans never makes spans.
            let spans = EnvFilter::new(
                "info,h2=off,hyper=off,hyper_util=off,tonic=off,tower=off,opentelemetry=off,\
                 opentelemetry_sdk=off,opentelemetry_otlp=off,openraft=off",
            );
            let _ = registry
                .with(
                    tracing_opentelemetry::layer()
                        .with_tracer(tracer)
                        .with_filter(spans),
                )
                .try_init();
            tracing::debug!(%endpoint, "exporting traces over OTLP");
            Telemetry {
                provider: Some(provider),
            }
        }
        Err(e) => {
            let _ = registry.try_init();
            tracing::error!(%endpoint, error = %e, "cannot set up OTLP export; traces stay local");
            Telemetry { provider: None }
        }
    }
}

struct Carrier<'a>(&'a mut HashMap<String, String>);

impl Injector for Carrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
}

struct Headers<'a, F: Fn(&str) -> Option<&'a str>>(F, std::marker::PhantomData<&'a ()>);

impl<'a, F: Fn(&str) -> Option<&'a str>> Extractor for Headers<'a, F> {
    fn get(&self, key: &str) -> Option<&str> {
        (self.0)(key)
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// W3C trace context headers (`traceparent`, `tracestate`) of the current span, for an outgoing
/// request or a record that a later span should join. Empty when no trace is being exported.
pub fn current_context() -> HashMap<String, String> {
    let mut headers = HashMap::new();
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut Carrier(&mut headers));
    headers
}

/// Adds the current span's trace context to an outgoing gRPC request's metadata.
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    for (key, value) in current_context() {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            metadata.insert(key, value);
        }
    }
}

/// Makes `span` a child of the remote span named by the trace context headers `get` returns
/// (an incoming request's metadata, or context stored with a record). Without them, `span`
/// keeps its local parent.
pub fn set_remote_parent<'a>(span: &tracing::Span, get: impl Fn(&str) -> Option<&'a str>) {
    if get("traceparent").is_none() {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&Headers(get, std::marker::PhantomData));
    span.set_parent(cx);
}
