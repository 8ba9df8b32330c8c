//! The sync store on SQLite and PostgreSQL: events recorded once per
//! idempotency key and routed by configuration (never back to their
//! source), delivery claims that hold back later events of the same entity
//! only, retries, dead letters and replay, lapsed leases, configuration and
//! target rules, positions under concurrent producers, and monthly
//! partitions.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{collections::BTreeSet, sync::Arc};

use chrono::{Duration, Utc};
use harsha_store::{Engine, Role};
use harsha_sync::{
    SqlSyncStore, SyncError, SyncStore,
    domain::{
        Attempt, AttemptOutcome, ConfigurationPatch, ConflictStrategy, DeliveryState, EntityType,
        FieldMapping, MergeRules, NewConfiguration, NewEvent, NewTarget, Operation, SourceFilter,
        SyncMode, System, TargetKind, TargetName, TargetPatch,
    },
    store::{DeliveryFilter, EventFilter, Finished, StreamCursor},
};
use harsha_testkit::TestDatabase;
use serde_json::json;

harsha_testkit::on_sqlite_and_postgres!(
    events_are_recorded_once_per_key_and_routed_by_configuration,
    claims_hold_back_only_the_entity_that_waits,
    failures_retry_then_dead_letter_and_replay,
    lapsed_leases_make_the_attempt_again,
    targets_and_configurations_keep_their_rules,
    concurrent_producers_get_distinct_increasing_positions,
    events_list_by_entity_source_and_position,
    subscriptions_resume_after_any_event_and_filter_by_type,
);

struct Fixture {
    _database: TestDatabase,
    store: Arc<dyn SyncStore>,
}

async fn fixture(engine: Engine) -> Fixture {
    let database = TestDatabase::new(Role::Sync, engine).await;
    let store: Arc<dyn SyncStore> = Arc::new(SqlSyncStore::new(database.db.pg_pool().unwrap()));
    Fixture {
        _database: database,
        store,
    }
}

fn name(value: &str) -> TargetName {
    TargetName::parse(value).unwrap()
}

fn target(value: &str, system: System) -> NewTarget {
    NewTarget {
        name: name(value),
        system,
        kind: TargetKind::Webhook,
        url: format!("http://127.0.0.1:9/{value}"),
        secret: "a-secret-of-some-length".into(),
        timeout_ms: 1000,
        max_attempts: 3,
        enabled: true,
    }
}

fn route(entity: &str, source: SourceFilter, to: &str, mode: SyncMode) -> NewConfiguration {
    NewConfiguration {
        entity_type: EntityType::parse(entity).unwrap(),
        source,
        target: name(to),
        mode,
        strategy: ConflictStrategy::SourceWins,
        business_rule: None,
        mapping: FieldMapping::default(),
        merge_rules: MergeRules::default(),
        batch_every_minutes: 0,
        enabled: true,
    }
}

fn event(key: &str, source: System, entity: &str, entity_key: &str) -> NewEvent {
    NewEvent {
        idempotency_key: key.into(),
        source_system: source,
        entity_type: EntityType::parse(entity).unwrap(),
        entity_key: entity_key.into(),
        operation: Operation::Update,
        event_type: format!("{source}.{entity}.updated"),
        payload: json!({"qty": 5, "name": entity_key})
            .as_object()
            .cloned()
            .unwrap(),
        entity_version: 0,
        base_version: 0,
        occurred_at: Utc::now(),
        correlation_id: None,
        traceparent: None,
    }
}

impl Fixture {
    async fn targets(&self) {
        let now = Utc::now();
        self.store
            .create_target(target("crm", System::Crm), now)
            .await
            .unwrap();
        self.store
            .create_target(target("warehouse", System::Warehouse), now)
            .await
            .unwrap();
    }

    async fn route(&self, configuration: NewConfiguration) -> String {
        self.store
            .create_configuration(configuration, "tester", Utc::now())
            .await
            .unwrap()
            .id
    }

    async fn record(&self, events: Vec<NewEvent>) -> Vec<harsha_sync::store::Recorded> {
        self.store.record(events, Utc::now()).await.unwrap()
    }

    async fn claim(&self) -> Vec<(i64, String, i32)> {
        let now = Utc::now();
        let mut claimed: Vec<_> = self
            .store
            .claim(now, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.delivery.position, c.delivery.target, c.delivery.attempts))
            .collect();
        claimed.sort();
        claimed
    }

    async fn finish(
        &self,
        position: i64,
        target: &str,
        attempt: i32,
        outcome: AttemptOutcome,
        retry_in: Option<Duration>,
    ) {
        let now = Utc::now();
        self.store
            .finish(
                vec![Finished {
                    attempt: Attempt {
                        position,
                        target: target.into(),
                        attempt,
                        outcome,
                        http_status: Some(match outcome {
                            AttemptOutcome::Delivered => 200,
                            _ => 503,
                        }),
                        error: (outcome != AttemptOutcome::Delivered).then(|| "HTTP 503".into()),
                        started_at: now,
                        duration_ms: 3,
                    },
                    retry_at: retry_in.map(|wait| now + wait),
                }],
                now,
            )
            .await
            .unwrap();
    }

    async fn states(&self, target: &str) -> Vec<(i64, DeliveryState, i32)> {
        self.store
            .deliveries(
                &DeliveryFilter {
                    target: Some(target.into()),
                    ..DeliveryFilter::default()
                },
                500,
                "",
            )
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|d| (d.position, d.state, d.attempts))
            .collect()
    }
}

async fn events_are_recorded_once_per_key_and_routed_by_configuration(engine: Engine) {
    let f = fixture(engine).await;
    f.targets().await;
    f.route(route(
        "Customer",
        SourceFilter::Any,
        "crm",
        SyncMode::Realtime,
    ))
    .await;
    f.route(route(
        "Customer",
        SourceFilter::Only(System::Erpnext),
        "warehouse",
        SyncMode::Realtime,
    ))
    .await;
    f.route(route(
        "Batch",
        SourceFilter::Any,
        "warehouse",
        SyncMode::Batch,
    ))
    .await;

    let recorded = f
        .record(vec![
            event("erp-1", System::Erpnext, "Customer", "CUST-1"),
            // From the CRM: the CRM's own route skips it (no echo), and the
            // warehouse route takes ERPNext's only.
            event("crm-1", System::Crm, "Customer", "CUST-1"),
            // Batch routes are left for batch runs.
            event("erp-2", System::Erpnext, "Batch", "B-1"),
        ])
        .await;
    let routed: Vec<u32> = recorded.iter().map(|r| r.routed_to).collect();
    assert_eq!(routed, [2, 0, 0]);
    assert!(recorded.iter().all(|r| !r.duplicate));
    let positions: Vec<i64> = recorded.iter().map(|r| r.event.position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

    // The same key again: the first event back, nothing new recorded or routed.
    let mut again = event("erp-1", System::Erpnext, "Customer", "CUST-1");
    again.payload.insert("qty".into(), json!(99));
    let duplicate = f.record(vec![again]).await.pop().unwrap();
    assert!(duplicate.duplicate);
    assert_eq!(duplicate.routed_to, 0);
    assert_eq!(duplicate.event, recorded[0].event);
    let stored = f.store.event(positions[0]).await.unwrap();
    assert_eq!(stored.change.payload["qty"], json!(5));
    assert_eq!(stored.change.idempotency_key, "erp-1");
    let all = f
        .store
        .events(&EventFilter::default(), 50, "")
        .await
        .unwrap();
    assert_eq!(all.items.len(), 3);
    assert_eq!(f.states("crm").await.len(), 1);
    assert_eq!(f.states("warehouse").await.len(), 1);

    // A disabled route routes nothing from then on, without a restart.
    let routes = f
        .store
        .configurations(Some("Customer"), Some("crm"))
        .await
        .unwrap();
    f.store
        .update_configuration(
            &routes[0].id,
            ConfigurationPatch {
                enabled: Some(false),
                ..ConfigurationPatch::default()
            },
            "tester",
            Utc::now(),
        )
        .await
        .unwrap();
    let later = f
        .record(vec![event("erp-3", System::Erpnext, "Customer", "CUST-2")])
        .await;
    assert_eq!(later[0].routed_to, 1);
    assert!(matches!(
        f.store.event(10_000).await,
        Err(SyncError::EventNotFound(10_000))
    ));
}

async fn claims_hold_back_only_the_entity_that_waits(engine: Engine) {
    let f = fixture(engine).await;
    f.targets().await;
    f.route(route("Batch", SourceFilter::Any, "crm", SyncMode::Realtime))
        .await;
    let recorded = f
        .record(vec![
            event("a1", System::Erpnext, "Batch", "A"),
            event("a2", System::Erpnext, "Batch", "A"),
            event("b1", System::Erpnext, "Batch", "B"),
        ])
        .await;
    let (a1, a2, b1) = (
        recorded[0].event.position,
        recorded[1].event.position,
        recorded[2].event.position,
    );
    // The first of each entity only.
    assert_eq!(
        f.claim().await,
        [(a1, "crm".into(), 1), (b1, "crm".into(), 1)]
    );
    // Nothing more while they are in flight.
    assert!(f.claim().await.is_empty());
    // A1 fails and backs off: A2 still waits behind it; B is done.
    f.finish(
        a1,
        "crm",
        1,
        AttemptOutcome::Retrying,
        Some(Duration::seconds(30)),
    )
    .await;
    f.finish(b1, "crm", 1, AttemptOutcome::Delivered, None)
        .await;
    assert!(f.claim().await.is_empty());
    assert_eq!(
        f.states("crm").await,
        [
            (a1, DeliveryState::Pending, 1),
            (a2, DeliveryState::Pending, 0),
            (b1, DeliveryState::Delivered, 1)
        ]
    );
    // A1 due again: claimed (second attempt); once delivered, A2 follows.
    f.finish(a1, "crm", 1, AttemptOutcome::Retrying, None).await; // no-op: not in flight
    let due = f
        .store
        .claim(Utc::now() + Duration::seconds(31), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].delivery.position, due[0].delivery.attempts),
        (a1, 2)
    );
    assert_eq!(due[0].event.change.entity_key, "A");
    assert_eq!(due[0].target.secret, "a-secret-of-some-length");
    f.finish(a1, "crm", 2, AttemptOutcome::Delivered, None)
        .await;
    assert_eq!(f.claim().await, [(a2, "crm".into(), 1)]);
    let attempts = f.store.attempts(a1, Some("crm")).await.unwrap();
    let outcomes: Vec<_> = attempts.iter().map(|a| (a.attempt, a.outcome)).collect();
    // The late, stale finish of attempt 1 is recorded but moved nothing.
    assert_eq!(
        outcomes,
        [
            (1, AttemptOutcome::Retrying),
            (1, AttemptOutcome::Retrying),
            (2, AttemptOutcome::Delivered)
        ]
    );

    // A disabled target's deliveries wait; enabled again, they go.
    f.finish(a2, "crm", 1, AttemptOutcome::Delivered, None)
        .await;
    f.record(vec![event("b2", System::Erpnext, "Batch", "B")])
        .await;
    f.store
        .update_target(
            &name("crm"),
            TargetPatch {
                enabled: Some(false),
                ..TargetPatch::default()
            },
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(f.claim().await.is_empty());
    f.store
        .update_target(
            &name("crm"),
            TargetPatch {
                enabled: Some(true),
                ..TargetPatch::default()
            },
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(f.claim().await.len(), 1);
}

async fn failures_retry_then_dead_letter_and_replay(engine: Engine) {
    let f = fixture(engine).await;
    f.targets().await;
    f.route(route(
        "Item",
        SourceFilter::Any,
        "warehouse",
        SyncMode::Realtime,
    ))
    .await;
    let position = f
        .record(vec![event("i1", System::Crm, "Item", "SWEET-1")])
        .await[0]
        .event
        .position;
    f.record(vec![event("i2", System::Crm, "Item", "SWEET-1")])
        .await;
    assert_eq!(f.claim().await.len(), 1);
    f.finish(position, "warehouse", 1, AttemptOutcome::DeadLettered, None)
        .await;
    // A dead letter does not hold back the entity's later events.
    let next = f.claim().await;
    assert_eq!(next.len(), 1);
    assert!(next[0].0 > position);
    let dead = f
        .store
        .deliveries(
            &DeliveryFilter {
                target: Some("warehouse".into()),
                state: Some(DeliveryState::Dead),
                position: None,
            },
            50,
            "",
        )
        .await
        .unwrap();
    assert_eq!(dead.items.len(), 1);
    assert_eq!(dead.items[0].last_error.as_deref(), Some("HTTP 503"));

    // Deleting the target is refused while it has undelivered events.
    f.store
        .delete_configuration(
            &f.store
                .configurations(None, Some("warehouse"))
                .await
                .unwrap()[0]
                .id,
        )
        .await
        .unwrap();
    assert!(matches!(
        f.store.delete_target(&name("warehouse")).await,
        Err(SyncError::FailedPrecondition(_))
    ));

    assert_eq!(
        f.store
            .replay(&name("warehouse"), &[999], Utc::now())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        f.store
            .replay(&name("warehouse"), &[], Utc::now())
            .await
            .unwrap(),
        1
    );
    let states = f.states("warehouse").await;
    assert_eq!(states[0], (position, DeliveryState::Pending, 0));
    assert!(matches!(
        f.store.replay(&name("nowhere"), &[], Utc::now()).await,
        Err(SyncError::TargetNotFound(_))
    ));
}

async fn lapsed_leases_make_the_attempt_again(engine: Engine) {
    let f = fixture(engine).await;
    f.targets().await;
    f.route(route("Order", SourceFilter::Any, "crm", SyncMode::Realtime))
        .await;
    f.record(vec![event("o1", System::Ecommerce, "Order", "SO-1")])
        .await;
    let now = Utc::now();
    let claimed = f.store.claim(now, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // Leased for the target's timeout (1 s) and the margin (10 s).
    assert_eq!(f.store.release_lapsed(now).await.unwrap(), 0);
    assert_eq!(
        f.store
            .release_lapsed(now + Duration::seconds(10))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        f.store
            .release_lapsed(now + Duration::seconds(12))
            .await
            .unwrap(),
        1
    );
    let again = f.claim().await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].2, 2, "the interrupted attempt counts");
}

async fn targets_and_configurations_keep_their_rules(engine: Engine) {
    let f = fixture(engine).await;
    f.targets().await;
    assert!(matches!(
        f.store
            .create_target(target("crm", System::Crm), Utc::now())
            .await,
        Err(SyncError::TargetExists(_))
    ));
    assert!(matches!(
        f.store
            .create_configuration(
                route("Customer", SourceFilter::Any, "nowhere", SyncMode::Realtime),
                "t",
                Utc::now()
            )
            .await,
        Err(SyncError::TargetNotFound(_))
    ));
    let id = f
        .route(route(
            "Customer",
            SourceFilter::Any,
            "crm",
            SyncMode::Realtime,
        ))
        .await;
    assert!(matches!(
        f.store
            .create_configuration(
                route("Customer", SourceFilter::Any, "crm", SyncMode::Batch),
                "t",
                Utc::now()
            )
            .await,
        Err(SyncError::ConfigurationExists { .. })
    ));
    assert!(matches!(
        f.store.delete_target(&name("crm")).await,
        Err(SyncError::FailedPrecondition(_))
    ));
    // A business rule without its strategy is refused and changes nothing.
    let refused = f
        .store
        .update_configuration(
            &id,
            ConfigurationPatch {
                business_rule: Some(Some("latest_change_wins".into())),
                ..ConfigurationPatch::default()
            },
            "t",
            Utc::now(),
        )
        .await;
    assert!(matches!(refused, Err(SyncError::InvalidArgument { .. })));
    let updated = f
        .store
        .update_configuration(
            &id,
            ConfigurationPatch {
                strategy: Some(ConflictStrategy::BusinessRule),
                business_rule: Some(Some("latest_change_wins".into())),
                mapping: Some(FieldMapping(
                    [("customer_name".to_owned(), "name".to_owned())].into(),
                )),
                ..ConfigurationPatch::default()
            },
            "reviewer",
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(updated.strategy, ConflictStrategy::BusinessRule);
    assert_eq!(updated.updated_by, "reviewer");
    assert_eq!(f.store.configuration(&id).await.unwrap(), updated);
    let target = f
        .store
        .update_target(
            &name("crm"),
            TargetPatch {
                url: Some("http://127.0.0.1:1/new".into()),
                max_attempts: Some(10),
                ..TargetPatch::default()
            },
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        (target.url.as_str(), target.max_attempts, target.timeout_ms),
        ("http://127.0.0.1:1/new", 10, 1000)
    );
    assert_eq!(f.store.targets().await.unwrap().len(), 2);
    f.store.delete_configuration(&id).await.unwrap();
    assert!(matches!(
        f.store.delete_configuration(&id).await,
        Err(SyncError::ConfigurationNotFound(_))
    ));
    f.store.delete_target(&name("crm")).await.unwrap();
    assert!(matches!(
        f.store.target(&name("crm")).await,
        Err(SyncError::TargetNotFound(_))
    ));
}

async fn concurrent_producers_get_distinct_increasing_positions(engine: Engine) {
    let f = fixture(engine).await;
    let mut tasks = Vec::new();
    for producer in 0..8 {
        let store = Arc::clone(&f.store);
        tasks.push(tokio::spawn(async move {
            let mut positions = Vec::new();
            for i in 0..20 {
                // Every producer also sends keys another one sends.
                let key = format!("k-{}", (producer * 20 + i) % 100);
                let recorded = store
                    .record(
                        vec![event(&key, System::Mobile, "Order", &format!("SO-{i}"))],
                        Utc::now(),
                    )
                    .await
                    .unwrap();
                positions.push((key, recorded[0].event.position));
            }
            positions
        }));
    }
    let mut by_key = std::collections::BTreeMap::new();
    for task in tasks {
        for (key, position) in task.await.unwrap() {
            let first = by_key.entry(key).or_insert(position);
            assert_eq!(*first, position, "one key, one event");
        }
    }
    assert_eq!(by_key.len(), 100);
    let listed = f
        .store
        .events(&EventFilter::default(), 500, "")
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 100);
    let positions: BTreeSet<i64> = listed.iter().map(|e| e.position).collect();
    assert_eq!(positions.len(), 100);
}

async fn events_list_by_entity_source_and_position(engine: Engine) {
    let f = fixture(engine).await;
    for i in 0..5 {
        f.record(vec![
            event(&format!("a{i}"), System::Crm, "Customer", "CUST-1"),
            event(&format!("b{i}"), System::Warehouse, "StockLevel", "ITEM-1"),
        ])
        .await;
    }
    let filter = EventFilter {
        entity_type: Some("Customer".into()),
        entity_key: Some("CUST-1".into()),
        ..EventFilter::default()
    };
    let first = f.store.events(&filter, 3, "").await.unwrap();
    assert_eq!(first.items.len(), 3);
    let token = first.next_token.clone().unwrap();
    let second = f.store.events(&filter, 3, &token).await.unwrap();
    assert_eq!(second.items.len(), 2);
    assert!(second.next_token.is_none());
    assert!(
        first
            .items
            .iter()
            .chain(&second.items)
            .all(|e| e.change.source_system == System::Crm)
    );
    let after = f
        .store
        .events(
            &EventFilter {
                source_system: Some("warehouse".into()),
                after_position: first.items[2].position,
                ..EventFilter::default()
            },
            50,
            "",
        )
        .await
        .unwrap();
    assert!(
        after
            .items
            .iter()
            .all(|e| e.position > first.items[2].position)
    );
    assert_eq!(after.items.len(), 3);
    assert!(f.store.events(&filter, 3, "not-a-token").await.is_err());
}

#[tokio::test]
async fn postgres_keeps_monthly_event_partitions_ahead() {
    let database = TestDatabase::new(Role::Sync, Engine::Postgres).await;
    let store = SqlSyncStore::new(database.db.pg_pool().unwrap());
    let today = Utc::now().date_naive();
    // The migration made this month and the next three.
    let added = store
        .ensure_partitions(today.checked_add_months(chrono::Months::new(3)).unwrap())
        .await
        .unwrap();
    assert!(added.is_empty(), "{added:?}");
    let added = store
        .ensure_partitions(today.checked_add_months(chrono::Months::new(5)).unwrap())
        .await
        .unwrap();
    assert_eq!(added.len(), 2, "{added:?}");
    assert!(added[0].starts_with("sync_events_y"));
    // Events land in this month's partition, not the default one.
    store
        .record(vec![event("p1", System::Crm, "Customer", "C")], Utc::now())
        .await
        .unwrap();
    let harsha_store::PgPool::Postgres(pool) = database.db.pg_pool().unwrap() else {
        unreachable!()
    };
    let in_default: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sync_events_default")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(in_default, 0);
    let month = format!("sync_events_y{}", today.format("%Ym%m"));
    let in_month: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {month}")))
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(in_month, 1);
}

/// The stream after `after` once it holds `want` events (on PostgreSQL an
/// event is withheld while any older write transaction on the server is
/// still running, which parallel tests on the same server can make last a
/// moment); what it holds after 10 s otherwise.
async fn settled(
    store: &dyn SyncStore,
    after: StreamCursor,
    types: &[String],
    limit: u32,
    want: usize,
) -> Vec<(harsha_sync::domain::Event, StreamCursor)> {
    let mut got = Vec::new();
    for _ in 0..200 {
        got = store.stream(after, types, limit).await.unwrap();
        if got.len() >= want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    got
}

async fn subscriptions_resume_after_any_event_and_filter_by_type(engine: Engine) {
    let f = fixture(engine).await;
    let mut positions = Vec::new();
    for i in 0..6 {
        let entity = if i % 2 == 0 { "Customer" } else { "Batch" };
        let recorded = f
            .record(vec![event(&format!("s{i}"), System::Crm, entity, "K")])
            .await;
        positions.push(recorded[0].event.position);
    }
    let start = f.store.stream_cursor(Some(0)).await.unwrap();
    assert_eq!(start, StreamCursor::START);
    let all = settled(f.store.as_ref(), start, &[], 100, 6).await;
    let seen: Vec<i64> = all.iter().map(|(e, _)| e.position).collect();
    assert_eq!(seen, positions);
    // Resuming after the third event gives the rest, in order.
    let third = f.store.stream_cursor(Some(positions[2])).await.unwrap();
    let rest: Vec<i64> = settled(f.store.as_ref(), third, &[], 100, 3)
        .await
        .iter()
        .map(|(e, _)| e.position)
        .collect();
    assert_eq!(rest, positions[3..]);
    // Pages chain through their cursors.
    let first_two = settled(f.store.as_ref(), start, &[], 2, 2).await;
    let next = settled(f.store.as_ref(), first_two[1].1, &[], 2, 2).await;
    assert_eq!(next[0].0.position, positions[2]);
    let customers: Vec<i64> = settled(f.store.as_ref(), start, &["Customer".to_owned()], 100, 3)
        .await
        .iter()
        .map(|(e, _)| e.position)
        .collect();
    assert_eq!(customers, [positions[0], positions[2], positions[4]]);
    // From now: only what comes next.
    let head = f.store.stream_cursor(None).await.unwrap();
    assert!(f.store.stream(head, &[], 100).await.unwrap().is_empty());
    let later = f
        .record(vec![event("s-later", System::Crm, "Batch", "K")])
        .await;
    let after_head: Vec<i64> = settled(f.store.as_ref(), head, &[], 100, 1)
        .await
        .iter()
        .map(|(e, _)| e.position)
        .collect();
    assert_eq!(after_head, [later[0].event.position]);
    assert!(matches!(
        f.store.stream_cursor(Some(999_999)).await,
        Err(SyncError::EventNotFound(999_999))
    ));
}

/// A recording transaction still open when a later one commits: the later
/// event waits until the earlier one is visible, so a subscriber resuming
/// from its last event never skips one.
#[tokio::test]
async fn postgres_subscriptions_never_skip_an_event_committed_late() {
    use sqlx::Connection as _;

    let database = TestDatabase::new(Role::Sync, Engine::Postgres).await;
    let store = SqlSyncStore::new(database.db.pg_pool().unwrap());
    store
        .record(
            vec![event("first", System::Crm, "Customer", "A")],
            Utc::now(),
        )
        .await
        .unwrap();
    let (first, cursor) = settled(&store, StreamCursor::START, &[], 10, 1)
        .await
        .pop()
        .unwrap();
    // A slow recorder: its position is drawn, its commit comes later.
    let mut slow = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let mut tx = slow.begin().await.unwrap();
    let slow_position: i64 = sqlx::query_scalar(
        "INSERT INTO sync_events (position, event_id, idempotency_key, source_system, entity_type, entity_key, \
         operation, event_type, payload, occurred_at, created_at) VALUES (nextval('sync_event_position'), 'e', 'slow', \
         'crm', 'Customer', 'B', 'update', 'x', '{}', now(), now()) RETURNING position",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let fast = store
        .record(
            vec![event("fast", System::Crm, "Customer", "C")],
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(fast[0].event.position > slow_position);
    assert!(
        store.stream(cursor, &[], 10).await.unwrap().is_empty(),
        "the fast event waits for the slow one"
    );
    tx.commit().await.unwrap();
    let seen: Vec<i64> = settled(&store, cursor, &[], 10, 2)
        .await
        .iter()
        .map(|(e, _)| e.position)
        .collect();
    assert_eq!(seen, [slow_position, fast[0].event.position]);
    assert!(first.position < slow_position);
}
