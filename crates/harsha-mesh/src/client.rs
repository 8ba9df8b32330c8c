//! [`ServiceClient`]: how one service calls another. Each call goes to an
//! endpoint the [`Upstreams`] balancer picks, through that endpoint's
//! circuit breaker, with a deadline, a new hop of the caller's trace
//! context and its request id ([`CallContext`]), and the calling service's
//! own credential (`x-api-key`). A call refused before it is sent (no
//! endpoint, circuit open) is UNAVAILABLE naming the service; otherwise the
//! answer's status is returned as it came, and counted against the
//! endpoint's breaker when it is a failure of the server (unreachable,
//! timed out, UNAVAILABLE, INTERNAL).
//!
//! Calls are not retried here: the caller knows which of its calls are
//! idempotent (a saga retries its own steps).

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use tonic::{
    Status,
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};
use tracing::Instrument;

use crate::{
    breaker::Outcome,
    trace::{REQUEST_ID, TRACEPARENT, TraceParent, continue_in, usable_request_id},
    upstream::Upstreams,
};

/// The header a service's API key travels in.
const API_KEY: &str = "x-api-key";

/// What a call carries from the request that caused it.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The caller's hop of the trace; calls continue it.
    pub trace: Option<TraceParent>,
    /// The request id, passed on unchanged.
    pub request_id: Option<String>,
}

impl CallContext {
    /// The context of an incoming gRPC request: its `traceparent` (a new
    /// trace when it has none) and `x-request-id`.
    pub fn of_request<T>(request: &tonic::Request<T>) -> Self {
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let trace = crate::trace::exported_hop(&tracing::Span::current())
            .unwrap_or_else(|| TraceParent::continue_from(header(TRACEPARENT).as_deref()));
        Self {
            trace: Some(trace),
            request_id: header(REQUEST_ID).filter(|v| usable_request_id(v)),
        }
    }
}

/// A client of one service of the mesh.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    upstreams: Arc<Upstreams>,
    service: String,
    credential: Option<MetadataValue<Ascii>>,
    timeout: Duration,
}

impl ServiceClient {
    /// A client of `service` (its gRPC name, as routed by `upstreams`),
    /// sending `api_key` when given, each call answered within `timeout`.
    pub fn new(
        upstreams: Arc<Upstreams>,
        service: impl Into<String>,
        api_key: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let service = service.into();
        let credential = api_key
            .filter(|k| !k.is_empty())
            .map(|k| {
                k.parse()
                    .map_err(|_| format!("{service}: the API key is not valid metadata"))
            })
            .transpose()?;
        Ok(Self {
            upstreams,
            service,
            credential,
            timeout,
        })
    }

    /// The service called.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Calls `rpc` with `message`: `send` makes the call on the chosen
    /// endpoint's channel (e.g. `|channel, request| async move {
    /// FooClient::new(channel).bar(request).await }`).
    pub async fn call<Req, Resp, F, Fut>(
        &self,
        context: &CallContext,
        rpc: &'static str,
        message: Req,
        send: F,
    ) -> Result<Resp, Status>
    where
        F: FnOnce(Channel, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let Some(endpoint) = self.upstreams.pick(&self.service) else {
            return Err(Status::unavailable(format!(
                "{}: no endpoint is configured",
                self.service
            )));
        };
        let ticket = endpoint.breaker.acquire(Instant::now()).map_err(|wait| {
            metrics::counter!("harsha_client_refused_total", "service" => self.service.clone())
                .increment(1);
            Status::unavailable(format!(
                "{} at {} is failing (circuit open); the next trial call is in {} s",
                self.service,
                endpoint.url,
                wait.as_secs().max(1)
            ))
        })?;
        let _in_flight = endpoint.start_call();
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        let metadata = request.metadata_mut();
        if let Some(key) = &self.credential {
            metadata.insert(API_KEY, key.clone());
        }
        let span = tracing::info_span!(
            "client",
            otel.name = %format_args!("{}/{rpc}", self.service),
            otel.kind = "client",
            rpc.system = "grpc",
            service = %self.service,
            rpc,
            url = %endpoint.url,
            trace_id = tracing::field::Empty,
        );
        let hop = continue_in(&span, context.trace);
        span.record("trace_id", hop.trace_id_hex());
        if let Ok(value) = hop.to_string().parse() {
            metadata.insert(TRACEPARENT, value);
        }
        if let Some(value) = context.request_id.as_deref().and_then(|v| v.parse().ok()) {
            metadata.insert(REQUEST_ID, value);
        }
        let started = Instant::now();
        let answer =
            match tokio::time::timeout(self.timeout, send(endpoint.channel.clone(), request))
                .instrument(span)
                .await
            {
                Ok(answer) => answer,
                Err(_) => Err(Status::deadline_exceeded(format!(
                    "{}/{rpc} did not answer within {} ms",
                    self.service,
                    self.timeout.as_millis()
                ))),
            };
        // This client never cancels a call it still waits for, so a
        // CANCELLED answer is the server giving up: at the deadline it sent
        // (tonic answers "Timeout expired"), or while shutting down.
        let answer = answer.map_err(|status| {
            if status.code() != tonic::Code::Cancelled {
                status
            } else if started.elapsed() >= self.timeout.mul_f32(0.9) {
                Status::deadline_exceeded(format!(
                    "{}/{rpc} did not answer within {} ms",
                    self.service,
                    self.timeout.as_millis()
                ))
            } else {
                Status::unavailable(format!(
                    "{}/{rpc} was cancelled by the service: {}",
                    self.service,
                    status.message()
                ))
            }
        });
        let code = answer
            .as_ref()
            .map_or_else(Status::code, |_| tonic::Code::Ok);
        ticket.record(Outcome::of_code(code));
        metrics::histogram!(
            "harsha_client_call_seconds",
            "service" => self.service.clone(),
            "rpc" => rpc,
            "code" => format!("{code:?}"),
        )
        .record(started.elapsed().as_secs_f64());
        answer.map(tonic::Response::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{balance::Strategy, breaker::BreakerSettings};

    fn client(timeout: Duration) -> ServiceClient {
        let upstreams = Upstreams::new(
            vec![(
                "harsha.test.v1.TestService".into(),
                "http://127.0.0.1:9".into(),
            )],
            Strategy::WeightedRoundRobin,
            BreakerSettings::default(),
        )
        .expect("upstreams");
        ServiceClient::new(upstreams, "harsha.test.v1.TestService", None, timeout).expect("client")
    }

    async fn answer_after(
        client: &ServiceClient,
        wait: Duration,
        status: Status,
    ) -> Result<(), Status> {
        client
            .call(&CallContext::default(), "Slow", (), |_, _| async move {
                tokio::time::sleep(wait).await;
                Err::<tonic::Response<()>, _>(status)
            })
            .await
    }

    #[tokio::test]
    async fn a_server_giving_up_at_the_deadline_reads_as_deadline_exceeded() {
        let client = client(Duration::from_millis(100));
        let late = answer_after(
            &client,
            Duration::from_millis(95),
            Status::cancelled("Timeout expired"),
        )
        .await
        .expect_err("refused");
        assert_eq!(late.code(), tonic::Code::DeadlineExceeded, "{late:?}");
        let early = answer_after(&client, Duration::ZERO, Status::cancelled("shutting down"))
            .await
            .expect_err("refused");
        assert_eq!(early.code(), tonic::Code::Unavailable, "{early:?}");
        let refused = answer_after(&client, Duration::ZERO, Status::invalid_argument("qty"))
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    }
}
