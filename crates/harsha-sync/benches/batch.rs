//! Batch sync of 1,000,000 rows (issue 8: "batch sync moves 1,000,000 rows
//! in under a minute"): a batch route's events are extracted from
//! `sync_events`, mapped, validated and loaded into a local target in signed
//! NDJSON chunks; the target counts the lines it receives.
//!
//! ```sh
//! cargo bench -p harsha-sync --bench batch                     # SQLite
//! HARSHA_BENCH_ENGINE=postgres cargo bench -p harsha-sync --bench batch
//! HARSHA_BENCH_ROWS=200000 cargo bench -p harsha-sync --bench batch
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use axum::{Router, body::Bytes, extract::State, routing::post};
use chrono::{Duration, Utc};
use harsha_store::{Engine, PgPool, Role};
use harsha_sync::{
    SqlSyncStore, SyncStore,
    batch::BatchRunner,
    domain::{
        ConflictStrategy, EntityType, FieldMapping, MergeRules, NewConfiguration, NewTarget,
        SourceFilter, SyncMode, System, TargetKind, TargetName,
    },
};
use harsha_testkit::TestDatabase;

async fn receive(State(lines): State<Arc<AtomicU64>>, body: Bytes) -> &'static str {
    let count = body.iter().filter(|b| **b == b'\n').count();
    lines.fetch_add(count as u64, Ordering::Relaxed);
    "ok"
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let engine = match std::env::var("HARSHA_BENCH_ENGINE").as_deref() {
        Ok("postgres") => Engine::Postgres,
        _ => Engine::Sqlite,
    };
    let rows: i64 = std::env::var("HARSHA_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let database = TestDatabase::new(Role::Sync, engine).await;
    let pool = database.db.pg_pool().unwrap();
    let now = Utc::now();
    let seeding = Instant::now();
    match &pool {
        PgPool::Postgres(pool) => {
            sqlx::query(
                "INSERT INTO sync_events (position, event_id, idempotency_key, source_system, entity_type, entity_key, \
                 operation, event_type, payload, occurred_at, created_at) \
                 SELECT nextval('sync_event_position'), 'e' || g, 'bench-' || g, 'erpnext', 'Item', 'ITEM-' || (g % 5000), \
                 'update', 'item.updated', jsonb_build_object('item_name', 'Kaju Katli ' || g, 'price_list_rate', \
                 ((g % 900) + 100)::text || '.00', 'stock_uom', 'Box', 'internal_note', 'x'), $1, $1 \
                 FROM generate_series(1, $2) g",
            )
            .bind(now)
            .bind(rows)
            .execute(pool)
            .await
            .unwrap();
            // As autovacuum would soon: the planner needs the table's
            // statistics to choose the (entity_type, position) index.
            sqlx::query("ANALYZE sync_events")
                .execute(pool)
                .await
                .unwrap();
        }
        PgPool::Sqlite(pool) => {
            sqlx::query(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < $2) \
                 INSERT INTO sync_events (position, event_id, idempotency_key, source_system, entity_type, entity_key, \
                 operation, event_type, payload, occurred_at, created_at, recorded_xid) \
                 SELECT n, 'e' || n, 'bench-' || n, 'erpnext', 'Item', 'ITEM-' || (n % 5000), 'update', 'item.updated', \
                 json_object('item_name', 'Kaju Katli ' || n, 'price_list_rate', ((n % 900) + 100) || '.00', \
                 'stock_uom', 'Box', 'internal_note', 'x'), $1, $1, n FROM g",
            )
            .bind(now)
            .bind(rows)
            .execute(pool)
            .await
            .unwrap();
        }
    }
    eprintln!(
        "{engine}: seeded {rows} events in {:.1?}",
        seeding.elapsed()
    );

    let lines = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route("/bulk", post(receive))
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
        .with_state(Arc::clone(&lines));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/bulk", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let store: Arc<dyn SyncStore> = Arc::new(SqlSyncStore::new(pool));
    store
        .create_target(
            NewTarget {
                name: TargetName::parse("lake").unwrap(),
                system: System::Analytics,
                kind: TargetKind::Webhook,
                url,
                secret: "benchmark-secret-0123".into(),
                timeout_ms: 30_000,
                max_attempts: 3,
                enabled: true,
            },
            now,
        )
        .await
        .unwrap();
    let route = store
        .create_configuration(
            NewConfiguration {
                entity_type: EntityType::parse("Item").unwrap(),
                source: SourceFilter::Any,
                target: TargetName::parse("lake").unwrap(),
                mode: SyncMode::Batch,
                strategy: ConflictStrategy::SourceWins,
                business_rule: None,
                mapping: FieldMapping(
                    [
                        ("item_name".to_owned(), "name".to_owned()),
                        ("internal_note".to_owned(), String::new()),
                    ]
                    .into(),
                ),
                merge_rules: MergeRules::default(),
                batch_every_minutes: 0,
                enabled: true,
            },
            "bench",
            now,
        )
        .await
        .unwrap();
    let began = Instant::now();
    let run = BatchRunner::new(Arc::clone(&store))
        .run_now(
            &route,
            Some(now - Duration::hours(1)),
            Some(now + Duration::hours(1)),
            "bench",
            Utc::now(),
        )
        .await
        .unwrap();
    let elapsed = began.elapsed();
    eprintln!(
        "{engine}: batch run {:?}: {} extracted, {} loaded ({} lines received) in {elapsed:.2?} = {:.0} rows/s; \
         extract {} ms, transform {} ms, load {} ms, {} chunks",
        run.status,
        run.rows_extracted,
        run.rows_loaded,
        lines.load(Ordering::Relaxed),
        run.rows_loaded as f64 / elapsed.as_secs_f64(),
        run.extract_ms,
        run.transform_ms,
        run.load_ms,
        run.chunks_loaded,
    );
}
