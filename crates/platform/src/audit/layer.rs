//! [`AuditLayer`]: one `security.accessDenied` record for every call the server answers
//! `UNAUTHENTICATED` or `PERMISSION_DENIED`, whichever service or check refused it.
//!
//! The layer wraps the whole server (`Server::builder().layer(AuditLayer::new(auditor))`)
//! and so sees every call's method path, peer address and answer. It hands the call a
//! [`CallerSlot`] that the [`AuthInterceptor`](crate::auth::AuthInterceptor) fills with the
//! authenticated [`Caller`]; the caller notes the tenant the handler checked it against
//! ([`Caller::require_tenant`]), so the record lands in that tenant's audit trail.
//! Refusals are answered before their record is stored if the stream takes longer than
//! [`DENIAL_WAIT`](super::DENIAL_WAIT).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tonic::codegen::{http, Service};
use tonic::transport::server::TcpConnectInfo;
use tonic::{Code, Status};

use super::{denial_record, Auditor};
use crate::auth::Caller;

/// Where the interceptor leaves the caller it authenticated, for the layer to read once
/// the call is answered.
#[derive(Clone, Default, Debug)]
pub struct CallerSlot(Arc<Mutex<Option<Caller>>>);

impl CallerSlot {
    pub fn fill(&self, caller: &Caller) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(caller.clone());
    }

    pub fn get(&self) -> Option<Caller> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Records refused calls; see the module documentation.
#[derive(Clone, Debug)]
pub struct AuditLayer {
    auditor: Auditor,
}

impl AuditLayer {
    pub fn new(auditor: Auditor) -> Self {
        Self { auditor }
    }
}

impl<S> tower_layer::Layer<S> for AuditLayer {
    type Service = AuditedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuditedService {
            inner,
            auditor: self.auditor.clone(),
        }
    }
}

/// The service [`AuditLayer`] makes.
#[derive(Clone, Debug)]
pub struct AuditedService<S> {
    inner: S,
    auditor: Auditor,
}

impl<S, B, R> Service<http::Request<B>> for AuditedService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let slot = CallerSlot::default();
        request.extensions_mut().insert(slot.clone());
        let method = request.uri().path().to_string();
        let source = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr);
        // The clone that was driven to readiness serves this call (tower's usual dance).
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let auditor = self.auditor.clone();
        Box::pin(async move {
            let response = inner.call(request).await?;
            if let Some(status) = Status::from_header_map(response.headers()) {
                if matches!(
                    status.code(),
                    Code::Unauthenticated | Code::PermissionDenied
                ) {
                    let caller = slot.get();
                    let asked = caller.as_ref().and_then(Caller::asked_tenant);
                    let record =
                        denial_record(asked.as_deref(), caller.as_ref(), source, &method, &status);
                    auditor.deny(record).await;
                }
            }
            Ok(response)
        })
    }
}
