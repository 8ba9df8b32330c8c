//! API keys for service-to-service calls: created for a user with scopes
//! (a subset of the user's), an optional IPv4/IPv6 allow-list, an optional
//! expiry and a plan; the key is shown once and kept as a SHA-256 digest
//! under a public lookup prefix. Checking a key reads a bounded cache keyed
//! by prefix (entries live [`KEY_CACHE_TTL`], and a revocation made here
//! drops its entry at once), so a warm check costs no database round trip.
//! The last-use time is written at most once a minute per key, off the
//! caller's path.

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use harsha_store::{PgPool, page::Page, pg_dispatch};
use quick_cache::sync::Cache;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::{
    AuthError,
    domain::{AllowList, FreshKey, PresentedKey, Scope, scopes_of},
    store::{UserStatus, UserStore},
};

/// How long a checked key is trusted without reading it again: the longest
/// a revocation made on another replica, or a disabled user, goes unseen.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);
/// How long a key read earlier keeps working, as last read, while the
/// gateway database does not answer: a database restart does not lock out
/// every caller, and a revocation during an outage waits at most this long
/// on replicas that read the key before it.
pub const KEY_STALE_GRACE: Duration = Duration::from_secs(600);
/// How long re-reading a key read earlier may take before the earlier
/// answer is used: a database that is down can keep a pool waiting for a
/// connection for seconds, longer than callers' deadlines.
const STALE_REFRESH_WAIT: Duration = Duration::from_millis(300);
/// How many keys the cache holds.
const KEY_CACHE_CAPACITY: usize = 100_000;
/// The shortest gap between two writes of a key's last-use time.
const LAST_USE_GRANULARITY_SECONDS: i64 = 60;
/// The longest key name.
const MAX_NAME: usize = 100;

/// A key to create, as requested.
#[derive(Debug, Clone, Default)]
pub struct KeyRequest {
    /// The user it acts as.
    pub user_id: String,
    /// What it is for.
    pub name: String,
    /// Scope names.
    pub scopes: Vec<String>,
    /// Allow-list entries.
    pub allowed_cidrs: Vec<String>,
    /// Plan name; the user's when empty.
    pub plan: String,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
}

/// An API key's record (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub id: String,
    /// The user it acts as.
    pub user_id: String,
    /// What it is for.
    pub name: String,
    /// The public lookup prefix.
    pub prefix: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// Where it may be used from.
    pub allowed: AllowList,
    /// Its plan.
    pub plan: String,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// Who a checked key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrincipal {
    /// The key's id.
    pub key_id: String,
    /// The user it acts as.
    pub user_id: String,
    /// That user's login name.
    pub username: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// Its plan.
    pub plan: String,
}

/// What the cache keeps per prefix: the record, the digest, whether the
/// user may act, and when last-use was last written.
struct CachedKey {
    loaded_at: Instant,
    key: ApiKey,
    digest: String,
    username: String,
    user_active: bool,
    last_use_written: AtomicI64,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    user_id: String,
    name: String,
    prefix: String,
    scopes: String,
    allowed_cidrs: String,
    rate_limit_plan: String,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

const KEY_COLUMNS: &str = "k.id, k.user_id, k.name, k.prefix, k.scopes, k.allowed_cidrs, k.rate_limit_plan, \
     k.expires_at, k.last_used_at, k.revoked_at, k.created_at";

impl TryFrom<KeyRow> for ApiKey {
    type Error = AuthError;

    fn try_from(row: KeyRow) -> Result<Self, Self::Error> {
        let scopes: Vec<String> =
            serde_json::from_str(&row.scopes).map_err(|e| AuthError::corrupt("scopes", e))?;
        let cidrs: Vec<String> = serde_json::from_str(&row.allowed_cidrs)
            .map_err(|e| AuthError::corrupt("allowed_cidrs", e))?;
        Ok(Self {
            scopes: scopes
                .iter()
                .map(|s| s.parse().map_err(|e| AuthError::corrupt("scopes", e)))
                .collect::<Result<_, _>>()?,
            allowed: AllowList::parse(&cidrs)
                .map_err(|(_, e)| AuthError::corrupt("allowed_cidrs", e))?,
            id: row.id,
            user_id: row.user_id,
            name: row.name,
            prefix: row.prefix,
            plan: row.rate_limit_plan,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
            created_at: row.created_at,
        })
    }
}

/// API keys on a `gateway` database, with the lookup cache.
#[derive(Clone)]
pub struct ApiKeys {
    pool: PgPool,
    cache: Arc<Cache<String, Arc<CachedKey>>>,
    ttl: Duration,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys").finish_non_exhaustive()
    }
}

impl ApiKeys {
    /// Keys on `pool` (migrated), cached for [`KEY_CACHE_TTL`].
    pub fn new(pool: PgPool) -> Self {
        Self::with_cache_ttl(pool, KEY_CACHE_TTL)
    }

    /// Keys on `pool`, cached for `ttl`.
    pub fn with_cache_ttl(pool: PgPool, ttl: Duration) -> Self {
        Self {
            pool,
            cache: Arc::new(Cache::new(KEY_CACHE_CAPACITY)),
            ttl,
        }
    }

    /// Creates a key after checking every field; returns its record and
    /// the key itself (to show once).
    pub async fn create(
        &self,
        request: KeyRequest,
        users: &dyn UserStore,
        now: DateTime<Utc>,
    ) -> Result<(ApiKey, String), AuthError> {
        let user_id = request.user_id.trim();
        if user_id.is_empty() {
            return Err(AuthError::invalid("user_id", "is required"));
        }
        let name = request.name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME {
            return Err(AuthError::invalid(
                "name",
                format!("must be 1 to {MAX_NAME} characters"),
            ));
        }
        if request.scopes.is_empty() {
            return Err(AuthError::invalid("scopes", "at least one scope is needed"));
        }
        let user = users.user(user_id).await?;
        if user.status == UserStatus::Disabled {
            return Err(AuthError::invalid("user_id", "the user is disabled"));
        }
        let held = scopes_of(&user.roles);
        let mut scopes = Vec::new();
        for (i, name) in request.scopes.iter().enumerate() {
            let field = format!("scopes[{i}]");
            let scope: Scope = name
                .trim()
                .parse()
                .map_err(|e| AuthError::invalid(&field, e))?;
            if !held.contains(&scope) {
                return Err(AuthError::invalid(
                    field,
                    format!("the user's roles do not grant {}", scope.as_str()),
                ));
            }
            scopes.push(scope);
        }
        scopes.sort();
        scopes.dedup();
        let allowed = AllowList::parse(&request.allowed_cidrs)
            .map_err(|(i, e)| AuthError::invalid(format!("allowed_cidrs[{i}]"), e))?;
        if request.expires_at.is_some_and(|at| at <= now) {
            return Err(AuthError::invalid("expire_time", "must be in the future"));
        }
        let plan = match request.plan.trim() {
            "" => user.plan.clone(),
            plan => plan.to_owned(),
        };
        let fresh = FreshKey::generate();
        let id = Uuid::now_v7().to_string();
        let scope_names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        let inserted = pg_dispatch!(&self.pool, pool => {
            sqlx::query(
                "INSERT INTO api_keys (id, user_id, prefix, secret_hash, name, scopes, allowed_cidrs, \
                 rate_limit_plan, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&id)
            .bind(&user.id)
            .bind(&fresh.prefix)
            .bind(&fresh.digest)
            .bind(name)
            .bind(serde_json::to_string(&scope_names).unwrap_or_else(|_| "[]".into()))
            .bind(serde_json::to_string(&allowed.to_strings()).unwrap_or_else(|_| "[]".into()))
            .bind(&plan)
            .bind(request.expires_at)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())
        });
        match inserted {
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Err(AuthError::invalid(
                    "rate_limit_plan",
                    format!("no plan named {plan:?}"),
                ));
            }
            other => other?,
        }
        Ok((self.get(&id).await?, fresh.key))
    }

    /// A key's record by id.
    pub async fn get(&self, id: &str) -> Result<ApiKey, AuthError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.id = $1");
        let row: Option<KeyRow> = pg_dispatch!(&self.pool, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        });
        ApiKey::try_from(row.ok_or_else(|| AuthError::KeyNotFound(id.to_owned()))?)
    }

    /// Keys, newest first, of one user or all; revoked ones only if asked.
    pub async fn list(
        &self,
        user_id: Option<&str>,
        show_revoked: bool,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<ApiKey>, AuthError> {
        let after: Option<String> = harsha_store::page::decode_token(page_token)
            .map_err(|e| AuthError::invalid(e.field(), e))?;
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k WHERE ($1 IS NULL OR k.user_id = $1) \
             AND ($2 OR k.revoked_at IS NULL) AND ($3 IS NULL OR k.id < $3) ORDER BY k.id DESC LIMIT $4"
        );
        let rows: Vec<KeyRow> = pg_dispatch!(&self.pool, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(user_id)
                .bind(show_revoked)
                .bind(after.as_deref())
                .bind(i64::from(page_size) + 1)
                .fetch_all(pool)
                .await?
        });
        Page::from_rows(rows, page_size, |row| row.id.clone()).try_map(ApiKey::try_from)
    }

    /// Revokes a key at once (here; other replicas within the cache TTL).
    /// Revoking twice keeps the first time.
    pub async fn revoke(&self, id: &str, now: DateTime<Utc>) -> Result<ApiKey, AuthError> {
        pg_dispatch!(&self.pool, pool => {
            sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?;
        });
        let key = self.get(id).await?;
        self.cache.remove(&key.prefix);
        Ok(key)
    }

    async fn load(&self, prefix: &str) -> Result<Option<Arc<CachedKey>>, AuthError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS}, k.secret_hash, u.status, u.username FROM api_keys k \
             JOIN api_users u ON u.id = k.user_id WHERE k.prefix = $1"
        );
        let found: Option<(KeyRow, String, String, String)> = pg_dispatch!(&self.pool, pool => {
            let row = sqlx::query(AssertSqlSafe(sql)).bind(prefix).fetch_optional(pool).await?;
            match row {
                None => None,
                Some(row) => {
                    use sqlx::{FromRow, Row};
                    Some((KeyRow::from_row(&row)?, row.try_get("secret_hash")?, row.try_get("status")?, row.try_get("username")?))
                }
            }
        });
        let Some((row, digest, status, username)) = found else {
            return Ok(None);
        };
        let key = ApiKey::try_from(row)?;
        let last = key.last_used_at.map_or(0, |at| at.timestamp());
        Ok(Some(Arc::new(CachedKey {
            loaded_at: Instant::now(),
            key,
            digest,
            username,
            user_active: status == UserStatus::Active.as_str(),
            last_use_written: AtomicI64::new(last),
        })))
    }

    /// Reads a key again; when an earlier read can stand in, gives up after
    /// [`STALE_REFRESH_WAIT`].
    async fn reload(
        &self,
        prefix: &str,
        earlier_known: bool,
    ) -> Result<Option<Arc<CachedKey>>, AuthError> {
        if !earlier_known {
            return self.load(prefix).await;
        }
        tokio::time::timeout(STALE_REFRESH_WAIT, self.load(prefix))
            .await
            .unwrap_or_else(|_| {
                Err(AuthError::Unavailable(format!(
                    "the gateway database did not answer within {} ms",
                    STALE_REFRESH_WAIT.as_millis()
                )))
            })
    }

    /// Checks a presented key: known, secret right, not revoked or expired,
    /// its user active (else `InvalidToken`); used from an allowed address
    /// and holding `required` (else `PermissionDenied`/`AddressNotAllowed`).
    pub async fn authenticate(
        &self,
        presented: &str,
        client: Option<IpAddr>,
        required: Option<Scope>,
        now: DateTime<Utc>,
    ) -> Result<KeyPrincipal, AuthError> {
        let presented = PresentedKey::parse(presented).ok_or(AuthError::InvalidToken)?;
        let cached = match self.cache.get(presented.prefix) {
            Some(cached) if cached.loaded_at.elapsed() < self.ttl => cached,
            earlier => match self.reload(presented.prefix, earlier.is_some()).await {
                Ok(loaded) => {
                    let loaded = loaded.ok_or(AuthError::InvalidToken)?;
                    self.cache
                        .insert(presented.prefix.to_owned(), Arc::clone(&loaded));
                    loaded
                }
                Err(error) => match earlier {
                    Some(earlier) if earlier.loaded_at.elapsed() < KEY_STALE_GRACE => {
                        tracing::warn!(
                            prefix = presented.prefix,
                            error = %error,
                            "the gateway database did not answer; the API key is checked as last read"
                        );
                        earlier
                    }
                    _ => return Err(error),
                },
            },
        };
        let key = &cached.key;
        let usable = presented.matches(&cached.digest)
            && key.revoked_at.is_none()
            && key.expires_at.is_none_or(|at| now < at)
            && cached.user_active;
        if !usable {
            return Err(AuthError::InvalidToken);
        }
        if !key.allowed.allows(client) {
            return Err(AuthError::AddressNotAllowed);
        }
        if let Some(scope) = required
            && !key.scopes.contains(&scope)
        {
            return Err(AuthError::PermissionDenied(scope.as_str()));
        }
        self.note_use(&cached, now);
        Ok(KeyPrincipal {
            key_id: key.id.clone(),
            user_id: key.user_id.clone(),
            username: cached.username.clone(),
            scopes: key.scopes.clone(),
            plan: key.plan.clone(),
        })
    }

    /// Writes the last-use time in the background, at most once a minute
    /// per key (per replica).
    fn note_use(&self, cached: &CachedKey, now: DateTime<Utc>) {
        let seconds = now.timestamp();
        let last = cached.last_use_written.load(Ordering::Relaxed);
        if seconds - last < LAST_USE_GRANULARITY_SECONDS
            || cached
                .last_use_written
                .compare_exchange(last, seconds, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let pool = self.pool.clone();
        let id = cached.key.id.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let written: Result<(), sqlx::Error> = pg_dispatch!(&pool, pool => {
                    sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)")
                        .bind(now)
                        .bind(&id)
                        .execute(pool)
                        .await
                        .map(|_| ())
                });
                if let Err(error) = written {
                    tracing::warn!(key_id = %id, %error, "could not record an API key's last use");
                }
            });
        }
    }
}
