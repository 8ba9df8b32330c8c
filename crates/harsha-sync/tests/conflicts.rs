//! Conflicts on SQLite and PostgreSQL: a change made on an old base meets a
//! newer version from another system; each strategy settles the same
//! concrete pair as documented (source wins, target wins, merge with a
//! per-field rule, a business rule), and the manual workflow holds back only
//! its own entity, refuses steps out of order or by the wrong person, and
//! releases the resolved entity when closed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{collections::BTreeMap, sync::Arc};

use chrono::{Duration, Utc};
use harsha_store::{Engine, Role};
use harsha_sync::{
    SqlSyncStore, SyncError, SyncStore,
    domain::{
        Conflict, ConflictStatus, ConflictStrategy, DeliveryState, EntityType, FieldMapping,
        MergeRules, NewConfiguration, NewEvent, NewTarget, Operation, Resolution, SourceFilter,
        SyncMode, System, TargetKind, TargetName,
        conflict::{Action, Pick},
    },
    store::{ConflictFilter, DeliveryFilter, Finished},
};
use harsha_testkit::TestDatabase;
use serde_json::{Value, json};

harsha_testkit::on_sqlite_and_postgres!(
    each_strategy_settles_the_same_conflict_as_documented,
    the_manual_workflow_holds_only_its_entity_until_closed,
    relayed_erp_changes_get_versions_and_conflict_when_made_on_an_old_one,
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

impl Fixture {
    async fn route(
        &self,
        target: &str,
        system: System,
        strategy: ConflictStrategy,
        rule: Option<&str>,
        merge: &[(&str, &str)],
    ) {
        self.store
            .create_target(
                NewTarget {
                    name: TargetName::parse(target).unwrap(),
                    system,
                    kind: TargetKind::Webhook,
                    url: format!("http://127.0.0.1:9/{target}"),
                    secret: "a-secret-of-some-length".into(),
                    timeout_ms: 1000,
                    max_attempts: 3,
                    enabled: true,
                },
                Utc::now(),
            )
            .await
            .unwrap();
        self.store
            .create_configuration(
                NewConfiguration {
                    entity_type: EntityType::parse("Customer").unwrap(),
                    source: SourceFilter::Any,
                    target: TargetName::parse(target).unwrap(),
                    mode: SyncMode::Realtime,
                    strategy,
                    business_rule: rule.map(str::to_owned),
                    mapping: FieldMapping::default(),
                    merge_rules: MergeRules(
                        merge
                            .iter()
                            .map(|(f, r)| ((*f).to_owned(), (*r).to_owned()))
                            .collect(),
                    ),
                    batch_every_minutes: 0,
                    enabled: true,
                },
                "tester",
                Utc::now(),
            )
            .await
            .unwrap();
    }

    async fn publish(
        &self,
        source: System,
        key: &str,
        version: i64,
        base: i64,
        payload: Value,
        minutes_ago: i64,
    ) -> (i64, u32) {
        let recorded = self
            .store
            .record(
                vec![NewEvent {
                    idempotency_key: format!("{source}-{key}-{version}-{}", uuid::Uuid::now_v7()),
                    source_system: source,
                    entity_type: EntityType::parse("Customer").unwrap(),
                    entity_key: key.into(),
                    operation: Operation::Update,
                    event_type: "customer.updated".into(),
                    payload: payload.as_object().cloned().unwrap(),
                    entity_version: version,
                    base_version: base,
                    occurred_at: Utc::now() - Duration::minutes(minutes_ago),
                    correlation_id: None,
                    traceparent: None,
                }],
                Utc::now(),
            )
            .await
            .unwrap();
        (recorded[0].event.position, recorded[0].conflicts)
    }

    async fn state(&self, target: &str, position: i64) -> DeliveryState {
        self.store
            .deliveries(
                &DeliveryFilter {
                    target: Some(target.into()),
                    state: None,
                    position: Some(position),
                },
                10,
                "",
            )
            .await
            .unwrap()
            .items[0]
            .state
    }

    /// Delivers everything claimable, round after round; the payloads sent
    /// to `target` for `position`.
    async fn drain(&self, target: &str, position: i64) -> Vec<Value> {
        self.drain_all(position)
            .await
            .into_iter()
            .filter(|(to, _)| to == target)
            .map(|(_, payload)| payload)
            .collect()
    }

    /// Delivers everything claimable; what each target was sent for
    /// `position`.
    async fn drain_all(&self, position: i64) -> Vec<(String, Value)> {
        let mut seen = Vec::new();
        for _ in 0..6 {
            let now = Utc::now();
            let claims = self.store.claim(now, 100).await.unwrap();
            if claims.is_empty() {
                break;
            }
            let mut finished = Vec::new();
            for claim in claims {
                if claim.delivery.position == position {
                    seen.push((
                        claim.delivery.target.clone(),
                        Value::Object(claim.event.change.payload.clone()),
                    ));
                }
                finished.push(Finished {
                    attempt: harsha_sync::domain::Attempt {
                        position: claim.delivery.position,
                        target: claim.delivery.target.clone(),
                        attempt: claim.delivery.attempts,
                        outcome: harsha_sync::domain::AttemptOutcome::Delivered,
                        http_status: Some(200),
                        error: None,
                        started_at: now,
                        duration_ms: 1,
                    },
                    retry_at: None,
                });
            }
            self.store.finish(finished, Utc::now()).await.unwrap();
        }
        seen
    }

    async fn conflict_for(&self, target: &str) -> Conflict {
        let (page, _) = self
            .store
            .conflicts(&ConflictFilter::default(), 100, "", Utc::now())
            .await
            .unwrap();
        page.items
            .into_iter()
            .find(|c| c.target == target)
            .expect("a conflict for the target")
    }
}

/// The base (ERPNext, version 5), a newer e-commerce change (version 6, made
/// on 5, two minutes ago) and a CRM change made on the same base five
/// minutes ago: they conflict on `phone`; `name` changed only in the CRM,
/// `email` only in the shop.
async fn conflicting_pair(f: &Fixture) -> i64 {
    f.publish(
        System::Erpnext,
        "CUST-1",
        5,
        0,
        json!({"name": "Ravi Sweets", "phone": "100", "email": "r@x.in", "city": "Pune"}),
        30,
    )
    .await;
    let (_, none) = f
        .publish(
            System::Ecommerce,
            "CUST-1",
            6,
            5,
            json!({"name": "Ravi Sweets", "phone": "300", "email": "ravi@x.in", "city": "Pune"}),
            2,
        )
        .await;
    assert_eq!(none, 0, "a change on the newest base does not conflict");
    let (position, conflicts) = f
        .publish(
            System::Crm,
            "CUST-1",
            6,
            5,
            json!({"name": "Ravi Sweets Pvt", "phone": "200", "email": "r@x.in", "city": "Pune"}),
            5,
        )
        .await;
    assert!(conflicts > 0);
    position
}

async fn each_strategy_settles_the_same_conflict_as_documented(engine: Engine) {
    let f = fixture(engine).await;
    f.route(
        "wh",
        System::Warehouse,
        ConflictStrategy::SourceWins,
        None,
        &[],
    )
    .await;
    f.route(
        "bi",
        System::Analytics,
        ConflictStrategy::TargetWins,
        None,
        &[],
    )
    .await;
    f.route(
        "app",
        System::Mobile,
        ConflictStrategy::Merge,
        None,
        &[("phone", "target")],
    )
    .await;
    f.route(
        "erp",
        System::Erpnext,
        ConflictStrategy::BusinessRule,
        Some("latest_change_wins"),
        &[],
    )
    .await;
    let position = conflicting_pair(&f).await;

    // Source wins: the CRM's entity goes out as it is.
    let wh = f.conflict_for("wh").await;
    assert_eq!(
        (wh.status, wh.auto_resolved, wh.resolution),
        (ConflictStatus::Closed, true, Some(Resolution::Source))
    );
    assert_eq!(wh.conflicting_fields, ["phone"]);
    assert_eq!(
        (wh.base_version, wh.source_version, wh.competing_version),
        (5, 6, 6)
    );
    assert_eq!(wh.competing_system, System::Ecommerce);
    assert_eq!(
        wh.base.as_ref().map(|b| b["phone"].clone()),
        Some(json!("100"))
    );
    let sent: BTreeMap<String, Value> = f.drain_all(position).await.into_iter().collect();
    assert_eq!(
        sent.len(),
        2,
        "only the source-wins and merge routes send: {sent:?}"
    );
    assert_eq!(
        sent["wh"],
        json!({"name": "Ravi Sweets Pvt", "phone": "200", "email": "r@x.in", "city": "Pune"})
    );

    // Target wins: nothing goes out.
    let bi = f.conflict_for("bi").await;
    assert_eq!(bi.resolution, Some(Resolution::Target));
    assert_eq!(f.state("bi", position).await, DeliveryState::Skipped);

    // Merge: the CRM's name, the shop's email, and the phone by its rule.
    let app = f.conflict_for("app").await;
    assert_eq!(app.resolution, Some(Resolution::Merged));
    let merged =
        json!({"name": "Ravi Sweets Pvt", "phone": "300", "email": "ravi@x.in", "city": "Pune"});
    assert_eq!(
        app.resolved.clone().map(Value::Object),
        Some(merged.clone())
    );
    assert_eq!(sent["app"], merged);

    // Business rule "latest change wins": the shop's change is newer.
    let erp = f.conflict_for("erp").await;
    assert_eq!(erp.resolution, Some(Resolution::Target));
    assert_eq!(f.state("erp", position).await, DeliveryState::Skipped);

    // A change made on the newest version afterwards conflicts with nothing.
    let (_, conflicts) = f.publish(System::Crm, "CUST-1", 7, 6,
        json!({"name": "Ravi Sweets Pvt", "phone": "300", "email": "ravi@x.in", "city": "Pune"}), 0).await;
    assert_eq!(conflicts, 0);
    let (history_conflict, history) = f.store.conflict(&app.id).await.unwrap();
    assert_eq!(history_conflict, app);
    let steps: Vec<&str> = history.iter().map(|h| h.step.as_str()).collect();
    assert_eq!(steps, ["detect", "auto_resolve"]);
    assert!(history.iter().all(|h| h.actor == "sync"));
}

async fn the_manual_workflow_holds_only_its_entity_until_closed(engine: Engine) {
    let f = fixture(engine).await;
    f.route(
        "shop",
        System::Warehouse,
        ConflictStrategy::Manual,
        None,
        &[],
    )
    .await;
    let position = conflicting_pair(&f).await;
    assert_eq!(f.state("shop", position).await, DeliveryState::Held);
    // The entity's next change waits behind the held one; other entities go on.
    let (later, _) = f
        .publish(System::Crm, "CUST-1", 7, 6, json!({"name": "Later"}), 0)
        .await;
    let (other, _) = f
        .publish(System::Crm, "CUST-2", 1, 0, json!({"name": "Other"}), 0)
        .await;
    f.drain("shop", 0).await;
    assert_eq!(f.state("shop", other).await, DeliveryState::Delivered);
    assert_eq!(f.state("shop", later).await, DeliveryState::Pending);
    assert_eq!(f.state("shop", position).await, DeliveryState::Held);

    let conflict = f.conflict_for("shop").await;
    assert_eq!(conflict.status, ConflictStatus::Detected);
    let id = conflict.id.clone();
    let now = Utc::now();
    let refuse = |result: Result<Conflict, SyncError>| match result {
        Err(SyncError::FailedPrecondition(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let early = refuse(f.store.advance(&id, Action::Close, "lead", None, now).await);
    assert!(early.contains("detected cannot close"), "{early}");
    f.store
        .advance(
            &id,
            Action::Assign {
                assignee: "asha".into(),
                due_at: now + Duration::hours(8),
            },
            "lead",
            Some("phone numbers differ".into()),
            now,
        )
        .await
        .unwrap();
    refuse(
        f.store
            .advance(&id, Action::Review, "vikram", None, now)
            .await,
    );
    f.store
        .advance(&id, Action::Review, "asha", None, now)
        .await
        .unwrap();
    let missing = f
        .store
        .advance(&id, Action::Resolve(BTreeMap::new()), "asha", None, now)
        .await;
    assert!(
        matches!(missing, Err(SyncError::InvalidArgument { ref field, .. }) if field == "choices"),
        "{missing:?}"
    );
    let picks = BTreeMap::from([
        ("phone".to_owned(), Pick::Value(json!("+91 98450 00000"))),
        ("email".to_owned(), Pick::Source),
    ]);
    let resolved = f
        .store
        .advance(
            &id,
            Action::Resolve(picks),
            "asha",
            Some("called the customer".into()),
            now,
        )
        .await
        .unwrap();
    assert_eq!(resolved.status, ConflictStatus::Resolved);
    refuse(
        f.store
            .advance(&id, Action::Approve, "asha", None, now)
            .await,
    );
    // Nothing moves while it is not closed.
    f.drain("shop", 0).await;
    assert_eq!(f.state("shop", position).await, DeliveryState::Held);
    f.store
        .advance(&id, Action::Approve, "lead", None, now)
        .await
        .unwrap();
    let closed = f
        .store
        .advance(&id, Action::Close, "lead", None, now)
        .await
        .unwrap();
    assert_eq!(closed.status, ConflictStatus::Closed);
    assert_eq!(closed.resolution, Some(Resolution::Manual));
    assert_eq!(
        (
            closed.resolved_by.as_deref(),
            closed.validated_by.as_deref()
        ),
        (Some("asha"), Some("lead"))
    );

    // The resolved entity goes out, then the entity's later change.
    let sent = f.drain("shop", position).await;
    assert_eq!(
        sent,
        [
            json!({"name": "Ravi Sweets Pvt", "phone": "+91 98450 00000", "email": "r@x.in", "city": "Pune"})
        ]
    );
    assert_eq!(f.state("shop", later).await, DeliveryState::Delivered);

    let (_, history) = f.store.conflict(&id).await.unwrap();
    let steps: Vec<(&str, &str)> = history
        .iter()
        .map(|h| (h.step.as_str(), h.actor.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("detect", "sync"),
            ("assign", "lead"),
            ("review", "asha"),
            ("resolve", "asha"),
            ("approve", "lead"),
            ("close", "lead")
        ]
    );
    assert_eq!(history[1].note.as_deref(), Some("phone numbers differ"));
    assert!(matches!(
        f.store.conflict("nope").await,
        Err(SyncError::ConflictNotFound(_))
    ));

    // Open conflicts older than a day are reported.
    f.publish(System::Ecommerce, "CUST-3", 2, 0, json!({"x": 1}), 0)
        .await;
    f.publish(System::Ecommerce, "CUST-3", 3, 2, json!({"x": 2}), 0)
        .await;
    f.publish(System::Crm, "CUST-3", 3, 2, json!({"x": 3}), 0)
        .await;
    let stale_filter = ConflictFilter {
        stale_only: true,
        ..ConflictFilter::default()
    };
    let (now_page, now_count) = f
        .store
        .conflicts(&stale_filter, 50, "", Utc::now())
        .await
        .unwrap();
    assert!(now_page.items.is_empty());
    assert_eq!(now_count, 0);
    let tomorrow = Utc::now() + Duration::hours(25);
    let (stale, count) = f
        .store
        .conflicts(&stale_filter, 50, "", tomorrow)
        .await
        .unwrap();
    assert_eq!(count, 1);
    assert_eq!(stale.items.len(), 1);
    assert_eq!(stale.items[0].entity_key, "CUST-3");
    assert!(stale.items[0].is_stale(tomorrow));
}

async fn relayed_erp_changes_get_versions_and_conflict_when_made_on_an_old_one(engine: Engine) {
    let f = fixture(engine).await;
    f.route("crm", System::Crm, ConflictStrategy::Manual, None, &[])
        .await;
    f.route(
        "erp",
        System::Erpnext,
        ConflictStrategy::SourceWins,
        None,
        &[],
    )
    .await;
    let erp_change = |n: i64| NewEvent {
        idempotency_key: format!("erp-outbox:{n}"),
        source_system: System::Erpnext,
        entity_type: EntityType::parse("Customer").unwrap(),
        entity_key: "CUST-9".into(),
        operation: Operation::Update,
        event_type: "customer.updated".into(),
        payload: json!({"credit_limit": n * 1000})
            .as_object()
            .cloned()
            .unwrap(),
        entity_version: 0,
        base_version: 0,
        occurred_at: Utc::now(),
        correlation_id: None,
        traceparent: None,
    };
    let relay = |n: i64| {
        let store = Arc::clone(&f.store);
        async move {
            store
                .record_relayed(vec![erp_change(n)], Utc::now())
                .await
                .unwrap()
                .pop()
                .unwrap()
        }
    };
    let first = relay(1).await;
    assert_eq!(
        (
            first.event.change.entity_version,
            first.event.change.base_version
        ),
        (1, 0)
    );
    // The CRM changes version 1; its change reaches ERPNext.
    let (crm_change, _) = f
        .publish(
            System::Crm,
            "CUST-9",
            2,
            1,
            json!({"credit_limit": 2500}),
            0,
        )
        .await;
    let sent = f.drain_all(crm_change).await;
    assert!(sent.iter().any(|(to, _)| to == "erp"));
    // ERPNext's next change is made on what it has: no conflict.
    let second = relay(2).await;
    assert_eq!(
        (
            second.event.change.entity_version,
            second.event.change.base_version
        ),
        (3, 2)
    );
    assert_eq!(second.conflicts, 0);
    // The CRM changes again, and ERPNext changes before receiving it.
    let (_, none) = f
        .publish(
            System::Crm,
            "CUST-9",
            4,
            3,
            json!({"credit_limit": 4000}),
            0,
        )
        .await;
    assert_eq!(none, 0);
    let third = relay(3).await;
    assert_eq!(
        (
            third.event.change.entity_version,
            third.event.change.base_version
        ),
        (5, 3)
    );
    assert_eq!(
        third.conflicts, 1,
        "ERPNext's change was made on version 3, the CRM's is 4"
    );
    let conflict = f.conflict_for("crm").await;
    assert_eq!(
        (conflict.source_system, conflict.competing_system),
        (System::Erpnext, System::Crm)
    );
    assert_eq!(conflict.conflicting_fields, ["credit_limit"]);
    assert_eq!(conflict.status, ConflictStatus::Detected);
}
