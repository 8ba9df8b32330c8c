//! The Customer service's hot reads at the scale, on MariaDB:
//! 100,000 customers, 1,000,000 segment assignments (five successive
//! primaries and five seasonal memberships each) and 200,000 territory
//! mappings.
//!
//! `cargo bench -p harsha-customer --bench profile` loads the data once into
//! the database `harsha_bench_customer` (kept between runs; set
//! `HARSHA_BENCH_RELOAD=1` to rebuild it), prints the `EXPLAIN` of every hot
//! query, prints server-side latency percentiles measured around the store
//! call (what a `CustomerService` handler awaits), then runs criterion on the
//! store calls and on full gRPC round trips over loopback.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{Days, NaiveDate};
use criterion::{Criterion, criterion_group, criterion_main};
use harsha_customer::{
    CustomerGrpc, CustomerStore, SqlCustomerStore,
    domain::DocName,
    store::queries::{CUSTOMER_PRIMARY_AS_OF, CUSTOMER_PROFILE_AS_OF},
};
use harsha_proto::harsha::customer::v1::{
    ResolveCustomerProfileRequest, customer_service_client::CustomerServiceClient,
};
use harsha_store::{Database, Pool};
use harsha_testkit::bench::{fresh_database, kept_database, print_explain, report_percentiles};
use sqlx::{MySql, QueryBuilder};

const DATABASE: &str = "harsha_bench_customer";
const CUSTOMERS: usize = 100_000;
const SEGMENTS: usize = 20;
const PRIMARIES: usize = 5;
const MEMBERSHIPS: usize = 5;
/// Customers per insert: 500 × 10 assignments × 11 columns stays under MariaDB's 65,535 placeholders.
const BATCH: usize = 500;
const SAMPLES: usize = 5_000;

fn customer_name(i: usize) -> String {
    format!("BENCH-{i:06}")
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 1, 1).unwrap()
}

fn days(n: usize) -> Days {
    Days::new(u64::try_from(n).unwrap())
}

/// The i-th probe: a spread of customers and dates from 2022 to mid-2026.
fn probe(i: usize) -> (DocName, NaiveDate) {
    let customer = (i * 7_919 + 13) % CUSTOMERS;
    let day = epoch() + days((i * 37) % 1_640);
    (DocName::parse(&customer_name(customer)).unwrap(), day)
}

async fn prepare() -> Database {
    let expected = i64::try_from(CUSTOMERS * (PRIMARIES + MEMBERSHIPS)).unwrap();
    let count = "SELECT COUNT(*) FROM `tabHD Customer Segment Assignment`";
    if let Some(db) = kept_database(DATABASE, count, expected).await {
        return db;
    }
    let db = fresh_database(DATABASE).await;
    let Pool::MySql(pool) = db.pool() else {
        unreachable!()
    };
    let started = Instant::now();
    load(pool).await;
    sqlx::raw_sql("ANALYZE TABLE `tabCustomer`, `tabHD Customer Segment Assignment`, `tabHD Customer Territory Mapping`")
        .execute(pool)
        .await
        .unwrap();
    eprintln!("loaded {CUSTOMERS} customers in {:.1?}", started.elapsed());
    db
}

async fn load(pool: &sqlx::Pool<MySql>) {
    let now = chrono::Utc::now().naive_utc();
    sqlx::query("INSERT INTO `tabTerritory` (`name`, `territory_name`, `is_group`) VALUES ('Bench North', 'Bench North', 0), ('Bench South', 'Bench South', 0)")
        .execute(pool)
        .await
        .unwrap();
    let mut segments = QueryBuilder::<MySql>::new(
        "INSERT INTO `tabHD Customer Segment` (`name`, `creation`, `modified`, `modified_by`, `owner`, `segment_name`, `status`, `service_level`, `priority`, `price_tier`) ",
    );
    segments.push_values(0..SEGMENTS, |mut row, s| {
        row.push_bind(format!("SEG-{s:02}"))
            .push_bind(now)
            .push_bind(now)
            .push_bind("bench")
            .push_bind("bench")
            .push_bind(format!("Segment {s}"))
            .push_bind("Active")
            .push_bind(["Standard", "Priority", "Premium"][s % 3])
            .push_bind(i32::try_from(s).unwrap() * 10)
            .push_bind(format!("TIER-{}", s % 4));
    });
    segments.build().execute(pool).await.unwrap();

    for start in (0..CUSTOMERS).step_by(BATCH) {
        let batch = start..(start + BATCH).min(CUSTOMERS);
        let mut tx = pool.begin().await.unwrap();
        let mut customers = QueryBuilder::<MySql>::new(
            "INSERT INTO `tabCustomer` (`name`, `creation`, `modified`, `customer_name`, `customer_group`, `territory`, `disabled`) ",
        );
        customers.push_values(batch.clone(), |mut row, i| {
            row.push_bind(customer_name(i))
                .push_bind(now)
                .push_bind(now)
                .push_bind(format!("Bench Sweets {i}"))
                .push_bind("Retail")
                .push_bind("India")
                .push_bind(0);
        });
        customers.build().execute(&mut *tx).await.unwrap();

        let mut assignments = QueryBuilder::<MySql>::new(
            "INSERT INTO `tabHD Customer Segment Assignment` (`name`, `creation`, `modified`, `modified_by`, `owner`, `customer`, `segment`, `is_primary`, `effective_from`, `effective_to`, `status`) ",
        );
        let rows = batch
            .clone()
            .flat_map(|i| (0..PRIMARIES + MEMBERSHIPS).map(move |k| (i, k)));
        assignments.push_values(rows, |mut row, (i, k)| {
            let (segment, primary, from, to) = if k < PRIMARIES {
                let from = epoch() + days(k * 200);
                let to = (k + 1 < PRIMARIES).then(|| epoch() + days((k + 1) * 200));
                ((i + k) % 10, 1, from, to)
            } else {
                let from = epoch() + days(273 + (k - PRIMARIES) * 365);
                (10 + (i + k) % 10, 0, from, Some(from + days(45)))
            };
            row.push_bind(format!("A-{i:06}-{k}"))
                .push_bind(now)
                .push_bind(now)
                .push_bind("bench")
                .push_bind("bench")
                .push_bind(customer_name(i))
                .push_bind(format!("SEG-{segment:02}"))
                .push_bind(primary)
                .push_bind(from)
                .push_bind(to)
                .push_bind("Active");
        });
        assignments.build().execute(&mut *tx).await.unwrap();

        let mut mappings = QueryBuilder::<MySql>::new(
            "INSERT INTO `tabHD Customer Territory Mapping` (`name`, `creation`, `modified`, `modified_by`, `owner`, `customer`, `territory`, `coverage_type`, `effective_from`, `status`) ",
        );
        let rows = batch.flat_map(|i| [(i, "Primary"), (i, "Delivery")]);
        mappings.push_values(rows, |mut row, (i, coverage)| {
            row.push_bind(format!("T-{i:06}-{coverage}"))
                .push_bind(now)
                .push_bind(now)
                .push_bind("bench")
                .push_bind("bench")
                .push_bind(customer_name(i))
                .push_bind(if i % 2 == 0 {
                    "Bench North"
                } else {
                    "Bench South"
                })
                .push_bind(coverage)
                .push_bind(epoch())
                .push_bind("Active");
        });
        mappings.build().execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    }
}

async fn explain(pool: &sqlx::Pool<MySql>) {
    let (customer, day) = probe(1);
    // Each query's placeholders, in order: d = the date, c = the customer.
    for (name, sql, placeholders) in [
        ("ResolveCustomerProfile", CUSTOMER_PROFILE_AS_OF, "ddccdd"),
        ("primary segment as of", CUSTOMER_PRIMARY_AS_OF, "ddc"),
    ] {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")));
        for placeholder in placeholders.chars() {
            query = if placeholder == 'c' {
                query.bind(customer.as_str())
            } else {
                query.bind(day)
            };
        }
        let explained = query.fetch_all(pool).await.unwrap();
        print_explain(name, &explained);
    }
}

/// Times `SAMPLES` sequential calls (after an untimed pass over the same
/// probes) and prints the median, p95 and p99.
async fn percentiles<F, Fut>(name: &str, call: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    // One untimed pass over the same probes first: the figures are for a
    // warm buffer pool, the steady state of a server with its working set
    // in memory.
    for i in 0..SAMPLES {
        call(i).await;
    }
    let mut timings: Vec<Duration> = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let started = Instant::now();
        call(i).await;
        timings.push(started.elapsed());
    }
    report_percentiles(name, timings);
}

fn profile_reads(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = runtime.block_on(prepare());
    let Pool::MySql(pool) = db.pool() else {
        unreachable!()
    };
    runtime.block_on(explain(pool));
    let store: Arc<dyn CustomerStore> = Arc::new(SqlCustomerStore::new(db.erp_pool().unwrap()));

    let (address, client) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let service =
            CustomerGrpc::with_store(Arc::clone(&store), chrono_tz::Asia::Kolkata).into_server();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                ),
        );
        let client = CustomerServiceClient::connect(format!("http://{address}"))
            .await
            .unwrap();
        (address, client)
    });
    eprintln!("gRPC server on {address}");

    runtime.block_on(async {
        percentiles("floor: SELECT 1 round trip", |_| async {
            sqlx::query("SELECT 1").execute(pool).await.unwrap();
        })
        .await;
        percentiles("store: ResolveCustomerProfile", |i| {
            let store = Arc::clone(&store);
            async move {
                let (customer, day) = probe(i);
                store.profile(&customer, day).await.unwrap();
            }
        })
        .await;
        percentiles("store: primary segment as of", |i| {
            let store = Arc::clone(&store);
            async move {
                let (customer, day) = probe(i);
                store.primary_segment(&customer, day).await.unwrap();
            }
        })
        .await;
        percentiles("gRPC round trip: ResolveCustomerProfile", |i| {
            let mut client = client.clone();
            async move {
                let (customer, day) = probe(i);
                let call = client.resolve_customer_profile(ResolveCustomerProfileRequest {
                    customer: customer.to_string(),
                    at: Some(harsha_proto::convert::date_to_proto(day)),
                });
                tokio::time::timeout(Duration::from_secs(5), call)
                    .await
                    .unwrap_or_else(|_| panic!("call {i} timed out"))
                    .unwrap();
            }
        })
        .await;
    });

    let next = AtomicUsize::new(0);
    let mut group = c.benchmark_group("customer_mariadb_100k_customers_1m_assignments");
    group.bench_function("store_resolve_customer_profile", |b| {
        b.to_async(&runtime).iter(|| {
            let (customer, day) = probe(next.fetch_add(1, Ordering::Relaxed));
            let store = Arc::clone(&store);
            async move { store.profile(&customer, day).await.unwrap() }
        });
    });
    group.bench_function("store_primary_segment_as_of", |b| {
        b.to_async(&runtime).iter(|| {
            let (customer, day) = probe(next.fetch_add(1, Ordering::Relaxed));
            let store = Arc::clone(&store);
            async move { store.primary_segment(&customer, day).await.unwrap() }
        });
    });
    group.bench_function("grpc_resolve_customer_profile", |b| {
        b.to_async(&runtime).iter(|| {
            let (customer, day) = probe(next.fetch_add(1, Ordering::Relaxed));
            let mut client = client.clone();
            async move {
                client
                    .resolve_customer_profile(ResolveCustomerProfileRequest {
                        customer: customer.to_string(),
                        at: Some(harsha_proto::convert::date_to_proto(day)),
                    })
                    .await
                    .unwrap()
            }
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(5));
    targets = profile_reads
}
criterion_main!(benches);
