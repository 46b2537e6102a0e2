//! Building blocks every Gloss binary shares: the coordinator's configuration (file, `GLOSS_*`
//! environment and flags, validated once at start-up), the settings of loopback groups for tests
//! and benchmarks, and telemetry (structured `tracing` logs, OTLP trace export when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
//!
//! Depends on nothing else in Gloss. It must never hold business logic or open network
//! connections other than the OTLP exporter the operator configured.

pub mod config;
pub mod loopback;
pub mod oidc;
pub mod stages;
pub mod telemetry;

/// Version of this Gloss build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
