//! The `LlmProvider` trait and its object-safe wrapper.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::error::Result;
use crate::types::{Delta, Request, Response};

/// Receives the ephemeral pieces of a response as they stream in.
pub type DeltaSink<'a> = &'a (dyn Fn(Delta) + Send + Sync);

/// A model behind some API.
///
/// `complete` sends one request and returns the whole response, calling `on_delta`
/// with text as it streams in. It returns a response only when the provider sent a
/// complete one: a stream cut in the middle is retried as a whole or reported as an
/// error, never returned as if complete. Retries of transient faults happen inside.
pub trait LlmProvider: Send + Sync + 'static {
    /// A short name for logs and the event log (`anthropic`, `openai`, `scripted`).
    fn name(&self) -> &str;

    /// Sends `request`, streaming deltas to `on_delta`, and returns the complete response.
    fn complete<'a>(
        &'a self,
        request: &'a Request,
        on_delta: DeltaSink<'a>,
    ) -> impl Future<Output = Result<Response>> + Send + 'a;
}

/// A shared provider is a provider, so a test can keep an `Arc` to read a
/// [`Scripted`](crate::Scripted) provider's counters while the engine holds a clone.
impl<P: LlmProvider> LlmProvider for Arc<P> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn complete<'a>(
        &'a self,
        request: &'a Request,
        on_delta: DeltaSink<'a>,
    ) -> impl Future<Output = Result<Response>> + Send + 'a {
        (**self).complete(request, on_delta)
    }
}

/// The object-safe form of [`LlmProvider`]; use [`SharedProvider`] to hold one.
pub trait DynLlmProvider: Send + Sync + 'static {
    /// See [`LlmProvider::name`].
    fn name_dyn(&self) -> &str;
    /// See [`LlmProvider::complete`].
    fn complete_dyn<'a>(
        &'a self,
        request: &'a Request,
        on_delta: DeltaSink<'a>,
    ) -> BoxFuture<'a, Result<Response>>;
}

impl<P: LlmProvider> DynLlmProvider for P {
    fn name_dyn(&self) -> &str {
        self.name()
    }
    fn complete_dyn<'a>(
        &'a self,
        request: &'a Request,
        on_delta: DeltaSink<'a>,
    ) -> BoxFuture<'a, Result<Response>> {
        Box::pin(self.complete(request, on_delta))
    }
}

/// Any provider behind one cheap-to-clone handle.
#[derive(Clone)]
pub struct SharedProvider(Arc<dyn DynLlmProvider>);

impl SharedProvider {
    /// Wraps a provider.
    pub fn new(provider: impl LlmProvider) -> Self {
        Self(Arc::new(provider))
    }
}

impl std::fmt::Debug for SharedProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedProvider({})", self.0.name_dyn())
    }
}

impl LlmProvider for SharedProvider {
    fn name(&self) -> &str {
        self.0.name_dyn()
    }
    fn complete<'a>(
        &'a self,
        request: &'a Request,
        on_delta: DeltaSink<'a>,
    ) -> impl Future<Output = Result<Response>> + Send + 'a {
        self.0.complete_dyn(request, on_delta)
    }
}
