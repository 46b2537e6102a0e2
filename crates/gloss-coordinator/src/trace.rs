//! Server spans for gRPC requests, joined to the caller's trace through the W3C trace context
//! in the request metadata (`traceparent`).

use tracing::Instrument as _;

type BoxBody = tonic::body::BoxBody;

/// Which requests get a span.
#[derive(Clone, Copy, Debug)]
pub enum Spans {
    /// Every request (the public port).
    All,
    /// Only requests that carry a trace context (the internal port, where Raft heartbeats and
    /// worker heartbeats would otherwise make a root span each).
    Traced,
}

/// A span per request: `Around::new(Trace::new(spans))`.
#[derive(Clone, Copy, Debug)]
pub struct Trace {
    spans: Spans,
}

impl Trace {
    pub fn new(spans: Spans) -> Trace {
        Trace { spans }
    }
}

impl crate::around::Wrap for Trace {
    fn wrap<S>(&self, mut inner: S, req: http::Request<BoxBody>) -> crate::around::Reply<S::Error>
    where
        S: tower_service::Service<http::Request<BoxBody>, Response = http::Response<BoxBody>>
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let headers = req.headers();
        let traced = headers.contains_key("traceparent");
        if !traced && matches!(self.spans, Spans::Traced) {
            return Box::pin(inner.call(req));
        }
        // `/gloss.v1.DatasetService/ImportExamples` → `gloss.v1.DatasetService/ImportExamples`.
        let method = req.uri().path().trim_start_matches('/').to_string();
        let span = tracing::info_span!(
            "grpc request",
            otel.name = %method,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.method = %method,
        );
        gloss_core::telemetry::set_remote_parent(&span, |key| {
            headers.get(key).and_then(|v| v.to_str().ok())
        });
        Box::pin(inner.call(req).instrument(span))
    }
}
