//! State shared by every edge replica through Redis: the rate-limit
//! counters (one Lua script checks the minute, hour and day windows and
//! counts the request in all three atomically, so a plan's limit holds
//! across replicas exactly) and the response cache (answers kept with
//! `PX`, so Redis forgets them when they expire).
//!
//! Redis is an optimisation of correctness across replicas, never a
//! dependency of serving: every call has a short deadline, failures go
//! through a circuit breaker, and while Redis cannot answer the edge falls
//! back to its own memory, counting each fallback and logging the
//! breaker's transitions.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use harsha_mesh::{
    breaker::{BreakerSettings, CircuitBreaker, Outcome},
    ratelimit::{Limits, Window},
};
use http::{HeaderMap, HeaderName, HeaderValue};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::cache::CacheKey;

/// The longest a Redis call may take before the edge decides alone.
const CALL_DEADLINE: Duration = Duration::from_millis(150);
/// How long a connection attempt may take.
const CONNECT_DEADLINE: Duration = Duration::from_secs(1);
/// How long after a failed connection attempt the next one is made.
const RECONNECT_EVERY: Duration = Duration::from_secs(2);

/// Checks every window of a principal and counts the request in all of
/// them only when each has room. KEYS: the minute, hour and day counters.
/// ARGV: their limits, then their lifetimes in seconds. Returns the counts
/// found before this request.
const COUNT_SCRIPT: &str = r"
local before = {}
local full = false
for i = 1, 3 do
  before[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  if before[i] >= tonumber(ARGV[i]) then full = true end
end
if not full then
  for i = 1, 3 do
    if redis.call('INCR', KEYS[i]) == 1 then
      redis.call('EXPIRE', KEYS[i], ARGV[3 + i])
    end
  end
end
return before
";

/// Why Redis could not be used for a request.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// Not connected, or its breaker is open.
    #[error("redis is unavailable")]
    Unavailable,
    /// It did not answer in time.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// It answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A kept answer could not be read back.
    #[error("a kept answer is corrupt: {0}")]
    Corrupt(String),
}

/// A kept answer as stored in Redis.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StoredAnswer {
    /// When it was kept, Unix milliseconds.
    stored_ms: u64,
    headers: Vec<(String, String)>,
    body: String,
}

/// The connection to Redis shared by the rate limiter and the cache.
pub struct Shared {
    client: redis::Client,
    prefix: String,
    connection: RwLock<Option<ConnectionManager>>,
    connecting: tokio::sync::Mutex<Option<Instant>>,
    breaker: Arc<CircuitBreaker>,
    script: redis::Script,
    fallbacks: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("prefix", &self.prefix)
            .field("fallbacks", &self.fallbacks_total())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Shared state at `url` (`redis://host:port/db`), every key under
    /// `prefix`. Connects on first use.
    pub fn new(url: &str, prefix: &str) -> Result<Arc<Self>, SharedError> {
        Ok(Arc::new(Self {
            client: redis::Client::open(url)?,
            prefix: prefix.to_owned(),
            connection: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(None),
            breaker: CircuitBreaker::new(
                "redis",
                BreakerSettings {
                    failures_to_open: 3,
                    open_for: Duration::from_secs(2),
                },
            ),
            script: redis::Script::new(COUNT_SCRIPT),
            fallbacks: AtomicU64::new(0),
        }))
    }

    /// Requests decided without Redis because it could not answer.
    pub fn fallbacks_total(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Notes that a request was decided without Redis.
    pub fn fell_back(&self, what: &'static str, error: &SharedError) {
        let total = self.fallbacks.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::counter!("harsha_edge_redis_fallbacks_total", "what" => what).increment(1);
        // One line per hundred fallbacks: enough to see, not a flood.
        if total % 100 == 1 {
            tracing::warn!(%error, what, total, "redis unavailable; the edge decides alone");
        }
    }

    async fn connection(&self) -> Result<ConnectionManager, SharedError> {
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        // One attempt at a time (others wait for it, at most its deadline),
        // and not more often than RECONNECT_EVERY.
        let mut last = self.connecting.lock().await;
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        if last.is_some_and(|at| at.elapsed() < RECONNECT_EVERY) {
            return Err(SharedError::Unavailable);
        }
        *last = Some(Instant::now());
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_DEADLINE)
            .set_response_timeout(CALL_DEADLINE)
            .set_number_of_retries(1);
        let connected = tokio::time::timeout(
            CONNECT_DEADLINE,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| SharedError::Timeout(CONNECT_DEADLINE))??;
        tracing::info!(prefix = %self.prefix, "edge state shared through redis");
        *self
            .connection
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(connected.clone());
        Ok(connected)
    }

    fn current(&self) -> Option<ConnectionManager> {
        self.connection
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Runs `call` on a connection, within the deadline and the breaker.
    async fn run<T, F, Fut>(&self, call: F) -> Result<T, SharedError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, redis::RedisError>>,
    {
        let ticket = self
            .breaker
            .acquire(Instant::now())
            .map_err(|_| SharedError::Unavailable)?;
        let connection = match self.connection().await {
            Ok(connection) => connection,
            Err(error) => {
                ticket.record(Outcome::Failed);
                return Err(error);
            }
        };
        let answer = tokio::time::timeout(CALL_DEADLINE, call(connection))
            .await
            .map_err(|_| SharedError::Timeout(CALL_DEADLINE))
            .and_then(|answer| answer.map_err(SharedError::from));
        ticket.record(if answer.is_ok() {
            Outcome::Healthy
        } else {
            Outcome::Failed
        });
        answer
    }

    /// Counts a request of `principal` at `now` (Unix seconds) in every
    /// window that has room under `limits`, if all have; returns the counts
    /// found before it, for [`Decision::of_counts`].
    ///
    /// [`Decision::of_counts`]: harsha_mesh::ratelimit::Decision::of_counts
    pub async fn count(
        &self,
        principal: &str,
        limits: Limits,
        now: i64,
    ) -> Result<[u64; 3], SharedError> {
        let mut invocation = self.script.prepare_invoke();
        for window in Window::ALL {
            // The principal in braces: one hash slot for its three keys.
            invocation.key(format!(
                "{}:rl:{{{principal}}}:{}:{}",
                self.prefix,
                window.as_str(),
                window.start(now)
            ));
        }
        for window in Window::ALL {
            invocation.arg(window.limit(limits));
        }
        for window in Window::ALL {
            // Kept a minute past the window's end, then forgotten.
            invocation.arg(window.start(now) + window.seconds() - now + 60);
        }
        let before: Vec<u64> = self
            .run(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await?;
        match before.as_slice() {
            [minute, hour, day] => Ok([*minute, *hour, *day]),
            other => Err(SharedError::Corrupt(format!(
                "the counting script answered {other:?}"
            ))),
        }
    }

    fn cache_key(&self, key: &CacheKey) -> String {
        format!(
            "{}:cache:{}\n{}\n{}",
            self.prefix, key.route, key.scopes, key.target
        )
    }

    /// A kept answer and its age, if one is there.
    pub async fn cached(
        &self,
        key: &CacheKey,
    ) -> Result<Option<(Bytes, HeaderMap, Duration)>, SharedError> {
        let redis_key = self.cache_key(key);
        let stored: Option<String> = self
            .run(|mut connection| async move {
                redis::cmd("GET")
                    .arg(redis_key)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let answer: StoredAnswer =
            serde_json::from_str(&stored).map_err(|e| SharedError::Corrupt(e.to_string()))?;
        let mut headers = HeaderMap::new();
        for (name, value) in answer.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.append(name, value);
            }
        }
        let age = Duration::from_millis(unix_millis().saturating_sub(answer.stored_ms));
        Ok(Some((Bytes::from(answer.body), headers, age)))
    }

    /// Keeps an answer for `ttl`.
    pub async fn keep(
        &self,
        key: &CacheKey,
        body: &Bytes,
        headers: &HeaderMap,
        ttl: Duration,
    ) -> Result<(), SharedError> {
        let body = std::str::from_utf8(body)
            .map_err(|e| SharedError::Corrupt(e.to_string()))?
            .to_owned();
        let answer = StoredAnswer {
            stored_ms: unix_millis(),
            headers: headers
                .iter()
                .filter_map(|(name, value)| {
                    Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
                })
                .collect(),
            body,
        };
        let value =
            serde_json::to_string(&answer).map_err(|e| SharedError::Corrupt(e.to_string()))?;
        let redis_key = self.cache_key(key);
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run(|mut connection| async move {
            redis::cmd("SET")
                .arg(redis_key)
                .arg(value)
                .arg("PX")
                .arg(millis)
                .query_async::<()>(&mut connection)
                .await
        })
        .await
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
