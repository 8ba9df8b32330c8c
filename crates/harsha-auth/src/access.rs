//! Deciding whether a call may proceed: what an RPC requires (from its
//! `(harsha.type.v1.required_scope)` option), who the caller is (an access
//! token checked by the [`Verifier`], or an API key checked by a
//! [`KeyChecker`]), and the answer: the caller's [`Principal`], or
//! UNAUTHENTICATED (no or bad credential) or PERMISSION_DENIED (a good
//! credential without the scope, or a key used from outside its networks).
//! The tower layer in `harsha-mesh` applies this to every server.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use chrono::Utc;
use quick_cache::sync::Cache;

use crate::{AuthError, api_keys::KeyPrincipal, domain::Scope, verifier::Verifier};

/// The metadata an API key travels in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The token of an `authorization: Bearer <token>` value.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// What an RPC requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Nothing: anyone may call it.
    Public,
    /// Any valid credential.
    Authenticated,
    /// A credential holding this scope.
    Scope(Scope),
}

impl std::str::FromStr for Requirement {
    type Err = harsha_types::ValueError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "public" => Ok(Self::Public),
            "authenticated" => Ok(Self::Authenticated),
            scope => scope.parse().map(Self::Scope),
        }
    }
}

impl Requirement {
    /// What the RPC at `path` (`/package.Service/Method`) requires; `None`
    /// for paths that are not Harsha RPCs (health, reflection).
    pub fn of_path(path: &str) -> Option<Self> {
        let named = harsha_proto::access::required_scope(path)?;
        // Every name is checked by a test; an unreadable one protects the
        // RPC as tightly as possible instead of opening it.
        Some(named.parse().unwrap_or(Self::Scope(Scope::AuthAdmin)))
    }
}

/// How a caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An access token, by its id.
    Token {
        /// The token's `jti`.
        jti: String,
    },
    /// An API key, by its id.
    ApiKey {
        /// The key's id.
        key_id: String,
    },
}

/// Who is calling, once checked; the layer puts it in the request's
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's id.
    pub user_id: String,
    /// The user's login name (recorded as the actor of changes).
    pub username: String,
    /// The scopes the credential carries.
    pub scopes: Vec<String>,
    /// The rate-limit plan.
    pub plan: String,
    /// How it was proved.
    pub credential: Credential,
}

impl Principal {
    /// The principal an access token's claims describe.
    pub fn from_claims(claims: &crate::tokens::Claims) -> Self {
        Self {
            user_id: claims.sub.clone(),
            username: claims.preferred_username.clone(),
            scopes: claims.scopes.clone(),
            plan: claims.plan.clone(),
            credential: Credential::Token {
                jti: claims.jti.clone(),
            },
        }
    }

    /// Whether the credential carries `scope`.
    pub fn holds(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| s == scope.as_str())
    }
}

/// Checks API keys (in process, or through the Auth service).
#[async_trait]
pub trait KeyChecker: Send + Sync + 'static {
    /// Who the key is, if it may be used from `client`.
    async fn check(&self, key: &str, client: Option<IpAddr>) -> Result<KeyPrincipal, AuthError>;
}

#[async_trait]
impl KeyChecker for crate::api_keys::ApiKeys {
    async fn check(&self, key: &str, client: Option<IpAddr>) -> Result<KeyPrincipal, AuthError> {
        self.authenticate(key, client, None, Utc::now()).await
    }
}

/// How long a key checked through the Auth service is trusted here.
const REMOTE_KEY_TTL: Duration = Duration::from_secs(30);
/// How long a key checked earlier keeps working, as last checked, while
/// the Auth service cannot answer (as [`crate::api_keys::KEY_STALE_GRACE`]
/// in the Auth service itself).
const REMOTE_KEY_STALE_GRACE: Duration = crate::api_keys::KEY_STALE_GRACE;

/// API keys checked by the Auth service's `AuthenticateApiKey`, with the
/// answers kept [`REMOTE_KEY_TTL`] per key and client address.
pub struct GrpcKeyChecker {
    client: harsha_proto::harsha::auth::v1::auth_service_client::AuthServiceClient<
        tonic::transport::Channel,
    >,
    cache: Cache<(String, Option<IpAddr>), (Instant, Arc<KeyPrincipal>)>,
}

impl GrpcKeyChecker {
    /// A checker calling the Auth service at `endpoint` (connected lazily).
    pub fn new(endpoint: &str) -> Result<Self, AuthError> {
        let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| AuthError::invalid("auth.endpoint", e))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self {
            client: harsha_proto::harsha::auth::v1::auth_service_client::AuthServiceClient::new(
                channel,
            ),
            cache: Cache::new(10_000),
        })
    }
}

#[async_trait]
impl KeyChecker for GrpcKeyChecker {
    async fn check(&self, key: &str, client: Option<IpAddr>) -> Result<KeyPrincipal, AuthError> {
        let cache_key = (key.to_owned(), client);
        let earlier = self.cache.get(&cache_key);
        if let Some((at, principal)) = &earlier
            && at.elapsed() < REMOTE_KEY_TTL
        {
            return Ok(principal.as_ref().clone());
        }
        let request = harsha_proto::harsha::auth::v1::AuthenticateApiKeyRequest {
            key: key.to_owned(),
            client_address: client.map(|ip| ip.to_string()).unwrap_or_default(),
            required_scope: String::new(),
        };
        let reply = match self.client.clone().authenticate_api_key(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => {
                return Err(match status.code() {
                    tonic::Code::Unauthenticated | tonic::Code::InvalidArgument => {
                        AuthError::InvalidToken
                    }
                    tonic::Code::PermissionDenied => AuthError::AddressNotAllowed,
                    _ => match earlier {
                        Some((at, principal)) if at.elapsed() < REMOTE_KEY_STALE_GRACE => {
                            tracing::warn!(
                                code = ?status.code(),
                                "the auth service could not check an API key; using its last answer"
                            );
                            return Ok(principal.as_ref().clone());
                        }
                        _ => AuthError::Unavailable(format!(
                            "the auth service could not check the API key: {}",
                            status.message()
                        )),
                    },
                });
            }
        };
        let principal = KeyPrincipal {
            key_id: reply.key_id,
            user_id: reply.user_id,
            username: reply.username,
            scopes: reply.scopes.iter().filter_map(|s| s.parse().ok()).collect(),
            plan: reply.rate_limit_plan,
        };
        self.cache
            .insert(cache_key, (Instant::now(), Arc::new(principal.clone())));
        Ok(principal)
    }
}

/// Where the checks come from: the token verifier (once it has loaded) and
/// the key checker.
pub struct Gatekeeper {
    verifier: Arc<std::sync::OnceLock<Arc<Verifier>>>,
    keys: Arc<dyn KeyChecker>,
}

impl Gatekeeper {
    /// A gatekeeper using the verifier in `verifier` once it is set.
    pub fn new(
        verifier: Arc<std::sync::OnceLock<Arc<Verifier>>>,
        keys: Arc<dyn KeyChecker>,
    ) -> Self {
        Self { verifier, keys }
    }

    /// Whether the token verifier has loaded.
    pub fn is_ready(&self) -> bool {
        self.verifier.get().is_some()
    }

    /// Checks the caller against `requirement`. `bearer` is the token of
    /// an `authorization: Bearer` header, `api_key` the `x-api-key` value,
    /// `client` the caller's address.
    pub async fn admit(
        &self,
        requirement: Requirement,
        bearer: Option<&str>,
        api_key: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<Option<Principal>, AuthError> {
        let principal = match (bearer, api_key) {
            (Some(token), _) => {
                let verifier = self.verifier.get().ok_or_else(|| {
                    AuthError::Unavailable("token keys are not loaded yet".into())
                })?;
                let claims = verifier.verify(token, Utc::now()).await?;
                Some(Principal::from_claims(&claims))
            }
            (None, Some(key)) => {
                let key = self.keys.check(key, client).await?;
                Some(Principal {
                    scopes: key.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
                    user_id: key.user_id,
                    username: key.username,
                    plan: key.plan,
                    credential: Credential::ApiKey { key_id: key.key_id },
                })
            }
            (None, None) => None,
        };
        match (requirement, principal) {
            (Requirement::Public, principal) => Ok(principal),
            (_, None) => Err(AuthError::MissingToken),
            (Requirement::Authenticated, principal) => Ok(principal),
            (Requirement::Scope(scope), Some(principal)) => {
                if principal.holds(scope) {
                    Ok(Some(principal))
                } else {
                    Err(AuthError::PermissionDenied(scope.as_str()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }

    #[test]
    fn every_rpc_names_a_scope_that_exists() {
        for (path, named) in harsha_proto::access::METHOD_SCOPES {
            assert!(named.parse::<Requirement>().is_ok(), "{path}: {named:?}");
        }
        assert_eq!(
            Requirement::of_path("/harsha.customer.v1.CustomerService/GetSegment"),
            Some(Requirement::Scope(Scope::CustomerRead))
        );
        assert_eq!(
            Requirement::of_path("/harsha.auth.v1.AuthService/Login"),
            Some(Requirement::Public)
        );
        assert_eq!(Requirement::of_path("/grpc.health.v1.Health/Check"), None);
    }
}
