//! gRPC statuses as HTTP answers: the standard code mapping (as
//! grpc-gateway and Envoy use) and a JSON body shaped like
//! `google.rpc.Status` — `code`, `message` and `details`, each detail with
//! its `@type` (BadRequest field violations, PreconditionFailure,
//! ErrorInfo, …), decoded from `grpc-status-details-bin`.

use http::StatusCode;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::{Value as Json, json};
use tonic::{Code, Status};

/// The HTTP status for a gRPC code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `google.rpc.Status` as it travels in `grpc-status-details-bin`.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// The JSON body for a failed call.
pub fn status_json(status: &Status, pool: &DescriptorPool) -> Vec<u8> {
    let details: Vec<Json> = RpcStatus::decode(status.details())
        .map(|decoded| {
            decoded
                .details
                .iter()
                .map(|any| detail_json(any, pool))
                .collect()
        })
        .unwrap_or_default();
    let body = json!({
        "code": status.code() as i32,
        "message": status.message(),
        "details": details,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// One detail as JSON with its `@type`; undecodable ones keep only it.
fn detail_json(any: &prost_types::Any, pool: &DescriptorPool) -> Json {
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let decoded = pool
        .get_message_by_name(name)
        .and_then(|descriptor| DynamicMessage::decode(descriptor, any.value.as_slice()).ok())
        .and_then(|message| {
            message
                .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
                .ok()
        });
    let mut object = match decoded {
        Some(Json::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    object.insert("@type".into(), Json::String(any.type_url.clone()));
    Json::Object(object)
}

/// A JSON error body made at the edge itself (no gRPC call happened).
pub fn edge_error(code: Code, message: &str) -> (StatusCode, Vec<u8>) {
    let body = json!({ "code": code as i32, "message": message, "details": [] });
    (
        http_status(code),
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}
