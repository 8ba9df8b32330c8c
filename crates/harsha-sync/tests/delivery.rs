//! Capture and delivery end to end inside the crate: changes made through
//! the Customer store reach a local webhook through the relay and the
//! dispatcher, signed and in order (SQLite pair, and MariaDB → PostgreSQL);
//! a crash between the two databases neither loses nor duplicates an event;
//! failed deliveries retry with backoff, then dead-letter and replay; and
//! each entity's events arrive in order under concurrent producers and
//! random failures.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use chrono::Utc;
use harsha_customer::{
    CustomerStore, SqlCustomerStore,
    domain::{
        Actor, Description, NewSegment, Priority, SegmentCode, SegmentName, SegmentPatch,
        ServiceLevel,
    },
};
use harsha_store::{Engine, Role};
use harsha_sync::{
    SqlSyncStore, SyncStore,
    dispatch::{DispatchSettings, Dispatcher},
    domain::{
        ConflictStrategy, DeliveryState, EntityType, FieldMapping, MergeRules, NewConfiguration,
        NewEvent, NewTarget, Operation, SourceFilter, SyncMode, System, TargetKind, TargetName,
    },
    relay::Relay,
    store::{DeliveryFilter, EventFilter},
};
use harsha_testkit::{TestDatabase, fixtures};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "webhook-secret-for-tests";

/// One request the webhook received.
#[derive(Debug, Clone)]
struct Received {
    body: Value,
    signature_ok: bool,
    attempt: i32,
    event_id: String,
    idempotency_key: String,
}

/// A local webhook: answers each request with the next scripted status
/// (200 when the script is empty), after an optional delay.
#[derive(Clone, Default)]
struct Webhook {
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    fail_share: Arc<Mutex<f64>>,
    delay: Arc<Mutex<Duration>>,
}

fn signature_ok(headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(header) = headers
        .get("harsha-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = header.split(',');
    let (Some(t), Some(v1)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Some(t), Some(v1)) = (t.strip_prefix("t="), v1.strip_prefix("v1=")) else {
        return false;
    };
    let Ok(expected) = (0..v1.len() / 2)
        .map(|i| u8::from_str_radix(&v1[2 * i..2 * i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

async fn receive(
    State(hook): State<Webhook>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::http::StatusCode {
    let delay = *hook.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let status = hook.script.lock().unwrap().pop_front().unwrap_or_else(|| {
        let share = *hook.fail_share.lock().unwrap();
        if rand::random::<f64>() < share {
            503
        } else {
            200
        }
    });
    hook.received.lock().unwrap().push(Received {
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        signature_ok: signature_ok(&headers, &body),
        attempt: header("harsha-delivery-attempt").parse().unwrap_or(0),
        event_id: header("harsha-event-id"),
        idempotency_key: header("idempotency-key"),
    });
    axum::http::StatusCode::from_u16(status).unwrap()
}

impl Webhook {
    async fn start() -> (Self, String) {
        let hook = Self::default();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(hook.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (hook, url)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `count` requests arrived whose answer was a success.
    async fn wait_for(&self, what: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..300 {
            let received = self.received();
            if what(&received) {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the webhook did not get what was expected: {:#?}",
            self.received()
        );
    }
}

struct Mesh {
    _sync_db: TestDatabase,
    store: Arc<dyn SyncStore>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
}

impl Mesh {
    async fn new(engine: Engine) -> Self {
        let sync_db = TestDatabase::new(Role::Sync, engine).await;
        let store: Arc<dyn SyncStore> = Arc::new(SqlSyncStore::new(sync_db.db.pg_pool().unwrap()));
        Self {
            _sync_db: sync_db,
            store,
            wake: Arc::new(Notify::new()),
            shutdown: CancellationToken::new(),
        }
    }

    async fn target(&self, url: &str, max_attempts: i32, timeout_ms: i32) {
        self.store
            .create_target(
                NewTarget {
                    name: TargetName::parse("crm").unwrap(),
                    system: System::Crm,
                    kind: TargetKind::Webhook,
                    url: url.into(),
                    secret: SECRET.into(),
                    timeout_ms,
                    max_attempts,
                    enabled: true,
                },
                Utc::now(),
            )
            .await
            .unwrap();
    }

    async fn route(&self, entity: &str, mapping: &[(&str, &str)]) {
        self.store
            .create_configuration(
                NewConfiguration {
                    entity_type: EntityType::parse(entity).unwrap(),
                    source: SourceFilter::Any,
                    target: TargetName::parse("crm").unwrap(),
                    mode: SyncMode::Realtime,
                    strategy: ConflictStrategy::SourceWins,
                    business_rule: None,
                    mapping: FieldMapping(
                        mapping
                            .iter()
                            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                            .collect(),
                    ),
                    merge_rules: MergeRules::default(),
                    batch_every_minutes: 0,
                    enabled: true,
                },
                "tester",
                Utc::now(),
            )
            .await
            .unwrap();
    }

    fn dispatch(&self) {
        let dispatcher = Dispatcher::new(
            Arc::clone(&self.store),
            DispatchSettings {
                poll: Duration::from_millis(50),
                ..DispatchSettings::default()
            },
            Arc::clone(&self.wake),
        );
        tokio::spawn(dispatcher.run(self.shutdown.clone().cancelled_owned()));
    }

    async fn publish(&self, key: &str, entity_key: &str, sequence: i64) -> i64 {
        let event = NewEvent {
            idempotency_key: key.into(),
            source_system: System::Ecommerce,
            entity_type: EntityType::parse("Order").unwrap(),
            entity_key: entity_key.into(),
            operation: Operation::Update,
            event_type: "ecommerce.order.updated".into(),
            payload: json!({"sequence": sequence}).as_object().cloned().unwrap(),
            entity_version: 0,
            base_version: 0,
            occurred_at: Utc::now(),
            correlation_id: None,
            traceparent: None,
        };
        let recorded = self.store.record(vec![event], Utc::now()).await.unwrap();
        self.wake.notify_one();
        recorded[0].event.position
    }

    async fn states(&self) -> Vec<(i64, DeliveryState, i32)> {
        self.store
            .deliveries(&DeliveryFilter::default(), 500, "")
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|d| (d.position, d.state, d.attempts))
            .collect()
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn segment(code: &str) -> NewSegment {
    NewSegment {
        code: SegmentCode::parse(code).unwrap(),
        segment_name: SegmentName::parse(&format!("{code} customers")).unwrap(),
        description: Description::parse("").unwrap(),
        service_level: ServiceLevel::Standard,
        priority: Priority::new(10).unwrap(),
        price_tier: None,
    }
}

async fn customer_changes_reach_the_webhook(erp_engine: Engine, sync_engine: Engine) {
    let erp = TestDatabase::erp(erp_engine).await;
    let customers = SqlCustomerStore::new(erp.db.erp_pool().unwrap());
    let actor = Actor::named("ops@harshadelights.in");
    let mesh = Mesh::new(sync_engine).await;
    let (hook, url) = Webhook::start().await;
    mesh.target(&url, 5, 2000).await;
    mesh.route("Segment", &[("segment_name", "name")]).await;

    for code in ["RETAIL", "WHOLESALE", "HORECA"] {
        customers
            .create_segment(segment(code), &actor)
            .await
            .unwrap();
    }
    customers
        .update_segment(
            &SegmentCode::parse("RETAIL").unwrap(),
            SegmentPatch {
                segment_name: Some(SegmentName::parse("Retail shops").unwrap()),
                ..SegmentPatch::default()
            },
            &actor,
        )
        .await
        .unwrap();
    let outbox = fixtures::row_count(&erp.db, "tabHD Sync Outbox").await;
    assert_eq!(outbox, 4);

    let relay = Relay::new(
        erp.db.erp_pool().unwrap(),
        Arc::clone(&mesh.store),
        2,
        Arc::clone(&mesh.wake),
    );
    // A crash after recording a batch and before marking it relayed...
    let first = relay.pending().await.unwrap();
    assert_eq!(first.len(), 2);
    mesh.store
        .record_relayed(first.iter().map(|row| row.to_event()).collect(), Utc::now())
        .await
        .unwrap();
    // ...and the restarted relay records nothing twice.
    let mut relayed = 0;
    loop {
        let n = relay.relay_once().await.unwrap();
        if n == 0 {
            break;
        }
        relayed += n;
    }
    assert_eq!(relayed, 4);
    let events = mesh
        .store
        .events(&EventFilter::default(), 50, "")
        .await
        .unwrap()
        .items;
    assert_eq!(events.len(), 4, "one event per outbox row");
    assert!(
        events
            .iter()
            .all(|e| e.change.source_system == System::Erpnext
                && e.change.idempotency_key.starts_with("erp-outbox:"))
    );
    assert_eq!(relay.pending().await.unwrap().len(), 0);

    mesh.dispatch();
    let received = hook.wait_for(|r| r.len() >= 4).await;
    assert_eq!(received.len(), 4);
    assert!(received.iter().all(|r| r.signature_ok), "{received:#?}");
    assert!(
        received
            .iter()
            .all(|r| r.attempt == 1 && r.event_id == r.idempotency_key)
    );
    // RETAIL's creation arrives before its update, with the field mapped.
    let retail: Vec<&Received> = received
        .iter()
        .filter(|r| r.body["entity_key"] == "RETAIL")
        .collect();
    assert_eq!(retail.len(), 2);
    assert_eq!(retail[0].body["operation"], "create");
    assert_eq!(retail[1].body["operation"], "update");
    assert!(retail[0].body["position"].as_i64() < retail[1].body["position"].as_i64());
    assert_eq!(retail[1].body["payload"]["name"], "Retail shops");
    assert!(retail[1].body["payload"].get("segment_name").is_none());
    assert_eq!(retail[1].body["source_system"], "erpnext");
    assert_eq!(retail[1].body["entity_type"], "Segment");
    // Every attempt is recorded.
    let position = retail[0].body["position"].as_i64().unwrap();
    let _ = hook.wait_for(|_| true).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let attempts = mesh.store.attempts(position, None).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].http_status, Some(200));
    assert!(
        mesh.states()
            .await
            .iter()
            .all(|(_, state, _)| *state == DeliveryState::Delivered)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_customer_changes_reach_the_webhook_once_and_in_order() {
    customer_changes_reach_the_webhook(Engine::Sqlite, Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_to_postgres_customer_changes_reach_the_webhook_once_and_in_order() {
    customer_changes_reach_the_webhook(Engine::MySql, Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_with_backoff_then_dead_letter_and_replay() {
    let mesh = Mesh::new(Engine::Sqlite).await;
    let (hook, url) = Webhook::start().await;
    mesh.target(&url, 3, 300).await;
    mesh.route("Order", &[]).await;
    // Order A: two 503s then accepted. Order B: refused at once (400).
    hook.script.lock().unwrap().extend([503, 503, 200, 400]);
    mesh.dispatch();
    let a = mesh.publish("a", "SO-A", 1).await;
    hook.wait_for(|r| r.len() >= 3).await;
    let b = mesh.publish("b", "SO-B", 1).await;
    let received = hook.wait_for(|r| r.len() >= 4).await;
    let attempts_of_a: Vec<i32> = received
        .iter()
        .filter(|r| r.body["position"] == a)
        .map(|r| r.attempt)
        .collect();
    assert_eq!(attempts_of_a, [1, 2, 3]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let states: BTreeMap<i64, (DeliveryState, i32)> = mesh
        .states()
        .await
        .into_iter()
        .map(|(p, s, n)| (p, (s, n)))
        .collect();
    assert_eq!(states[&a], (DeliveryState::Delivered, 3));
    assert_eq!(states[&b], (DeliveryState::Dead, 1));
    let history = mesh.store.attempts(a, Some("crm")).await.unwrap();
    let statuses: Vec<Option<u16>> = history.iter().map(|h| h.http_status).collect();
    assert_eq!(statuses, [Some(503), Some(503), Some(200)]);
    // The backoff waited between attempts (at least 100 ms each).
    assert!(history[1].started_at - history[0].started_at >= chrono::Duration::milliseconds(100));

    // A target that does not answer in time: retried, then dead-lettered.
    *hook.delay.lock().unwrap() = Duration::from_millis(600);
    let c = mesh.publish("c", "SO-C", 1).await;
    for _ in 0..200 {
        if mesh
            .states()
            .await
            .iter()
            .any(|(p, s, _)| *p == c && *s == DeliveryState::Dead)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = mesh
        .store
        .deliveries(
            &DeliveryFilter {
                state: Some(DeliveryState::Dead),
                ..DeliveryFilter::default()
            },
            50,
            "",
        )
        .await
        .unwrap()
        .items;
    let dead_c = dead
        .iter()
        .find(|d| d.position == c)
        .expect("C dead-lettered");
    assert_eq!(dead_c.attempts, 3);
    assert!(
        dead_c
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("did not answer within 300 ms"),
        "{dead_c:?}"
    );

    // Fixed, the dead letters are replayed and delivered.
    *hook.delay.lock().unwrap() = Duration::ZERO;
    let replayed = mesh
        .store
        .replay(&TargetName::parse("crm").unwrap(), &[], Utc::now())
        .await
        .unwrap();
    assert_eq!(replayed, 2);
    mesh.wake.notify_one();
    for _ in 0..200 {
        let states = mesh.states().await;
        if states
            .iter()
            .all(|(_, s, _)| *s == DeliveryState::Delivered)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "replayed deliveries were not delivered: {:?}",
        mesh.states().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_entity_arrives_in_order_under_concurrent_producers_and_failures() {
    let mesh = Arc::new(Mesh::new(Engine::Sqlite).await);
    let (hook, url) = Webhook::start().await;
    mesh.target(&url, 20, 2000).await;
    mesh.route("Order", &[]).await;
    *hook.fail_share.lock().unwrap() = 0.2;
    mesh.dispatch();
    let mut producers = Vec::new();
    for producer in 0..4 {
        let mesh = Arc::clone(&mesh);
        producers.push(tokio::spawn(async move {
            for i in 0..15 {
                let entity = format!("SO-{}", i % 5);
                mesh.publish(&format!("p{producer}-{i}"), &entity, i).await;
            }
        }));
    }
    for producer in producers {
        producer.await.unwrap();
    }
    // Every event accepted once (answered 200), each entity in order.
    for _ in 0..600 {
        let states = mesh.states().await;
        if states.len() == 60
            && states
                .iter()
                .all(|(_, s, _)| *s == DeliveryState::Delivered)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let states = mesh.states().await;
    assert_eq!(states.len(), 60);
    assert!(
        states
            .iter()
            .all(|(_, s, _)| *s == DeliveryState::Delivered),
        "{states:?}"
    );
    let received = hook.received();
    let mut last_seen: BTreeMap<String, i64> = BTreeMap::new();
    for request in &received {
        let entity = request.body["entity_key"].as_str().unwrap().to_owned();
        let position = request.body["position"].as_i64().unwrap();
        let last = last_seen.entry(entity.clone()).or_insert(0);
        // A retry repeats the same position; a later one never comes first.
        assert!(
            position >= *last,
            "{entity}: {position} arrived after {last}"
        );
        *last = position;
    }
}
