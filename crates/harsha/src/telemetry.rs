//! The process's telemetry pipelines: the OpenTelemetry span exporter
//! (OTLP over HTTP, configured by the standard `OTEL_*` variables).

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

/// The span exporter and the tracer that feeds it, when exporting. The
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
    if protocol.eq_ignore_ascii_case("grpc") {
        eprintln!(
            "traces are not exported: OTLP over gRPC is not built in; set \
             OTEL_EXPORTER_OTLP_PROTOCOL to http/protobuf or http/json"
        );
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
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
