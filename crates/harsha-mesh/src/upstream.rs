//! Where each service's calls go: its endpoints, read from `service_routes`
//! every few seconds (weights and status change without a restart; a
//! service with no rows there uses its configured endpoint), each with its
//! own channel, circuit breaker, health and calls in flight. An endpoint
//! is chosen by smooth weighted round robin or least-loaded of two among
//! those that are active, healthy and not cut off by their breaker.
//! Health checks (`grpc.health.v1`, the service's own name) run every
//! `health_every` per endpoint; an endpoint NOT_SERVING or unreachable
//! leaves the rotation until it recovers, and each result of an endpoint
//! from `service_routes` is written to `service_health`.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock, RwLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{
    balance::{Strategy, WeightedRoundRobin, least_loaded},
    breaker::{BreakerSettings, CircuitBreaker, State},
};
use harsha_store::{PgPool, pg_dispatch};
use tonic::transport::Channel;

/// One endpoint of a service.
#[derive(Debug)]
pub struct Endpoint {
    /// Its `service_routes` id, when it came from there.
    pub route_id: Option<String>,
    /// Its URL.
    pub url: String,
    /// Its share of calls.
    pub weight: u32,
    /// The channel to it.
    pub channel: Channel,
    /// Its circuit breaker.
    pub breaker: Arc<CircuitBreaker>,
    healthy: AtomicBool,
    in_flight: AtomicUsize,
    last_check: Mutex<Option<Instant>>,
}

/// How often an endpoint out of rotation is checked again.
const RECHECK_UNHEALTHY: Duration = Duration::from_secs(1);

impl Endpoint {
    fn new(
        service: &str,
        route_id: Option<String>,
        url: &str,
        weight: u32,
        breaker: BreakerSettings,
    ) -> Result<Arc<Self>, String> {
        let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
            .map_err(|e| format!("{service}: {url:?}: {e}"))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_adaptive_window(true)
            .connect_lazy();
        Ok(Arc::new(Self {
            breaker: CircuitBreaker::new(format!("{service} at {url}"), breaker),
            route_id,
            url: url.to_owned(),
            weight,
            channel,
            healthy: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
            last_check: Mutex::new(None),
        }))
    }

    /// Whether its last health check passed (true until the first).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Counts a call in flight until the guard drops.
    pub fn start_call(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    fn eligible(&self, now: Instant, ignore_health: bool) -> bool {
        self.weight > 0
            && (ignore_health || self.is_healthy())
            && !matches!(self.breaker.state(), State::Open(until) if now < until)
    }

    /// Whether a health check is due: every `every` while healthy, every
    /// second while out of rotation.
    fn check_due(&self, every: Duration) -> bool {
        let interval = if self.is_healthy() {
            every
        } else {
            every.min(RECHECK_UNHEALTHY)
        };
        self.last_check
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none_or(|at| at.elapsed() >= interval)
    }
}

/// A call in flight to an endpoint.
#[derive(Debug)]
pub struct InFlight(Arc<Endpoint>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct Pool {
    endpoints: Vec<Arc<Endpoint>>,
    picker: Mutex<WeightedRoundRobin>,
}

/// A row of `service_routes`.
#[derive(Debug, Clone, sqlx::FromRow)]
struct RouteRow {
    id: String,
    service: String,
    upstream_url: String,
    weight: i32,
    status: String,
}

/// Every service's endpoints.
#[derive(Debug)]
pub struct Upstreams {
    configured: Vec<(String, String)>,
    pools: RwLock<HashMap<String, Arc<Pool>>>,
    strategy: Strategy,
    breaker: BreakerSettings,
    routes: OnceLock<PgPool>,
}

impl Upstreams {
    /// Endpoints from the configuration (`(service, url)`), until
    /// `service_routes` says otherwise.
    pub fn new(
        configured: Vec<(String, String)>,
        strategy: Strategy,
        breaker: BreakerSettings,
    ) -> Result<Arc<Self>, String> {
        let mut pools = HashMap::new();
        for (service, url) in &configured {
            let endpoint = Endpoint::new(service, None, url, 1, breaker)?;
            pools.insert(
                service.clone(),
                Arc::new(Pool {
                    endpoints: vec![endpoint],
                    picker: Mutex::new(WeightedRoundRobin::default()),
                }),
            );
        }
        Ok(Arc::new(Self {
            configured,
            pools: RwLock::new(pools),
            strategy,
            breaker,
            routes: OnceLock::new(),
        }))
    }

    /// Where `service_routes` is read from, and health written (the
    /// gateway database, once connected).
    pub fn read_routes_from(&self, pool: PgPool) {
        let _ = self.routes.set(pool);
    }

    /// The services routed.
    pub fn services(&self) -> Vec<String> {
        self.configured.iter().map(|(s, _)| s.clone()).collect()
    }

    /// An endpoint of `service` for the next call, if any is usable.
    pub fn pick(&self, service: &str) -> Option<Arc<Endpoint>> {
        self.pick_excluding(service, None)
    }

    /// An endpoint of `service` other than `excluded` (one that just
    /// failed), if another is usable.
    pub fn pick_excluding(
        &self,
        service: &str,
        excluded: Option<&Arc<Endpoint>>,
    ) -> Option<Arc<Endpoint>> {
        let allowed = |e: &Arc<Endpoint>| excluded.is_none_or(|x| !Arc::ptr_eq(x, e));
        let pool = self
            .pools
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(service)
            .cloned()?;
        let now = Instant::now();
        // When every endpoint failed its health check, try them anyway
        // rather than refuse everything (the breakers still guard them).
        let ignore_health = !pool
            .endpoints
            .iter()
            .any(|e| allowed(e) && e.eligible(now, false));
        let chosen = match self.strategy {
            Strategy::WeightedRoundRobin => {
                let weights: Vec<u32> = pool
                    .endpoints
                    .iter()
                    .map(|e| {
                        if allowed(e) && e.eligible(now, ignore_health) {
                            e.weight
                        } else {
                            0
                        }
                    })
                    .collect();
                pool.picker
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pick(&weights)
            }
            Strategy::LeastLoaded => {
                let loads: Vec<Option<usize>> = pool
                    .endpoints
                    .iter()
                    .map(|e| {
                        (allowed(e) && e.eligible(now, ignore_health))
                            .then(|| e.in_flight.load(Ordering::Relaxed))
                    })
                    .collect();
                least_loaded(&loads, |n| {
                    usize::try_from(uuid::Uuid::now_v7().as_u128() % (n as u128)).unwrap_or(0)
                })
            }
        };
        match chosen {
            Some(i) => Some(Arc::clone(&pool.endpoints[i])),
            // A retry goes elsewhere or not at all.
            None if excluded.is_some() => None,
            // Every endpoint's circuit is open: the one that reopens first,
            // whose breaker then answers with the wait.
            None => pool
                .endpoints
                .iter()
                .filter(|e| e.weight > 0)
                .min_by_key(|e| match e.breaker.state() {
                    State::Open(until) => until,
                    _ => now,
                })
                .cloned(),
        }
    }

    /// Reads `service_routes` and rebuilds the endpoint lists, keeping the
    /// channel, breaker and health of endpoints that stay.
    pub async fn refresh_routes(&self) -> Result<(), sqlx::Error> {
        let Some(pool) = self.routes.get() else {
            return Ok(());
        };
        let rows: Vec<RouteRow> = pg_dispatch!(pool, pool => {
            sqlx::query_as(
                "SELECT id, service, upstream_url, weight, status FROM service_routes \
                 WHERE status <> 'disabled' ORDER BY service, id",
            )
            .fetch_all(pool)
            .await?
        });
        let current = self
            .pools
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut next = HashMap::new();
        for (service, url) in &self.configured {
            let old: HashMap<(Option<String>, String, u32), Arc<Endpoint>> = current
                .get(service)
                .map(|p| {
                    p.endpoints
                        .iter()
                        .map(|e| ((e.route_id.clone(), e.url.clone(), e.weight), Arc::clone(e)))
                        .collect()
                })
                .unwrap_or_default();
            let mut wanted: Vec<(Option<String>, String, u32)> = rows
                .iter()
                .filter(|r| &r.service == service)
                .map(|r| {
                    let weight = if r.status == "active" {
                        u32::try_from(r.weight).unwrap_or(0)
                    } else {
                        // Draining: no new calls.
                        0
                    };
                    (Some(r.id.clone()), r.upstream_url.clone(), weight)
                })
                .collect();
            if wanted.is_empty() {
                wanted.push((None, url.clone(), 1));
            }
            let unchanged = wanted.len() == old.len() && wanted.iter().all(|w| old.contains_key(w));
            if unchanged {
                if let Some(pool) = current.get(service) {
                    next.insert(service.clone(), Arc::clone(pool));
                }
                continue;
            }
            let mut endpoints = Vec::new();
            for key in wanted {
                match old.get(&key) {
                    Some(endpoint) => endpoints.push(Arc::clone(endpoint)),
                    None => {
                        match Endpoint::new(service, key.0.clone(), &key.1, key.2, self.breaker) {
                            Ok(endpoint) => endpoints.push(endpoint),
                            Err(error) => tracing::warn!(%error, "ignoring a service route"),
                        }
                    }
                }
            }
            tracing::info!(
                service,
                endpoints = endpoints.len(),
                "service routes changed"
            );
            next.insert(
                service.clone(),
                Arc::new(Pool {
                    endpoints,
                    picker: Mutex::new(WeightedRoundRobin::default()),
                }),
            );
        }
        *self
            .pools
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = next;
        Ok(())
    }

    /// Checks the health of every endpoint due for it (see
    /// `Endpoint::check_due`), and records the results of endpoints from
    /// `service_routes`.
    pub async fn check_health(&self, every: Duration) {
        let pools = self
            .pools
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut results = Vec::new();
        for (service, pool) in &pools {
            for endpoint in &pool.endpoints {
                if !endpoint.check_due(every) {
                    continue;
                }
                *endpoint
                    .last_check
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
                let started = Instant::now();
                let mut client =
                    tonic_health::pb::health_client::HealthClient::new(endpoint.channel.clone());
                let mut request = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
                    service: service.clone(),
                });
                request.set_timeout(Duration::from_secs(2));
                let (status, detail) = match client.check(request).await {
                    Ok(reply) if reply.get_ref().status == 1 => ("serving", None),
                    Ok(_) => ("not_serving", None),
                    Err(status) => ("unreachable", Some(status.message().to_owned())),
                };
                let healthy = status == "serving";
                if endpoint.healthy.swap(healthy, Ordering::Relaxed) != healthy {
                    tracing::warn!(%service, url = %endpoint.url, status, "endpoint health changed");
                }
                if let Some(route_id) = &endpoint.route_id {
                    let latency = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
                    results.push((route_id.clone(), status, latency, detail));
                }
            }
        }
        if let (Some(pool), false) = (self.routes.get(), results.is_empty()) {
            let now = chrono::Utc::now();
            let written: Result<(), sqlx::Error> = pg_dispatch!(pool, pool => {
                let mut outcome = Ok(());
                for (route_id, status, latency, detail) in &results {
                    if let Err(error) = sqlx::query(
                        "INSERT INTO service_health (route_id, checked_at, status, latency_ms, detail) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(route_id)
                    .bind(now)
                    .bind(*status)
                    .bind(*latency)
                    .bind(detail)
                    .execute(pool)
                    .await
                    {
                        outcome = Err(error);
                    }
                }
                outcome
            });
            if let Err(error) = written {
                tracing::warn!(%error, "could not record health checks");
            }
        }
    }

    /// Refreshes routes every `routes_every` and checks health every
    /// `health_every` until `shutdown` resolves.
    pub async fn run(
        self: Arc<Self>,
        routes_every: Duration,
        health_every: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut routes_at: Option<Instant> = None;
        loop {
            if self.routes.get().is_some()
                && routes_at.is_none_or(|at| at.elapsed() >= routes_every)
            {
                routes_at = Some(Instant::now());
                if let Err(error) = self.refresh_routes().await {
                    tracing::warn!(%error, "could not read service routes");
                }
            }
            self.check_health(health_every).await;
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }
}
