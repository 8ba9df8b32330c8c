//! Real-time delivery under sustained load (issue 8): events are recorded at
//! a steady rate (default 1,000 per second for 15 s, one transaction each,
//! over 200 entities) and delivered by the dispatcher to a local webhook;
//! latency is from the moment the producer started recording an event to
//! the moment the webhook received it.
//!
//! ```sh
//! cargo bench -p harsha-sync --bench delivery                  # SQLite
//! HARSHA_BENCH_ENGINE=postgres cargo bench -p harsha-sync --bench delivery
//! HARSHA_BENCH_RATE=2000 HARSHA_BENCH_SECONDS=10 cargo bench -p harsha-sync --bench delivery
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, routing::post};
use chrono::Utc;
use harsha_store::{Engine, Role};
use harsha_sync::{
    SqlSyncStore, SyncStore,
    dispatch::{DispatchSettings, Dispatcher},
    domain::{
        ConflictStrategy, EntityType, FieldMapping, MergeRules, NewConfiguration, NewEvent,
        NewTarget, Operation, SourceFilter, SyncMode, System, TargetKind, TargetName,
    },
};
use harsha_testkit::{TestDatabase, bench::report_percentiles};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct Hook {
    start: Instant,
    latencies: Arc<Mutex<Vec<Duration>>>,
}

async fn receive(State(hook): State<Hook>, body: Bytes) -> &'static str {
    let now = hook.start.elapsed();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let sent = Duration::from_micros(body["payload"]["sent_us"].as_u64().unwrap());
    hook.latencies
        .lock()
        .unwrap()
        .push(now.saturating_sub(sent));
    "ok"
}

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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
    let rate: u64 = setting("HARSHA_BENCH_RATE", 1000);
    let seconds: u64 = setting("HARSHA_BENCH_SECONDS", 15);
    let database = TestDatabase::new(Role::Sync, engine).await;
    let store: Arc<dyn SyncStore> = Arc::new(SqlSyncStore::new(database.db.pg_pool().unwrap()));

    let hook = Hook {
        start: Instant::now(),
        latencies: Arc::default(),
    };
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(hook.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    store
        .create_target(
            NewTarget {
                name: TargetName::parse("bench").unwrap(),
                system: System::Analytics,
                kind: TargetKind::Webhook,
                url,
                secret: "benchmark-secret-0123".into(),
                timeout_ms: 5000,
                max_attempts: 5,
                enabled: true,
            },
            Utc::now(),
        )
        .await
        .unwrap();
    store
        .create_configuration(
            NewConfiguration {
                entity_type: EntityType::parse("StockLevel").unwrap(),
                source: SourceFilter::Any,
                target: TargetName::parse("bench").unwrap(),
                mode: SyncMode::Realtime,
                strategy: ConflictStrategy::SourceWins,
                business_rule: None,
                mapping: FieldMapping::default(),
                merge_rules: MergeRules::default(),
                batch_every_minutes: 0,
                enabled: true,
            },
            "bench",
            Utc::now(),
        )
        .await
        .unwrap();

    let wake = Arc::new(Notify::new());
    let shutdown = CancellationToken::new();
    let dispatcher = tokio::spawn(
        Dispatcher::new(
            Arc::clone(&store),
            DispatchSettings::default(),
            Arc::clone(&wake),
        )
        .run(shutdown.clone().cancelled_owned()),
    );

    let total = rate * seconds;
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let began = Instant::now();
    let mut producers = tokio::task::JoinSet::new();
    for i in 0..total {
        ticker.tick().await;
        let store = Arc::clone(&store);
        let wake = Arc::clone(&wake);
        let sent_us = u64::try_from(hook.start.elapsed().as_micros()).unwrap();
        producers.spawn(async move {
            let event = NewEvent {
                idempotency_key: format!("bench-{i}"),
                source_system: System::Warehouse,
                entity_type: EntityType::parse("StockLevel").unwrap(),
                entity_key: format!("ITEM-{:03}", i % 200),
                operation: Operation::Update,
                event_type: "warehouse.stock.counted".into(),
                payload: json!({"sent_us": sent_us, "actual_qty": i % 500, "warehouse": "Mumbai Central"})
                    .as_object()
                    .cloned()
                    .unwrap(),
                entity_version: 0,
                base_version: 0,
                occurred_at: Utc::now(),
                correlation_id: None,
                traceparent: None,
            };
            store.record(vec![event], Utc::now()).await.unwrap();
            wake.notify_one();
        });
        while producers.try_join_next().is_some() {}
    }
    while producers.join_next().await.is_some() {}
    let produced_in = began.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (hook.latencies.lock().unwrap().len() as u64) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered_in = began.elapsed();
    shutdown.cancel();
    let _ = dispatcher.await;
    let latencies = hook.latencies.lock().unwrap().clone();
    eprintln!(
        "{engine}: {total} events offered at {rate}/s; recorded in {produced_in:.2?} ({:.0}/s), \
         {} delivered in {delivered_in:.2?} ({:.0}/s)",
        total as f64 / produced_in.as_secs_f64(),
        latencies.len(),
        latencies.len() as f64 / delivered_in.as_secs_f64(),
    );
    let mut sorted = latencies.clone();
    sorted.sort();
    report_percentiles(&format!("{engine} record → webhook latency"), latencies);
    if let Some(max) = sorted.last() {
        eprintln!("{engine} max latency {max:.3?}");
    }
}
