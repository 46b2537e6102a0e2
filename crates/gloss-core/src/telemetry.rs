//! Logging and tracing set-up for Gloss binaries.

use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

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
    let filter = std::env::var("GLOSS_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info,openraft=warn,h2=warn,tower=warn".into());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let registry = tracing_subscriber::registry()
        .with(EnvFilter::new(filter))
        .with(fmt);
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
            let _ = registry
                .with(tracing_opentelemetry::layer().with_tracer(tracer))
                .try_init();
            tracing::info!(%endpoint, "exporting traces over OTLP");
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
