//! The process's telemetry pipelines: the OpenTelemetry span exporter
//! (OTLP over HTTP or gRPC, configured by the standard `OTEL_*` variables) and the
//! Prometheus recorder every `metrics::` call in the mesh writes to, served
//! at `/metrics` by the edge or by a listener of its own.

use std::{sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{
    Resource,
    trace::{SdkTracer, SdkTracerProvider},
};

/// A variable that is set to something.
fn set(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether spans are exported: an OTLP endpoint is set, and neither
/// `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` says no.
fn exporting() -> bool {
    let disabled = set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let exporter = set("OTEL_TRACES_EXPORTER").unwrap_or_else(|| "otlp".to_owned());
    let endpoint = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .is_some();
    !disabled && endpoint && exporter.eq_ignore_ascii_case("otlp")
}

/// The span exporter and the tracer that feeds it, when exporting: OTLP
/// over gRPC when `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` is `grpc`, else
/// over HTTP (protobuf, or JSON with `http/json`). The
/// process reports as `service.name` = `process` unless `OTEL_SERVICE_NAME`
/// (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`) names it; sampling
/// follows `OTEL_TRACES_SAMPLER` (parent-based, always on, by default).
/// Problems are printed, and the process runs without exporting.
pub fn span_exporter(process: String) -> Option<(SdkTracerProvider, SdkTracer)> {
    if !exporting() {
        return None;
    }
    let protocol = set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| set("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_default();
    // Built inside the runtime: the gRPC exporter's channel runs on it,
    // and the batch processor's thread hands it spans.
    let built = if protocol.eq_ignore_ascii_case("grpc") {
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
    } else {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
    };
    let exporter = match built {
        Ok(exporter) => exporter,
        Err(error) => {
            eprintln!("traces are not exported: {error}");
            return None;
        }
    };
    let named = set("OTEL_SERVICE_NAME").is_some()
        || set("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|v| {
            v.split(',')
                .any(|kv| kv.trim().starts_with("service.name="))
        });
    let resource = if named {
        Resource::builder().build()
    } else {
        Resource::builder().with_service_name(process).build()
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("harsha");
    Some((provider, tracer))
}

/// The process's Prometheus recorder (installed once), rendered for
/// `/metrics`. Every `…_seconds` histogram has the same buckets (1 ms to
/// 5 s), so alert rules can take quantiles; they are compacted every 5 s
/// until `shutdown`.
pub fn prometheus(shutdown: &CancellationToken) -> Option<harsha_edge::MetricsRender> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

    let installed = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0,
            ],
        )
        .and_then(PrometheusBuilder::install_recorder);
    let handle = match installed {
        Ok(handle) => handle,
        Err(error) => {
            tracing::warn!(%error, "metrics are not collected");
            return None;
        }
    };
    let upkeep = handle.clone();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(5)) => upkeep.run_upkeep(),
            }
        }
    });
    Some(harsha_edge::MetricsRender(Arc::new(move || {
        handle.render()
    })))
}

/// Answers `GET /metrics` on `listener` with `render`'s text until
/// `shutdown`.
pub async fn serve_metrics(
    listener: TcpListener,
    render: harsha_edge::MetricsRender,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let text = (render.0)();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|e| anyhow::anyhow!("serving /metrics: {e}"))
}
