//! The audit log on SQLite and PostgreSQL: records are written in batches,
//! every one of them, and a full queue drops (and counts) rather than
//! waiting.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use chrono::Utc;
use harsha_edge::audit::{AuditLog, AuditRecord};
use harsha_store::{Engine, Role, pg_dispatch};
use harsha_testkit::TestDatabase;

harsha_testkit::on_sqlite_and_postgres!(records_are_written_in_batches);

fn record(n: usize) -> AuditRecord {
    AuditRecord {
        request_id: format!("req-{n}"),
        at: Utc::now(),
        principal: format!("user:u{}", n % 3),
        client_ip: Some("10.1.2.3".into()),
        http_method: "GET".into(),
        path: format!("/v1/segments/S{n}"),
        route: Some("/v1/segments/{code}".into()),
        service: Some("harsha.customer.v1.CustomerService".into()),
        grpc_method: Some("GetSegment".into()),
        http_status: if n.is_multiple_of(10) { 404 } else { 200 },
        grpc_code: Some(if n.is_multiple_of(10) { 5 } else { 0 }),
        route_id: None,
        latency: Duration::from_micros(1_500),
    }
}

async fn records_are_written_in_batches(engine: Engine) {
    let database = TestDatabase::new(Role::Gateway, engine).await;
    let pool = database.db.pg_pool().unwrap();
    let log = AuditLog::new(2_000);
    for n in 0..1_000 {
        log.record(record(n));
    }
    log.write_to(pool.clone());
    let stop = shutdown_pair();
    let writer = tokio::spawn(std::sync::Arc::clone(&log).run(stop.1));
    for _ in 0..100 {
        if log.written() == 1_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.0.send(());
    writer.await.unwrap();
    assert_eq!(log.written(), 1_000);
    assert_eq!(log.overflow(), 0);
    let (count, not_found): (i64, i64) = pg_dispatch!(&pool, pool => {
        sqlx::query_as("SELECT COUNT(*), SUM(CASE WHEN http_status = 404 THEN 1 ELSE 0 END) FROM api_audit_logs")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!((count, not_found), (1_000, 100));
}

/// A shutdown future and its trigger.
fn shutdown_pair() -> (
    tokio::sync::oneshot::Sender<()>,
    impl std::future::Future<Output = ()>,
) {
    let (send, receive) = tokio::sync::oneshot::channel::<()>();
    (send, async move {
        let _ = receive.await;
    })
}

#[tokio::test]
async fn a_full_queue_drops_and_counts() {
    let log = AuditLog::new(2);
    for n in 0..5 {
        log.record(record(n));
    }
    assert_eq!(log.overflow(), 3);
}
