//! gRPC sink targets: events are applied through `SyncSinkService.Apply` on
//! a local sink, signed in metadata, in order per entity; UNAVAILABLE is
//! retried, INVALID_ARGUMENT dead-letters at once.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use harsha_proto::harsha::sync::v1::{
    ApplyRequest, ApplyResponse,
    sync_sink_service_server::{SyncSinkService, SyncSinkServiceServer},
};
use harsha_store::{Engine, Role};
use harsha_sync::{
    SqlSyncStore, SyncStore,
    dispatch::{DispatchSettings, Dispatcher},
    domain::{
        ConflictStrategy, DeliveryState, EntityType, FieldMapping, MergeRules, NewConfiguration,
        NewEvent, NewTarget, Operation, SourceFilter, SyncMode, System, TargetKind, TargetName,
        delivery::signature,
    },
    store::DeliveryFilter,
};
use harsha_testkit::TestDatabase;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "sink-secret-0123456789";

/// One Apply call: entity key, position, attempt, signature valid.
type Applied = (String, i64, i32, bool);

#[derive(Clone, Default)]
struct Sink {
    applied: Arc<Mutex<Vec<Applied>>>,
    script: Arc<Mutex<VecDeque<tonic::Code>>>,
}

#[tonic::async_trait]
impl SyncSinkService for Sink {
    async fn apply(
        &self,
        request: tonic::Request<ApplyRequest>,
    ) -> Result<tonic::Response<ApplyResponse>, tonic::Status> {
        let signed = request
            .metadata()
            .get("harsha-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let request = request.into_inner();
        let event = request.event.unwrap();
        let valid = signed.as_deref().is_some_and(|header| {
            header
                .split(',')
                .next()
                .and_then(|t| t.strip_prefix("t="))
                .and_then(|t| t.parse::<i64>().ok())
                .is_some_and(|t| signature(SECRET, t, event.event_id.as_bytes()) == header)
        });
        self.applied.lock().unwrap().push((
            event.entity_key.clone(),
            event.position,
            request.attempt,
            valid,
        ));
        if event.entity_key == "SO-B" {
            return Err(tonic::Status::invalid_argument("unknown customer"));
        }
        match self.script.lock().unwrap().pop_front() {
            Some(tonic::Code::Ok) | None => Ok(tonic::Response::new(ApplyResponse {})),
            Some(code) => Err(tonic::Status::new(code, "scripted")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_sink_applies_events_in_order_and_retries_what_it_cannot_take() {
    let database = TestDatabase::new(Role::Sync, Engine::Sqlite).await;
    let store: Arc<dyn SyncStore> = Arc::new(SqlSyncStore::new(database.db.pg_pool().unwrap()));
    let sink = Sink::default();
    sink.script
        .lock()
        .unwrap()
        .extend([tonic::Code::Unavailable, tonic::Code::Ok]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tonic::transport::Server::builder()
        .add_service(SyncSinkServiceServer::new(sink.clone()))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(server);

    let now = Utc::now();
    store
        .create_target(
            NewTarget {
                name: TargetName::parse("erp-sink").unwrap(),
                system: System::Erpnext,
                kind: TargetKind::Grpc,
                url,
                secret: SECRET.into(),
                timeout_ms: 2000,
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
                entity_type: EntityType::parse("Order").unwrap(),
                source: SourceFilter::Any,
                target: TargetName::parse("erp-sink").unwrap(),
                mode: SyncMode::Realtime,
                strategy: ConflictStrategy::SourceWins,
                business_rule: None,
                mapping: FieldMapping([("channel".to_owned(), "sales_channel".to_owned())].into()),
                merge_rules: MergeRules::default(),
                batch_every_minutes: 0,
                enabled: true,
            },
            "ops",
            now,
        )
        .await
        .unwrap();
    let wake = Arc::new(Notify::new());
    let shutdown = CancellationToken::new();
    tokio::spawn(
        Dispatcher::new(
            Arc::clone(&store),
            DispatchSettings {
                poll: Duration::from_millis(50),
                ..DispatchSettings::default()
            },
            Arc::clone(&wake),
        )
        .run(shutdown.clone().cancelled_owned()),
    );
    let order = |key: &str, entity: &str| NewEvent {
        idempotency_key: key.into(),
        source_system: System::Ecommerce,
        entity_type: EntityType::parse("Order").unwrap(),
        entity_key: entity.into(),
        operation: Operation::Create,
        event_type: "ecommerce.order.placed".into(),
        payload: json!({"channel": "web", "total": "450.00"})
            .as_object()
            .cloned()
            .unwrap(),
        entity_version: 0,
        base_version: 0,
        occurred_at: Utc::now(),
        correlation_id: Some("checkout-1".into()),
        traceparent: None,
    };
    // A1 meets UNAVAILABLE, then is applied; A2 follows it; B1 is refused.
    store
        .record(vec![order("a1", "SO-A")], Utc::now())
        .await
        .unwrap();
    wake.notify_one();
    for _ in 0..100 {
        if sink.applied.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store
        .record(vec![order("a2", "SO-A"), order("b1", "SO-B")], Utc::now())
        .await
        .unwrap();
    wake.notify_one();
    let mut states = Vec::new();
    for _ in 0..200 {
        states = store
            .deliveries(&DeliveryFilter::default(), 50, "")
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|d| (d.entity_key, d.state, d.attempts))
            .collect();
        if states
            .iter()
            .all(|(_, s, _)| matches!(s, DeliveryState::Delivered | DeliveryState::Dead))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    assert_eq!(
        states,
        [
            ("SO-A".to_owned(), DeliveryState::Delivered, 2),
            ("SO-A".to_owned(), DeliveryState::Delivered, 1),
            ("SO-B".to_owned(), DeliveryState::Dead, 1),
        ]
    );
    let applied = sink.applied.lock().unwrap().clone();
    assert!(
        applied.iter().all(|(_, _, _, signed)| *signed),
        "{applied:?}"
    );
    let a: Vec<(i64, i32)> = applied
        .iter()
        .filter(|(k, ..)| k == "SO-A")
        .map(|(_, p, attempt, _)| (*p, *attempt))
        .collect();
    assert_eq!(a.len(), 3);
    assert_eq!((a[0].1, a[1].1), (1, 2), "the same event tried again");
    assert!(a[2].0 > a[1].0, "A2 after A1");
    let dead = store
        .deliveries(
            &DeliveryFilter {
                state: Some(DeliveryState::Dead),
                ..DeliveryFilter::default()
            },
            10,
            "",
        )
        .await
        .unwrap()
        .items;
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("InvalidArgument")
    );
}
