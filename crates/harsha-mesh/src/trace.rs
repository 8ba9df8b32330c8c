//! W3C trace context and request ids across the mesh. [`TraceParent`]
//! reads and writes the `traceparent` header (`00-<trace id>-<parent
//! id>-<flags>`); the edge continues a caller's trace or starts one, and
//! passes its own hop on. [`TraceLayer`], on every gRPC server, runs each
//! call inside a span carrying the request id and trace id (so every log
//! line of the call names them), echoes both in the response headers, and
//! counts the call and its time per RPC and status code.
//!
//! When the process exports traces (OpenTelemetry, set up by the binary),
//! [`continue_in`] makes a span the child of the caller's hop and returns
//! the span's own id as the hop to pass on, so the spans of every service
//! a request crosses form one trace. Without an exporter the hops are
//! random ids, as before, and the spans stay local.

use std::{
    fmt,
    task::{Context, Poll},
};

use http::{HeaderValue, Request, Response};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The W3C trace-context header.
pub const TRACEPARENT: &str = "traceparent";
/// The request-id header.
pub const REQUEST_ID: &str = "x-request-id";

/// Whether a caller's request id is kept (1 to 128 bytes); one that is
/// not is replaced or dropped.
pub fn usable_request_id(value: &str) -> bool {
    !value.is_empty() && value.len() <= 128
}

/// One hop of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace, shared by every hop.
    pub trace_id: u128,
    /// This hop's span.
    pub span_id: u64,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Reads a `traceparent` value; `None` for anything malformed, an
    /// unknown version's wrong shape, or all-zero ids (as the W3C
    /// specification asks receivers to treat them).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let is_hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        if !is_hex(version, 2) || version == "ff" || !is_hex(trace, 32) || !is_hex(span, 16) {
            return None;
        }
        if !is_hex(flags, 2) || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let parsed = Self {
            trace_id: u128::from_str_radix(trace, 16).ok()?,
            span_id: u64::from_str_radix(span, 16).ok()?,
            flags: u8::from_str_radix(flags, 16).ok()?,
        };
        (parsed.trace_id != 0 && parsed.span_id != 0).then_some(parsed)
    }

    /// A new trace, sampled.
    pub fn root() -> Self {
        Self {
            trace_id: rand::random::<u128>().max(1),
            span_id: rand::random::<u64>().max(1),
            flags: 1,
        }
    }

    /// The next hop of the same trace.
    pub fn child(self) -> Self {
        Self {
            span_id: rand::random::<u64>().max(1),
            ..self
        }
    }

    /// The caller's trace continued (a new hop), or a new one.
    pub fn continue_from(value: Option<&str>) -> Self {
        value
            .and_then(Self::parse)
            .map_or_else(Self::root, Self::child)
    }

    /// The trace id as 32 hex digits.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

/// Makes `span` continue `parent` (the caller's hop) in exported traces
/// and returns the hop `span` stands for: its own exported span id, or,
/// when nothing is exported, a new random hop of `parent` (a new trace
/// without one). Call it before the span is first entered.
pub fn continue_in(span: &tracing::Span, parent: Option<TraceParent>) -> TraceParent {
    if let Some(parent) = parent {
        let remote = SpanContext::new(
            TraceId::from(parent.trace_id),
            SpanId::from(parent.span_id),
            TraceFlags::new(parent.flags),
            true,
            TraceState::default(),
        );
        // Refused only when no exporter is installed or the span has
        // started; either way the hop below is still right for the caller.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
    exported_hop(span).unwrap_or_else(|| parent.map_or_else(TraceParent::root, TraceParent::child))
}

/// The exported span `span` is, as a hop to pass on; `None` when the
/// process exports no traces.
pub fn exported_hop(span: &tracing::Span) -> Option<TraceParent> {
    let context = span.context();
    let own = context.span().span_context().clone();
    own.is_valid().then(|| TraceParent {
        trace_id: u128::from_be_bytes(own.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(own.span_id().to_bytes()),
        flags: own.trace_flags().to_u8(),
    })
}

/// Names `span` in exported traces once the name is known (an edge
/// request's route template is known only after routing).
pub fn rename(span: &tracing::Span, name: String) {
    span.context().span().update_name(name);
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

/// Runs every call in a span with its request id and trace id, and echoes
/// both on the answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Traced { inner }
    }
}

/// The service [`TraceLayer`] wraps.
#[derive(Debug, Clone)]
pub struct Traced<S> {
    inner: S,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, R> Service<Request<B>> for Traced<S>
where
    S: Service<Request<B>, Response = Response<R>> + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let request_id = header(REQUEST_ID).filter(|v| usable_request_id(v));
        let caller = header(TRACEPARENT).as_deref().and_then(TraceParent::parse);
        let path = request.uri().path().to_owned();
        let span = tracing::info_span!(
            "rpc",
            otel.name = %path,
            otel.kind = "server",
            rpc.system = "grpc",
            path = %path,
            request_id = request_id.as_deref().unwrap_or(""),
            trace_id = tracing::field::Empty,
        );
        let hop = continue_in(&span, caller);
        span.record("trace_id", hop.trace_id_hex());
        // The answer echoes the caller's hop, as before; a call without one
        // learns the trace it started.
        let trace = caller.unwrap_or(hop);
        let started = std::time::Instant::now();
        let answer = self.inner.call(request);
        Box::pin(
            async move {
                let answered = answer.await;
                let code = answered.as_ref().map_or("error", |response| {
                    grpc_code_name(response.headers().get("grpc-status"))
                });
                record_call(path, code, started.elapsed());
                let mut response = answered?;
                let headers = response.headers_mut();
                if let Some(value) = request_id.and_then(|v| HeaderValue::from_str(&v).ok()) {
                    headers.insert(REQUEST_ID, value);
                }
                if let Ok(value) = HeaderValue::from_str(&trace.to_string()) {
                    headers.insert(TRACEPARENT, value);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// Counts one call of `path` answered with `code` and its time.
fn record_call(path: String, code: &'static str, took: std::time::Duration) {
    metrics::histogram!(
        "harsha_grpc_server_handling_seconds",
        "rpc" => path,
        "code" => code,
    )
    .record(took.as_secs_f64());
}

/// The name of the status an answer's headers carry: a trailers-only
/// error puts `grpc-status` there; an answer without it is a success (its
/// status comes in the trailers).
fn grpc_code_name(status: Option<&HeaderValue>) -> &'static str {
    let code = status
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0);
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_read_and_written_back_the_same() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(value).expect("valid");
        assert_eq!(parsed.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.span_id, 0x00f0_67aa_0ba9_02b7);
        assert_eq!(parsed.to_string(), value);
        let next = parsed.child();
        assert_eq!(next.trace_id, parsed.trace_id);
        assert_ne!(next.span_id, parsed.span_id);
    }

    #[test]
    fn malformed_or_zero_traceparents_start_a_new_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-xyz92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
        let fresh = TraceParent::continue_from(Some("garbage"));
        assert_ne!(fresh.trace_id, 0);
        assert_eq!(fresh.flags, 1);
        assert!(TraceParent::parse(&fresh.to_string()).is_some());
        // A later version with more fields is read by its first four.
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more")
                .is_some()
        );
    }
}
