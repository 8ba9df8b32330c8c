//! [`Verifier`]: checks access tokens without a database round trip, for
//! the RBAC layer on every server and for the edge.
//!
//! It keeps the public keys by `kid` and the set of revoked token ids,
//! both fetched from a [`TrustSource`] (the Auth service over gRPC, or the
//! token service in process) and refreshed every few seconds; a token
//! naming a `kid` it does not know makes it fetch the keys again (at most
//! four times a second; a `kid` still unknown afterwards is refused without
//! asking for five seconds). Tokens already verified are kept in a bounded cache, so
//! the same token coming again costs a map lookup and a revocation check;
//! a cached token is never accepted past its expiry or once revoked (so
//! entries need no lifetime of their own; the cache only bounds their
//! number).
//!
//! The signature is checked with ed25519-dalek's `verify_strict` against
//! keys parsed once when fetched (jsonwebtoken parses the key again on
//! every call, which cost a third of the first-sight time); only `EdDSA`
//! with a known `kid` is accepted, then issuer, audience and times.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use quick_cache::sync::Cache;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::{AuthError, tokens::Claims};

/// A public key that verifies tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The key id tokens name.
    pub kid: String,
    /// The Ed25519 public key, base64url (the JWK `x`).
    pub x: String,
}

/// Where a verifier learns the keys and the revocations.
#[async_trait]
pub trait TrustSource: Send + Sync + 'static {
    /// The keys that verify tokens now.
    async fn keys(&self) -> Result<Vec<PublicKey>, AuthError>;
    /// The ids of revoked, unexpired access tokens.
    async fn revoked(&self) -> Result<Vec<String>, AuthError>;
}

/// How a verifier checks and caches.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    /// The `iss` tokens must carry.
    pub issuer: String,
    /// The `aud` tokens must carry.
    pub audience: String,
    /// How many verified tokens are kept.
    pub cache_capacity: u64,
    /// How often keys and revocations are fetched again.
    pub refresh_every: Duration,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        Self {
            issuer: "harsha-auth".into(),
            audience: "harsha-mesh".into(),
            cache_capacity: 100_000,
            refresh_every: Duration::from_secs(5),
        }
    }
}

/// What the verifier currently trusts.
#[derive(Default)]
struct Trust {
    keys: HashMap<String, VerifyingKey>,
    revoked: HashSet<String>,
}

/// The shortest gap between two key fetches caused by unknown `kid`s.
const UNKNOWN_KID_REFETCH: Duration = Duration::from_millis(250);
/// How long a `kid` the Auth service did not know is refused without
/// asking again.
const UNKNOWN_KID_MEMORY: Duration = Duration::from_secs(5);

/// When keys were last fetched for an unknown `kid`, and the `kid`s that
/// were still unknown afterwards.
#[derive(Default)]
struct KeyFetches {
    last: Option<Instant>,
    unknown: HashMap<String, Instant>,
}

/// Checks access tokens against cached keys and revocations.
pub struct Verifier {
    source: Arc<dyn TrustSource>,
    settings: VerifierSettings,
    trust: RwLock<Trust>,
    verified: Cache<String, Arc<Claims>>,
    last_key_fetch: Mutex<KeyFetches>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier that has fetched its keys and revocations once.
    pub async fn load(
        source: Arc<dyn TrustSource>,
        settings: VerifierSettings,
    ) -> Result<Arc<Self>, AuthError> {
        let verifier = Arc::new(Self {
            verified: Cache::new(usize::try_from(settings.cache_capacity).unwrap_or(usize::MAX)),
            source,
            settings,
            trust: RwLock::new(Trust::default()),
            last_key_fetch: Mutex::new(KeyFetches::default()),
        });
        verifier.refresh().await?;
        Ok(verifier)
    }

    /// Fetches keys and revocations again.
    pub async fn refresh(&self) -> Result<(), AuthError> {
        let keys = self.source.keys().await?;
        let revoked = self.source.revoked().await?;
        let keys = decoding_keys(keys);
        let mut trust = self.trust.write().unwrap_or_else(|e| e.into_inner());
        trust.keys = keys;
        trust.revoked = revoked.into_iter().collect();
        Ok(())
    }

    /// Refreshes every `refresh_every` until `shutdown` resolves; a failed
    /// refresh keeps what was trusted and is logged.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(self.settings.refresh_every) => {}
            }
            if let Err(error) = self.refresh().await {
                tracing::warn!(%error, "could not refresh token keys and revocations");
            }
        }
    }

    /// Whether a token id is revoked (as last fetched).
    fn is_revoked(&self, jti: &str) -> bool {
        self.trust
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .revoked
            .contains(jti)
    }

    /// Checks a token with what is cached, without waiting on anything.
    /// `Ok(None)` means its `kid` is unknown (fetch the keys and retry).
    pub fn verify_cached(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Arc<Claims>>, AuthError> {
        if let Some(claims) = self.verified.get(token) {
            if claims.exp <= now.timestamp() || self.is_revoked(&claims.jti) {
                return Err(AuthError::InvalidToken);
            }
            return Ok(Some(claims));
        }
        let (signed, signature) = token.rsplit_once('.').ok_or(AuthError::InvalidToken)?;
        let (header, payload) = signed.split_once('.').ok_or(AuthError::InvalidToken)?;
        let header: Header = decode_part(header)?;
        if header.alg != "EdDSA" {
            return Err(AuthError::InvalidToken);
        }
        let mut raw_signature = [0u8; 64];
        match URL_SAFE_NO_PAD.decode_slice(signature, &mut raw_signature) {
            Ok(64) => {}
            _ => return Err(AuthError::InvalidToken),
        }
        let signature = Signature::from_bytes(&raw_signature);
        {
            let trust = self.trust.read().unwrap_or_else(|e| e.into_inner());
            let Some(key) = trust.keys.get(header.kid.as_str()) else {
                return Ok(None);
            };
            key.verify_strict(signed.as_bytes(), &signature)
                .map_err(|_| AuthError::InvalidToken)?;
        }
        let claims: Claims = decode_part(payload)?;
        let at = now.timestamp();
        let expected = claims.iss == self.settings.issuer && claims.aud == self.settings.audience;
        if !expected || claims.exp <= at || claims.nbf > at || self.is_revoked(&claims.jti) {
            return Err(AuthError::InvalidToken);
        }
        let claims = Arc::new(claims);
        self.verified.insert(token.to_owned(), Arc::clone(&claims));
        Ok(Some(claims))
    }

    /// Checks a token; an unknown `kid` fetches the keys once (a key that
    /// was just rotated in) before the token is refused.
    pub async fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Arc<Claims>, AuthError> {
        if let Some(claims) = self.verify_cached(token, now)? {
            return Ok(claims);
        }
        let kid = jsonwebtoken::decode_header(token)
            .ok()
            .and_then(|header| header.kid)
            .ok_or(AuthError::InvalidToken)?;
        {
            let mut fetches = self.last_key_fetch.lock().await;
            // Another caller may have fetched the key while this one waited.
            if let Some(claims) = self.verify_cached(token, now)? {
                return Ok(claims);
            }
            if fetches
                .unknown
                .get(&kid)
                .is_some_and(|at| at.elapsed() < UNKNOWN_KID_MEMORY)
            {
                return Err(AuthError::InvalidToken);
            }
            // A key just rotated in: fetch, at most four times a second.
            if let Some(since) = fetches.last.map(|at| at.elapsed())
                && since < UNKNOWN_KID_REFETCH
            {
                tokio::time::sleep(UNKNOWN_KID_REFETCH - since).await;
            }
            fetches.last = Some(Instant::now());
            let keys = decoding_keys(self.source.keys().await?);
            let known = keys.contains_key(&kid);
            self.trust.write().unwrap_or_else(|e| e.into_inner()).keys = keys;
            if !known {
                fetches
                    .unknown
                    .retain(|_, at| at.elapsed() < UNKNOWN_KID_MEMORY);
                fetches.unknown.insert(kid, Instant::now());
            }
        }
        self.verify_cached(token, now)?
            .ok_or(AuthError::InvalidToken)
    }
}

/// The JOSE header fields the verifier reads.
#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: String,
}

/// A base64url JSON part of a token.
fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::InvalidToken)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::InvalidToken)
}

fn decoding_keys(keys: Vec<PublicKey>) -> HashMap<String, VerifyingKey> {
    keys.into_iter()
        .filter_map(|key| {
            let parsed = URL_SAFE_NO_PAD
                .decode(&key.x)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok());
            match parsed {
                Some(verifying) => Some((key.kid, verifying)),
                None => {
                    tracing::warn!(kid = %key.kid, "ignoring a key that does not decode");
                    None
                }
            }
        })
        .collect()
}

#[async_trait]
impl TrustSource for crate::tokens::TokenService {
    async fn keys(&self) -> Result<Vec<PublicKey>, AuthError> {
        self.public_keys(Utc::now()).await
    }

    async fn revoked(&self) -> Result<Vec<String>, AuthError> {
        self.revoked_jtis(Utc::now()).await
    }
}

/// Keys and revocations from the Auth service over gRPC (`GetJwks`,
/// `ListRevokedTokens`).
#[derive(Debug, Clone)]
pub struct GrpcTrustSource {
    client: harsha_proto::harsha::auth::v1::auth_service_client::AuthServiceClient<
        tonic::transport::Channel,
    >,
}

impl GrpcTrustSource {
    /// A source calling the Auth service at `endpoint` (connected lazily).
    pub fn new(endpoint: &str) -> Result<Self, AuthError> {
        let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| AuthError::invalid("auth_endpoint", e))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        Ok(Self {
            client: harsha_proto::harsha::auth::v1::auth_service_client::AuthServiceClient::new(
                channel,
            ),
        })
    }
}

fn unreachable_auth(status: tonic::Status) -> AuthError {
    AuthError::Unavailable(format!(
        "the auth service answered {}: {}",
        status.code(),
        status.message()
    ))
}

#[async_trait]
impl TrustSource for GrpcTrustSource {
    async fn keys(&self) -> Result<Vec<PublicKey>, AuthError> {
        use harsha_proto::harsha::auth::v1::GetJwksRequest;
        let reply = self
            .client
            .clone()
            .get_jwks(GetJwksRequest {})
            .await
            .map_err(unreachable_auth)?;
        Ok(reply
            .into_inner()
            .keys
            .into_iter()
            .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
            .map(|k| PublicKey { kid: k.kid, x: k.x })
            .collect())
    }

    async fn revoked(&self) -> Result<Vec<String>, AuthError> {
        use harsha_proto::harsha::auth::v1::ListRevokedTokensRequest;
        let reply = self
            .client
            .clone()
            .list_revoked_tokens(ListRevokedTokensRequest {})
            .await
            .map_err(unreachable_auth)?;
        Ok(reply.into_inner().jtis)
    }
}
