//! Access and refresh tokens.
//!
//! - **Access tokens** are JWTs signed with Ed25519 (`alg: EdDSA`), with a
//!   `kid` header naming the signing key; claims `sub`, `preferred_username`, `roles`, `scopes`,
//!   `plan`, `jti`, `iat`, `nbf`, `exp`, `iss`, `aud`. Verification accepts
//!   only EdDSA with a known `kid` (no `none`, no HMAC with a public key),
//!   checks issuer, audience and times, then the revocation list.
//! - **Signing keys** rotate: the newest active key signs; a retired key
//!   keeps verifying until the tokens it signed have expired. The public
//!   keys are served as a JWKS.
//! - **Refresh tokens** are 256 random bits, given to the client once and
//!   stored as a SHA-256 hash. Each refresh retires the token and issues a
//!   new pair in the same family; presenting a retired token again revokes
//!   the whole family (it was stolen, or the client is confused).

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey};
use harsha_store::{PgDialect, PgPool, pg_dispatch};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    jwk::{
        AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
        OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
    },
};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::{
    AuthError,
    domain::{Role, scopes_of},
    store::{
        User, UserStatus, UserStore,
        revocation::{
            ACCESS_OF_FAMILY, ACCESS_OF_USER, REFRESH_OF_FAMILY, REFRESH_OF_USER, revoke,
        },
    },
};

/// Revokes an access token by id (once: a second revocation keeps the
/// first's time and reason).
const REVOKE_JTI: &str = "INSERT INTO revoked_access_tokens (jti, user_id, expires_at, revoked_at, reason) \
     SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = $1)";

/// The access token presented with a logout, ended with its session.
#[derive(Debug, Clone, Copy)]
pub struct PresentedAccess<'a> {
    /// Its id.
    pub jti: &'a str,
    /// Whose it is.
    pub user_id: &'a str,
}
/// Token lifetimes and the names tokens carry.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// The `iss` claim.
    pub issuer: String,
    /// The `aud` claim.
    pub audience: String,
    /// How long an access token lives.
    pub access_ttl: Duration,
    /// How long a refresh token lives.
    pub refresh_ttl: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            issuer: "harsha-auth".into(),
            audience: "harsha-mesh".into(),
            access_ttl: Duration::minutes(15),
            refresh_ttl: Duration::days(30),
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: String,
    /// The user's login name.
    #[serde(default)]
    pub preferred_username: String,
    /// The user's roles.
    pub roles: Vec<String>,
    /// The scopes the roles grant.
    pub scopes: Vec<String>,
    /// The rate-limit plan.
    pub plan: String,
    /// The token's id.
    pub jti: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
}

/// A new pair of tokens.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// The signed access token.
    pub access_token: String,
    /// Its claims.
    pub claims: Claims,
    /// The opaque refresh token (shown once, stored only as a hash).
    pub refresh_token: String,
    /// When the refresh token expires.
    pub refresh_expires_at: DateTime<Utc>,
}

/// A signing key as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
struct KeyRow {
    kid: String,
    private_key: String,
    public_key: String,
    active: bool,
}

fn hash_refresh(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn internal(error: impl std::fmt::Display) -> AuthError {
    AuthError::Store(harsha_store::StoreError::Sql(sqlx::Error::Protocol(
        error.to_string(),
    )))
}

/// Issues, refreshes, verifies and revokes tokens on a `gateway` database.
#[derive(Debug, Clone)]
pub struct TokenService {
    pool: PgPool,
    settings: TokenSettings,
}

impl TokenService {
    /// A token service on `pool` (migrated).
    pub fn new(pool: PgPool, settings: TokenSettings) -> Self {
        Self { pool, settings }
    }

    async fn keys(&self, now: DateTime<Utc>) -> Result<Vec<KeyRow>, AuthError> {
        let rows: Vec<KeyRow> = pg_dispatch!(&self.pool, pool => {
            sqlx::query_as(
                "SELECT kid, private_key, public_key, active FROM signing_keys \
                 WHERE verify_until IS NULL OR verify_until > $1 ORDER BY created_at DESC, kid DESC",
            )
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Makes a new signing key the one that signs; older active keys stop
    /// signing and keep verifying for one access-token lifetime. Returns
    /// the new key's id.
    pub async fn rotate_keys(&self, now: DateTime<Utc>) -> Result<String, AuthError> {
        let signing = SigningKey::generate(&mut OsRng);
        let private = signing.to_pkcs8_der().map_err(internal)?;
        let private = URL_SAFE_NO_PAD.encode(private.as_bytes());
        let public = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
        let kid = Uuid::now_v7().simple().to_string();
        let until = now + self.settings.access_ttl + Duration::minutes(1);
        pg_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("UPDATE signing_keys SET active = $1, verify_until = $2 WHERE active = $3")
                .bind(false)
                .bind(until)
                .bind(true)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO signing_keys (kid, algorithm, private_key, public_key, created_at, active) \
                 VALUES ($1, 'EdDSA', $2, $3, $4, $5)",
            )
            .bind(&kid)
            .bind(&private)
            .bind(&public)
            .bind(now)
            .bind(true)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(kid)
    }

    /// The public keys that verify tokens now.
    pub async fn public_keys(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::verifier::PublicKey>, AuthError> {
        Ok(self
            .keys(now)
            .await?
            .into_iter()
            .map(|key| crate::verifier::PublicKey {
                kid: key.kid,
                x: key.public_key,
            })
            .collect())
    }

    /// The public keys that verify tokens now, as a JWKS.
    pub async fn jwks(&self, now: DateTime<Utc>) -> Result<JwkSet, AuthError> {
        let keys = self.keys(now).await?;
        Ok(JwkSet {
            keys: keys
                .into_iter()
                .map(|key| Jwk {
                    common: CommonParameters {
                        public_key_use: Some(PublicKeyUse::Signature),
                        key_algorithm: Some(KeyAlgorithm::EdDSA),
                        key_id: Some(key.kid),
                        ..CommonParameters::default()
                    },
                    algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                        key_type: OctetKeyPairType::OctetKeyPair,
                        curve: EllipticCurve::Ed25519,
                        x: key.public_key,
                    }),
                })
                .collect(),
        })
    }

    fn sign(
        &self,
        user: &User,
        key: &KeyRow,
        now: DateTime<Utc>,
    ) -> Result<(String, Claims), AuthError> {
        let roles: Vec<Role> = user.roles.clone();
        let claims = Claims {
            sub: user.id.clone(),
            preferred_username: user.username.clone(),
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
            scopes: scopes_of(&roles)
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            plan: user.plan.clone(),
            jti: Uuid::now_v7().to_string(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: (now + self.settings.access_ttl).timestamp(),
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let der = URL_SAFE_NO_PAD.decode(&key.private_key).map_err(internal)?;
        let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&der))
            .map_err(internal)?;
        Ok((token, claims))
    }

    /// Makes sure a key signs (a new database has none until now), so the
    /// JWKS is never empty once the service is up.
    pub async fn ensure_signing_key(&self, now: DateTime<Utc>) -> Result<(), AuthError> {
        self.signing_key(now).await.map(|_| ())
    }

    async fn signing_key(&self, now: DateTime<Utc>) -> Result<KeyRow, AuthError> {
        if let Some(key) = self.keys(now).await?.into_iter().find(|k| k.active) {
            return Ok(key);
        }
        self.rotate_keys(now).await?;
        self.keys(now)
            .await?
            .into_iter()
            .find(|k| k.active)
            .ok_or_else(|| internal("no signing key"))
    }

    /// Issues a new pair for `user` after a login: a new refresh family.
    pub async fn issue(&self, user: &User, now: DateTime<Utc>) -> Result<TokenPair, AuthError> {
        let key = self.signing_key(now).await?;
        let (access_token, claims) = self.sign(user, &key, now)?;
        let refresh_token = random_token();
        let refresh_expires_at = now + self.settings.refresh_ttl;
        let family = Uuid::now_v7().to_string();
        pg_dispatch!(&self.pool, pool => {
            sqlx::query(
                "INSERT INTO jwt_tokens (id, user_id, family_id, token_hash, access_jti, issued_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(Uuid::now_v7().to_string())
            .bind(&user.id)
            .bind(&family)
            .bind(hash_refresh(&refresh_token))
            .bind(&claims.jti)
            .bind(now)
            .bind(refresh_expires_at)
            .execute(pool)
            .await?;
        });
        Ok(TokenPair {
            access_token,
            claims,
            refresh_token,
            refresh_expires_at,
        })
    }

    /// Exchanges a refresh token for a new pair. Exactly one of several
    /// concurrent refreshes of one token succeeds; a retired token revokes
    /// its family.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        users: &dyn UserStore,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, AuthError> {
        let key = self.signing_key(now).await?;
        let hashed = hash_refresh(refresh_token);
        type Found = (
            String,
            String,
            String,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        );
        pg_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let sql = format!(
                "SELECT id, user_id, family_id, expires_at, retired_at, revoked_at FROM jwt_tokens WHERE token_hash = $1{}",
                pool.for_update()
            );
            let found: Option<Found> = sqlx::query_as(AssertSqlSafe(sql)).bind(&hashed).fetch_optional(&mut *tx).await?;
            let Some((id, user_id, family, expires_at, retired_at, revoked_at)) = found else {
                return Err(AuthError::InvalidToken);
            };
            if revoked_at.is_some() || expires_at <= now {
                return Err(AuthError::InvalidToken);
            }
            if retired_at.is_some() {
                // Used twice: whoever holds the family's tokens loses them.
                revoke!(tx, REFRESH_OF_FAMILY, ACCESS_OF_FAMILY, &family, "refresh token reused", now, self.settings.access_ttl);
                tx.commit().await?;
                return Err(AuthError::InvalidToken);
            }
            let user = users.user(&user_id).await?;
            if user.status == UserStatus::Disabled {
                return Err(AuthError::Disabled);
            }
            let (access_token, claims) = self.sign(&user, &key, now)?;
            let refresh_token = random_token();
            let refresh_expires_at = now + self.settings.refresh_ttl;
            let next_id = Uuid::now_v7().to_string();
            sqlx::query("UPDATE jwt_tokens SET retired_at = $1, replaced_by = $2 WHERE id = $3")
                .bind(now)
                .bind(&next_id)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO jwt_tokens (id, user_id, family_id, token_hash, access_jti, issued_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&next_id)
            .bind(&user_id)
            .bind(&family)
            .bind(hash_refresh(&refresh_token))
            .bind(&claims.jti)
            .bind(now)
            .bind(refresh_expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(TokenPair { access_token, claims, refresh_token, refresh_expires_at })
        })
    }

    /// Ends the session a refresh token belongs to: its whole family, and
    /// the access tokens issued in it. An unknown token is `InvalidToken`;
    /// logging out twice is not an error.
    pub async fn logout(
        &self,
        refresh_token: &str,
        access: Option<&PresentedAccess<'_>>,
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        let hashed = hash_refresh(refresh_token);
        pg_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let family: Option<String> = sqlx::query_scalar("SELECT family_id FROM jwt_tokens WHERE token_hash = $1")
                .bind(&hashed)
                .fetch_optional(&mut *tx)
                .await?;
            // An unknown refresh token changes nothing, not even the
            // access token presented with it.
            let family = family.ok_or(AuthError::InvalidToken)?;
            revoke!(tx, REFRESH_OF_FAMILY, ACCESS_OF_FAMILY, &family, "logged out", now, self.settings.access_ttl);
            if let Some(access) = access {
                sqlx::query(REVOKE_JTI)
                    .bind(access.jti)
                    .bind(access.user_id)
                    .bind(now + self.settings.access_ttl)
                    .bind(now)
                    .bind("logged out")
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Ends every session of a user; returns how many refresh tokens were
    /// revoked.
    pub async fn revoke_user(
        &self,
        user_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, AuthError> {
        let revoked = pg_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let revoked = revoke!(tx, REFRESH_OF_USER, ACCESS_OF_USER, user_id, reason, now, self.settings.access_ttl);
            tx.commit().await?;
            revoked
        });
        Ok(revoked)
    }

    /// The settings tokens are issued with.
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// Revokes an access token by its id until it would have expired.
    pub async fn revoke_jti(
        &self,
        jti: &str,
        user_id: &str,
        expires_at: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        pg_dispatch!(&self.pool, pool => {
            sqlx::query(REVOKE_JTI)
            .bind(jti)
            .bind(user_id)
            .bind(expires_at)
            .bind(now)
            .bind(reason)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The access tokens revoked and not yet expired (what the edge caches).
    pub async fn revoked_jtis(&self, now: DateTime<Utc>) -> Result<Vec<String>, AuthError> {
        let jtis: Vec<String> = pg_dispatch!(&self.pool, pool => {
            sqlx::query_scalar("SELECT jti FROM revoked_access_tokens WHERE expires_at > $1 ORDER BY jti")
                .bind(now)
                .fetch_all(pool)
                .await?
        });
        Ok(jtis)
    }

    /// Verifies an access token: EdDSA only, a known `kid`, issuer,
    /// audience and times, and not revoked.
    pub async fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken)?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::InvalidToken);
        }
        let kid = header.kid.ok_or(AuthError::InvalidToken)?;
        let key = self
            .keys(now)
            .await?
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or(AuthError::InvalidToken)?;
        let decoding = DecodingKey::from_ed_components(&key.public_key)
            .map_err(|_| AuthError::InvalidToken)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &decoding, &validation)
            .map_err(|_| AuthError::InvalidToken)?;
        // `decode` checks times against the system clock; check `now` too.
        if data.claims.exp <= now.timestamp() || data.claims.nbf > now.timestamp() {
            return Err(AuthError::InvalidToken);
        }
        let revoked: i64 = pg_dispatch!(&self.pool, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM revoked_access_tokens WHERE jti = $1")
                .bind(&data.claims.jti)
                .fetch_one(pool)
                .await?
        });
        if revoked > 0 {
            return Err(AuthError::InvalidToken);
        }
        Ok(data.claims)
    }
}
