//! `harsha`: the Harsha Mesh binary.
//!
//! * `harsha up [--demo]` — every service in one process on SQLite files
//!   under `data_dir`, each on its own loopback port;
//! * `harsha serve <service>` — one service, on its configured database;
//! * `harsha migrate [up|status|validate|verify] [--role R]` — apply
//!   pending migrations, list them, refuse edited ones, check invariants;
//! * `harsha backup DIR` / `harsha restore DIR` — copy the embedded SQLite
//!   databases out, or back into a stopped mesh's data folder;
//! * `harsha admin create-user …` / `create-api-key …` — create a user or
//!   an API key on the gateway database and print its secret once.
//!
//! Settings come from `config/harsha.toml` (built in), `--config FILE` and
//! `HARSHA__…` variables. SIGINT or SIGTERM stops accepting calls, lets
//! in-flight calls finish (up to `shutdown_grace_seconds`) and exits 0.

/// mimalloc instead of the system allocator: the services allocate many
/// small objects per request on several threads, where glibc's malloc
/// contends on its arena locks (pricing throughput nearly doubled with it;
/// docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod backup;
mod demo;
mod demo_hooks;
mod loadgen;
mod seed;
mod server;
mod settings;
mod telemetry;

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use harsha_store::Role;
use server::{DatabaseSource, ServiceKind};
use settings::{LogFormat, Settings};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "harsha",
    version,
    about = "Harsha Mesh: gRPC services for Harsha Delights"
)]
struct Cli {
    /// A settings file layered over the built-in defaults.
    #[arg(long, global = true, env = "HARSHA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every service in this process on embedded SQLite.
    Up {
        /// Load demo customers, segments and territories into an empty database.
        #[arg(long)]
        demo: bool,
        /// Where the SQLite files live (overrides `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Run one service on its configured database, or the REST edge.
    Serve {
        /// The service to run.
        service: ServeTarget,
        /// The address to listen on (overrides the settings).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Where to answer Prometheus scrapes at /metrics (overrides
        /// `metrics_listen`; the edge serves /metrics on its own listener).
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Migrations of the configured databases: apply the pending ones
    /// (`up`, the default), list every one's state (`status`), refuse edited,
    /// failed or unknown ones (`validate`), or check the data's invariants
    /// (`verify`). Exits non-zero when something is wrong.
    Migrate {
        /// What to do.
        #[command(subcommand)]
        action: Option<MigrateAction>,
        /// Only this role (erp, gateway or sync).
        #[arg(long, global = true)]
        role: Option<Role>,
    },
    /// Copy the embedded SQLite databases (`harsha up`'s) into a new folder,
    /// consistently, while the mesh runs or not.
    Backup {
        /// The new folder.
        to: PathBuf,
        /// Where the SQLite files live (overrides `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Put a backup made by `harsha backup` back into the data folder of a
    /// stopped mesh.
    Restore {
        /// The backup folder.
        from: PathBuf,
        /// Where the SQLite files live (overrides `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Restore even though the databases look in use.
        #[arg(long)]
        force: bool,
    },
    /// Operator tasks on the configured gateway database.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Load the demo data scaled up for load tests into the configured erp
    /// database (migrating it first).
    Seed(seed::Scale),
    /// Drive orders, quotes and lookups through the edge at a fixed rate
    /// and report throughput, latency percentiles and order-event lag.
    Loadgen(loadgen::LoadArgs),
}

/// What `harsha migrate` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
enum MigrateAction {
    /// Apply pending migrations (refused when an applied one was edited
    /// or failed).
    Up,
    /// Each migration: applied (when, how long), pending, edited, failed,
    /// or unknown to this build.
    Status,
    /// Fail when an applied migration was edited, failed or is unknown.
    Validate,
    /// Row counts and the invariants the services keep; fail when one is
    /// broken.
    Verify,
}

/// What `harsha serve` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ServeTarget {
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
    /// The REST/JSON edge in front of them.
    Edge,
}

impl ServeTarget {
    fn service(self) -> Option<ServiceKind> {
        Some(match self {
            Self::Customer => ServiceKind::Customer,
            Self::Inventory => ServiceKind::Inventory,
            Self::Pricing => ServiceKind::Pricing,
            Self::Auth => ServiceKind::Auth,
            Self::Sync => ServiceKind::Sync,
            Self::Order => ServiceKind::Order,
            Self::Edge => return None,
        })
    }
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create a user with a generated password, printed once.
    CreateUser {
        /// The login name.
        #[arg(long)]
        username: String,
        /// The email address.
        #[arg(long)]
        email: String,
        /// A role (repeatable): admin, sales, warehouse, pricing-manager,
        /// storefront, viewer.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// The rate-limit plan (standard, partner, internal).
        #[arg(long, default_value = harsha_auth::accounts::DEFAULT_PLAN)]
        plan: String,
    },
    /// Create an API key for a user; the key is printed once.
    CreateApiKey {
        /// The user (login name) the key acts as.
        #[arg(long)]
        user: String,
        /// What the key is for.
        #[arg(long)]
        name: String,
        /// A scope (repeatable), among the user's, e.g. customer:read.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// An IPv4/IPv6 CIDR block it may be used from (repeatable);
        /// anywhere when none.
        #[arg(long = "cidr")]
        cidrs: Vec<String>,
        /// The rate-limit plan; the user's when not given.
        #[arg(long, default_value = "")]
        plan: String,
        /// Days until the key stops working; never when not given.
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    let exporter = init_tracing(settings.log_format, cli.command.process_name());
    let result = run(cli.command, settings).await;
    if let Some(provider) = exporter {
        // Sends the spans still buffered; the exporter blocks, so not on a
        // runtime thread.
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = flushed {
            eprintln!("traces: the last spans were not exported: {error}");
        }
    }
    result
}

impl Command {
    /// The name this process reports its traces under (`service.name`,
    /// unless `OTEL_SERVICE_NAME` says otherwise).
    fn process_name(&self) -> String {
        match self {
            Self::Up { .. } => "harsha-mesh".to_owned(),
            Self::Serve { service, .. } => match service.service() {
                Some(kind) => format!("harsha-{}", kind.name()),
                None => "harsha-edge".to_owned(),
            },
            Self::Migrate { .. } => "harsha-migrate".to_owned(),
            Self::Admin(_) => "harsha-admin".to_owned(),
            Self::Backup { .. } | Self::Restore { .. } => "harsha-backup".to_owned(),
            Self::Seed(_) => "harsha-seed".to_owned(),
            Self::Loadgen(_) => "harsha-loadgen".to_owned(),
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Up { demo, data_dir } => up(settings, demo, data_dir).await,
        Command::Serve {
            service,
            listen,
            metrics_listen,
        } => serve(settings, service, listen, metrics_listen).await,
        Command::Migrate { action, role } => {
            migrate(settings, action.unwrap_or(MigrateAction::Up), role).await
        }
        Command::Admin(command) => admin(settings, command).await,
        Command::Backup { to, data_dir } => {
            backup::backup(&settings.with_data_dir(data_dir), &to).await
        }
        Command::Restore {
            from,
            data_dir,
            force,
        } => backup::restore(&settings.with_data_dir(data_dir), &from, force).await,
        Command::Loadgen(args) => loadgen::run(args).await,
        Command::Seed(scale) => {
            let database = server::connect(
                Role::Erp,
                settings.databases.url(Role::Erp),
                true,
                &settings.pool,
            )
            .await?;
            let today = chrono::Utc::now()
                .with_timezone(&settings.time_zone()?)
                .date_naive();
            let result = seed::run(database.erp_pool()?, scale, today).await;
            database.close().await;
            result
        }
    }
}

/// Logs to stderr, readable or as JSON lines (each naming the request and
/// trace ids of its span), and, when an OTLP endpoint is set in the
/// standard `OTEL_*` variables, exports every span over OTLP. Returns the
/// exporter, to flush at exit.
fn init_tracing(
    format: LogFormat,
    process: String,
) -> Option<opentelemetry_sdk::trace::SdkTracerProvider> {
    use tracing_subscriber::{Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _};

    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,h2=warn,tower=warn")
    });
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Pretty => logs.boxed(),
        LogFormat::Json => logs.json().boxed(),
    };
    let exporter = telemetry::span_exporter(process);
    let spans = exporter
        .as_ref()
        .map(|(_, tracer)| tracing_opentelemetry::layer().with_tracer(tracer.clone()));
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(spans)
        .init();
    exporter.map(|(provider, _)| provider)
}

/// Cancels `token` on SIGINT or SIGTERM.
fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = interrupt => tracing::info!("SIGINT: draining"),
            () = terminate => tracing::info!("SIGTERM: draining"),
        }
        token.cancel();
    });
}

/// Waits for every server to stop; after the shutdown signal, gives them
/// `grace` before giving up on in-flight calls.
async fn supervise(
    mut servers: JoinSet<anyhow::Result<()>>,
    shutdown: CancellationToken,
    grace: Duration,
) -> anyhow::Result<()> {
    let mut failure = None;
    loop {
        tokio::select! {
            joined = servers.join_next() => match joined {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(error))) => {
                    tracing::error!(error = format!("{error:#}"), "a server stopped");
                    failure.get_or_insert(error);
                    shutdown.cancel();
                }
                Some(Err(join_error)) => {
                    failure.get_or_insert(anyhow::anyhow!("a server task failed: {join_error}"));
                    shutdown.cancel();
                }
            },
            () = shutdown.cancelled(), if !shutdown.is_cancelled() => {}
            () = async {
                shutdown.cancelled().await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(?grace, "in-flight calls did not finish in time; exiting");
                servers.abort_all();
                break;
            }
        }
    }
    match failure {
        Some(error) => Err(error),
        None => {
            tracing::info!("stopped cleanly");
            Ok(())
        }
    }
}

/// What every service is configured with, from the settings.
fn service_config(settings: &Settings) -> anyhow::Result<server::ServiceConfig> {
    let (inventory, inventory_jobs) = settings.inventory()?;
    Ok(server::ServiceConfig {
        time_zone: settings.time_zone()?,
        inventory,
        inventory_jobs,
        pricing: settings.pricing()?,
        auth: settings.auth()?,
        access: settings.access()?,
        sync: settings.sync(&settings.databases.erp)?,
        order: settings.order()?,
    })
}

async fn bind(kind: ServiceKind, address: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for the {} service", kind.name()))
}

async fn up(settings: Settings, demo: bool, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let settings = settings.with_data_dir(data_dir);
    let time_zone = settings.time_zone()?;
    let mut config = service_config(&settings)?;
    if config.sync.relay_from.is_some() {
        config.sync.relay_from = Some(settings.embedded_url(Role::Erp));
    }
    let mut databases = Vec::new();
    for role in Role::ALL {
        let url = settings.embedded_url(role);
        databases.push((
            role,
            server::connect(role, &url, true, &settings.pool).await?,
        ));
    }
    let database_for = |role: Role| {
        databases
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, db)| db.clone())
            .context("every role is connected")
    };
    if demo {
        let erp = database_for(Role::Erp)?.erp_pool()?;
        let loaded = demo::load(erp.clone()).await.context("loading demo data")?;
        let today = chrono::Utc::now().with_timezone(&time_zone).date_naive();
        let loaded_inventory = demo::load_inventory(erp.clone(), today)
            .await
            .context("loading inventory demo data")?;
        let loaded_pricing = demo::load_pricing(erp)
            .await
            .context("loading pricing demo data")?;
        tracing::info!(loaded, loaded_inventory, loaded_pricing, "demo data");
    }
    let accounts =
        harsha_auth::Accounts::new(database_for(Role::Gateway)?.pg_pool()?, config.auth.clone())?;
    if let Some((admin, password)) = accounts.ensure_first_admin().await? {
        println!(
            "First admin created; its password is shown only now (change it with ChangePassword):"
        );
        println!("  user:     {}", admin.username);
        println!("  password: {}", password.reveal());
    }
    if config.access.enforce && config.pricing.customer_api_key.is_empty() {
        // Pricing reads customer profiles with a key of its own, made anew
        // at each start and never written anywhere.
        config.pricing.customer_api_key = accounts
            .internal_key(
                "harsha up: pricing reads customer profiles",
                &[harsha_auth::domain::Scope::CustomerRead],
                chrono::Utc::now(),
            )
            .await?;
    }
    if config.access.enforce && config.order.api_key.is_empty() {
        // The Order service calls the others with a key of its own, made
        // anew at each start and never written anywhere.
        use harsha_auth::domain::Scope;
        config.order.api_key = accounts
            .internal_key(
                "harsha up: orders check customers, price and reserve stock",
                &[
                    Scope::CustomerRead,
                    Scope::InventoryRead,
                    Scope::InventoryWrite,
                    Scope::PricingQuote,
                ],
                chrono::Utc::now(),
            )
            .await?;
    }

    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    // Before any service starts, so their first figures are kept.
    let metrics = telemetry::prometheus(&shutdown);
    let mut servers = JoinSet::new();
    println!(
        "Harsha Mesh is up (SQLite under {}):",
        settings.data_dir.display()
    );
    for kind in ServiceKind::ALL {
        let listener = bind(kind, kind.listen_address(&settings.services)).await?;
        println!(
            "  {:<10} grpc://{}  {}",
            kind.name(),
            listener.local_addr()?,
            kind.grpc_name()
        );
        servers.spawn(server::run(
            kind,
            listener,
            DatabaseSource::Ready(database_for(kind.role())?),
            config.clone(),
            shutdown.clone(),
        ));
    }
    let edge_address = settings.edge.listen;
    let edge_listener = TcpListener::bind(edge_address)
        .await
        .with_context(|| format!("cannot listen on {edge_address} for the edge"))?;
    println!(
        "  {:<10} http://{}  REST/JSON for every service",
        "edge",
        edge_listener.local_addr()?
    );
    if demo {
        // Stand-ins for the systems order events flow to, with the Sync
        // targets and routes that send them there.
        let (hooks, address) =
            demo_hooks::DemoHooks::start(settings.demo.hooks_listen, shutdown.clone()).await?;
        hooks
            .route_orders(
                database_for(Role::Sync)?.pg_pool()?,
                &format!("http://{address}"),
            )
            .await
            .context("routing demo order events")?;
        println!(
            "  {:<10} http://{address}/hooks/{{warehouse,crm,analytics}}  where order events arrive",
            "demo hooks",
        );
    } else {
        demo_hooks::DemoHooks::disable_targets(database_for(Role::Sync)?.pg_pool()?)
            .await
            .context("disabling the demo's event targets")?;
    }
    servers.spawn(
        run_edge(
            &settings,
            edge_listener,
            shutdown.clone(),
            Some(database_for(Role::Gateway)?),
            metrics,
        )
        .await?,
    );
    println!(
        "Try: grpcurl -plaintext {} list",
        settings.services.customer
    );
    let result = supervise(
        servers,
        shutdown,
        Duration::from_secs(settings.shutdown_grace_seconds),
    )
    .await;
    for (_, database) in databases {
        database.close().await;
    }
    result
}

/// Runs the edge on `listener` until `shutdown` is cancelled. It audits
/// every request to the gateway database (`gateway`, or the configured one,
/// connected in the background) and, with access control on, checks
/// callers and rate limits itself, reporting usage there too. `metrics`
/// renders the process's recorder at `/metrics`.
async fn run_edge(
    settings: &Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
    gateway: Option<harsha_store::Database>,
    metrics: Option<harsha_edge::MetricsRender>,
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>> + use<>> {
    let mut config = settings.edge()?;
    config.metrics = metrics;
    let access = settings.access()?;
    let audit = harsha_edge::audit::AuditLog::new(harsha_edge::audit::QUEUE_CAPACITY);
    tokio::spawn(Arc::clone(&audit).run(shutdown.clone().cancelled_owned()));
    config.audit = Some(Arc::clone(&audit));
    let guard = if access.enforce {
        let gatekeeper = server::gatekeeper("edge", &access, &shutdown)?;
        let guard = harsha_edge::guard::Guard::new(gatekeeper, &access.auth_endpoint)
            .map_err(|e| anyhow::anyhow!(e))?;
        tokio::spawn(Arc::clone(&guard).run(
            Duration::from_secs(settings.edge.usage_flush_seconds.max(1)),
            shutdown.clone().cancelled_owned(),
        ));
        if let Some(shared) = &config.shared {
            guard.share_counters_through(Arc::clone(shared));
        }
        config.guard = Some(Arc::clone(&guard));
        Some(guard)
    } else {
        None
    };
    let edge = harsha_edge::Edge::new(config)?;
    let upstreams = Arc::clone(edge.upstreams());
    tokio::spawn(Arc::clone(&upstreams).run(
        Duration::from_secs(settings.edge.routes_refresh_seconds.max(1)),
        Duration::from_secs(settings.edge.health_check_seconds.max(1)),
        shutdown.clone().cancelled_owned(),
    ));
    let sinks = EdgeSinks {
        audit,
        guard,
        upstreams,
    };
    match gateway {
        Some(database) => sinks.connect(database.pg_pool()?),
        None => {
            tokio::spawn(connect_edge_to_gateway(
                sinks,
                settings.clone(),
                shutdown.clone(),
            ));
        }
    }
    Ok(async move {
        harsha_edge::serve(edge, listener, shutdown.cancelled_owned())
            .await
            .context("serving the edge")
    })
}

/// What the edge writes to the gateway database.
struct EdgeSinks {
    audit: Arc<harsha_edge::audit::AuditLog>,
    guard: Option<Arc<harsha_edge::guard::Guard>>,
    upstreams: Arc<harsha_edge::upstreams::Upstreams>,
}

impl EdgeSinks {
    fn connect(&self, pool: harsha_store::PgPool) {
        self.audit.write_to(pool.clone());
        self.upstreams.read_routes_from(pool.clone());
        if let Some(guard) = &self.guard {
            guard.report_usage_to(harsha_auth::plans::Plans::new(pool));
        }
    }
}

/// Connects the edge's audit log and usage reporting to the gateway
/// database, retrying until it answers (the edge serves meanwhile; records
/// wait in memory).
async fn connect_edge_to_gateway(
    sinks: EdgeSinks,
    settings: Settings,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let connected = server::connect(
            Role::Gateway,
            &settings.databases.gateway,
            settings.migrate_on_start,
            &settings.pool,
        )
        .await
        .and_then(|database| Ok(database.pg_pool()?));
        match connected {
            Ok(pool) => {
                sinks.connect(pool);
                return;
            }
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "the edge's audit log waits for the gateway database"
                );
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(15));
            }
        }
    }
}

async fn serve(
    settings: Settings,
    target: ServeTarget,
    listen: Option<std::net::SocketAddr>,
    metrics_listen: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let Some(kind) = target.service() else {
        let address = listen.unwrap_or(settings.edge.listen);
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} for the edge"))?;
        tracing::info!(address = %listener.local_addr()?, "edge listening");
        let shutdown = CancellationToken::new();
        cancel_on_signal(shutdown.clone());
        let mut servers = JoinSet::new();
        let metrics = telemetry::prometheus(&shutdown);
        servers.spawn(run_edge(&settings, listener, shutdown.clone(), None, metrics).await?);
        return supervise(
            servers,
            shutdown,
            Duration::from_secs(settings.shutdown_grace_seconds),
        )
        .await;
    };
    let config = service_config(&settings)?;
    let listener = bind(
        kind,
        listen.unwrap_or_else(|| kind.listen_address(&settings.services)),
    )
    .await?;
    tracing::info!(service = kind.grpc_name(), address = %listener.local_addr()?, "listening");
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    let mut servers = JoinSet::new();
    if let Some(address) = metrics_listen.or(settings.metrics_address()?)
        && let Some(render) = telemetry::prometheus(&shutdown)
    {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} for /metrics"))?;
        tracing::info!(address = %listener.local_addr()?, "metrics at /metrics");
        servers.spawn(telemetry::serve_metrics(listener, render, shutdown.clone()));
    }
    servers.spawn(server::run(
        kind,
        listener,
        DatabaseSource::Connect {
            url: settings.databases.url(kind.role()).to_owned(),
            migrate: settings.migrate_on_start,
            pool: settings.pool.clone(),
        },
        config,
        shutdown.clone(),
    ));
    supervise(
        servers,
        shutdown,
        Duration::from_secs(settings.shutdown_grace_seconds),
    )
    .await
}

async fn admin(settings: Settings, command: AdminCommand) -> anyhow::Result<()> {
    let database = server::connect(
        Role::Gateway,
        settings.databases.url(Role::Gateway),
        settings.migrate_on_start,
        &settings.pool,
    )
    .await?;
    let accounts = harsha_auth::Accounts::new(database.pg_pool()?, settings.auth()?)?;
    let result = match command {
        AdminCommand::CreateUser {
            username,
            email,
            roles,
            plan,
        } => {
            let password = harsha_auth::domain::Password::generate();
            let created = accounts
                .create_user(harsha_auth::accounts::UserRequest {
                    username,
                    email,
                    password: password.reveal().to_owned(),
                    roles,
                    plan,
                })
                .await;
            created.map(|user| {
                println!("created user {} ({})", user.username, user.id);
                println!("  password: {}", password.reveal());
                println!("  (shown only now)");
            })
        }
        AdminCommand::CreateApiKey {
            user,
            name,
            scopes,
            cidrs,
            plan,
            expires_in_days,
        } => create_api_key(&accounts, &user, name, scopes, cidrs, plan, expires_in_days).await,
    };
    database.close().await;
    result.map_err(|error| anyhow::anyhow!("{error}"))
}

async fn create_api_key(
    accounts: &harsha_auth::Accounts,
    username: &str,
    name: String,
    scopes: Vec<String>,
    allowed_cidrs: Vec<String>,
    plan: String,
    expires_in_days: Option<u32>,
) -> Result<(), harsha_auth::AuthError> {
    let username = harsha_auth::domain::Username::parse(username)
        .map_err(|e| harsha_auth::AuthError::invalid("user", e))?;
    let (user, _) = accounts
        .users
        .user_for_login(&username)
        .await?
        .ok_or_else(|| harsha_auth::AuthError::UserNotFound(username.as_str().to_owned()))?;
    let now = chrono::Utc::now();
    let (key, secret) = accounts
        .keys
        .create(
            harsha_auth::api_keys::KeyRequest {
                user_id: user.id,
                name,
                scopes,
                allowed_cidrs,
                plan,
                expires_at: expires_in_days.map(|days| now + chrono::Duration::days(days.into())),
            },
            accounts.users.as_ref(),
            now,
        )
        .await?;
    println!(
        "created API key {} ({}) for {}",
        key.prefix, key.id, user.username
    );
    println!("  key: {secret}");
    println!("  (shown only now)");
    Ok(())
}

async fn migrate(
    settings: Settings,
    action: MigrateAction,
    only: Option<Role>,
) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for role in Role::ALL
        .into_iter()
        .filter(|role| only.is_none_or(|only| only == *role))
    {
        let url = settings.databases.url(role);
        let database = if action == MigrateAction::Up {
            server::connect(role, url, true, &settings.pool).await?
        } else {
            harsha_store::Database::connect(role, url, &settings.pool)
                .await
                .with_context(|| format!("connecting to the {role} database"))?
        };
        let result = match action {
            MigrateAction::Up => {
                println!("{role}: migrated ({})", database.engine());
                Ok(())
            }
            MigrateAction::Status | MigrateAction::Validate => {
                report_migrations(
                    role,
                    &database,
                    action == MigrateAction::Status,
                    &mut problems,
                )
                .await
            }
            MigrateAction::Verify => verify_role(role, &database, &mut problems).await,
        };
        database.close().await;
        result?;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{}", problems.join("; "))
    }
}

/// Prints a role's migrations (all of them, or with `all` false only those
/// in trouble) and notes the troubles in `problems`.
async fn report_migrations(
    role: Role,
    database: &harsha_store::Database,
    all: bool,
    problems: &mut Vec<String>,
) -> anyhow::Result<()> {
    let statuses = database.migration_status().await?;
    let pending = statuses
        .iter()
        .filter(|s| s.state == harsha_store::integrity::MigrationState::Pending)
        .count();
    println!(
        "{role} ({}): {} migrations, {pending} pending",
        database.engine(),
        statuses.len()
    );
    for status in &statuses {
        if !all && !status.state.is_problem() {
            continue;
        }
        let applied = status
            .installed_on
            .map(|at| {
                format!(
                    "  {} UTC, {} ms",
                    at.format("%Y-%m-%d %H:%M:%S"),
                    status.execution_ms.unwrap_or_default()
                )
            })
            .unwrap_or_default();
        println!(
            "  {} {:<40} {}{applied}",
            status.version,
            status.description,
            status.state.as_str()
        );
        if status.state.is_problem() {
            problems.push(format!(
                "{role} migration {} ({}) is {}",
                status.version,
                status.description,
                status.state.as_str()
            ));
        }
    }
    Ok(())
}

/// Prints a role's row counts and invariants and notes broken ones.
async fn verify_role(
    role: Role,
    database: &harsha_store::Database,
    problems: &mut Vec<String>,
) -> anyhow::Result<()> {
    let verification = database.verify().await?;
    println!("{role} ({}):", database.engine());
    for table in &verification.tables {
        println!("  {:>10}  {}", table.rows, table.table);
    }
    for check in &verification.checks {
        let verdict = if check.violations == 0 {
            "ok".to_owned()
        } else {
            format!("BROKEN by {}", check.violations)
        };
        println!("  {verdict:>10}  {}", check.invariant);
        if check.violations > 0 {
            problems.push(format!(
                "{role}: {} ({} violations)",
                check.invariant, check.violations
            ));
        }
    }
    Ok(())
}
