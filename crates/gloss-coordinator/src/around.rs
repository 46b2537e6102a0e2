//! The tower plumbing shared by the layers that wrap every gRPC request of a server
//! (authorization, tracing): a [`Wrap`] gets each request with the inner service, ready to call.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::BoxBody;

/// The future a [`Wrap`] returns.
pub type Reply<E> = Pin<Box<dyn Future<Output = Result<http::Response<BoxBody>, E>> + Send>>;

/// What a layer does around one request.
pub trait Wrap: Clone + Send + Sync + 'static {
    /// Serves `req`, calling `inner` (already polled ready) when it lets the request through.
    fn wrap<S>(&self, inner: S, req: http::Request<BoxBody>) -> Reply<S::Error>
    where
        S: tower_service::Service<http::Request<BoxBody>, Response = http::Response<BoxBody>>
            + Send
            + 'static,
        S::Future: Send + 'static;
}

/// A layer applying `W` to every request.
#[derive(Clone)]
pub struct Around<W> {
    wrap: W,
}

impl<W> Around<W> {
    pub fn new(wrap: W) -> Around<W> {
        Around { wrap }
    }
}

impl<S, W: Clone> tower_layer::Layer<S> for Around<W> {
    type Service = Wrapped<S, W>;

    fn layer(&self, inner: S) -> Wrapped<S, W> {
        Wrapped {
            inner,
            wrap: self.wrap.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Wrapped<S, W> {
    inner: S,
    wrap: W,
}

impl<S, W> tower_service::Service<http::Request<BoxBody>> for Wrapped<S, W>
where
    S: tower_service::Service<http::Request<BoxBody>, Response = http::Response<BoxBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    W: Wrap,
{
    type Response = http::Response<BoxBody>;
    type Error = S::Error;
    type Future = Reply<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<BoxBody>) -> Self::Future {
        // The clone that was polled ready is the one that serves this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        self.wrap.wrap(inner, req)
    }
}
