//! The Inventory service's hot paths at the scale, on MariaDB:
//! 10,000 active batches of one item across 5 warehouses and 1,000,000
//! movement rows, plus 16 smaller items for the concurrency run.
//!
//! `cargo bench -p harsha-inventory --bench allocation` loads the data once
//! into the database `harsha_bench_inventory` (kept between runs; set
//! `HARSHA_BENCH_RELOAD=1` to rebuild it), prints the `EXPLAIN` of the
//! allocation and expiry queries, prints per-call latency percentiles of a
//! FEFO allocation (each released again, untimed, so the stock stays the
//! same), measures allocation throughput with 1 to 16 concurrent clients on
//! different items and on one item, then runs criterion.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{Days, NaiveDate, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use harsha_inventory::{
    InventoryStore, SqlInventoryStore,
    domain::{
        Actor, AllocationRequest, DocName, ExpiryThresholds, QualityGrade, Quantity, Reference,
        Strategy,
    },
    store::{
        ExpiringQuery,
        queries::{EXPIRING_BATCHES, FEFO_CANDIDATES},
    },
};
use harsha_store::{Database, Pool};
use harsha_testkit::bench::{fresh_database, kept_database, print_explain, report_percentiles};
use sqlx::{MySql, QueryBuilder};

const DATABASE: &str = "harsha_bench_inventory";
const HOT_ITEM: &str = "BENCH-ITEM-00";
const HOT_BATCHES: usize = 10_000;
const WAREHOUSES: usize = 5;
const MOVEMENTS_PER_BATCH: usize = 100;
const SIDE_ITEMS: usize = 16;
const SIDE_BATCHES: usize = 200;
const RECEIVED: i64 = 1_000;
const SAMPLES: usize = 3_000;

/// A batch row to load: id, item, warehouse, batch number, made, expires, grade.
type BatchSeed = (
    String,
    String,
    String,
    String,
    NaiveDate,
    NaiveDate,
    &'static str,
);

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn item(i: usize) -> String {
    format!("BENCH-ITEM-{i:02}")
}

fn warehouse(i: usize) -> String {
    format!("Bench WH {} - HD", i % WAREHOUSES + 1)
}

async fn prepare() -> Database {
    let expected = i64::try_from(HOT_BATCHES * MOVEMENTS_PER_BATCH).unwrap();
    let count = "SELECT COUNT(*) FROM `tabHD Batch Movement`";
    if let Some(db) = kept_database(DATABASE, count, expected).await {
        return db;
    }
    let db = fresh_database(DATABASE).await;
    let store = SqlInventoryStore::new(db.erp_pool().unwrap());
    store
        .ensure_movement_partitions(today() + Days::new(90))
        .await
        .unwrap();
    let Pool::MySql(pool) = db.pool() else {
        unreachable!()
    };
    let started = Instant::now();
    load(pool).await;
    sqlx::raw_sql("ANALYZE TABLE `tabHD Batch Master`, `tabHD Batch Movement`")
        .execute(pool)
        .await
        .unwrap();
    eprintln!("loaded in {:.1?}", started.elapsed());
    db
}

fn batches() -> Vec<BatchSeed> {
    let mut rows = Vec::new();
    for b in 0..HOT_BATCHES {
        let made = today() - Days::new(u64::try_from(b % 60).unwrap());
        let expires = today() + Days::new(10 + u64::try_from((b * 7_919) % 400).unwrap());
        let grade = ["A", "A", "A", "B", "C"][b % 5];
        rows.push((
            format!("HOT-{b:05}"),
            item(0),
            warehouse(b),
            format!("LOT-{b:05}"),
            made,
            expires,
            grade,
        ));
    }
    for i in 1..=SIDE_ITEMS {
        for b in 0..SIDE_BATCHES {
            let expires = today() + Days::new(10 + u64::try_from(b % 300).unwrap());
            rows.push((
                format!("SIDE-{i:02}-{b:04}"),
                item(i),
                warehouse(b),
                format!("LOT-{b:04}"),
                today() - Days::new(5),
                expires,
                "A",
            ));
        }
    }
    rows
}

async fn insert_movements(pool: &sqlx::Pool<MySql>, rows: &[(&BatchSeed, usize)]) {
    let mut insert = QueryBuilder::<MySql>::new(
        "INSERT INTO `tabHD Batch Movement` (`name`, `creation`, `modified`, `modified_by`, `owner`, `batch`, \
         `item_code`, `warehouse`, `movement_type`, `available_change`, `reserved_change`, `available_after`, \
         `reserved_after`) ",
    );
    let start = (today() - Days::new(365)).and_hms_opt(0, 0, 0).unwrap();
    insert.push_values(rows, |mut row, (batch, k)| {
        let serial: i64 = batch.0[4..].parse().unwrap();
        // Spread over the past year: movement k of every batch on day ~3.6k.
        let at = start
            + chrono::Duration::minutes(i64::try_from(*k).unwrap() * 5_200)
            + chrono::Duration::seconds(serial);
        let (kind, change) = if *k == 0 {
            ("Receipt", RECEIVED)
        } else {
            ("Issue", -1)
        };
        let after = RECEIVED - i64::try_from(*k).unwrap();
        row.push_bind(format!("M-{}-{k:03}", batch.0))
            .push_bind(at)
            .push_bind(at)
            .push_bind("bench")
            .push_bind("bench")
            .push_bind(&batch.0)
            .push_bind(&batch.1)
            .push_bind(&batch.2)
            .push_bind(kind)
            .push_bind(change)
            .push_bind(0)
            .push_bind(after)
            .push_bind(0);
    });
    insert.build().execute(pool).await.unwrap();
}

async fn load(pool: &sqlx::Pool<MySql>) {
    let now = Utc::now().naive_utc();
    for i in 0..=SIDE_ITEMS {
        sqlx::query("INSERT INTO `tabItem` (`name`, `item_code`, `item_name`, `stock_uom`, `has_batch_no`, `disabled`) VALUES (?, ?, ?, 'Kg', 1, 0)")
            .bind(item(i))
            .bind(item(i))
            .bind(item(i))
            .execute(pool)
            .await
            .unwrap();
    }
    for w in 0..WAREHOUSES {
        sqlx::query("INSERT INTO `tabWarehouse` (`name`, `warehouse_name`, `is_group`, `disabled`) VALUES (?, ?, 0, 0)")
            .bind(warehouse(w))
            .bind(warehouse(w))
            .execute(pool)
            .await
            .unwrap();
    }
    let rows = batches();
    // Every hot batch received 1,000 and issued 1 per later movement.
    let issued = i64::try_from(MOVEMENTS_PER_BATCH - 1).unwrap();
    for chunk in rows.chunks(1_000) {
        let mut insert = QueryBuilder::<MySql>::new(
            "INSERT INTO `tabHD Batch Master` (`name`, `creation`, `modified`, `modified_by`, `owner`, `item_code`, \
             `warehouse`, `batch_no`, `manufacturing_date`, `expiry_date`, `received_at`, `received_qty`, \
             `available_qty`, `reserved_qty`, `stock_uom`, `quality_grade`, `allergens`, `status`) ",
        );
        insert.push_values(
            chunk,
            |mut row, (id, item, warehouse, batch_no, made, expires, grade)| {
                let available = if id.starts_with("HOT") {
                    RECEIVED - issued
                } else {
                    RECEIVED
                };
                row.push_bind(id)
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind("bench")
                    .push_bind("bench")
                    .push_bind(item)
                    .push_bind(warehouse)
                    .push_bind(batch_no)
                    .push_bind(made)
                    .push_bind(expires)
                    .push_bind(made.and_hms_opt(8, 0, 0).unwrap())
                    .push_bind(RECEIVED)
                    .push_bind(available)
                    .push_bind(0)
                    .push_bind("Kg")
                    .push_bind(*grade)
                    .push_bind("milk,tree_nuts")
                    .push_bind("Active");
            },
        );
        insert.build().execute(pool).await.unwrap();
    }
    // 1,000,000 movements of the hot item over the past year: a receipt and
    // 99 issues of 1 per batch.
    let movements: Vec<(&BatchSeed, usize)> = rows
        .iter()
        .filter(|r| r.0.starts_with("HOT"))
        .flat_map(|batch| (0..MOVEMENTS_PER_BATCH).map(move |k| (batch, k)))
        .collect();
    for chunk in movements.chunks(3_000) {
        insert_movements(pool, chunk).await;
    }
}

async fn explain(pool: &sqlx::Pool<MySql>) {
    let none: Option<String> = None;
    let no_date: Option<NaiveDate> = None;
    let fefo = sqlx::query(sqlx::AssertSqlSafe(format!(
        "EXPLAIN {FEFO_CANDIDATES} FOR UPDATE"
    )))
    .bind(HOT_ITEM)
    .bind(today() + Days::new(1))
    .bind("C")
    .bind(&none)
    .bind(&none)
    .bind(no_date)
    .bind(no_date)
    .bind(no_date)
    .bind(&none)
    .bind(&none)
    .bind(10_i64)
    .fetch_all(pool)
    .await
    .unwrap();
    print_explain("FEFO candidates (AllocateStock)", &fefo);
    let expiring = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {EXPIRING_BATCHES}")))
        .bind(today() + Days::new(31))
        .bind(&none)
        .bind(&none)
        .bind(no_date)
        .bind(no_date)
        .bind(no_date)
        .bind(&none)
        .bind(500_i64)
        .fetch_all(pool)
        .await
        .unwrap();
    print_explain("ListExpiringBatches", &expiring);
}

fn request(item_code: &str, qty: &str) -> AllocationRequest {
    AllocationRequest {
        request_id: None,
        item_code: DocName::parse(item_code).unwrap(),
        qty: Quantity::parse(qty).unwrap(),
        warehouse: None,
        strategy: Strategy::Fefo,
        min_shelf_life_days: 0,
        min_grade: QualityGrade::C,
        hold_seconds: 900,
        reference: Reference::default(),
    }
}

/// One FEFO allocation of `qty` (timed), then its release (untimed).
async fn allocate_and_release(store: &dyn InventoryStore, item_code: &str, qty: &str) -> Duration {
    let actor = Actor::system();
    let started = Instant::now();
    let allocation = store
        .allocate(request(item_code, qty), today(), &actor)
        .await
        .unwrap();
    let took = started.elapsed();
    store
        .release_allocation(&allocation.id, &actor)
        .await
        .unwrap();
    took
}

/// Allocations per second with `clients` concurrent clients for `window`;
/// `items` picks each client's item.
async fn throughput(
    store: Arc<dyn InventoryStore>,
    clients: usize,
    window: Duration,
    items: fn(usize) -> String,
) -> f64 {
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + window;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let store = Arc::clone(&store);
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let item_code = items(c);
                while Instant::now() < deadline {
                    allocate_and_release(store.as_ref(), &item_code, "2").await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / window.as_secs_f64()
}

async fn measure(store: &Arc<dyn InventoryStore>, pool: &sqlx::Pool<MySql>) {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM `tabHD Batch Master` WHERE `item_code` = ? AND `status` = 'Active'",
    )
    .bind(HOT_ITEM)
    .fetch_one(pool)
    .await
    .unwrap();
    let movements: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM `tabHD Batch Movement`")
        .fetch_one(pool)
        .await
        .unwrap();
    eprintln!("{HOT_ITEM}: {count} active batches; {movements} movement rows");
    let mut floor = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        sqlx::query("SELECT 1").execute(pool).await.unwrap();
        floor.push(started.elapsed());
    }
    report_percentiles("floor: SELECT 1 round trip", floor);
    for (name, qty) in [
        ("FEFO allocation from one batch (2 units)", "2"),
        ("FEFO allocation across 3 batches (2,500 units)", "2500"),
    ] {
        for _ in 0..200 {
            allocate_and_release(store.as_ref(), HOT_ITEM, qty).await;
        }
        let mut timings = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            timings.push(allocate_and_release(store.as_ref(), HOT_ITEM, qty).await);
        }
        report_percentiles(&format!("store: {name}"), timings);
    }
    let mut timings = Vec::with_capacity(500);
    for _ in 0..500 {
        let started = Instant::now();
        let query = ExpiringQuery {
            as_of: today(),
            level: None,
            warehouse: None,
        };
        store
            .list_expiring(query, ExpiryThresholds::default(), 100, "")
            .await
            .unwrap();
        timings.push(started.elapsed());
    }
    report_percentiles("store: ListExpiringBatches (first page of 100)", timings);
    let window = Duration::from_secs(3);
    for clients in [1, 2, 4, 8, 16] {
        let different = throughput(Arc::clone(store), clients, window, |c| {
            item(1 + c % SIDE_ITEMS)
        })
        .await;
        let same = throughput(Arc::clone(store), clients, window, |_| item(1)).await;
        eprintln!(
            "{clients:>2} clients: {different:>6.0} allocations/s on different items, {same:>6.0}/s on one item"
        );
    }
}

fn allocation(c: &mut Criterion) {
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
    let store: Arc<dyn InventoryStore> = Arc::new(SqlInventoryStore::new(db.erp_pool().unwrap()));
    runtime.block_on(measure(&store, pool));

    let mut group = c.benchmark_group("inventory_mariadb_10k_batches_1m_movements");
    group.bench_function("store_fefo_allocate_then_release", |b| {
        b.to_async(&runtime).iter(|| {
            let store = Arc::clone(&store);
            async move {
                let actor = Actor::system();
                let allocation = store
                    .allocate(request(HOT_ITEM, "2"), today(), &actor)
                    .await
                    .unwrap();
                store
                    .release_allocation(&allocation.id, &actor)
                    .await
                    .unwrap();
            }
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = allocation
}
criterion_main!(benches);
