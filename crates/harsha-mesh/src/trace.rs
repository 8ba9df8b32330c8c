//! W3C trace context and request ids across the mesh. [`TraceParent`]
//! reads and writes the `traceparent` header (`00-<trace id>-<parent
//! id>-<flags>`); the edge continues a caller's trace or starts one, and
//! passes its own hop on. [`TraceLayer`], on every gRPC server, runs each
//! call inside a span carrying the request id and trace id (so every log
//! line of the call names them) and echoes both in the response headers.

use std::{
    fmt,
    task::{Context, Poll},
};

use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};
use tracing::Instrument;

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
        let trace = header(TRACEPARENT).as_deref().and_then(TraceParent::parse);
        let span = tracing::info_span!(
            "rpc",
            path = %request.uri().path(),
            request_id = request_id.as_deref().unwrap_or(""),
            trace_id = trace.map(|t| t.trace_id_hex()).unwrap_or_default(),
        );
        let answer = self.inner.call(request);
        Box::pin(
            async move {
                let mut response = answer.await?;
                let headers = response.headers_mut();
                if let Some(value) = request_id.and_then(|v| HeaderValue::from_str(&v).ok()) {
                    headers.insert(REQUEST_ID, value);
                }
                if let Some(value) = trace.and_then(|t| HeaderValue::from_str(&t.to_string()).ok())
                {
                    headers.insert(TRACEPARENT, value);
                }
                Ok(response)
            }
            .instrument(span),
        )
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
