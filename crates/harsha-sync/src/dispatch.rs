//! The dispatcher: claims due deliveries, sends each to its target — a
//! signed JSON post to a webhook, or a signed `SyncSinkService.Apply` call
//! to a gRPC sink — and records the outcome: delivered, retrying after a
//! backoff with full jitter, or dead-lettered.
//!
//! Deliveries run concurrently up to a limit, but never two of the same
//! target and entity at once (the store only hands out the earliest waiting
//! one), so each target sees each entity's events in position order. A
//! claim is leased; if the process dies mid-attempt the lease lapses and
//! the delivery is made again (at least once; receivers deduplicate by the
//! event id).

use harsha_mesh::trace::{TRACEPARENT, TraceParent, continue_in};
use std::{sync::Arc, time::Duration};
use tracing::Instrument as _;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::{
    SyncStore,
    domain::{
        Attempt, AttemptOutcome, Event, Target, TargetKind, Verdict,
        delivery::{backoff, signature},
    },
    store::{Claim, Finished},
};

/// How the dispatcher works.
#[derive(Debug, Clone, Copy)]
pub struct DispatchSettings {
    /// Deliveries in flight at once, at most.
    pub concurrency: usize,
    /// Deliveries claimed per query, at most.
    pub batch: u32,
    /// How often to look for due deliveries when nothing wakes it sooner.
    pub poll: Duration,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            concurrency: 64,
            batch: 64,
            poll: Duration::from_millis(250),
        }
    }
}

/// Posts events to webhook targets.
#[derive(Clone)]
pub struct WebhookClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for WebhookClient {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        }
    }
}

/// An event as targets receive it (one webhook body, or one line of a
/// batch chunk): the event with its payload as mapped for the target, and
/// what this delivery is.
pub fn event_json(event: &Event, payload: Map<String, Value>, delivery: Value) -> Value {
    let change = &event.change;
    json!({
        "position": event.position,
        "event_id": event.event_id,
        "idempotency_key": change.idempotency_key,
        "source_system": change.source_system.as_str(),
        "entity_type": change.entity_type.as_str(),
        "entity_key": change.entity_key,
        "operation": change.operation.as_str(),
        "event_type": change.event_type,
        "entity_version": change.entity_version,
        "base_version": change.base_version,
        "occurred_at": change.occurred_at.to_rfc3339(),
        "recorded_at": event.recorded_at.to_rfc3339(),
        "correlation_id": change.correlation_id,
        "payload": payload,
        "delivery": delivery,
    })
}

/// The JSON body a webhook receives for a claimed delivery.
pub fn webhook_body(claim: &Claim) -> Vec<u8> {
    let body = event_json(
        &claim.event,
        claim.mapping.apply(&claim.event.change.payload),
        json!({"target": claim.target.name, "attempt": claim.delivery.attempts}),
    );
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The shortest timeout of a batch chunk, whatever the target's.
const MIN_CHUNK_TIMEOUT: Duration = Duration::from_secs(30);

impl WebhookClient {
    /// Posts the claimed event as hop `trace` of its trace; the verdict
    /// and the HTTP status, if any.
    pub async fn post(&self, claim: &Claim, trace: TraceParent) -> (Verdict, Option<u16>) {
        let id = claim.event.event_id.as_str();
        let timeout =
            Duration::from_millis(u64::try_from(claim.target.timeout_ms).unwrap_or(5_000));
        self.send(
            &claim.target,
            webhook_body(claim),
            "application/json",
            &[
                ("harsha-event-id", id.to_owned()),
                ("idempotency-key", id.to_owned()),
                (
                    "harsha-delivery-attempt",
                    claim.delivery.attempts.to_string(),
                ),
                (TRACEPARENT, trace.to_string()),
            ],
            timeout,
        )
        .await
    }

    /// Posts chunk `chunk` of batch run `run` (NDJSON, one event per line).
    pub async fn post_chunk(
        &self,
        target: &Target,
        run: &str,
        chunk: u32,
        body: Vec<u8>,
    ) -> (Verdict, Option<u16>) {
        let timeout = Duration::from_millis(u64::try_from(target.timeout_ms).unwrap_or(5_000))
            .max(MIN_CHUNK_TIMEOUT);
        self.send(
            target,
            body,
            "application/x-ndjson",
            &[
                ("harsha-batch-run", run.to_owned()),
                ("harsha-batch-chunk", chunk.to_string()),
                ("idempotency-key", format!("{run}-{chunk}")),
            ],
            timeout,
        )
        .await
    }

    /// Posts `body` to `target`, signed, within `timeout`.
    async fn send(
        &self,
        target: &Target,
        body: Vec<u8>,
        content_type: &str,
        headers: &[(&str, String)],
        timeout: Duration,
    ) -> (Verdict, Option<u16>) {
        let signed = signature(&target.secret, Utc::now().timestamp(), &body);
        let mut request = http::Request::post(&target.url)
            .header(http::header::CONTENT_TYPE, content_type)
            .header("harsha-signature", signed)
            .header(http::header::USER_AGENT, "harsha-sync");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = match request.body(Full::new(Bytes::from(body))) {
            Ok(request) => request,
            Err(error) => {
                return (
                    Verdict::Reject(format!("the target URL cannot be used: {error}")),
                    None,
                );
            }
        };
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status().as_u16();
            // Read the answer so the connection can be used again.
            let _ = response.into_body().collect().await;
            Ok::<_, hyper_util::client::legacy::Error>(status)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(status)) => (Verdict::of_status(status), Some(status)),
            Ok(Err(error)) => (
                Verdict::Retry(format!(
                    "could not reach the target: {}",
                    harsha_store::status::error_chain(&error)
                )),
                None,
            ),
            Err(_) => (
                Verdict::Retry(format!(
                    "the target did not answer within {} ms",
                    timeout.as_millis()
                )),
                None,
            ),
        }
    }
}

/// Calls gRPC sink targets (`harsha.sync.v1.SyncSinkService`), one lazily
/// connected channel per URL.
#[derive(Clone, Default)]
pub struct GrpcSinks {
    channels: Arc<std::sync::Mutex<std::collections::HashMap<String, tonic::transport::Channel>>>,
}

/// What a sink's gRPC status means: OK is delivered; statuses that say the
/// event itself is wrong dead-letter it; the rest are retried.
pub fn verdict_of_code(code: tonic::Code, message: &str) -> Verdict {
    use tonic::Code;
    match code {
        Code::Ok => Verdict::Delivered,
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::Unauthenticated
        | Code::OutOfRange
        | Code::Unimplemented => Verdict::Reject(format!(
            "the sink refused the event with {code:?}: {message}"
        )),
        _ => Verdict::Retry(format!("the sink answered {code:?}: {message}")),
    }
}

impl GrpcSinks {
    fn channel(&self, url: &str) -> Result<tonic::transport::Channel, String> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(channel) = channels.get(url) {
            return Ok(channel.clone());
        }
        let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(url.to_owned(), channel.clone());
        Ok(channel)
    }

    /// Calls the sink's Apply with the claimed event (its payload mapped),
    /// as hop `trace` of its trace.
    pub async fn apply(&self, claim: &Claim, trace: TraceParent) -> (Verdict, Option<u16>) {
        use harsha_proto::harsha::sync::v1::{
            ApplyRequest, sync_sink_service_client::SyncSinkServiceClient,
        };

        let channel = match self.channel(&claim.target.url) {
            Ok(channel) => channel,
            Err(error) => {
                return (
                    Verdict::Reject(format!("the target URL cannot be used: {error}")),
                    None,
                );
            }
        };
        let mut event = crate::grpc::event_to_proto(claim.event.clone());
        event.payload = Some(harsha_proto::convert::json_to_struct(
            &claim.mapping.apply(&claim.event.change.payload),
        ));
        let mut request = tonic::Request::new(ApplyRequest {
            event: Some(event),
            target: claim.target.name.clone(),
            attempt: claim.delivery.attempts,
        });
        request.set_timeout(Duration::from_millis(
            u64::try_from(claim.target.timeout_ms).unwrap_or(5_000),
        ));
        let signed = signature(
            &claim.target.secret,
            Utc::now().timestamp(),
            claim.event.event_id.as_bytes(),
        );
        for (key, value) in [
            ("harsha-signature", signed),
            (
                "harsha-delivery-attempt",
                claim.delivery.attempts.to_string(),
            ),
            (TRACEPARENT, trace.to_string()),
        ] {
            if let Ok(value) = value.parse() {
                request.metadata_mut().insert(key, value);
            }
        }
        match SyncSinkServiceClient::new(channel).apply(request).await {
            Ok(_) => (Verdict::Delivered, None),
            Err(status) => (verdict_of_code(status.code(), status.message()), None),
        }
    }
}

/// What one attempt's verdict means for its delivery.
pub fn finish(
    claim: &Claim,
    verdict: Verdict,
    http_status: Option<u16>,
    started: DateTime<Utc>,
    unit: f64,
) -> Finished {
    let attempt_number = claim.delivery.attempts;
    let (outcome, error, retry_at) = match verdict {
        Verdict::Delivered => (AttemptOutcome::Delivered, None, None),
        Verdict::Retry(error) if attempt_number < claim.target.max_attempts => {
            let wait = backoff(attempt_number + 1, unit);
            let retry_at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            (AttemptOutcome::Retrying, Some(error), Some(retry_at))
        }
        Verdict::Retry(error) => (
            AttemptOutcome::DeadLettered,
            Some(format!(
                "{error} (attempt {attempt_number} of {})",
                claim.target.max_attempts
            )),
            None,
        ),
        Verdict::Reject(error) => (AttemptOutcome::DeadLettered, Some(error), None),
    };
    Finished {
        attempt: Attempt {
            position: claim.delivery.position,
            target: claim.delivery.target.clone(),
            attempt: attempt_number,
            outcome,
            http_status,
            error,
            started_at: started,
            duration_ms: (Utc::now() - started).num_milliseconds(),
        },
        retry_at,
    }
}

/// Claims and makes deliveries until shut down.
pub struct Dispatcher {
    store: Arc<dyn SyncStore>,
    client: WebhookClient,
    sinks: GrpcSinks,
    settings: DispatchSettings,
    wake: Arc<Notify>,
}

/// Finished attempts recorded in one transaction, at most.
const RECORD_BATCH: usize = 512;
/// How often lapsed leases are looked for.
const LEASE_SWEEP: Duration = Duration::from_secs(10);

impl Dispatcher {
    /// A dispatcher on `store`, woken early by `wake` (new events, finished
    /// deliveries).
    pub fn new(store: Arc<dyn SyncStore>, settings: DispatchSettings, wake: Arc<Notify>) -> Self {
        Self {
            store,
            client: WebhookClient::default(),
            sinks: GrpcSinks::default(),
            settings,
            wake,
        }
    }

    /// Makes one attempt of a claimed delivery, in a span continuing the
    /// trace the event was recorded in; what to record.
    pub async fn attempt(client: &WebhookClient, sinks: &GrpcSinks, claim: Claim) -> Finished {
        let started = Utc::now();
        let span = tracing::info_span!(
            "deliver",
            otel.name = %format_args!("deliver {}", claim.event.change.event_type),
            otel.kind = "producer",
            target_name = %claim.target.name,
            position = claim.delivery.position,
            attempt = claim.delivery.attempts,
        );
        let caller = claim
            .event
            .change
            .traceparent
            .as_deref()
            .and_then(TraceParent::parse);
        let trace = continue_in(&span, caller);
        let (verdict, status) = match claim.target.kind {
            TargetKind::Webhook => client.post(&claim, trace).instrument(span).await,
            TargetKind::Grpc => sinks.apply(&claim, trace).instrument(span).await,
        };
        let finished = finish(&claim, verdict, status, started, rand::random::<f64>());
        metrics::counter!(
            "harsha_sync_delivery_attempts_total",
            "outcome" => finished.attempt.outcome.as_str(),
        )
        .increment(1);
        if finished.attempt.outcome == AttemptOutcome::DeadLettered {
            tracing::warn!(
                target_name = %claim.target.name,
                position = claim.delivery.position,
                error = finished.attempt.error.as_deref().unwrap_or_default(),
                "delivery dead-lettered"
            );
        }
        finished
    }

    /// Records finished attempts in batches (one transaction for all that
    /// finished while the previous batch was written), then wakes the
    /// dispatcher: an entity's next event may be due. A batch that cannot be
    /// recorded leaves its leases to lapse, and those attempts are made
    /// again.
    async fn record(
        store: Arc<dyn SyncStore>,
        mut finished: mpsc::UnboundedReceiver<Finished>,
        wake: Arc<Notify>,
    ) {
        let mut batch = Vec::new();
        while finished.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            if let Err(error) = store.finish(std::mem::take(&mut batch), Utc::now()).await {
                tracing::warn!(error = %harsha_store::status::error_chain(&error), "recording deliveries failed");
            }
            wake.notify_one();
        }
    }

    /// Runs until `shutdown`; deliveries in flight then finish first.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut in_flight = tokio::task::JoinSet::new();
        let (finished, to_record) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(Self::record(
            Arc::clone(&self.store),
            to_record,
            Arc::clone(&self.wake),
        ));
        let mut last_sweep: Option<tokio::time::Instant> = None;
        loop {
            if last_sweep.is_none_or(|at| at.elapsed() >= LEASE_SWEEP) {
                match self.store.release_lapsed(Utc::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        released = n,
                        "deliveries whose attempt was interrupted are due again"
                    ),
                    Err(error) => {
                        tracing::warn!(error = %harsha_store::status::error_chain(&error), "lease sweep failed")
                    }
                }
                last_sweep = Some(tokio::time::Instant::now());
            }
            let free = permits.available_permits();
            let mut claimed = 0;
            if free > 0 {
                let limit = u32::try_from(free)
                    .unwrap_or(u32::MAX)
                    .min(self.settings.batch);
                match self.store.claim(Utc::now(), limit).await {
                    Ok(claims) => {
                        claimed = claims.len();
                        for claim in claims {
                            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                                return;
                            };
                            let client = self.client.clone();
                            let sinks = self.sinks.clone();
                            let finished = finished.clone();
                            in_flight.spawn(async move {
                                let outcome = Self::attempt(&client, &sinks, claim).await;
                                drop(permit);
                                let _ = finished.send(outcome);
                            });
                        }
                    }
                    Err(error) => {
                        tracing::warn!(error = %harsha_store::status::error_chain(&error), "claiming deliveries failed");
                    }
                }
            }
            while in_flight.try_join_next().is_some() {}
            if claimed > 0 && permits.available_permits() > 0 {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll) => {}
            }
        }
        while in_flight.join_next().await.is_some() {}
        // Every attempt has been handed over; the recorder ends once it has
        // written them.
        drop(finished);
        let _ = recorder.await;
    }
}
