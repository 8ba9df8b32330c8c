//! [`AccessLayer`]: checks every call to a Harsha RPC against the scope its
//! contract requires, before the service sees it.
//!
//! The credential is an access token (`authorization: Bearer <jwt>`) or an
//! API key (`x-api-key`, checked against the caller's TCP address). A call
//! without one answers UNAUTHENTICATED, one with a bad one UNAUTHENTICATED,
//! one whose credential lacks the scope (or whose key is used from outside
//! its networks) PERMISSION_DENIED. An admitted call carries its
//! [`Principal`] in the request extensions, and `x-harsha-user` is set to
//! the principal's login name, replacing whatever the caller sent, so the
//! actor recorded on changes cannot be forged. Paths that are not Harsha
//! RPCs (health checking, reflection) pass untouched.

use std::{
    net::IpAddr,
    sync::Arc,
    task::{Context, Poll},
};

use harsha_auth::access::{API_KEY_HEADER, Gatekeeper, Principal, Requirement, bearer_token};
use http::{HeaderValue, Request, Response};
use tonic::{Status, body::Body, transport::server::TcpConnectInfo};
use tower::{Layer, Service};

/// The metadata the services read their actor from.
const ACTOR_HEADER: &str = "x-harsha-user";

/// The RBAC layer: on when `enforce`, a pass-through otherwise.
#[derive(Clone)]
pub struct AccessLayer {
    gatekeeper: Option<Arc<Gatekeeper>>,
}

impl AccessLayer {
    /// A layer admitting calls through `gatekeeper`.
    pub fn enforcing(gatekeeper: Arc<Gatekeeper>) -> Self {
        Self {
            gatekeeper: Some(gatekeeper),
        }
    }

    /// A layer that admits every call as it comes (development only).
    pub fn open() -> Self {
        Self { gatekeeper: None }
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = Access<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Access {
            inner,
            gatekeeper: self.gatekeeper.clone(),
        }
    }
}

/// The service [`AccessLayer`] wraps around a server's routes.
#[derive(Clone)]
pub struct Access<S> {
    inner: S,
    gatekeeper: Option<Arc<Gatekeeper>>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> Service<Request<B>> for Access<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The ready service handles this call; a fresh clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let requirement = Requirement::of_path(request.uri().path());
        let (Some(gatekeeper), Some(requirement)) = (self.gatekeeper.clone(), requirement) else {
            return Box::pin(inner.call(request));
        };
        Box::pin(async move {
            let headers = request.headers();
            let bearer = headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer_token)
                .map(str::to_owned);
            let api_key = headers
                .get(API_KEY_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty());
            let client = client_address(&request);
            let admitted = gatekeeper
                .admit(requirement, bearer.as_deref(), api_key.as_deref(), client)
                .await;
            request.headers_mut().remove(ACTOR_HEADER);
            match admitted {
                Ok(principal) => {
                    if let Some(principal) = principal {
                        admit(&mut request, principal);
                    }
                    inner.call(request).await
                }
                Err(error) => {
                    let path = request.uri().path();
                    tracing::info!(%path, %error, "call refused");
                    Ok(Status::from(error).into_http())
                }
            }
        })
    }
}

/// Records the principal on the request: in its extensions, and as the
/// actor the services record.
fn admit<B>(request: &mut Request<B>, principal: Principal) {
    if let Ok(actor) = HeaderValue::from_str(&principal.username)
        && !principal.username.is_empty()
    {
        request.headers_mut().insert(ACTOR_HEADER, actor);
    }
    request.extensions_mut().insert(principal);
}

/// The caller's address, as the TCP connection shows it.
fn client_address<B>(request: &Request<B>) -> Option<IpAddr> {
    request
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .map(|address| address.ip())
}
