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
//!
//! The caller's address (what an API key's allow-list is checked against)
//! is the TCP peer's, unless the peer is a trusted proxy — the edge — in
//! which case it is the address the proxy saw, from `x-forwarded-for`.
//! Anyone else's `x-forwarded-for` is ignored, so it cannot be used to slip
//! past an allow-list.

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
/// The address the edge saw a request come from.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// The RBAC layer: on when `enforce`, a pass-through otherwise.
#[derive(Clone)]
pub struct AccessLayer {
    gatekeeper: Option<Arc<Gatekeeper>>,
    trusted_proxies: Arc<[ipnet::IpNet]>,
}

impl AccessLayer {
    /// A layer admitting calls through `gatekeeper`.
    pub fn enforcing(gatekeeper: Arc<Gatekeeper>) -> Self {
        Self {
            gatekeeper: Some(gatekeeper),
            trusted_proxies: Arc::new([]),
        }
    }

    /// Takes the caller's address from `x-forwarded-for` when the call
    /// comes from one of `networks` (where the edge runs).
    #[must_use]
    pub fn trusting_proxies(mut self, networks: Vec<ipnet::IpNet>) -> Self {
        self.trusted_proxies = networks.into();
        self
    }

    /// A layer that admits every call as it comes (development only).
    pub fn open() -> Self {
        Self {
            gatekeeper: None,
            trusted_proxies: Arc::new([]),
        }
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = Access<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Access {
            inner,
            gatekeeper: self.gatekeeper.clone(),
            trusted_proxies: Arc::clone(&self.trusted_proxies),
        }
    }
}

/// The service [`AccessLayer`] wraps around a server's routes.
#[derive(Clone)]
pub struct Access<S> {
    inner: S,
    gatekeeper: Option<Arc<Gatekeeper>>,
    trusted_proxies: Arc<[ipnet::IpNet]>,
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
        let trusted = Arc::clone(&self.trusted_proxies);
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
            let client = client_address(
                peer_address(&request),
                request
                    .headers()
                    .get(FORWARDED_FOR)
                    .and_then(|v| v.to_str().ok()),
                &trusted,
            );
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

/// The TCP peer's address.
fn peer_address<B>(request: &Request<B>) -> Option<IpAddr> {
    request
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .map(|address| address.ip())
}

/// The caller's address: the peer's, or, when the peer is a trusted proxy,
/// the last address in its `x-forwarded-for` (the one it saw itself).
fn client_address(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.iter().any(|net| net.contains(&peer.to_canonical())) {
        return Some(peer);
    }
    forwarded_for
        .and_then(|chain| chain.rsplit(',').next())
        .and_then(|last| last.trim().parse::<IpAddr>().ok())
        .or(Some(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
        list.iter().filter_map(|n| n.parse().ok()).collect()
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        // The edge, on a trusted network, says who it saw.
        assert_eq!(
            client_address(ip("10.1.2.3"), Some("203.0.113.9"), &trusted),
            ip("203.0.113.9")
        );
        // The last hop is the one the edge saw; earlier ones are the
        // client's word.
        assert_eq!(
            client_address(ip("127.0.0.1"), Some("198.51.100.1, 203.0.113.9"), &trusted),
            ip("203.0.113.9")
        );
        // Anyone else's header is ignored.
        assert_eq!(
            client_address(ip("192.0.2.7"), Some("10.9.9.9"), &trusted),
            ip("192.0.2.7")
        );
        // A trusted peer with no or a bad header is itself.
        assert_eq!(
            client_address(ip("10.1.2.3"), None, &trusted),
            ip("10.1.2.3")
        );
        assert_eq!(
            client_address(ip("10.1.2.3"), Some("nonsense"), &trusted),
            ip("10.1.2.3")
        );
        // An IPv4 peer seen as IPv6 is the IPv4 one.
        assert_eq!(
            client_address(ip("::ffff:127.0.0.1"), Some("203.0.113.9"), &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(client_address(None, Some("203.0.113.9"), &trusted), None);
    }
}
