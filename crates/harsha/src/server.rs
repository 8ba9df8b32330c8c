//! One gRPC server per service: health checking (`grpc.health.v1`, per
//! service name), server reflection (v1 and v1alpha) and the service
//! itself, on its own listener.
//!
//! Health has two names: the service's own (`harsha.customer.v1.CustomerService`)
//! is readiness — NOT_SERVING until its database is reachable and migrated,
//! then following a periodic ping — and `""` is liveness, SERVING while the
//! server runs, so an outage of the database takes a replica out of rotation
//! without getting it restarted. Calls made before the database is ready
//! answer UNAVAILABLE.
//!
//! Every server runs the access layer (`harsha_mesh::AccessLayer`): each
//! call to a Harsha RPC is checked against the scope its contract names,
//! with token keys and revocations fetched from the Auth service; a server
//! is not ready until it has them.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use harsha_auth::{
    Accounts, AuthGrpc, AuthSettings,
    access::{Gatekeeper, GrpcKeyChecker},
    verifier::{GrpcTrustSource, Verifier, VerifierSettings},
};
use harsha_customer::{CustomerGrpc, SqlCustomerStore};
use harsha_inventory::{InventoryConfig, InventoryGrpc, SqlInventoryStore, jobs::JobSchedule};
use harsha_mesh::AccessLayer;
use harsha_order::{OrderGrpc, Saga, SqlOrderStore};
use harsha_pricing::{
    PricingGrpc, SqlPricingStore, cache::RuleCache, profiles::GrpcCustomerProfiles,
};
use harsha_store::{Database, PoolSettings, Role};
use harsha_sync::{SqlSyncStore, SyncGrpc, dispatch::Dispatcher, relay::Relay};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::settings::Services;

/// How often a ready service checks its database is still there.
const HEALTH_PING_INTERVAL: Duration = Duration::from_secs(5);
/// TCP keepalive on accepted connections, so dead peers are noticed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// The longest wait between two attempts to reach the database.
const MAX_CONNECT_BACKOFF: Duration = Duration::from_secs(15);

/// The services of the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceKind {
    /// Segments, assignments, territories, profiles.
    Customer,
    /// Batches, movements, expiry.
    Inventory,
    /// Dynamic pricing rules.
    Pricing,
    /// Users, tokens, keys.
    Auth,
    /// Events and conflicts.
    Sync,
    /// Orders placed across the others.
    Order,
}

impl ServiceKind {
    /// Every service, in start-up order.
    pub const ALL: [ServiceKind; 6] = [
        Self::Customer,
        Self::Inventory,
        Self::Pricing,
        Self::Auth,
        Self::Sync,
        Self::Order,
    ];

    /// The database role the service uses.
    pub fn role(self) -> Role {
        match self {
            Self::Customer | Self::Inventory | Self::Pricing | Self::Order => Role::Erp,
            Self::Auth => Role::Gateway,
            Self::Sync => Role::Sync,
        }
    }

    /// The fully-qualified gRPC service name, also its health-check name.
    pub fn grpc_name(self) -> &'static str {
        match self {
            Self::Customer => "harsha.customer.v1.CustomerService",
            Self::Inventory => "harsha.inventory.v1.InventoryService",
            Self::Pricing => "harsha.pricing.v1.PricingService",
            Self::Auth => "harsha.auth.v1.AuthService",
            Self::Sync => "harsha.sync.v1.SyncService",
            Self::Order => "harsha.order.v1.OrderService",
        }
    }

    /// The configured listen address.
    pub fn listen_address(self, services: &Services) -> std::net::SocketAddr {
        match self {
            Self::Customer => services.customer,
            Self::Inventory => services.inventory,
            Self::Pricing => services.pricing,
            Self::Auth => services.auth,
            Self::Sync => services.sync,
            Self::Order => services.order,
        }
    }

    /// The lower-case name used on the command line and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Inventory => "inventory",
            Self::Pricing => "pricing",
            Self::Auth => "auth",
            Self::Sync => "sync",
            Self::Order => "order",
        }
    }
}

/// Where a service gets its database.
pub enum DatabaseSource {
    /// Already connected and migrated (`harsha up`).
    Ready(Database),
    /// Connect in the background, retrying until it answers (`harsha serve`).
    Connect {
        /// The database URL.
        url: String,
        /// Whether to apply migrations once connected.
        migrate: bool,
        /// Pool sizing.
        pool: PoolSettings,
    },
}

/// What the services are configured with, beyond their database.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The business time zone.
    pub time_zone: chrono_tz::Tz,
    /// The Inventory service's behaviour.
    pub inventory: InventoryConfig,
    /// When the Inventory service's background work runs.
    pub inventory_jobs: JobSchedule,
    /// The Pricing service's runtime settings.
    pub pricing: crate::settings::PricingRuntime,
    /// The Auth service's settings.
    pub auth: AuthSettings,
    /// Access control on every service.
    pub access: AccessConfig,
    /// The Sync service's relay, dispatcher and partitions.
    pub sync: crate::settings::SyncRuntime,
    /// The Order service's saga and clients.
    pub order: crate::settings::OrderRuntime,
}

/// Access control on every service.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// Whether calls are checked at all.
    pub enforce: bool,
    /// The Auth service, for keys, revocations and API keys.
    pub auth_endpoint: String,
    /// The `iss` tokens carry.
    pub issuer: String,
    /// The `aud` tokens carry.
    pub audience: String,
    /// Where the edge runs: calls from there name the caller's address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// The access layer for a server, and the gatekeeper whose readiness the
/// server waits for (none when access control is off).
fn access_layer(
    kind: ServiceKind,
    config: &AccessConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<(AccessLayer, Option<Arc<Gatekeeper>>)> {
    if !config.enforce {
        tracing::warn!(
            service = kind.name(),
            "access control is off: every call is admitted"
        );
        return Ok((AccessLayer::open(), None));
    }
    let gatekeeper = gatekeeper(kind.name(), config, shutdown)?;
    Ok((
        AccessLayer::enforcing(Arc::clone(&gatekeeper))
            .trusting_proxies(config.trusted_proxies.clone()),
        Some(gatekeeper),
    ))
}

/// A gatekeeper checking API keys through the Auth service and tokens
/// with a verifier loaded (with back-off) in the background, then kept
/// fresh until `shutdown`.
pub fn gatekeeper(
    name: &'static str,
    config: &AccessConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<Arc<Gatekeeper>> {
    let anyhow_of = |e: harsha_auth::AuthError| anyhow::anyhow!("{e}");
    let keys = GrpcKeyChecker::new(&config.auth_endpoint).map_err(anyhow_of)?;
    let source = Arc::new(GrpcTrustSource::new(&config.auth_endpoint).map_err(anyhow_of)?);
    let slot: Arc<std::sync::OnceLock<Arc<Verifier>>> = Arc::default();
    let gatekeeper = Arc::new(Gatekeeper::new(Arc::clone(&slot), Arc::new(keys)));
    let settings = VerifierSettings {
        issuer: config.issuer.clone(),
        audience: config.audience.clone(),
        ..VerifierSettings::default()
    };
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let verifier = loop {
            match Verifier::load(source.clone(), settings.clone()).await {
                Ok(verifier) => break verifier,
                Err(error) => {
                    tracing::debug!(service = name, %error, retry_in = ?backoff, "token keys not loaded yet");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        let _ = slot.set(Arc::clone(&verifier));
        tracing::info!(service = name, "token keys loaded");
        verifier.run(shutdown.cancelled_owned()).await;
    });
    Ok(gatekeeper)
}

/// Where a service's store goes once its database is ready.
enum StoreHandOff {
    /// The Customer service's slot.
    Customer(harsha_customer::grpc::StoreSlot),
    /// The Inventory service's slot; its background jobs start with it.
    Inventory(harsha_inventory::grpc::StoreSlot),
    /// The Pricing service's slot; its rule cache is loaded into it.
    Pricing(harsha_pricing::grpc::ReadySlot),
    /// The Auth service's slot.
    Auth(harsha_auth::grpc::AccountsSlot),
    /// The Sync service's slot; its relay, dispatcher and partition
    /// maintenance start with it, the dispatcher woken through the notify.
    Sync(harsha_sync::grpc::StoreSlot, Arc<tokio::sync::Notify>),
    /// The Order service's slot and the clients its saga calls through;
    /// recovery of unfinished orders starts with it.
    Order(
        harsha_order::grpc::SagaSlot,
        Arc<harsha_order::services::GrpcDownstream>,
    ),
}

/// Runs one service on `listener` until `shutdown` is cancelled, then lets
/// in-flight calls finish.
pub async fn run(
    kind: ServiceKind,
    listener: TcpListener,
    database: DatabaseSource,
    config: ServiceConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(kind.grpc_name(), ServingStatus::NotServing)
        .await;
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(harsha_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
    };
    let reflection_v1 = reflection().build_v1().context("building reflection v1")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("building reflection v1alpha")?;

    let (access, gatekeeper) = access_layer(kind, &config.access, &shutdown)?;
    let router = tonic::transport::Server::builder()
        .layer(harsha_mesh::trace::TraceLayer)
        .layer(access)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    let (router, hand_off) = match kind {
        ServiceKind::Customer => {
            let slot = harsha_customer::grpc::StoreSlot::default();
            let service = CustomerGrpc::new(Arc::clone(&slot), config.time_zone);
            (
                router.add_service(service.into_server()),
                StoreHandOff::Customer(slot),
            )
        }
        ServiceKind::Inventory => {
            let slot = harsha_inventory::grpc::StoreSlot::default();
            let service = InventoryGrpc::new(Arc::clone(&slot), config.inventory);
            (
                router.add_service(service.into_server()),
                StoreHandOff::Inventory(slot),
            )
        }
        ServiceKind::Pricing => {
            let slot = harsha_pricing::grpc::ReadySlot::default();
            let pricing = &config.pricing;
            let profiles = GrpcCustomerProfiles::new(
                &pricing.customer_endpoint,
                pricing.profile_ttl,
                pricing.profile_capacity,
                Some(pricing.customer_api_key.as_str()),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let service = PricingGrpc::new(Arc::clone(&slot), Arc::new(profiles), pricing.config);
            (
                router.add_service(service.into_server()),
                StoreHandOff::Pricing(slot),
            )
        }
        ServiceKind::Auth => {
            let slot = harsha_auth::grpc::AccountsSlot::default();
            let service = AuthGrpc::new(Arc::clone(&slot));
            (
                router.add_service(service.into_server()),
                StoreHandOff::Auth(slot),
            )
        }
        ServiceKind::Sync => {
            let slot = harsha_sync::grpc::StoreSlot::default();
            let wake = Arc::new(tokio::sync::Notify::new());
            let service = SyncGrpc::new(Arc::clone(&slot), Arc::clone(&wake));
            (
                router.add_service(service.into_server()),
                StoreHandOff::Sync(slot, wake),
            )
        }
        ServiceKind::Order => {
            let slot = harsha_order::grpc::SagaSlot::default();
            let downstream = order_clients(&config.order, &shutdown)?;
            let service = OrderGrpc::new(Arc::clone(&slot));
            (
                router.add_service(service.into_server()),
                StoreHandOff::Order(slot, downstream),
            )
        }
    };

    let readiness = tokio::spawn(become_ready(
        kind,
        database,
        hand_off,
        gatekeeper,
        config.clone(),
        reporter,
        shutdown.clone(),
    ));
    let served = router
        .serve_with_incoming_shutdown(incoming(listener), shutdown.cancelled_owned())
        .await
        .with_context(|| format!("serving {}", kind.grpc_name()));
    readiness.abort();
    served
}

/// Accepted connections with Nagle's algorithm off: without it, every
/// response waits for the client's delayed ACK (~40 ms on Linux).
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(TCP_KEEPALIVE))
}

/// Connects (with back-off) and migrates, hands the database to the
/// service, reports SERVING, then keeps the health status in step with the
/// database's answers.
async fn become_ready(
    kind: ServiceKind,
    source: DatabaseSource,
    hand_off: StoreHandOff,
    gatekeeper: Option<Arc<Gatekeeper>>,
    config: ServiceConfig,
    reporter: HealthReporter,
    shutdown: CancellationToken,
) {
    let database = match source {
        DatabaseSource::Ready(database) => database,
        DatabaseSource::Connect { url, migrate, pool } => {
            let mut backoff = Duration::from_millis(250);
            loop {
                match connect(kind.role(), &url, migrate, &pool).await {
                    Ok(database) => break database,
                    Err(error) => {
                        tracing::warn!(service = kind.name(), error = format!("{error:#}"), retry_in = ?backoff,
                            "database not ready");
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_CONNECT_BACKOFF);
                    }
                }
            }
        }
    };
    let erp_pool = || match database.erp_pool() {
        Ok(pool) => Some(pool),
        Err(error) => {
            tracing::error!(service = kind.name(), %error, "unusable database");
            None
        }
    };
    match hand_off {
        StoreHandOff::Customer(slot) => {
            let Some(pool) = erp_pool() else { return };
            let _ = slot.set(Arc::new(SqlCustomerStore::new(pool)));
        }
        StoreHandOff::Inventory(slot) => {
            let Some(pool) = erp_pool() else { return };
            let store: Arc<dyn harsha_inventory::InventoryStore> =
                Arc::new(SqlInventoryStore::new(pool));
            let _ = slot.set(Arc::clone(&store));
            tokio::spawn(harsha_inventory::jobs::run(
                store,
                config.inventory,
                config.inventory_jobs,
                shutdown.clone().cancelled_owned(),
            ));
        }
        StoreHandOff::Pricing(slot) => {
            let Some(pool) = erp_pool() else { return };
            let store: Arc<dyn harsha_pricing::PricingStore> = Arc::new(SqlPricingStore::new(pool));
            // The rule cache must load before the service is ready.
            let mut backoff = Duration::from_millis(250);
            let cache = loop {
                match RuleCache::load(Arc::clone(&store), config.pricing.cache_full_reload).await {
                    Ok(cache) => break cache,
                    Err(error) => {
                        tracing::warn!(service = kind.name(), error = %harsha_store::status::error_chain(&error), "rule cache not loaded");
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_CONNECT_BACKOFF);
                    }
                }
            };
            tokio::spawn(Arc::clone(&cache).run(
                config.pricing.cache_poll,
                shutdown.clone().cancelled_owned(),
            ));
            tokio::spawn(pricing_partitions(
                Arc::clone(&store),
                config.time_zone,
                shutdown.clone(),
            ));
            let _ = slot.set(harsha_pricing::grpc::Ready { store, cache });
        }
        StoreHandOff::Auth(slot) => {
            let accounts = database
                .pg_pool()
                .map_err(anyhow::Error::from)
                .and_then(|pool| Ok(Accounts::new(pool, config.auth.clone())?));
            match accounts {
                Ok(accounts) => {
                    let mut backoff = Duration::from_millis(250);
                    while let Err(error) =
                        accounts.tokens.ensure_signing_key(chrono::Utc::now()).await
                    {
                        tracing::warn!(service = kind.name(), %error, "no signing key yet");
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(MAX_CONNECT_BACKOFF);
                    }
                    let _ = slot.set(accounts);
                }
                Err(error) => {
                    tracing::error!(
                        service = kind.name(),
                        error = format!("{error:#}"),
                        "unusable database"
                    );
                    return;
                }
            }
        }
        StoreHandOff::Sync(slot, wake) => {
            let pool = match database.pg_pool() {
                Ok(pool) => pool,
                Err(error) => {
                    tracing::error!(service = kind.name(), %error, "unusable database");
                    return;
                }
            };
            let store: Arc<dyn harsha_sync::SyncStore> = Arc::new(SqlSyncStore::new(pool));
            let _ = slot.set(Arc::clone(&store));
            let sync = config.sync.clone();
            tokio::spawn(
                Dispatcher::new(Arc::clone(&store), sync.dispatch, Arc::clone(&wake))
                    .run(shutdown.clone().cancelled_owned()),
            );
            if let Some(erp_url) = sync.relay_from.clone() {
                tokio::spawn(relay_outbox(
                    erp_url,
                    Arc::clone(&store),
                    sync.clone(),
                    wake,
                    shutdown.clone(),
                ));
            }
            tokio::spawn(harsha_sync::jobs::run(
                store,
                sync.upkeep,
                shutdown.clone().cancelled_owned(),
            ));
        }
        StoreHandOff::Order(slot, downstream) => {
            let Some(pool) = erp_pool() else { return };
            let saga = Arc::new(Saga::new(
                Arc::new(SqlOrderStore::new(pool)),
                downstream,
                config.order.config.clone(),
            ));
            let _ = slot.set(Arc::clone(&saga));
            // Orders a previous process left unfinished are settled now,
            // then whatever is cut short later.
            tokio::spawn(saga.run_recovery(
                config.order.recovery_every,
                shutdown.clone().cancelled_owned(),
            ));
        }
    }
    // Calls cannot be checked until the token keys are loaded.
    if let Some(gatekeeper) = gatekeeper {
        while !gatekeeper.is_ready() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }
    tracing::info!(service = kind.name(), engine = %database.engine(), "ready");
    let mut serving = None;
    loop {
        let pinged = database.ping().await;
        publish_database(kind, &database, pinged.is_ok());
        let status = match pinged {
            Ok(()) => ServingStatus::Serving,
            Err(error) => {
                tracing::warn!(service = kind.name(), %error, "database ping failed");
                ServingStatus::NotServing
            }
        };
        if serving != Some(status) {
            reporter.set_service_status(kind.grpc_name(), status).await;
            serving = Some(status);
        }
        tokio::select! {
            () = shutdown.cancelled() => {
                reporter.set_service_status(kind.grpc_name(), ServingStatus::NotServing).await;
                reporter.set_service_status("", ServingStatus::NotServing).await;
                return;
            }
            () = tokio::time::sleep(HEALTH_PING_INTERVAL) => {}
        }
    }
}

/// The service's database as gauges: whether its last ping answered
/// (`harsha_db_up`, with a counter of failed pings) and its pool's
/// connections, busy and idle.
fn publish_database(kind: ServiceKind, database: &harsha_store::Database, answered: bool) {
    let (service, role) = (kind.name(), database.role().name());
    metrics::gauge!("harsha_db_up", "service" => service, "role" => role).set(if answered {
        1.0
    } else {
        0.0
    });
    if !answered {
        metrics::counter!("harsha_db_ping_failures_total", "service" => service, "role" => role)
            .increment(1);
    }
    let (open, idle) = database.connections();
    let busy = open.saturating_sub(idle);
    metrics::gauge!("harsha_db_pool_connections", "service" => service, "role" => role, "state" => "busy")
        .set(f64::from(busy));
    metrics::gauge!("harsha_db_pool_connections", "service" => service, "role" => role, "state" => "idle")
        .set(f64::from(idle));
}

/// Connects (with back-off) to the erp database, without migrating it (its
/// services do), and relays its outbox into the event stream until
/// `shutdown`.
async fn relay_outbox(
    erp_url: String,
    store: Arc<dyn harsha_sync::SyncStore>,
    sync: crate::settings::SyncRuntime,
    wake: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    let pool = PoolSettings {
        max_connections: 2,
        ..PoolSettings::default()
    };
    let mut backoff = Duration::from_millis(250);
    let erp = loop {
        let connected = Database::connect(Role::Erp, &erp_url, &pool)
            .await
            .and_then(|db| db.erp_pool());
        match connected {
            Ok(erp) => break erp,
            Err(error) => {
                tracing::warn!(error = %harsha_store::status::error_chain(&error), retry_in = ?backoff, "outbox relay: erp database not reachable yet");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_CONNECT_BACKOFF);
            }
        }
    };
    tracing::info!("outbox relay running");
    Relay::new(erp, store, sync.relay_batch, wake)
        .run(sync.relay_interval, shutdown.cancelled_owned())
        .await;
}

/// Keeps monthly partitions of the rule-application table three months
/// ahead (MariaDB), at start and daily.
async fn pricing_partitions(
    store: Arc<dyn harsha_pricing::PricingStore>,
    time_zone: chrono_tz::Tz,
    shutdown: CancellationToken,
) {
    loop {
        let today = chrono::Utc::now().with_timezone(&time_zone).date_naive();
        let horizon = today
            .checked_add_months(chrono::Months::new(3))
            .unwrap_or(today);
        match store.ensure_application_partitions(horizon).await {
            Ok(added) if !added.is_empty() => {
                tracing::info!(?added, "added rule-application partitions")
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(error = %harsha_store::status::error_chain(&error), "partition maintenance failed")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(24 * 3600)) => {}
        }
    }
}

/// Connects to a role's database and, if asked, migrates it; if not, fails
/// while migrations are pending, so a service waits for the migration Job
/// instead of serving against an old schema.
pub async fn connect(
    role: Role,
    url: &str,
    migrate: bool,
    pool: &PoolSettings,
) -> anyhow::Result<Database> {
    let database = Database::connect(role, url, pool)
        .await
        .with_context(|| format!("connecting to the {role} database"))?;
    if migrate {
        database.migrate().await?;
    } else {
        let pending = database.pending_migrations().await?;
        if pending > 0 {
            database.close().await;
            anyhow::bail!(
                "the {role} database has {pending} pending migrations; run `harsha migrate`"
            );
        }
    }
    Ok(database)
}

/// The Order service's clients of the services it calls: each through
/// `harsha-mesh` (its endpoints health-checked and balanced, a breaker per
/// endpoint, a deadline per call, trace context, its own API key).
fn order_clients(
    order: &crate::settings::OrderRuntime,
    shutdown: &CancellationToken,
) -> anyhow::Result<Arc<harsha_order::services::GrpcDownstream>> {
    let upstreams = harsha_mesh::upstream::Upstreams::new(
        order.endpoints.clone(),
        harsha_mesh::balance::Strategy::WeightedRoundRobin,
        order.breaker,
    )
    .map_err(|e| anyhow::anyhow!("order endpoints: {e}"))?;
    tokio::spawn(Arc::clone(&upstreams).run(
        Duration::from_secs(10),
        Duration::from_secs(30),
        shutdown.clone().cancelled_owned(),
    ));
    let client = |service: &str| {
        harsha_mesh::client::ServiceClient::new(
            Arc::clone(&upstreams),
            service,
            Some(order.api_key.as_str()),
            order.call_timeout,
        )
        .map_err(|e| anyhow::anyhow!(e))
    };
    Ok(Arc::new(harsha_order::services::GrpcDownstream::new(
        client("harsha.customer.v1.CustomerService")?,
        client("harsha.inventory.v1.InventoryService")?,
        client("harsha.pricing.v1.PricingService")?,
    )))
}
