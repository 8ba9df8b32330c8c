//! Batch sync on SQLite and PostgreSQL: a batch route's events of a time
//! range are extracted, mapped, validated and loaded into a local target in
//! signed NDJSON chunks; rows the mapping empties are rejected and named; a
//! refused chunk makes the run partial, a target that cannot take a chunk
//! stops it as failed; one run per route at a time; the schedule starts
//! runs that are due; real-time routes have no batch runs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration as StdDuration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use chrono::{Duration, Utc};
use harsha_store::{Engine, Role};
use harsha_sync::{
    SqlSyncStore, SyncError, SyncStore,
    batch::{BatchRunner, CHUNK_ROWS},
    domain::{
        Configuration, ConflictStrategy, EntityType, FieldMapping, MergeRules, NewConfiguration,
        NewEvent, NewTarget, Operation, SourceFilter, SyncMode, System, TargetKind, TargetName,
        batch::BatchStatus, delivery::signature,
    },
};
use harsha_testkit::TestDatabase;
use serde_json::{Value, json};

harsha_testkit::on_sqlite_and_postgres!(
    a_batch_run_extracts_maps_validates_and_loads_in_chunks,
    a_target_that_cannot_take_a_chunk_fails_the_run,
);

const SECRET: &str = "batch-secret-0123456789";

/// A chunk the target received: its headers, its lines, and whether its
/// signature checked out.
type Chunk = (HeaderMap, Vec<Value>, bool);

#[derive(Clone, Default)]
struct Bulk {
    chunks: Arc<Mutex<Vec<Chunk>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

async fn receive(
    State(bulk): State<Bulk>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::http::StatusCode {
    let lines: Vec<Value> = body
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).unwrap())
        .collect();
    let signed = headers
        .get("harsha-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next()?.strip_prefix("t=")?.parse::<i64>().ok())
        .is_some_and(|t| {
            headers
                .get("harsha-signature")
                .and_then(|v| v.to_str().ok())
                == Some(signature(SECRET, t, &body).as_str())
        });
    let status = bulk.script.lock().unwrap().pop_front().unwrap_or(200);
    bulk.chunks.lock().unwrap().push((headers, lines, signed));
    axum::http::StatusCode::from_u16(status).unwrap()
}

struct Fixture {
    _database: TestDatabase,
    store: Arc<dyn SyncStore>,
    bulk: Bulk,
    url: String,
}

async fn fixture(engine: Engine) -> Fixture {
    let database = TestDatabase::new(Role::Sync, engine).await;
    let store: Arc<dyn SyncStore> = Arc::new(SqlSyncStore::new(database.db.pg_pool().unwrap()));
    let bulk = Bulk::default();
    let app = Router::new()
        .route("/bulk", post(receive))
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
        .with_state(bulk.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/bulk", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Fixture {
        _database: database,
        store,
        bulk,
        url,
    }
}

impl Fixture {
    async fn route(&self, mode: SyncMode, every: i32) -> Configuration {
        let now = Utc::now();
        let _ = self
            .store
            .create_target(
                NewTarget {
                    name: TargetName::parse("lake").unwrap(),
                    system: System::Analytics,
                    kind: TargetKind::Webhook,
                    url: self.url.clone(),
                    secret: SECRET.into(),
                    timeout_ms: 2000,
                    max_attempts: 3,
                    enabled: true,
                },
                now,
            )
            .await;
        self.store
            .create_configuration(
                NewConfiguration {
                    entity_type: EntityType::parse("Item").unwrap(),
                    source: SourceFilter::Any,
                    target: TargetName::parse("lake").unwrap(),
                    mode,
                    strategy: ConflictStrategy::SourceWins,
                    business_rule: None,
                    mapping: FieldMapping([("internal".to_owned(), String::new())].into()),
                    merge_rules: MergeRules::default(),
                    batch_every_minutes: every,
                    enabled: true,
                },
                "ops",
                now,
            )
            .await
            .unwrap()
    }

    /// `count` items recorded in batches of 500, and `empty` whose only
    /// field the mapping drops.
    async fn items(&self, count: usize, empty: usize) {
        let now = Utc::now();
        let item = |i: usize, payload: Value| NewEvent {
            idempotency_key: format!("item-{i}-{}", uuid::Uuid::now_v7()),
            source_system: System::Erpnext,
            entity_type: EntityType::parse("Item").unwrap(),
            entity_key: format!("ITEM-{i:05}"),
            operation: Operation::Update,
            event_type: "item.updated".into(),
            payload: payload.as_object().cloned().unwrap(),
            entity_version: 0,
            base_version: 0,
            occurred_at: now,
            correlation_id: None,
            traceparent: None,
        };
        let mut events: Vec<NewEvent> = (0..count)
            .map(|i| {
                item(
                    i,
                    json!({"item_name": format!("Sweet {i}"), "internal": "x"}),
                )
            })
            .collect();
        events.extend((0..empty).map(|i| item(count + i, json!({"internal": "only"}))));
        for batch in events.chunks(500) {
            self.store.record(batch.to_vec(), now).await.unwrap();
        }
    }
}

async fn a_batch_run_extracts_maps_validates_and_loads_in_chunks(engine: Engine) {
    let f = fixture(engine).await;
    let route = f.route(SyncMode::Batch, 0).await;
    let rows = CHUNK_ROWS as usize + 700;
    f.items(rows, 3).await;
    // A refused chunk comes later; here every chunk is taken.
    let runner = BatchRunner::new(Arc::clone(&f.store));
    let now = Utc::now();
    let run = runner
        .run_now(
            &route,
            Some(now - Duration::hours(1)),
            Some(now + Duration::seconds(1)),
            "ops",
            now,
        )
        .await
        .unwrap();
    assert_eq!(run.status, BatchStatus::Partial, "{run:?}");
    assert_eq!(run.rows_extracted, rows as i64 + 3);
    assert_eq!(run.rows_loaded, rows as i64);
    assert_eq!(run.rows_rejected, 3);
    assert_eq!((run.chunks_loaded, run.chunks_failed), (2, 0));
    assert_eq!(run.errors.len(), 3);
    assert!(
        run.errors[0].contains("leaves no field"),
        "{:?}",
        run.errors
    );
    let chunks = f.bulk.chunks.lock().unwrap().clone();
    assert_eq!(chunks.len(), 2);
    assert!(chunks.iter().all(|(_, _, signed)| *signed));
    let lines: usize = chunks.iter().map(|(_, lines, _)| lines.len()).sum();
    assert_eq!(lines, rows);
    let (headers, first, _) = &chunks[0];
    assert_eq!(headers["content-type"], "application/x-ndjson");
    assert_eq!(headers["harsha-batch-run"], run.id.as_str());
    assert_eq!(headers["idempotency-key"], format!("{}-1", run.id).as_str());
    assert_eq!(
        first[0]["payload"],
        json!({"item_name": "Sweet 0"}),
        "mapped: internal dropped"
    );
    assert_eq!(first[0]["delivery"]["batch_run"], run.id.as_str());
    // In position order across chunks.
    let positions: Vec<i64> = chunks
        .iter()
        .flat_map(|(_, lines, _)| lines.iter().map(|l| l["position"].as_i64().unwrap()))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(f.store.batch_run(&run.id).await.unwrap(), run);

    // The next run starts where this one ended: nothing new, nothing sent.
    let next = runner
        .run_now(&route, None, None, "ops", Utc::now() + Duration::seconds(2))
        .await
        .unwrap();
    assert_eq!(
        (next.status, next.rows_extracted, next.since),
        (BatchStatus::Succeeded, 0, run.until)
    );

    // A refused chunk: counted, named, the run goes on and ends partial.
    f.items(10, 0).await;
    f.bulk.script.lock().unwrap().push_back(422);
    let again_from = Utc::now() - Duration::hours(1);
    let refused = runner
        .run_now(
            &route,
            Some(again_from),
            Some(Utc::now() + Duration::seconds(3)),
            "ops",
            Utc::now(),
        )
        .await
        .unwrap();
    // The first chunk (1,000 rows) is refused; the rest loads.
    assert_eq!(
        (
            refused.status,
            refused.rows_rejected,
            refused.chunks_failed,
            refused.rows_loaded
        ),
        (BatchStatus::Partial, 1_003, 1, rows as i64 + 10 - 1_000)
    );
    assert!(
        refused.errors[0].contains("HTTP 422"),
        "{:?}",
        refused.errors
    );

    // Real-time routes have no batch runs; one run of a route at a time.
    let realtime = {
        let mut c = route.clone();
        c.mode = SyncMode::Realtime;
        c
    };
    assert!(matches!(
        runner
            .run_now(&realtime, None, None, "ops", Utc::now())
            .await,
        Err(SyncError::FailedPrecondition(_))
    ));
    let mut running = run.clone();
    running.id = uuid::Uuid::now_v7().to_string();
    running.status = BatchStatus::Running;
    running.finished_at = None;
    f.store.create_batch_run(&running).await.unwrap();
    let mut second = running.clone();
    second.id = uuid::Uuid::now_v7().to_string();
    assert!(matches!(
        f.store.create_batch_run(&second).await,
        Err(SyncError::FailedPrecondition(_))
    ));
    assert_eq!(
        f.store
            .fail_interrupted_batch_runs(Utc::now())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        f.store.batch_run(&running.id).await.unwrap().status,
        BatchStatus::Failed
    );
    let listed = f
        .store
        .batch_runs(Some(&route.id), 50, "")
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 4);
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].started_at >= w[1].started_at),
        "newest first"
    );
    assert!(listed.iter().any(|r| r.id == running.id));
}

async fn a_target_that_cannot_take_a_chunk_fails_the_run(engine: Engine) {
    let f = fixture(engine).await;
    let route = f.route(SyncMode::Batch, 1).await;
    f.items(20, 0).await;
    f.bulk.script.lock().unwrap().extend([503, 503, 503]);
    // The schedule finds the route due (it never ran) and starts a run.
    let runner = BatchRunner::new(Arc::clone(&f.store));
    runner.run_due(Utc::now() + Duration::seconds(1)).await;
    let mut run = None;
    for _ in 0..200 {
        let runs = f
            .store
            .batch_runs(Some(&route.id), 5, "")
            .await
            .unwrap()
            .items;
        if let Some(done) = runs.into_iter().find(|r| r.status != BatchStatus::Running) {
            run = Some(done);
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    let run = run.expect("the scheduled run finished");
    assert_eq!(run.triggered_by, "schedule");
    assert_eq!(run.status, BatchStatus::Failed, "{run:?}");
    assert_eq!((run.rows_loaded, run.chunks_failed), (0, 1));
    assert!(
        run.errors[0].contains("after 3 attempts"),
        "{:?}",
        run.errors
    );
    assert_eq!(f.bulk.chunks.lock().unwrap().len(), 3);
    // A failed run is not a place to start from: the next takes the range again.
    let again = runner
        .run_now(&route, None, None, "ops", Utc::now() + Duration::seconds(2))
        .await
        .unwrap();
    assert_eq!(
        (again.status, again.rows_loaded),
        (BatchStatus::Succeeded, 20)
    );
}
