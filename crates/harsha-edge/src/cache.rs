//! The response cache: answers of GET routes given a time to live, kept
//! per route, path, query and the caller's scopes (callers with the same
//! scopes see the same data in this mesh; a caller with other scopes never
//! gets another's answer), bounded by total size. `Cache-Control:
//! no-cache` asks for a fresh answer (which then replaces the kept one),
//! `no-store` keeps nothing. Answers carry `X-Cache: HIT` or `MISS` and, on
//! a hit, `Age`.
//!
//! With [`Shared`] state the answers live in Redis, so every replica serves
//! what any of them kept; while Redis cannot answer, each replica keeps its
//! own.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::HeaderMap;
use quick_cache::{Weighter, sync::Cache};

use crate::shared::Shared;

/// What a kept answer is found by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The route template.
    pub route: String,
    /// The path and query asked for.
    pub target: String,
    /// The caller's scopes, sorted and joined (`public` for none).
    pub scopes: String,
}

/// A kept answer.
#[derive(Debug)]
pub struct Cached {
    /// The JSON body.
    pub body: Bytes,
    /// Headers to send again (metadata, not per-request ones).
    pub headers: HeaderMap,
    /// When it was kept.
    pub stored: Instant,
    /// Until when it may be served.
    pub expires: Instant,
}

#[derive(Debug, Clone, Copy, Default)]
struct BodySize;

impl Weighter<CacheKey, Arc<Cached>> for BodySize {
    fn weight(&self, key: &CacheKey, value: &Arc<Cached>) -> u64 {
        (key.target.len() + value.body.len() + 256) as u64
    }
}

/// The cache and the routes it keeps answers of.
#[derive(Debug)]
pub struct ResponseCache {
    ttls: HashMap<String, Duration>,
    entries: Cache<CacheKey, Arc<Cached>, BodySize>,
    shared: Option<Arc<Shared>>,
}

impl ResponseCache {
    /// A cache for `ttls` (route template → time to live), holding at most
    /// `max_bytes` of answers.
    pub fn new(ttls: HashMap<String, Duration>, max_bytes: u64) -> Self {
        Self {
            ttls,
            entries: Cache::with_weighter(10_000, max_bytes.max(1), BodySize),
            shared: None,
        }
    }

    /// Keeps the answers in `shared` (Redis) instead of this replica's
    /// memory, whenever it answers.
    #[must_use]
    pub fn shared_through(mut self, shared: Option<Arc<Shared>>) -> Self {
        self.shared = shared;
        self
    }

    /// A fresh kept answer: its body, headers and age.
    pub async fn lookup(&self, key: &CacheKey) -> Option<(Bytes, HeaderMap, Duration)> {
        if let Some(shared) = &self.shared {
            match shared.cached(key).await {
                Ok(found) => return found,
                Err(error) => shared.fell_back("cache read", &error),
            }
        }
        let now = Instant::now();
        self.get(key, now).map(|hit| {
            (
                hit.body.clone(),
                hit.headers.clone(),
                now.duration_since(hit.stored),
            )
        })
    }

    /// Keeps an answer for `ttl`, in Redis when shared and answering.
    pub async fn keep(&self, key: CacheKey, body: Bytes, headers: HeaderMap, ttl: Duration) {
        if let Some(shared) = &self.shared {
            match shared.keep(&key, &body, &headers, ttl).await {
                Ok(()) => return,
                Err(error) => shared.fell_back("cache write", &error),
            }
        }
        self.put(key, body, headers, ttl);
    }

    /// The time to live of a route's answers, if they are kept.
    pub fn ttl(&self, route: &str) -> Option<Duration> {
        self.ttls.get(route).copied().filter(|ttl| !ttl.is_zero())
    }

    /// A kept answer still fresh at `now`.
    pub fn get(&self, key: &CacheKey, now: Instant) -> Option<Arc<Cached>> {
        self.entries.get(key).filter(|entry| now < entry.expires)
    }

    /// Keeps an answer for the route's time to live.
    pub fn put(&self, key: CacheKey, body: Bytes, headers: HeaderMap, ttl: Duration) {
        let now = Instant::now();
        self.entries.insert(
            key,
            Arc::new(Cached {
                body,
                headers,
                stored: now,
                expires: now + ttl,
            }),
        );
    }
}

/// What a request's `Cache-Control` asks of the cache: (read it, write it).
pub fn cache_control(headers: &HeaderMap) -> (bool, bool) {
    let directives: Vec<String> = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    let no_store = directives.iter().any(|d| d == "no-store");
    let no_cache = no_store
        || directives
            .iter()
            .any(|d| d == "no-cache" || d == "max-age=0");
    (!no_cache, !no_store)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scopes: &str) -> CacheKey {
        CacheKey {
            route: "/v1/segments/{code}".into(),
            target: "/v1/segments/RETAIL".into(),
            scopes: scopes.into(),
        }
    }

    #[test]
    fn answers_are_kept_per_scope_set_until_they_expire() {
        let cache = ResponseCache::new(
            HashMap::from([("/v1/segments/{code}".to_owned(), Duration::from_secs(5))]),
            1 << 20,
        );
        assert_eq!(
            cache.ttl("/v1/segments/{code}"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(cache.ttl("/v1/users"), None);
        cache.put(
            key("customer:read"),
            Bytes::from_static(b"{}"),
            HeaderMap::new(),
            Duration::from_secs(5),
        );
        let now = Instant::now();
        assert!(cache.get(&key("customer:read"), now).is_some());
        assert!(
            cache
                .get(&key("customer:read customer:write"), now)
                .is_none(),
            "other scopes, other answer"
        );
        assert!(
            cache
                .get(&key("customer:read"), now + Duration::from_secs(6))
                .is_none(),
            "expired"
        );
    }

    #[test]
    fn cache_control_can_bypass_or_forbid_keeping() {
        let mut headers = HeaderMap::new();
        assert_eq!(cache_control(&headers), (true, true));
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-cache"),
        );
        assert_eq!(cache_control(&headers), (false, true));
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("max-age=0, no-store"),
        );
        assert_eq!(cache_control(&headers), (false, false));
    }
}
