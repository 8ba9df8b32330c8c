//! The audit log: one row per request through the edge (request id,
//! principal, route, HTTP status and gRPC code, latency, client address),
//! written to `api_audit_logs` in batches off the request path. Records
//! wait in a bounded queue; when it is full a record is dropped and
//! counted, never waited for.

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use harsha_store::{PgPool, pg_dispatch};
use sqlx::AssertSqlSafe;
use tokio::sync::mpsc;

/// Records waiting to be written, at most.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Rows per insert.
const BATCH: usize = 250;
/// Columns per row.
const COLUMNS: usize = 14;

/// One request, as audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The request id (as sent or generated).
    pub request_id: String,
    /// When it arrived.
    pub at: DateTime<Utc>,
    /// `user:<id>`, `key:<id>` or `ip:<address>`.
    pub principal: String,
    /// The caller's address.
    pub client_ip: Option<String>,
    /// The HTTP method.
    pub http_method: String,
    /// The path asked for.
    pub path: String,
    /// The route's template, when one matched.
    pub route: Option<String>,
    /// The service called.
    pub service: Option<String>,
    /// The RPC called.
    pub grpc_method: Option<String>,
    /// The HTTP status answered.
    pub http_status: u16,
    /// The gRPC code, when the call reached a service.
    pub grpc_code: Option<i32>,
    /// The `service_routes` endpoint that served it, if it came from there.
    pub route_id: Option<String>,
    /// Time from arrival to answer.
    pub latency: Duration,
}

/// The queue and its writer.
#[derive(Debug)]
pub struct AuditLog {
    sender: mpsc::Sender<AuditRecord>,
    receiver: std::sync::Mutex<Option<mpsc::Receiver<AuditRecord>>>,
    sink: OnceLock<PgPool>,
    overflow: AtomicU64,
    written: AtomicU64,
}

impl AuditLog {
    /// A log with a queue of `capacity` records.
    pub fn new(capacity: usize) -> Arc<Self> {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        Arc::new(Self {
            sender,
            receiver: std::sync::Mutex::new(Some(receiver)),
            sink: OnceLock::new(),
            overflow: AtomicU64::new(0),
            written: AtomicU64::new(0),
        })
    }

    /// Where records are written from now on (the gateway database).
    pub fn write_to(&self, pool: PgPool) {
        let _ = self.sink.set(pool);
    }

    /// Queues a record; a full queue drops it and counts it.
    pub fn record(&self, record: AuditRecord) {
        if self.sender.try_send(record).is_err() {
            let dropped = self.overflow.fetch_add(1, Ordering::Relaxed) + 1;
            metrics::counter!("harsha_edge_audit_dropped_total").increment(1);
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "the audit queue is full; records dropped");
            }
        }
    }

    /// Records dropped because the queue was full.
    pub fn overflow(&self) -> u64 {
        self.overflow.load(Ordering::Relaxed)
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Writes queued records in batches until `shutdown` resolves, then
    /// writes what is left. Records wait while no database is set.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let Some(mut receiver) = self
            .receiver
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        else {
            return;
        };
        tokio::pin!(shutdown);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let stopping = tokio::select! {
                () = &mut shutdown => true,
                received = receiver.recv_many(&mut batch, BATCH), if self.sink.get().is_some() => {
                    received == 0
                }
                () = tokio::time::sleep(Duration::from_millis(200)), if self.sink.get().is_none() => false,
            };
            if !batch.is_empty() {
                self.write(&mut batch).await;
            }
            if stopping {
                // What is still queued goes out before the edge stops.
                while let Ok(record) = receiver.try_recv() {
                    batch.push(record);
                    if batch.len() == BATCH {
                        self.write(&mut batch).await;
                    }
                }
                self.write(&mut batch).await;
                return;
            }
        }
    }

    async fn write(&self, batch: &mut Vec<AuditRecord>) {
        let Some(pool) = self.sink.get() else {
            return;
        };
        if batch.is_empty() {
            return;
        }
        let rows = std::mem::take(batch);
        let sql = format!(
            "INSERT INTO api_audit_logs (id, request_id, created_at, principal, client_ip, http_method, path, \
             route, service, grpc_method, http_status, grpc_code, route_id, latency_us) VALUES {}",
            pool.value_rows(rows.len(), COLUMNS)
        );
        let written: Result<(), sqlx::Error> = pg_dispatch!(pool, pool => {
            let mut query = sqlx::query(AssertSqlSafe(sql.clone()));
            for row in &rows {
                query = query
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(&row.request_id)
                    .bind(row.at)
                    .bind(&row.principal)
                    .bind(&row.client_ip)
                    .bind(&row.http_method)
                    .bind(&row.path)
                    .bind(&row.route)
                    .bind(&row.service)
                    .bind(&row.grpc_method)
                    .bind(i32::from(row.http_status))
                    .bind(row.grpc_code)
                    .bind(&row.route_id)
                    .bind(i64::try_from(row.latency.as_micros()).unwrap_or(i64::MAX));
            }
            query.execute(pool).await.map(|_| ())
        });
        match written {
            Ok(()) => {
                self.written.fetch_add(rows.len() as u64, Ordering::Relaxed);
                metrics::counter!("harsha_edge_audit_written_total").increment(rows.len() as u64);
            }
            Err(error) => {
                tracing::warn!(%error, rows = rows.len(), "could not write audit records");
            }
        }
    }
}
