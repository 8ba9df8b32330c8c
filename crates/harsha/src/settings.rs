//! Typed settings: the defaults in `config/harsha.toml` (embedded in the
//! binary), then an optional file given with `--config`, then `HARSHA__…`
//! environment variables. Passed explicitly; nothing reads the environment
//! after start-up.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use harsha_store::{PoolSettings, Role};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../../../config/harsha.toml");

/// Everything the binary can be configured with.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Where `harsha up` keeps its SQLite files.
    pub data_dir: PathBuf,
    /// The IANA time zone of business dates (`Asia/Kolkata`).
    pub business_time_zone: String,
    /// Whether services migrate their database when they start.
    pub migrate_on_start: bool,
    /// Seconds in-flight calls get after a shutdown signal.
    pub shutdown_grace_seconds: u64,
    /// `pretty` or `json`.
    pub log_format: LogFormat,
    /// Where `harsha serve <service>` serves `/metrics` (empty: nowhere).
    pub metrics_listen: String,
    /// Database URL per role.
    pub databases: Databases,
    /// Pool sizing.
    pub pool: PoolSettings,
    /// gRPC listen address per service.
    pub services: Services,
    /// Inventory service behaviour.
    pub inventory: InventorySettings,
    /// Pricing service behaviour.
    pub pricing: PricingSettings,
    pub auth: AuthFileSettings,
    pub edge: EdgeSettings,
    /// Sync service behaviour.
    pub sync: SyncSettings,
    /// Order service behaviour.
    pub order: OrderSettings,
    /// `harsha up --demo` extras.
    pub demo: DemoSettings,
}

/// The `[demo]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct DemoSettings {
    /// Where the demo webhook receivers listen.
    pub hooks_listen: SocketAddr,
}

/// The `[order]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderSettings {
    /// The Customer service; empty for `services.customer`.
    pub customer_endpoint: String,
    /// The Inventory service; empty for `services.inventory`.
    pub inventory_endpoint: String,
    /// The Pricing service; empty for `services.pricing`.
    pub pricing_endpoint: String,
    /// The API key presented to them.
    pub api_key: String,
    /// Milliseconds each call may take.
    pub call_timeout_ms: u64,
    /// Failures that open a called endpoint's circuit.
    pub breaker_failures: u32,
    /// Seconds it stays open.
    pub breaker_open_seconds: u64,
    /// Hours a placed order's stock stays reserved.
    pub reservation_hold_hours: u64,
    /// Seconds a process owns an order it works on.
    pub lease_seconds: u64,
    /// Seconds a retry waits for a placement still running.
    pub replay_wait_seconds: u64,
    /// Seconds between looks for unfinished orders.
    pub recovery_seconds: u64,
    /// Minimum days to expiry for channels not listed.
    pub default_min_shelf_life_days: i32,
    /// Minimum days to expiry per channel.
    #[serde(default)]
    pub min_shelf_life_days: std::collections::BTreeMap<String, i32>,
    /// Channels needing a primary segment.
    pub segment_required_channels: Vec<String>,
    /// Recovery drills: abort after this saga step.
    pub abort_after_step: String,
}

/// What the Order service runs with, checked.
#[derive(Debug, Clone)]
pub struct OrderRuntime {
    /// The saga's configuration.
    pub config: harsha_order::OrderConfig,
    /// `(gRPC service name, endpoint)` of each service called.
    pub endpoints: Vec<(String, String)>,
    /// The API key presented.
    pub api_key: String,
    /// Each call's deadline.
    pub call_timeout: std::time::Duration,
    /// The breakers of called endpoints.
    pub breaker: harsha_mesh::breaker::BreakerSettings,
    /// How often unfinished orders are looked for.
    pub recovery_every: std::time::Duration,
}

/// The `[sync]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct SyncSettings {
    /// Whether the Sync service relays the ERP outbox.
    pub relay_enabled: bool,
    /// Milliseconds between relay passes when the outbox is empty.
    pub relay_interval_ms: u64,
    /// Outbox rows per relay pass.
    pub relay_batch: u32,
    /// Deliveries in flight at once.
    pub dispatch_concurrency: usize,
    /// Deliveries claimed per query.
    pub dispatch_batch: u32,
    /// Milliseconds between looks for due deliveries.
    pub dispatch_poll_ms: u64,
    /// Months of event partitions kept ahead.
    pub partition_months_ahead: u32,
    /// Months events stay in the hot table.
    pub retention_hot_months: u32,
    /// Months events and attempts are kept in all.
    pub retention_total_months: u32,
    /// Months metrics are kept.
    pub retention_metrics_months: u32,
}

/// What the Sync service runs with, checked.
#[derive(Debug, Clone)]
pub struct SyncRuntime {
    /// The erp database whose outbox is relayed; `None` when relaying is off.
    pub relay_from: Option<String>,
    /// Between relay passes on an empty outbox.
    pub relay_interval: std::time::Duration,
    /// Rows per relay pass.
    pub relay_batch: u32,
    /// The dispatcher's settings.
    pub dispatch: harsha_sync::dispatch::DispatchSettings,
    /// Partitions ahead and retention.
    pub upkeep: harsha_sync::jobs::Upkeep,
}

/// The `[edge]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct EdgeSettings {
    /// Where the edge listens.
    pub listen: SocketAddr,
    /// The default deadline of a call, in seconds.
    pub timeout_seconds: u64,
    /// Seconds between reports of rate-limit usage.
    pub usage_flush_seconds: u64,
    /// Consecutive failures that open an upstream's circuit.
    pub breaker_failures: u32,
    /// Seconds an open circuit waits before one trial call.
    pub breaker_open_seconds: u64,
    /// How an endpoint is chosen: weighted_round_robin or least_loaded.
    pub balancer: String,
    /// Seconds between health checks of an endpoint in rotation.
    pub health_check_seconds: u64,
    /// Seconds between reads of service_routes.
    pub routes_refresh_seconds: u64,
    /// Megabytes of answers the response cache holds at most.
    pub cache_max_mb: u64,
    /// Redis shared by every edge replica for rate-limit counters and kept
    /// answers (`redis://host:port/db`); empty to keep them in memory.
    pub redis_url: String,
    /// The prefix of every key the edge writes to Redis.
    pub redis_prefix: String,
    /// GET routes whose answers are kept, and for how long.
    #[serde(default)]
    pub cache: Vec<CachedRoute>,
    /// Where each service is; empty for the `[services]` address.
    pub upstreams: EdgeUpstreams,
}

/// One `[[edge.cache]]` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct CachedRoute {
    /// The route template, as in the contract.
    pub route: String,
    /// Seconds an answer is kept.
    pub ttl_seconds: u64,
}

/// The `[edge.upstreams]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct EdgeUpstreams {
    /// The Customer service.
    pub customer: String,
    /// The Inventory service.
    pub inventory: String,
    /// The Pricing service.
    pub pricing: String,
    /// The Auth service.
    pub auth: String,
    /// The Sync service.
    pub sync: String,
    /// The Order service.
    pub order: String,
}

/// The `[auth]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthFileSettings {
    /// Whether every service checks credentials and scopes.
    pub enforce: bool,
    /// The Auth service's endpoint; empty for the configured auth address.
    pub endpoint: String,
    /// The `iss` claim.
    pub issuer: String,
    /// The `aud` claim.
    pub audience: String,
    /// Seconds an access token lives.
    pub access_token_seconds: i64,
    /// Days a refresh token lives.
    pub refresh_token_days: i64,
    /// Failed logins that lock an account.
    pub lockout_failures: u32,
    /// Within how many seconds.
    pub lockout_window_seconds: i64,
    /// For how many seconds.
    pub lockout_seconds: i64,
    /// Networks whose calls may name the caller's address in
    /// `x-forwarded-for` (where the edge runs).
    pub trusted_proxies: Vec<String>,
}

/// The Pricing service's settings.
#[derive(Debug, Clone, Deserialize)]
pub struct PricingSettings {
    /// `compound` or `additive`.
    pub stacking: String,
    /// Seconds a quote may be applied.
    pub quote_validity_seconds: u64,
    /// The Customer service's gRPC endpoint; empty for the configured
    /// customer listen address.
    pub customer_endpoint: String,
    /// The API key pricing presents to the Customer service.
    pub customer_api_key: String,
    /// Seconds a customer profile is kept.
    pub profile_cache_seconds: u64,
    /// Most customer profiles kept.
    pub profile_cache_entries: usize,
    /// Milliseconds between rule cache version polls.
    pub rule_cache_poll_ms: u64,
    /// Seconds between full rule cache reloads.
    pub rule_cache_full_reload_seconds: u64,
}

/// What the Pricing service runs with, checked.
#[derive(Debug, Clone)]
pub struct PricingRuntime {
    /// The service's configuration.
    pub config: harsha_pricing::PricingConfig,
    /// Where customer profiles come from.
    pub customer_endpoint: String,
    /// The API key presented there.
    pub customer_api_key: String,
    /// How long a profile is kept.
    pub profile_ttl: std::time::Duration,
    /// Most profiles kept.
    pub profile_capacity: usize,
    /// Rule cache poll interval.
    pub cache_poll: std::time::Duration,
    /// Rule cache full reload interval.
    pub cache_full_reload: std::time::Duration,
}

/// The Inventory service's settings.
#[derive(Debug, Clone, Deserialize)]
pub struct InventorySettings {
    /// Days to expiry at or below which a batch is critical.
    pub expiry_critical_days: u32,
    /// Days to expiry at or below which a batch is a warning.
    pub expiry_warning_days: u32,
    /// Default allocation hold, seconds.
    pub allocation_hold_seconds: u32,
    /// Whether a storage breach quarantines the batch.
    pub quarantine_on_breach: bool,
    /// Seconds between sweeps of lapsed reservations.
    pub reservation_sweep_seconds: u64,
    /// Local time (business time zone) of the daily expiry scan, `HH:MM`.
    pub daily_scan_at: String,
    /// Months of movement partitions kept ahead.
    pub partition_months_ahead: u32,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Database URLs, one per role.
#[derive(Debug, Clone, Deserialize)]
pub struct Databases {
    /// The ERPNext extensions database.
    pub erp: String,
    /// The API gateway database.
    pub gateway: String,
    /// The sync database.
    pub sync: String,
}

impl Databases {
    /// The URL of a role's database.
    pub fn url(&self, role: Role) -> &str {
        match role {
            Role::Erp => &self.erp,
            Role::Gateway => &self.gateway,
            Role::Sync => &self.sync,
        }
    }
}

/// Listen addresses, one per service.
#[derive(Debug, Clone, Deserialize)]
pub struct Services {
    /// CustomerService.
    pub customer: SocketAddr,
    /// InventoryService.
    pub inventory: SocketAddr,
    /// PricingService.
    pub pricing: SocketAddr,
    /// AuthService.
    pub auth: SocketAddr,
    /// SyncService.
    pub sync: SocketAddr,
    /// OrderService.
    pub order: SocketAddr,
}

impl Settings {
    /// These settings with `data_dir` replaced when one is given.
    pub fn with_data_dir(mut self, data_dir: Option<PathBuf>) -> Self {
        if let Some(dir) = data_dir {
            self.data_dir = dir;
        }
        self
    }

    /// Where `harsha serve <service>` serves `/metrics`, if anywhere.
    pub fn metrics_address(&self) -> anyhow::Result<Option<SocketAddr>> {
        let value = self.metrics_listen.trim();
        if value.is_empty() {
            return Ok(None);
        }
        value.parse().map(Some).map_err(|_| {
            anyhow::anyhow!("metrics_listen: {value:?} is not an address such as 0.0.0.0:9464")
        })
    }
}

/// A service's endpoint: the one configured, or this file's listen
/// address for it when none is.
fn endpoint(configured: &str, address: SocketAddr) -> String {
    if configured.is_empty() {
        format!("http://{address}")
    } else {
        configured.to_owned()
    }
}

impl Settings {
    /// Loads the defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        builder
            .add_source(
                config::Environment::with_prefix("HARSHA")
                    .prefix_separator("__")
                    .separator("__"),
            )
            .build()
            .context("reading settings")?
            .try_deserialize()
            .context("invalid settings")
    }

    /// The business time zone, checked.
    pub fn time_zone(&self) -> anyhow::Result<chrono_tz::Tz> {
        self.business_time_zone.parse().map_err(|_| {
            anyhow::anyhow!(
                "business_time_zone {:?} is not an IANA time zone",
                self.business_time_zone
            )
        })
    }

    /// The Inventory service's configuration and job schedule, checked.
    pub fn inventory(
        &self,
    ) -> anyhow::Result<(
        harsha_inventory::InventoryConfig,
        harsha_inventory::jobs::JobSchedule,
    )> {
        let inventory = &self.inventory;
        let expiry = harsha_inventory::domain::ExpiryThresholds::new(
            inventory.expiry_critical_days,
            inventory.expiry_warning_days,
        )
        .map_err(|e| anyhow::anyhow!("inventory expiry thresholds: {e}"))?;
        anyhow::ensure!(
            inventory.allocation_hold_seconds > 0,
            "inventory.allocation_hold_seconds must be positive"
        );
        anyhow::ensure!(
            inventory.reservation_sweep_seconds > 0,
            "inventory.reservation_sweep_seconds must be positive"
        );
        let daily_scan_at = chrono::NaiveTime::parse_from_str(&inventory.daily_scan_at, "%H:%M")
            .map_err(|_| {
                anyhow::anyhow!(
                    "inventory.daily_scan_at {:?} is not a time of day (HH:MM)",
                    inventory.daily_scan_at
                )
            })?;
        let config = harsha_inventory::InventoryConfig {
            time_zone: self.time_zone()?,
            expiry,
            default_hold_seconds: inventory.allocation_hold_seconds,
            quarantine_on_breach: inventory.quarantine_on_breach,
        };
        let schedule = harsha_inventory::jobs::JobSchedule {
            sweep_interval: std::time::Duration::from_secs(inventory.reservation_sweep_seconds),
            daily_scan_at,
            partition_months_ahead: inventory.partition_months_ahead,
        };
        Ok((config, schedule))
    }

    /// The Sync service's runtime settings, checked; it relays from the
    /// erp database at `erp_url`.
    pub fn sync(&self, erp_url: &str) -> anyhow::Result<SyncRuntime> {
        let sync = &self.sync;
        anyhow::ensure!(
            sync.relay_interval_ms > 0 && sync.dispatch_poll_ms > 0,
            "sync.relay_interval_ms and sync.dispatch_poll_ms must be positive"
        );
        anyhow::ensure!(
            sync.relay_batch > 0 && sync.dispatch_batch > 0 && sync.dispatch_concurrency > 0,
            "sync.relay_batch, sync.dispatch_batch and sync.dispatch_concurrency must be positive"
        );
        anyhow::ensure!(
            sync.retention_hot_months >= 1
                && sync.retention_total_months >= sync.retention_hot_months
                && sync.retention_metrics_months >= 1,
            "sync retention: hot months at least 1, total months at least the hot months, metrics months at least 1"
        );
        Ok(SyncRuntime {
            relay_from: sync.relay_enabled.then(|| erp_url.to_owned()),
            relay_interval: std::time::Duration::from_millis(sync.relay_interval_ms),
            relay_batch: sync.relay_batch,
            dispatch: harsha_sync::dispatch::DispatchSettings {
                concurrency: sync.dispatch_concurrency,
                batch: sync.dispatch_batch,
                poll: std::time::Duration::from_millis(sync.dispatch_poll_ms),
            },
            upkeep: harsha_sync::jobs::Upkeep {
                partition_months_ahead: sync.partition_months_ahead,
                retention: harsha_sync::store::Retention {
                    hot_months: sync.retention_hot_months,
                    total_months: sync.retention_total_months,
                    metrics_months: sync.retention_metrics_months,
                },
            },
        })
    }

    /// The Pricing service's runtime settings, checked.
    pub fn pricing(&self) -> anyhow::Result<PricingRuntime> {
        let pricing = &self.pricing;
        let stacking = pricing
            .stacking
            .parse()
            .map_err(|e| anyhow::anyhow!("pricing.stacking: {e}"))?;
        anyhow::ensure!(
            pricing.quote_validity_seconds > 0 && pricing.rule_cache_poll_ms > 0,
            "pricing.quote_validity_seconds and pricing.rule_cache_poll_ms must be positive"
        );
        let customer_endpoint = endpoint(&pricing.customer_endpoint, self.services.customer);
        Ok(PricingRuntime {
            config: harsha_pricing::PricingConfig {
                time_zone: self.time_zone()?,
                stacking,
                quote_validity: std::time::Duration::from_secs(pricing.quote_validity_seconds),
            },
            customer_endpoint,
            customer_api_key: pricing.customer_api_key.clone(),
            profile_ttl: std::time::Duration::from_secs(pricing.profile_cache_seconds),
            profile_capacity: pricing.profile_cache_entries.max(1),
            cache_poll: std::time::Duration::from_millis(pricing.rule_cache_poll_ms),
            cache_full_reload: std::time::Duration::from_secs(
                pricing.rule_cache_full_reload_seconds.max(1),
            ),
        })
    }

    /// The Order service's runtime settings, checked.
    pub fn order(&self) -> anyhow::Result<OrderRuntime> {
        let order = &self.order;
        anyhow::ensure!(
            order.call_timeout_ms > 0 && order.lease_seconds > 0 && order.recovery_seconds > 0,
            "order.call_timeout_ms, order.lease_seconds and order.recovery_seconds must be positive"
        );
        // A step's calls (an attempt and, when the answer is lost, one
        // more) must end well inside the lease, or another replica would
        // take the order over from a placement still running.
        anyhow::ensure!(
            order.lease_seconds * 1000 >= 3 * order.call_timeout_ms,
            "order.lease_seconds ({}) must be at least 3 × order.call_timeout_ms",
            order.lease_seconds
        );
        anyhow::ensure!(
            (1..=168).contains(&order.reservation_hold_hours),
            "order.reservation_hold_hours must be 1 to 168, not {}",
            order.reservation_hold_hours
        );
        let abort_after_step = match order.abort_after_step.as_str() {
            "" => None,
            step => Some(
                harsha_order::domain::SagaStep::parse(step)
                    .filter(|s| {
                        matches!(
                            s,
                            harsha_order::domain::SagaStep::Reserving
                                | harsha_order::domain::SagaStep::Applying
                        )
                    })
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "order.abort_after_step must be empty, \"reserving\" or \"applying\", not {step:?}"
                        )
                    })?,
            ),
        };
        Ok(OrderRuntime {
            config: harsha_order::OrderConfig {
                time_zone: self.time_zone()?,
                hold: std::time::Duration::from_secs(order.reservation_hold_hours * 3600),
                lease: std::time::Duration::from_secs(order.lease_seconds),
                replay_wait: std::time::Duration::from_secs(order.replay_wait_seconds),
                min_shelf_life_days: order
                    .min_shelf_life_days
                    .iter()
                    .map(|(channel, days)| (channel.to_uppercase(), *days))
                    .collect(),
                default_min_shelf_life_days: order.default_min_shelf_life_days.max(1),
                segment_required_channels: order
                    .segment_required_channels
                    .iter()
                    .map(|c| c.to_uppercase())
                    .collect(),
                abort_after_step,
            },
            endpoints: vec![
                (
                    "harsha.customer.v1.CustomerService".into(),
                    endpoint(&order.customer_endpoint, self.services.customer),
                ),
                (
                    "harsha.inventory.v1.InventoryService".into(),
                    endpoint(&order.inventory_endpoint, self.services.inventory),
                ),
                (
                    "harsha.pricing.v1.PricingService".into(),
                    endpoint(&order.pricing_endpoint, self.services.pricing),
                ),
            ],
            api_key: order.api_key.clone(),
            call_timeout: std::time::Duration::from_millis(order.call_timeout_ms),
            breaker: harsha_mesh::breaker::BreakerSettings {
                failures_to_open: order.breaker_failures.max(1),
                open_for: std::time::Duration::from_secs(order.breaker_open_seconds.max(1)),
            },
            recovery_every: std::time::Duration::from_secs(order.recovery_seconds),
        })
    }

    /// The Auth service's settings, checked.
    pub fn auth(&self) -> anyhow::Result<harsha_auth::AuthSettings> {
        let auth = &self.auth;
        anyhow::ensure!(
            auth.access_token_seconds > 0 && auth.refresh_token_days > 0,
            "auth.access_token_seconds and auth.refresh_token_days must be positive"
        );
        anyhow::ensure!(
            auth.lockout_failures > 0
                && auth.lockout_window_seconds > 0
                && auth.lockout_seconds > 0,
            "auth.lockout_failures, auth.lockout_window_seconds and auth.lockout_seconds must be positive"
        );
        anyhow::ensure!(
            !auth.issuer.trim().is_empty() && !auth.audience.trim().is_empty(),
            "auth.issuer and auth.audience must not be empty"
        );
        Ok(harsha_auth::AuthSettings {
            tokens: harsha_auth::tokens::TokenSettings {
                issuer: auth.issuer.clone(),
                audience: auth.audience.clone(),
                access_ttl: chrono::Duration::seconds(auth.access_token_seconds),
                refresh_ttl: chrono::Duration::days(auth.refresh_token_days),
            },
            lockout: harsha_auth::domain::LockoutPolicy {
                max_failures: auth.lockout_failures,
                window: chrono::Duration::seconds(auth.lockout_window_seconds),
                lock_for: chrono::Duration::seconds(auth.lockout_seconds),
            },
        })
    }

    /// Access control on every service: on or off, and where the Auth
    /// service is.
    pub fn access(&self) -> anyhow::Result<crate::server::AccessConfig> {
        let auth_endpoint = endpoint(&self.auth.endpoint, self.services.auth);
        let trusted_proxies = self
            .auth
            .trusted_proxies
            .iter()
            .map(|entry| {
                harsha_auth::domain::parse_network(entry)
                    .map_err(|e| anyhow::anyhow!("auth.trusted_proxies: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(crate::server::AccessConfig {
            trusted_proxies,
            enforce: self.auth.enforce,
            auth_endpoint,
            issuer: self.auth.issuer.clone(),
            audience: self.auth.audience.clone(),
        })
    }

    /// The edge's configuration: every service's endpoint.
    pub fn edge(&self) -> anyhow::Result<harsha_edge::EdgeConfig> {
        anyhow::ensure!(
            self.edge.timeout_seconds > 0,
            "edge.timeout_seconds must be positive"
        );
        let upstreams = &self.edge.upstreams;
        Ok(harsha_edge::EdgeConfig {
            upstreams: vec![
                (
                    "harsha.customer.v1.CustomerService".into(),
                    endpoint(&upstreams.customer, self.services.customer),
                ),
                (
                    "harsha.inventory.v1.InventoryService".into(),
                    endpoint(&upstreams.inventory, self.services.inventory),
                ),
                (
                    "harsha.pricing.v1.PricingService".into(),
                    endpoint(&upstreams.pricing, self.services.pricing),
                ),
                (
                    "harsha.auth.v1.AuthService".into(),
                    endpoint(&upstreams.auth, self.services.auth),
                ),
                (
                    "harsha.sync.v1.SyncService".into(),
                    endpoint(&upstreams.sync, self.services.sync),
                ),
                (
                    "harsha.order.v1.OrderService".into(),
                    endpoint(&upstreams.order, self.services.order),
                ),
            ],
            default_timeout: std::time::Duration::from_secs(self.edge.timeout_seconds),
            guard: None,
            audit: None,
            breaker: harsha_mesh::breaker::BreakerSettings {
                failures_to_open: self.edge.breaker_failures.max(1),
                open_for: std::time::Duration::from_secs(self.edge.breaker_open_seconds.max(1)),
            },
            strategy: self
                .edge
                .balancer
                .parse()
                .map_err(|e| anyhow::anyhow!("edge.balancer: {e}"))?,
            cache_ttls: self
                .edge
                .cache
                .iter()
                .map(|c| {
                    (
                        c.route.clone(),
                        std::time::Duration::from_secs(c.ttl_seconds),
                    )
                })
                .collect(),
            cache_max_bytes: self.edge.cache_max_mb.max(1) * 1024 * 1024,
            metrics: None,
            shared: if self.edge.redis_url.is_empty() {
                None
            } else {
                Some(
                    harsha_edge::shared::Shared::new(&self.edge.redis_url, &self.edge.redis_prefix)
                        .map_err(|e| anyhow::anyhow!("edge.redis_url: {e}"))?,
                )
            },
        })
    }

    pub fn embedded_url(&self, role: Role) -> String {
        format!("sqlite://{}", self.embedded_file(role).display())
    }

    /// The SQLite file of `role` under `data_dir` (`harsha up`'s).
    pub fn embedded_file(&self, role: Role) -> PathBuf {
        self.data_dir.join(format!("{}.sqlite", role.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_defaults_load() {
        let settings = Settings::load(None).unwrap();
        assert_eq!(settings.services.customer.port(), 50051);
        assert_eq!(settings.time_zone().unwrap(), chrono_tz::Asia::Kolkata);
        assert!(settings.databases.erp.starts_with("sqlite://"));
        let (inventory, schedule) = settings.inventory().unwrap();
        assert_eq!(inventory.expiry.critical_days(), 7);
        assert_eq!(inventory.expiry.warning_days(), 30);
        assert_eq!(schedule.daily_scan_at.to_string(), "00:05:00");
        let pricing = settings.pricing().unwrap();
        assert_eq!(pricing.customer_endpoint, "http://127.0.0.1:50051");
        assert_eq!(pricing.cache_poll.as_millis(), 250);
        let auth = settings.auth().unwrap();
        assert_eq!(auth.tokens.access_ttl, chrono::Duration::minutes(15));
        assert_eq!(auth.lockout.max_failures, 5);
        let access = settings.access().unwrap();
        assert!(access.enforce);
        assert_eq!(access.auth_endpoint, "http://127.0.0.1:50054");
    }

    #[test]
    fn a_file_overrides_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("custom.toml");
        std::fs::write(
            &file,
            "business_time_zone = \"Asia/Dubai\"\n[services]\ncustomer = \"127.0.0.1:6000\"\n",
        )
        .unwrap();
        let settings = Settings::load(Some(&file)).unwrap();
        assert_eq!(settings.services.customer.port(), 6000);
        assert_eq!(settings.services.inventory.port(), 50052);
        assert_eq!(settings.time_zone().unwrap(), chrono_tz::Asia::Dubai);
    }
}
