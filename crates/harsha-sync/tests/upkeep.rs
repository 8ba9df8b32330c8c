//! The Sync service's upkeep on SQLite and PostgreSQL: a minute's metrics
//! (counts, lag percentiles, conflicts and the auto-resolved share) written
//! once; what is waiting; and the retention policy — old events leave the
//! hot table (on PostgreSQL their monthly partition is detached as an
//! archive, and dropped after the total retention).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use chrono::{DateTime, Datelike as _, Duration, DurationRound, Months, Utc};
use harsha_store::{Engine, PgPool, Role};
use harsha_sync::{
    SqlSyncStore, SyncStore,
    domain::{
        Attempt, AttemptOutcome, ConflictStrategy, EntityType, FieldMapping, MergeRules,
        NewConfiguration, NewEvent, NewTarget, Operation, SourceFilter, SyncMode, System,
        TargetKind, TargetName,
    },
    store::{EventFilter, Finished, Retention},
};
use harsha_testkit::TestDatabase;
use serde_json::json;

harsha_testkit::on_sqlite_and_postgres!(
    a_minute_of_sync_is_measured_once,
    old_events_leave_the_hot_table,
);

async fn store(engine: Engine) -> (TestDatabase, Arc<dyn SyncStore>) {
    let database = TestDatabase::new(Role::Sync, engine).await;
    let store: Arc<dyn SyncStore> = Arc::new(SqlSyncStore::new(database.db.pg_pool().unwrap()));
    (database, store)
}

fn event(
    key: &str,
    entity_key: &str,
    version: i64,
    base: i64,
    source: System,
    at: DateTime<Utc>,
) -> NewEvent {
    NewEvent {
        idempotency_key: key.into(),
        source_system: source,
        entity_type: EntityType::parse("Item").unwrap(),
        entity_key: entity_key.into(),
        operation: Operation::Update,
        event_type: "item.updated".into(),
        payload: json!({"item_name": key}).as_object().cloned().unwrap(),
        entity_version: version,
        base_version: base,
        occurred_at: at,
        correlation_id: None,
        traceparent: None,
    }
}

async fn a_minute_of_sync_is_measured_once(engine: Engine) {
    let (_db, store) = store(engine).await;
    let now = Utc::now();
    store
        .create_target(
            NewTarget {
                name: TargetName::parse("shop").unwrap(),
                system: System::Ecommerce,
                kind: TargetKind::Webhook,
                url: "http://127.0.0.1:9/".into(),
                secret: "a-secret-of-some-length".into(),
                timeout_ms: 1000,
                max_attempts: 5,
                enabled: true,
            },
            now,
        )
        .await
        .unwrap();
    store
        .create_configuration(
            NewConfiguration {
                entity_type: EntityType::parse("Item").unwrap(),
                source: SourceFilter::Any,
                target: TargetName::parse("shop").unwrap(),
                mode: SyncMode::Realtime,
                strategy: ConflictStrategy::SourceWins,
                business_rule: None,
                mapping: FieldMapping::default(),
                merge_rules: MergeRules::default(),
                batch_every_minutes: 0,
                enabled: true,
            },
            "t",
            now,
        )
        .await
        .unwrap();
    let minute = now.duration_trunc(Duration::minutes(1)).unwrap();
    // Three items changed 200, 400 and 600 ms before now; one conflict
    // settled by the strategy (the warehouse's version 3 meets the CRM's 2
    // made on 1).
    for (i, key) in ["A", "B", "C"].iter().enumerate() {
        let at = now - Duration::milliseconds(200 * (i as i64 + 1));
        store
            .record(
                vec![event(&format!("k{key}"), key, 0, 0, System::Erpnext, at)],
                now,
            )
            .await
            .unwrap();
    }
    store
        .record(vec![event("w3", "D", 3, 2, System::Warehouse, now)], now)
        .await
        .unwrap();
    let conflicted = store
        .record(vec![event("c2", "D", 2, 1, System::Crm, now)], now)
        .await
        .unwrap();
    assert_eq!(conflicted[0].conflicts, 1);
    let claims = store.claim(now, 10).await.unwrap();
    assert_eq!(claims.len(), 4, "A, B, C and D's first change");
    let finished: Vec<Finished> = claims
        .iter()
        .enumerate()
        .map(|(i, claim)| Finished {
            attempt: Attempt {
                position: claim.delivery.position,
                target: "shop".into(),
                attempt: 1,
                outcome: if i == 3 {
                    AttemptOutcome::Retrying
                } else {
                    AttemptOutcome::Delivered
                },
                http_status: Some(if i == 3 { 503 } else { 200 }),
                error: None,
                started_at: now,
                duration_ms: 2,
            },
            retry_at: Some(now + Duration::seconds(30)),
        })
        .collect();
    store.finish(finished, now).await.unwrap();
    let backlog = store.backlog(now + Duration::seconds(1)).await.unwrap();
    assert_eq!(
        (
            backlog.pending,
            backlog.in_flight,
            backlog.held,
            backlog.dead_lettered
        ),
        (2, 0, 0, 0)
    );
    assert!(backlog.oldest_pending_ms >= 1000);

    let figures = store.record_metrics(minute, 60, now).await.unwrap();
    assert_eq!(figures.events_recorded, 5);
    assert_eq!(figures.deliveries_delivered, 3);
    assert_eq!(figures.attempts_failed, 1);
    assert_eq!(
        (figures.conflicts_detected, figures.conflicts_auto_resolved),
        (1, 1)
    );
    let lag = figures.lag_ms.unwrap();
    assert!(lag.p50 >= 400 && lag.max >= 600, "{lag:?}");
    // Written once: a second pass (another replica) reads the same row back.
    let again = store
        .record_metrics(minute, 60, now + Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(again, figures);
    let kept = store
        .metrics(minute - Duration::hours(1), minute + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(kept, [figures]);
    let quiet = store
        .record_metrics(minute - Duration::minutes(10), 60, now)
        .await
        .unwrap();
    assert_eq!((quiet.events_recorded, quiet.lag_ms), (0, None));
}

async fn old_events_leave_the_hot_table(engine: Engine) {
    let (db, store) = store(engine).await;
    let now = Utc::now();
    let long_ago = now.checked_sub_months(Months::new(8)).unwrap();
    if let PgPool::Postgres(pool) = db.db.pg_pool().unwrap() {
        // The month of `long_ago` gets its own partition, as the service
        // would have made it then.
        let first = long_ago.date_naive().with_day0(0).unwrap();
        let next = first.checked_add_months(Months::new(1)).unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE sync_events_y{} PARTITION OF sync_events FOR VALUES FROM ('{first} 00:00:00+00') TO ('{next} 00:00:00+00')",
            first.format("%Ym%m")
        )))
        .execute(&pool)
        .await
        .unwrap();
    }
    store
        .record(
            vec![event("old", "A", 0, 0, System::Crm, long_ago)],
            long_ago,
        )
        .await
        .unwrap();
    store
        .record(vec![event("new", "A", 0, 0, System::Crm, now)], now)
        .await
        .unwrap();
    let report = store
        .enforce_retention(Retention::default(), now)
        .await
        .unwrap();
    let left = store
        .events(&EventFilter::default(), 50, "")
        .await
        .unwrap()
        .items;
    assert_eq!(
        left.iter()
            .map(|e| e.change.idempotency_key.as_str())
            .collect::<Vec<_>>(),
        ["new"]
    );
    // Its key aged out with it: the same key is a new event again.
    let again = store
        .record(vec![event("old", "A", 0, 0, System::Crm, now)], now)
        .await
        .unwrap();
    assert!(!again[0].duplicate);
    if let PgPool::Postgres(pool) = db.db.pg_pool().unwrap() {
        let archive = format!("sync_events_y{}", long_ago.format("%Ym%m"));
        assert_eq!(report.detached, std::slice::from_ref(&archive));
        let archived: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {archive}"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(archived, 1, "the archive keeps the month's events");
        let later = store
            .enforce_retention(
                Retention::default(),
                now.checked_add_months(Months::new(17)).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(later.dropped, [archive]);
    } else {
        assert!(report.deleted_rows >= 2, "{report:?}");
    }
}
