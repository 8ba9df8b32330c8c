//! The edge's own checks, before a call goes upstream: who the caller is
//! (the same [`Gatekeeper`] every service runs: a bearer token verified
//! locally, or an API key checked by Auth against the caller's address),
//! and whether the caller's plan has room this minute, hour and day. A
//! caller without a credential on a public route is limited by address
//! under the `standard` plan. Plans are read from Auth every 30 s; usage is
//! added to `rate_limit_tracking` in batches, off the request path.
//!
//! With [`Shared`] state the windows are counted in Redis, so a limit holds
//! across every edge replica; while Redis cannot answer, each replica
//! counts alone.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, OnceLock, RwLock},
    time::Duration,
};

use harsha_auth::{
    AuthError,
    access::{API_KEY_HEADER, Credential, Gatekeeper, Principal, Requirement, bearer_token},
    plans::{Plans, UsageRow},
};
use harsha_mesh::ratelimit::{Decision, Limits, RateLimiter};

use crate::shared::Shared;
use http::{HeaderMap, HeaderValue};
use tonic::transport::Channel;

/// The plan of callers whose plan is unknown, and of anonymous callers.
const FALLBACK_PLAN: &str = "standard";
/// Limits used until the plans have been read (and if `standard` is gone).
const FALLBACK_LIMITS: Limits = Limits {
    per_minute: 60,
    per_hour: 1_000,
    per_day: 10_000,
};

/// Who passed the checks, and the rate-limit answer for the headers.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The caller, when they presented a credential.
    pub principal: Option<Principal>,
    /// Whom the limits counted (`user:…`, `key:…`, `ip:…`).
    pub key: String,
    /// The rate-limit answer.
    pub decision: Decision,
}

/// Why a request was stopped at the edge.
#[derive(Debug)]
pub enum Refused {
    /// No, a bad or an insufficient credential.
    Access(AuthError),
    /// Over a limit: the answer, and whom it counted.
    Limited(Decision, String),
}

/// The edge's checks.
pub struct Guard {
    gatekeeper: Arc<Gatekeeper>,
    limiter: RateLimiter,
    shared: OnceLock<Arc<Shared>>,
    plans: RwLock<HashMap<String, Limits>>,
    usage: OnceLock<Plans>,
    /// Held while a read prompted by an unknown plan is under way.
    reading: tokio::sync::Mutex<()>,
    unknown_plans: std::sync::Mutex<HashMap<String, std::time::Instant>>,
    auth: harsha_proto::harsha::auth::v1::auth_service_client::AuthServiceClient<Channel>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

impl Guard {
    /// Checks through `gatekeeper`; plans come from the Auth service at
    /// `auth_endpoint`.
    pub fn new(gatekeeper: Arc<Gatekeeper>, auth_endpoint: &str) -> Result<Arc<Self>, String> {
        let channel = tonic::transport::Endpoint::from_shared(auth_endpoint.to_owned())
            .map_err(|e| format!("auth endpoint {auth_endpoint:?}: {e}"))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        Ok(Arc::new(Self {
            gatekeeper,
            limiter: RateLimiter::new(),
            shared: OnceLock::new(),
            plans: RwLock::new(HashMap::new()),
            usage: OnceLock::new(),
            reading: tokio::sync::Mutex::new(()),
            unknown_plans: std::sync::Mutex::new(HashMap::new()),
            auth: harsha_proto::harsha::auth::v1::auth_service_client::AuthServiceClient::new(
                channel,
            ),
        }))
    }

    /// Where usage is reported from now on (the gateway database, once
    /// connected).
    pub fn report_usage_to(&self, plans: Plans) {
        let _ = self.usage.set(plans);
    }

    /// Counts the windows in `shared` from now on, so limits hold across
    /// replicas.
    pub fn share_counters_through(&self, shared: Arc<Shared>) {
        let _ = self.shared.set(shared);
    }

    /// Whether calls can be checked yet (the token keys are loaded).
    pub fn is_ready(&self) -> bool {
        self.gatekeeper.is_ready()
    }

    /// Requests refused for their rate since start.
    pub fn refused_total(&self) -> u64 {
        self.limiter.refused_total()
    }

    /// Reads the plans from Auth.
    pub async fn refresh_plans(&self) -> Result<(), tonic::Status> {
        let reply = self
            .auth
            .clone()
            .list_rate_limit_plans(harsha_proto::harsha::auth::v1::ListRateLimitPlansRequest {})
            .await?
            .into_inner();
        let plans = reply
            .plans
            .into_iter()
            .map(|p| {
                let limit = |n: i32| u64::try_from(n).unwrap_or(0);
                (
                    p.name,
                    Limits {
                        per_minute: limit(p.per_minute),
                        per_hour: limit(p.per_hour),
                        per_day: limit(p.per_day),
                    },
                )
            })
            .collect();
        *self
            .plans
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = plans;
        Ok(())
    }

    fn known_limits(&self, plan: &str) -> Option<Limits> {
        self.plans
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(plan)
            .copied()
    }

    /// A plan's limits; a plan not seen yet (made since the last read)
    /// makes the guard read the plans again at once, and again at most once
    /// a second while it stays unknown. (Plan names come from verified
    /// credentials, so callers cannot make up new ones to force reads.)
    async fn limits(&self, plan: &str) -> Limits {
        if let Some(limits) = self.known_limits(plan) {
            return limits;
        }
        let due = {
            let mut tried = self
                .unknown_plans
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match tried.get(plan) {
                Some(at) if at.elapsed() < Duration::from_secs(1) => false,
                _ => {
                    tried.insert(plan.to_owned(), std::time::Instant::now());
                    true
                }
            }
        };
        if due {
            // One read at a time; one that finished meanwhile may have
            // brought the plan already.
            let _reading = self.reading.lock().await;
            if self.known_limits(plan).is_none()
                && let Err(status) = self.refresh_plans().await
            {
                tracing::warn!(%status, "could not read rate-limit plans");
            }
        }
        self.known_limits(plan)
            .or_else(|| self.known_limits(FALLBACK_PLAN))
            .unwrap_or(FALLBACK_LIMITS)
    }

    /// Checks a request to the RPC at `grpc_path` at `now` (Unix seconds).
    pub async fn check(
        &self,
        grpc_path: &str,
        headers: &HeaderMap,
        client: Option<IpAddr>,
        now: i64,
    ) -> Result<Admitted, Refused> {
        let requirement = Requirement::of_path(grpc_path)
            .unwrap_or(Requirement::Scope(harsha_auth::domain::Scope::AuthAdmin));
        let bearer = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        let api_key = headers
            .get(API_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let principal = self
            .gatekeeper
            .admit(requirement, bearer, api_key, client)
            .await
            .map_err(Refused::Access)?;
        let (key, plan) = match &principal {
            Some(p) => (
                match &p.credential {
                    Credential::ApiKey { key_id } => format!("key:{key_id}"),
                    Credential::Token { .. } => format!("user:{}", p.user_id),
                },
                p.plan.as_str(),
            ),
            None => (
                format!(
                    "ip:{}",
                    client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
                ),
                FALLBACK_PLAN,
            ),
        };
        let limits = self.limits(plan).await;
        let decision = self.decide(&key, limits, now).await;
        if decision.allowed {
            Ok(Admitted {
                principal,
                key,
                decision,
            })
        } else {
            tracing::info!(principal = %key, window = decision.window.as_str(), "rate limited");
            metrics::counter!("harsha_edge_rate_limited_total", "window" => decision.window.as_str())
                .increment(1);
            Err(Refused::Limited(decision, key))
        }
    }

    /// Counts a request of `key`: in Redis when it is shared and answers,
    /// in this replica's memory otherwise.
    async fn decide(&self, key: &str, limits: Limits, now: i64) -> Decision {
        let Some(shared) = self.shared.get() else {
            return self.limiter.check(key, limits, now);
        };
        match shared.count(key, limits, now).await {
            Ok(before) => {
                let decision = Decision::of_counts(limits, now, before);
                self.limiter.record(key, now, decision.allowed);
                decision
            }
            Err(error) => {
                shared.fell_back("rate limit", &error);
                self.limiter.check(key, limits, now)
            }
        }
    }

    /// Keeps the plans fresh and reports usage every `flush_every` (once a
    /// gateway database is set) until `shutdown` resolves.
    pub async fn run(
        self: Arc<Self>,
        flush_every: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut last_plans: Option<std::time::Instant> = None;
        loop {
            if last_plans.is_none_or(|at| at.elapsed() >= Duration::from_secs(30)) {
                match self.refresh_plans().await {
                    Ok(()) => last_plans = Some(std::time::Instant::now()),
                    Err(status) => tracing::debug!(%status, "rate-limit plans not read yet"),
                }
            }
            let now = chrono::Utc::now().timestamp();
            self.limiter.sweep(now);
            if let Some(usage) = self.usage.get() {
                self.flush(usage).await;
            }
            tokio::select! {
                () = &mut shutdown => {
                    if let Some(usage) = self.usage.get() {
                        self.flush(usage).await;
                    }
                    return;
                }
                () = tokio::time::sleep(if last_plans.is_some() { flush_every } else { Duration::from_millis(200) }) => {}
            }
        }
    }

    async fn flush(&self, usage: &Plans) {
        let rows: Vec<UsageRow> = self
            .limiter
            .drain_usage()
            .into_iter()
            .filter_map(|u| {
                Some(UsageRow {
                    principal: u.principal,
                    window_kind: u.window.as_str(),
                    window_start: chrono::DateTime::from_timestamp(u.window_start, 0)?,
                    requests: i64::try_from(u.requests).ok()?,
                    rejected: i64::try_from(u.rejected).ok()?,
                })
            })
            .collect();
        if let Err(error) = usage.record_usage(&rows).await {
            tracing::warn!(%error, rows = rows.len(), "could not record rate-limit usage");
        }
    }
}

/// `RateLimit-Limit`, `-Remaining` and `-Reset` (and `Retry-After` when
/// refused) for `decision`.
pub fn rate_limit_headers(decision: &Decision, headers: &mut HeaderMap) {
    let mut put = |name: &'static str, value: u64| {
        if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
            headers.insert(name, value);
        }
    };
    put("ratelimit-limit", decision.limit);
    put("ratelimit-remaining", decision.remaining);
    put("ratelimit-reset", decision.reset);
    if let Some(wait) = decision.retry_after {
        put("retry-after", wait);
    }
}
