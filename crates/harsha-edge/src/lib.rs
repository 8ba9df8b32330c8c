//! The REST/JSON edge of Harsha Mesh: one HTTP server in front of every
//! service, whose routes are derived at start from the descriptor set —
//! each RPC's `google.api.http` rule — so an RPC gains its REST route with
//! no edge code written for it.
//!
//! A request is matched to a route ([`routes`]), its path variables, query
//! string and JSON body become the request message ([`transcode`]), the
//! RPC is called over gRPC with a codec that needs no generated types
//! ([`codec`]), and the answer goes back as proto3 JSON, or as a
//! `google.rpc.Status`-shaped error with the standard HTTP status
//! ([`errors`]). Credentials (`Authorization`, `X-Api-Key`), request ids,
//! trace context and `Grpc-Metadata-*` headers travel as gRPC metadata; the
//! services enforce each RPC's scope themselves.
//!
//! With a [`guard::Guard`] the edge checks every caller itself first (the
//! same token and API-key checks as the services, then the plan's minute,
//! hour and day limits, answering 429 with `Retry-After` and `RateLimit-*`
//! headers).
//!
//! `/openapi.json` describes every route ([`openapi`]).
//!
//! Each upstream has a circuit breaker (five failures in a row open it;
//! while open calls fail fast with 503 and `Retry-After`; after the open
//! period one trial call decides).
//!
//! GET routes given a time to live have their answers kept per caller
//! scope set ([`cache`]).
//!
//! Each service's endpoints come from `service_routes`, chosen by smooth
//! weighted round robin or least-loaded-of-two, health-checked, with a
//! breaker each ([`upstreams`]); every request is audited ([`audit`]).
//! Several replicas share their rate-limit counters and kept answers
//! through Redis when it is configured ([`shared`]).

pub mod audit;
pub mod cache;
pub mod codec;
pub mod errors;
pub mod guard;
pub mod openapi;
pub mod routes;
pub mod shared;
pub mod transcode;
pub use harsha_mesh::upstream as upstreams;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request},
    response::Response,
};
use harsha_mesh::{
    breaker::{BreakerSettings, Outcome},
    retry::RetryBudget,
    trace::{REQUEST_ID, TRACEPARENT, TraceParent, continue_in, usable_request_id},
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use prost_reflect::DescriptorPool;
use tonic::Code;
use tracing::Instrument;

use crate::{
    codec::DynamicCodec,
    errors::edge_error,
    guard::{Guard, Refused, rate_limit_headers},
    routes::RouteTable,
};

/// The largest request body accepted.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Headers passed to the services as metadata, as they are.
const FORWARDED: &[&str] = &["authorization", "x-api-key", "tracestate"];
/// A retry is not started with less time than this left.
const MIN_RETRY_TIME: Duration = Duration::from_millis(50);
/// Headers whose remainder becomes a metadata name.
const METADATA_PREFIX: &str = "grpc-metadata-";

/// Where each service is, and how long a call may take by default.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// `(service full name, endpoint URL)` pairs.
    pub upstreams: Vec<(String, String)>,
    /// The deadline of a call whose request names none.
    pub default_timeout: Duration,
    /// The edge's own checks (authentication, rate limits); none to leave
    /// every check to the services.
    pub guard: Option<Arc<Guard>>,
    /// Where every request is audited, if anywhere.
    pub audit: Option<Arc<audit::AuditLog>>,
    /// When an upstream's circuit opens.
    pub breaker: BreakerSettings,
    /// How an endpoint is chosen when a service has several.
    pub strategy: harsha_mesh::balance::Strategy,
    /// GET routes whose answers are kept, by template, and for how long.
    pub cache_ttls: std::collections::HashMap<String, Duration>,
    /// The most the response cache holds, in bytes.
    pub cache_max_bytes: u64,
    /// Redis, when rate-limit counters and kept answers are shared by
    /// several edge replicas.
    pub shared: Option<Arc<shared::Shared>>,
    /// Renders the process's metrics in the Prometheus text format, served
    /// at `/metrics` when set.
    pub metrics: Option<MetricsRender>,
}

/// Renders the process's metrics in the Prometheus text format.
#[derive(Clone)]
pub struct MetricsRender(pub Arc<dyn Fn() -> String + Send + Sync>);

impl std::fmt::Debug for MetricsRender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsRender")
    }
}

/// Who a request is and which trace it belongs to.
#[derive(Debug)]
struct Hop {
    /// `X-Request-Id`, the caller's or a new one.
    request_id: String,
    /// The edge's hop: the caller's trace continued, or a new one.
    trace: TraceParent,
    /// The caller's address, as the connection shows it.
    client: Option<std::net::IpAddr>,
}

/// What the audit records of a request, gathered while it is handled.
#[derive(Debug, Default)]
struct Facts {
    principal: Option<String>,
    route: Option<String>,
    service: Option<String>,
    grpc_method: Option<String>,
    grpc_code: Option<i32>,
    route_id: Option<String>,
}

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The routes could not be derived.
    #[error(transparent)]
    Routes(#[from] routes::RouteError),
    /// An upstream endpoint is not a URL.
    #[error("upstream {service}: {reason}")]
    Upstream {
        /// The service.
        service: String,
        /// Why.
        reason: String,
    },
}

/// The edge: routes, descriptors and a channel per service.
pub struct Edge {
    pool: DescriptorPool,
    routes: RouteTable,
    upstreams: Arc<upstreams::Upstreams>,
    default_timeout: Duration,
    guard: Option<Arc<Guard>>,
    audit: Option<Arc<audit::AuditLog>>,
    cache: Option<cache::ResponseCache>,
    retries: RetryBudget,
    metrics: Option<MetricsRender>,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("routes", &self.routes.routes().len())
            .finish_non_exhaustive()
    }
}

impl Edge {
    /// An edge in front of `config.upstreams`, with every annotated RPC of
    /// those services routed.
    pub fn new(config: EdgeConfig) -> Result<Arc<Self>, EdgeError> {
        let pool = DescriptorPool::decode(harsha_proto::FILE_DESCRIPTOR_SET)
            .map_err(|e| routes::RouteError::Descriptors(e.to_string()))?;
        let services: Vec<&str> = config.upstreams.iter().map(|(s, _)| s.as_str()).collect();
        let routes = RouteTable::build(&pool, &services)?;
        let upstreams =
            upstreams::Upstreams::new(config.upstreams.clone(), config.strategy, config.breaker)
                .map_err(|reason| EdgeError::Upstream {
                    service: "upstreams".into(),
                    reason,
                })?;
        tracing::info!(
            routes = routes.routes().len(),
            "edge routes derived from the contracts"
        );
        Ok(Arc::new(Self {
            pool,
            routes,
            upstreams,
            default_timeout: config.default_timeout,
            guard: config.guard,
            audit: config.audit,
            cache: (!config.cache_ttls.is_empty()).then(|| {
                cache::ResponseCache::new(config.cache_ttls, config.cache_max_bytes)
                    .shared_through(config.shared)
            }),
            metrics: config.metrics,
            retries: RetryBudget::new(
                harsha_mesh::retry::BudgetSettings::default(),
                std::time::Instant::now(),
            ),
        }))
    }

    /// The services' endpoints (to connect them to `service_routes` and
    /// run their health checks).
    pub fn upstreams(&self) -> &Arc<upstreams::Upstreams> {
        &self.upstreams
    }

    /// The routes, for listing and documentation.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// The HTTP application.
    pub fn router(self: Arc<Self>) -> axum::Router {
        let health = Arc::clone(&self);
        let metrics = self.metrics.clone();
        let document = serde_json::to_vec(&openapi::document(&self.routes)).unwrap_or_default();
        axum::Router::new()
            .route(
                "/healthz",
                axum::routing::get(move || {
                    // Not ready until callers can be checked.
                    let ready = health.guard.as_ref().is_none_or(|g| g.is_ready());
                    async move {
                        if ready {
                            json_response(StatusCode::OK, br#"{"status":"SERVING"}"#.to_vec())
                        } else {
                            json_response(
                                StatusCode::SERVICE_UNAVAILABLE,
                                br#"{"status":"NOT_SERVING"}"#.to_vec(),
                            )
                        }
                    }
                }),
            )
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let rendered = metrics.as_ref().map(|render| (render.0)());
                    async move {
                        match rendered {
                            Some(text) => {
                                let mut response = Response::new(Body::from(text));
                                response.headers_mut().insert(
                                    header::CONTENT_TYPE,
                                    HeaderValue::from_static("text/plain; version=0.0.4"),
                                );
                                response
                            }
                            None => {
                                let (status, body) =
                                    edge_error(Code::NotFound, "metrics are not collected");
                                json_response(status, body)
                            }
                        }
                    }
                }),
            )
            .route(
                "/openapi.json",
                axum::routing::get(move || {
                    let document = document.clone();
                    async move { json_response(StatusCode::OK, document) }
                }),
            )
            .fallback(move |request: Request| {
                let edge = Arc::clone(&self);
                async move { edge.handle(request).await }
            })
    }

    async fn handle(&self, request: Request) -> Response {
        let arrived = std::time::Instant::now();
        let at = chrono::Utc::now();
        let (span, hop) = begin_hop(&request);
        self.answer(request, hop, arrived, at)
            .instrument(span)
            .await
    }

    async fn answer(
        &self,
        request: Request,
        hop: Hop,
        arrived: std::time::Instant,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Response {
        let client = hop.client;
        let (http_method, path) = (
            request.method().to_string(),
            request.uri().path().to_owned(),
        );
        let mut facts = Facts::default();
        let mut response = self.transcode(request, &hop, &mut facts).await;
        if let Ok(value) = HeaderValue::from_str(&hop.request_id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        if let Ok(value) = HeaderValue::from_str(&hop.trace.to_string()) {
            response.headers_mut().insert(TRACEPARENT, value);
        }
        tracing::debug!(status = response.status().as_u16(), "answered");
        let route = facts.route.clone().unwrap_or_else(|| "unrouted".to_owned());
        let span = tracing::Span::current();
        harsha_mesh::trace::rename(&span, format!("{http_method} {route}"));
        span.record("http.response.status_code", response.status().as_u16());
        metrics::histogram!("harsha_edge_request_duration_seconds", "route" => route.clone())
            .record(arrived.elapsed().as_secs_f64());
        metrics::counter!(
            "harsha_edge_requests_total",
            "route" => route,
            "status" => response.status().as_str().to_owned()
        )
        .increment(1);
        if let Some(audit) = &self.audit {
            audit.record(audit::AuditRecord {
                request_id: hop.request_id,
                at,
                principal: facts.principal.unwrap_or_else(|| {
                    format!(
                        "ip:{}",
                        client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
                    )
                }),
                client_ip: client.map(|ip| ip.to_string()),
                http_method,
                path,
                route: facts.route,
                service: facts.service,
                grpc_method: facts.grpc_method,
                http_status: response.status().as_u16(),
                grpc_code: facts.grpc_code,
                route_id: facts.route_id,
                latency: arrived.elapsed(),
            });
        }
        response
    }

    async fn transcode(&self, request: Request, hop: &Hop, facts: &mut Facts) -> Response {
        let (parts, body) = request.into_parts();
        let matched = match self.routes.find(&parts.method, parts.uri.path()) {
            Ok(matched) => matched,
            Err(true) => {
                let (_, body) =
                    edge_error(Code::Unimplemented, "this path does not take this method");
                return json_response(StatusCode::METHOD_NOT_ALLOWED, body);
            }
            Err(false) => {
                let (status, body) = edge_error(
                    Code::NotFound,
                    &format!("no route for {} {}", parts.method, parts.uri.path()),
                );
                return json_response(status, body);
            }
        };
        let route = matched.route;
        let grpc_path = format!(
            "/{}/{}",
            route.method.parent_service().full_name(),
            route.method.name()
        );
        facts.route = Some(route.template.clone());
        facts.service = Some(route.method.parent_service().full_name().to_owned());
        facts.grpc_method = Some(route.method.name().to_owned());
        let admitted = match &self.guard {
            None => None,
            Some(guard) => match guard
                .check(
                    &grpc_path,
                    &parts.headers,
                    hop.client,
                    chrono::Utc::now().timestamp(),
                )
                .await
            {
                Ok(admitted) => {
                    facts.principal = Some(admitted.key.clone());
                    Some(admitted)
                }
                Err(Refused::Access(error)) => {
                    let status = tonic::Status::from(error);
                    return json_response(
                        errors::http_status(status.code()),
                        errors::status_json(&status, &self.pool),
                    );
                }
                Err(Refused::Limited(decision, key)) => {
                    facts.principal = Some(key);
                    let (status, body) = edge_error(
                        Code::ResourceExhausted,
                        &format!(
                            "the {} limit of your plan is reached",
                            decision.window.as_str()
                        ),
                    );
                    let mut response = json_response(status, body);
                    rate_limit_headers(&decision, response.headers_mut());
                    return response;
                }
            },
        };
        let mut response = match self
            .cached_or_called(
                parts,
                body,
                &matched,
                &grpc_path,
                hop,
                facts,
                admitted.as_ref(),
            )
            .await
        {
            Ok(response) | Err(response) => response,
        };
        if let Some(admitted) = admitted {
            rate_limit_headers(&admitted.decision, response.headers_mut());
        }
        response
    }

    /// The answer from the response cache when the route's answers are
    /// kept and a fresh one is there; otherwise the call's, kept if it
    /// succeeded.
    #[allow(clippy::too_many_arguments)]
    async fn cached_or_called(
        &self,
        parts: http::request::Parts,
        body: Body,
        matched: &routes::Matched<'_>,
        grpc_path: &str,
        hop: &Hop,
        facts: &mut Facts,
        admitted: Option<&guard::Admitted>,
    ) -> Result<Response, Response> {
        let route = matched.route;
        let cacheable = parts.method == http::Method::GET && !route.method.is_server_streaming();
        let kept = match (&self.cache, cacheable) {
            (Some(cache), true) => cache.ttl(&route.template).map(|ttl| (cache, ttl)),
            _ => None,
        };
        let Some((cache, ttl)) = kept else {
            return Ok(self.call(parts, body, matched, grpc_path, hop, facts).await);
        };
        let scopes = admitted
            .and_then(|a| a.principal.as_ref())
            .map(|p| {
                let mut scopes = p.scopes.clone();
                scopes.sort();
                scopes.join(" ")
            })
            .unwrap_or_else(|| "public".to_owned());
        let key = cache::CacheKey {
            route: route.template.clone(),
            target: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
            scopes,
        };
        let (read, write) = cache::cache_control(&parts.headers);
        if read && let Some((body, headers, age)) = cache.lookup(&key).await {
            let mut response = Response::new(Body::from(body));
            *response.headers_mut() = headers;
            response
                .headers_mut()
                .insert("x-cache", HeaderValue::from_static("HIT"));
            metrics::counter!("harsha_edge_cache_total", "result" => "hit").increment(1);
            if let Ok(age) = HeaderValue::from_str(&age.as_secs().to_string()) {
                response.headers_mut().insert(header::AGE, age);
            }
            return Ok(response);
        }
        metrics::counter!("harsha_edge_cache_total", "result" => "miss").increment(1);
        let response = self.call(parts, body, matched, grpc_path, hop, facts).await;
        if !(write && response.status() == StatusCode::OK) {
            let mut response = response;
            response
                .headers_mut()
                .insert("x-cache", HeaderValue::from_static("MISS"));
            return Ok(response);
        }
        let (mut head, body) = response.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY * 4).await else {
            let (status, body) = edge_error(Code::Internal, "the response could not be read");
            return Err(json_response(status, body));
        };
        cache
            .keep(key, bytes.clone(), head.headers.clone(), ttl)
            .await;
        head.headers
            .insert("x-cache", HeaderValue::from_static("MISS"));
        Ok(Response::from_parts(head, Body::from(bytes)))
    }

    async fn call(
        &self,
        parts: http::request::Parts,
        body: Body,
        matched: &routes::Matched<'_>,
        grpc_path: &str,
        hop: &Hop,
        facts: &mut Facts,
    ) -> Response {
        let route = matched.route;
        if let Some(kind) = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            && !kind.starts_with("application/json")
        {
            let (_, body) = edge_error(
                Code::InvalidArgument,
                &format!("the body must be application/json, not {kind}"),
            );
            return json_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, body);
        }
        let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(bytes) => bytes,
            Err(_) => {
                let (_, body) = edge_error(
                    Code::InvalidArgument,
                    &format!("the body is larger than {MAX_BODY} bytes"),
                );
                return json_response(StatusCode::PAYLOAD_TOO_LARGE, body);
            }
        };
        let message =
            match transcode::request_message(route, &matched.captured, parts.uri.query(), &bytes) {
                Ok(message) => message,
                Err(error) => {
                    let (status, body) = edge_error(Code::InvalidArgument, &error.0);
                    return json_response(status, body);
                }
            };
        let service = route.method.parent_service().full_name().to_owned();
        let path = match grpc_path.parse::<http::uri::PathAndQuery>() {
            Ok(path) => path,
            Err(error) => {
                let (status, body) = edge_error(Code::Internal, &error.to_string());
                return json_response(status, body);
            }
        };
        let mut metadata = tonic::metadata::MetadataMap::new();
        forward_headers(&parts.headers, hop, &mut metadata);
        let timeout = deadline(&parts.headers).unwrap_or(self.default_timeout);
        if route.method.is_server_streaming() {
            let request =
                tonic::Request::from_parts(metadata, tonic::Extensions::default(), message);
            return self
                .stream(&parts.headers, request, timeout, path, route, facts)
                .await;
        }
        // Reads may be retried once, on another pick, within the budget;
        // writes only when the first try certainly never reached the
        // service (no connection could be made), so none is applied twice.
        let idempotent = parts.method == http::Method::GET;
        let started = std::time::Instant::now();
        self.retries.deposit(started);
        let mut spare = Some((metadata, message));
        let mut retried = false;
        let Some(mut endpoint) = self.upstreams.pick(&service) else {
            return Unsent::NoEndpoint.refusal(&service);
        };
        let outcome = loop {
            facts.route_id = endpoint.route_id.clone();
            let last_try = retried;
            let Some((metadata, message)) = (if last_try {
                spare.take()
            } else {
                spare.clone()
            }) else {
                break Attempt::Unsent(Unsent::Unreachable("nothing left to send".to_owned()));
            };
            let remaining = timeout.saturating_sub(started.elapsed());
            let outcome = attempt(
                &endpoint,
                tonic::Request::from_parts(metadata, tonic::Extensions::default(), message),
                remaining,
                path.clone(),
                route,
            )
            .await;
            let may_retry = if idempotent {
                outcome.worth_retrying()
            } else {
                outcome.never_sent()
            };
            if last_try || !may_retry || remaining <= MIN_RETRY_TIME {
                break outcome;
            }
            // Another endpoint, and room in the budget, or the answer stands.
            let Some(other) = self.upstreams.pick_excluding(&service, Some(&endpoint)) else {
                break outcome;
            };
            if !self.retries.try_withdraw(std::time::Instant::now()) {
                tracing::warn!(%service, "retry budget spent; not retrying");
                metrics::counter!("harsha_edge_retries_refused_total").increment(1);
                break outcome;
            }
            tracing::info!(%service, from = %endpoint.url, to = %other.url, "retrying");
            metrics::counter!("harsha_edge_retries_total").increment(1);
            retried = true;
            endpoint = other;
        };
        let answer = match outcome {
            Attempt::Answered(answer) => answer,
            Attempt::Unsent(unsent) => return unsent.refusal(&service),
        };
        let code = match &answer {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        facts.grpc_code = Some(code as i32);
        match answer {
            Ok(reply) => {
                let (metadata, message, _) = reply.into_parts();
                match transcode::response_json(&message, route.response_body.as_deref()) {
                    Ok(body) => {
                        let mut response = json_response(StatusCode::OK, body);
                        copy_metadata(&metadata, response.headers_mut());
                        response
                    }
                    Err(error) => {
                        let (status, body) =
                            edge_error(Code::Internal, &format!("encoding the response: {error}"));
                        json_response(status, body)
                    }
                }
            }
            Err(status) => {
                let mut response = json_response(
                    errors::http_status(status.code()),
                    errors::status_json(&status, &self.pool),
                );
                copy_metadata(status.metadata(), response.headers_mut());
                response
            }
        }
    }
}

impl Edge {
    /// A server-streaming call: each message a line of JSON
    /// (`application/x-ndjson`), or a Server-Sent Event when the client
    /// accepts `text/event-stream`. An error before the first message is
    /// an ordinary error answer; one after it ends the stream with an
    /// `{"error": …}` line (or an `error` event). Not retried.
    async fn stream(
        &self,
        headers: &HeaderMap,
        mut call: tonic::Request<prost_reflect::DynamicMessage>,
        timeout: Duration,
        path: http::uri::PathAndQuery,
        route: &routes::Route,
        facts: &mut Facts,
    ) -> Response {
        use futures::StreamExt as _;

        let service = route.method.parent_service().full_name();
        let Some(endpoint) = self.upstreams.pick(service) else {
            return Unsent::NoEndpoint.refusal(service);
        };
        facts.route_id = endpoint.route_id.clone();
        call.set_timeout(timeout);
        let (ticket, in_flight, mut grpc) = match open(&endpoint).await {
            Ok(opened) => opened,
            Err(unsent) => return unsent.refusal(service),
        };
        let answer = grpc
            .server_streaming(call, path, DynamicCodec::new(route.method.output()))
            .await;
        let code = answer
            .as_ref()
            .map_or_else(tonic::Status::code, |_| Code::Ok);
        ticket.record(Outcome::of_code(code));
        facts.grpc_code = Some(code as i32);
        let reply = match answer {
            Ok(reply) => reply,
            Err(status) => {
                let mut response = json_response(
                    errors::http_status(status.code()),
                    errors::status_json(&status, &self.pool),
                );
                copy_metadata(status.metadata(), response.headers_mut());
                return response;
            }
        };
        let events = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"));
        let (metadata, messages, _) = reply.into_parts();
        let pool = self.pool.clone();
        let response_body = route.response_body.clone();
        let frames = messages.map(move |item| {
            // Held while the stream lasts, for least-loaded balancing.
            let _held = &in_flight;
            let (kind, json) = match item {
                Ok(message) => match transcode::response_json(&message, response_body.as_deref()) {
                    Ok(json) => ("message", json),
                    Err(error) => {
                        let status =
                            tonic::Status::internal(format!("encoding the response: {error}"));
                        ("error", errors::status_json(&status, &pool))
                    }
                },
                Err(status) => ("error", errors::status_json(&status, &pool)),
            };
            Ok::<_, std::convert::Infallible>(bytes::Bytes::from(frame(kind, &json, events)))
        });
        let mut response = Response::new(Body::from_stream(frames));
        let kind = if events {
            "text/event-stream"
        } else {
            "application/x-ndjson"
        };
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        copy_metadata(&metadata, response.headers_mut());
        response
    }
}

/// One streamed message or error, as an NDJSON line or an SSE event.
fn frame(kind: &str, json: &[u8], events: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 24);
    match (kind, events) {
        ("error", true) => out.extend_from_slice(b"event: error\ndata: "),
        (_, true) => out.extend_from_slice(b"data: "),
        ("error", false) => out.extend_from_slice(b"{\"error\":"),
        _ => {}
    }
    out.extend_from_slice(json);
    if kind == "error" && !events {
        out.push(b'}');
    }
    out.extend_from_slice(if events { b"\n\n" } else { b"\n" });
    out
}

/// Why a call was not sent.
enum Unsent {
    /// The service has no endpoint to call.
    NoEndpoint,
    /// The endpoint's breaker is open; a trial is due in this long.
    CircuitOpen(Duration),
    /// No connection could be made.
    Unreachable(String),
}

impl Unsent {
    /// The answer to the caller: 503, with `Retry-After` when the circuit
    /// is open.
    fn refusal(self, service: &str) -> Response {
        let (message, wait) = match self {
            Self::NoEndpoint => (format!("no endpoint of {service} is available"), None),
            Self::CircuitOpen(wait) => {
                let seconds = wait.as_secs().max(1);
                (
                    format!("{service} is failing; its circuit is open, retry in {seconds} s"),
                    Some(seconds),
                )
            }
            Self::Unreachable(error) => (format!("{service} is unreachable: {error}"), None),
        };
        let (status, body) = edge_error(Code::Unavailable, &message);
        let mut response = json_response(status, body);
        if let Some(value) = wait.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// How one try of a call ended.
enum Attempt {
    /// Nothing was sent.
    Unsent(Unsent),
    /// The service (or the transport) answered.
    Answered(Result<tonic::Response<prost_reflect::DynamicMessage>, tonic::Status>),
}

impl Attempt {
    /// Whether another try may succeed where this one failed.
    fn worth_retrying(&self) -> bool {
        match self {
            Self::Unsent(_) => true,
            Self::Answered(Err(status)) => status.code() == Code::Unavailable,
            Self::Answered(Ok(_)) => false,
        }
    }

    /// Whether the call certainly never reached the service: nothing was
    /// sent, or the connection for it could not be made.
    fn never_sent(&self) -> bool {
        match self {
            Self::Unsent(_) => true,
            Self::Answered(Err(status)) => {
                status.code() == Code::Unavailable && connection_refused(status)
            }
            Self::Answered(Ok(_)) => false,
        }
    }
}

/// Whether `status` reports a connection that could not be made (hyper's
/// connector says "tcp connect error"), anywhere in its chain of causes.
fn connection_refused(status: &tonic::Status) -> bool {
    const CONNECT_FAILED: &str = "tcp connect error";
    if status.message().starts_with(CONNECT_FAILED) {
        return true;
    }
    let mut cause = std::error::Error::source(status);
    while let Some(error) = cause {
        if error.to_string().starts_with(CONNECT_FAILED) {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Leave from `endpoint`'s breaker, the call counted in flight, and a
/// ready connection; or why nothing can be sent (a failed connection
/// counts against the breaker).
async fn open(
    endpoint: &Arc<upstreams::Endpoint>,
) -> Result<
    (
        harsha_mesh::breaker::Ticket,
        upstreams::InFlight,
        tonic::client::Grpc<tonic::transport::Channel>,
    ),
    Unsent,
> {
    let ticket = endpoint
        .breaker
        .acquire(std::time::Instant::now())
        .map_err(Unsent::CircuitOpen)?;
    let in_flight = endpoint.start_call();
    let mut grpc = tonic::client::Grpc::new(endpoint.channel.clone());
    if let Err(error) = grpc.ready().await {
        ticket.record(Outcome::Failed);
        return Err(Unsent::Unreachable(error.to_string()));
    }
    Ok((ticket, in_flight, grpc))
}

/// One try of a call to `endpoint`, within `timeout`, through its breaker.
async fn attempt(
    endpoint: &Arc<upstreams::Endpoint>,
    mut call: tonic::Request<prost_reflect::DynamicMessage>,
    timeout: Duration,
    path: http::uri::PathAndQuery,
    route: &routes::Route,
) -> Attempt {
    call.set_timeout(timeout);
    let (ticket, _in_flight, mut grpc) = match open(endpoint).await {
        Ok(opened) => opened,
        Err(unsent) => return Attempt::Unsent(unsent),
    };
    let answer = grpc
        .unary(call, path, DynamicCodec::new(route.method.output()))
        .await;
    ticket.record(Outcome::of_code(match &answer {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }));
    Attempt::Answered(answer)
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Credentials, the request id, the edge's hop of the trace, the caller's
/// address (`x-forwarded-for`, which the services believe only from where
/// the edge runs) and `Grpc-Metadata-*` headers as gRPC metadata.
fn forward_headers(headers: &HeaderMap, hop: &Hop, metadata: &mut tonic::metadata::MetadataMap) {
    for (name, value) in headers {
        let name = name.as_str();
        let key = if FORWARDED.contains(&name) {
            name
        } else if let Some(rest) = name.strip_prefix(METADATA_PREFIX) {
            rest
        } else {
            continue;
        };
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.to_str().ok().and_then(|v| v.parse().ok()).ok_or(()),
        ) {
            metadata.insert(key, value);
        }
    }
    if let Ok(value) = hop.request_id.parse() {
        metadata.insert(REQUEST_ID, value);
    }
    if let Ok(value) = hop.trace.to_string().parse() {
        metadata.insert(TRACEPARENT, value);
    }
    // The edge is where callers arrive: what they claim in their own
    // x-forwarded-for is not passed on.
    match hop.client.map(|ip| ip.to_string().parse()) {
        Some(Ok(value)) => {
            metadata.insert(harsha_mesh::access::FORWARDED_FOR, value);
        }
        _ => {
            metadata.remove(harsha_mesh::access::FORWARDED_FOR);
        }
    }
}

/// Response metadata as `Grpc-Metadata-*` headers (ASCII values only).
fn copy_metadata(metadata: &tonic::metadata::MetadataMap, headers: &mut HeaderMap) {
    for entry in metadata.iter() {
        if let tonic::metadata::KeyAndValueRef::Ascii(key, value) = entry {
            let name = key.as_str();
            if name.starts_with("grpc-") || name == "content-type" {
                continue;
            }
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(format!("{METADATA_PREFIX}{name}").as_bytes()),
                HeaderValue::from_bytes(value.as_encoded_bytes()),
            ) {
                headers.insert(name, value);
            }
        }
    }
}

/// The deadline a request asks for: `X-Request-Timeout` in seconds, or a
/// gRPC-style `Grpc-Timeout` (`100m`, `5S`).
fn deadline(headers: &HeaderMap) -> Option<Duration> {
    if let Some(seconds) = headers
        .get("x-request-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 86_400.0)
    {
        return Some(Duration::from_secs_f64(seconds));
    }
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (amount, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = amount.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Serves `edge` on `listener` until `shutdown` resolves.
pub async fn serve(
    edge: Arc<Edge>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        edge.router()
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// The edge's span for `request`, continuing the caller's trace, and the
/// hop it passes on.
fn begin_hop(request: &Request) -> (tracing::Span, Hop) {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let request_id = header(REQUEST_ID)
        .filter(|v| usable_request_id(v))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let span = tracing::info_span!(
        "edge",
        otel.name = %format_args!("{} {}", request.method(), request.uri().path()),
        otel.kind = "server",
        http.request.method = %request.method(),
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        trace_id = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    let trace = continue_in(&span, header(TRACEPARENT).and_then(TraceParent::parse));
    span.record("trace_id", trace.trace_id_hex());
    let hop = Hop {
        request_id,
        trace,
        client: request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip()),
    };
    (span, hop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_messages_and_errors_are_framed_as_ndjson_or_events() {
        assert_eq!(frame("message", br#"{"a":1}"#, false), b"{\"a\":1}\n");
        assert_eq!(
            frame("error", br#"{"code":5}"#, false),
            b"{\"error\":{\"code\":5}}\n"
        );
        assert_eq!(
            frame("message", br#"{"a":1}"#, true),
            b"data: {\"a\":1}\n\n"
        );
        assert_eq!(
            frame("error", br#"{"code":5}"#, true),
            b"event: error\ndata: {\"code\":5}\n\n"
        );
    }

    #[test]
    fn deadlines_come_from_either_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(deadline(&headers), None);
        headers.insert("grpc-timeout", HeaderValue::from_static("250m"));
        assert_eq!(deadline(&headers), Some(Duration::from_millis(250)));
        headers.insert("x-request-timeout", HeaderValue::from_static("1.5"));
        assert_eq!(deadline(&headers), Some(Duration::from_millis(1500)));
        headers.insert("x-request-timeout", HeaderValue::from_static("-3"));
        assert_eq!(deadline(&headers), Some(Duration::from_millis(250)));
    }
}
