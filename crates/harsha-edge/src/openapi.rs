//! The OpenAPI 3 document of the REST side, generated at start from the
//! same routes and descriptors the edge serves with, so it cannot drift:
//! every route with its path and query parameters, request body and
//! response in the proto3 JSON mapping (64-bit integers as strings, enums
//! by name, Timestamp as `date-time`), errors as `google.rpc.Status`, and
//! the two ways to authenticate (a bearer JWT or an `X-Api-Key`), left out
//! on public RPCs.

use std::collections::{BTreeMap, BTreeSet};

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value as Json, json};

use crate::routes::{BodyTarget, Route, RouteTable};

/// The document, as JSON.
pub fn document(routes: &RouteTable) -> Json {
    let mut schemas = BTreeMap::new();
    let mut paths: BTreeMap<String, Map<String, Json>> = BTreeMap::new();
    let mut operation_ids = BTreeSet::new();
    for route in routes.routes() {
        let path = openapi_path(&route.template);
        let mut id = format!(
            "{}_{}",
            route.method.parent_service().name(),
            route.method.name()
        );
        let mut n = 1;
        while !operation_ids.insert(id.clone()) {
            id = format!(
                "{}_{}_{n}",
                route.method.parent_service().name(),
                route.method.name()
            );
            n += 1;
        }
        let operation = operation(route, id, &mut schemas);
        paths
            .entry(path)
            .or_default()
            .insert(route.http_method.as_str().to_ascii_lowercase(), operation);
    }
    let mut components = Map::new();
    schemas.insert(
        "google.rpc.Status".to_owned(),
        json!({
            "type": "object",
            "description": "An error: the gRPC code, a message, and typed details (each with its @type).",
            "properties": {
                "code": {"type": "integer", "format": "int32"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object", "additionalProperties": true}}
            }
        }),
    );
    components.insert(
        "schemas".into(),
        Json::Object(schemas.into_iter().collect()),
    );
    components.insert(
        "securitySchemes".into(),
        json!({
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}
        }),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Harsha Mesh",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "REST/JSON routes of the Harsha Mesh services, derived from each RPC's google.api.http rule. Scopes per RPC: docs/scopes.md."
        },
        "security": [{"bearerAuth": []}, {"apiKey": []}],
        "paths": paths.into_iter().map(|(k, v)| (k, Json::Object(v))).collect::<Map<_, _>>(),
        "components": components,
    })
}

/// `/v1/{name=shelves/*}/books:archive` → `/v1/{name}/books:archive`;
/// a nested field's variable `{plan.name}` becomes `{plan_name}` (dots in
/// parameter names break common OpenAPI tools).
fn openapi_path(template: &str) -> String {
    let mut out = String::new();
    let (mut inside, mut skipping) = (false, false);
    for c in template.chars() {
        match c {
            '{' => {
                inside = true;
                out.push(c);
            }
            '}' => {
                inside = false;
                skipping = false;
                out.push(c);
            }
            '=' if inside => skipping = true,
            _ if skipping => {}
            '.' if inside => out.push('_'),
            _ => out.push(c),
        }
    }
    out
}

fn path_variables(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let inner = &rest[start + 1..start + end];
        names.push(inner.split('=').next().unwrap_or(inner).to_owned());
        rest = &rest[start + end + 1..];
    }
    names
}

fn field_at(message: &MessageDescriptor, path: &str) -> Option<FieldDescriptor> {
    let mut current = message.clone();
    let mut found = None;
    for part in path.split('.') {
        let field = current.get_field_by_name(part)?;
        if let Some(next) = field.kind().as_message() {
            current = next.clone();
        }
        found = Some(field);
    }
    found
}

fn operation(route: &Route, id: String, schemas: &mut BTreeMap<String, Json>) -> Json {
    let input = route.method.input();
    let variables = path_variables(&route.template);
    let mut parameters: Vec<Json> = variables
        .iter()
        .map(|name| {
            let schema = field_at(&input, name)
                .map(|f| scalar_schema(&f, schemas))
                .unwrap_or_else(|| json!({"type": "string"}));
            let mut parameter = json!({"name": name.replace('.', "_"), "in": "path", "required": true, "schema": schema});
            if name.contains('.') {
                parameter["description"] = json!(format!("`{name}` of the request"));
            }
            parameter
        })
        .collect();
    if route.body != BodyTarget::Whole {
        let top_used: BTreeSet<&str> = variables
            .iter()
            .map(|v| v.split('.').next().unwrap_or(v))
            .collect();
        for field in input.fields() {
            let in_body = matches!(&route.body, BodyTarget::Field(f) if f == field.name());
            if in_body || top_used.contains(field.name()) || field.is_map() {
                continue;
            }
            if field.kind().as_message().is_some() && !is_well_known(&field) {
                continue;
            }
            parameters.push(json!({
                "name": field.json_name(),
                "in": "query",
                "required": false,
                "schema": scalar_schema(&field, schemas),
            }));
        }
    }
    let mut op = Map::new();
    op.insert("operationId".into(), Json::String(id));
    op.insert("tags".into(), json!([route.method.parent_service().name()]));
    op.insert(
        "summary".into(),
        Json::String(format!(
            "{} ({})",
            route.method.name(),
            route.method.full_name()
        )),
    );
    if !parameters.is_empty() {
        op.insert("parameters".into(), Json::Array(parameters));
    }
    let body_schema = match &route.body {
        BodyTarget::None => None,
        BodyTarget::Whole => Some(message_ref(&input, schemas)),
        BodyTarget::Field(name) => input
            .get_field_by_name(name)
            .map(|f| field_schema(&f, schemas)),
    };
    if let Some(schema) = body_schema {
        op.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": schema}}}),
        );
    }
    let output = route.method.output();
    let response = match &route.response_body {
        Some(name) => output
            .get_field_by_name(name)
            .map_or_else(|| json!({}), |f| field_schema(&f, schemas)),
        None => message_ref(&output, schemas),
    };
    // A server stream is a sequence of those messages: one JSON document a
    // line, or one Server-Sent Event each.
    let content = if route.method.is_server_streaming() {
        json!({
            "application/x-ndjson": {"schema": response},
            "text/event-stream": {"schema": {"type": "string"}}
        })
    } else {
        json!({"application/json": {"schema": response}})
    };
    op.insert(
        "responses".into(),
        json!({
            "200": {"description": "OK", "content": content},
            "default": {"description": "An error (google.rpc.Status)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/google.rpc.Status"}}}}
        }),
    );
    let public = harsha_proto::access::required_scope(&format!(
        "/{}/{}",
        route.method.parent_service().full_name(),
        route.method.name()
    )) == Some("public");
    if public {
        op.insert("security".into(), json!([]));
    }
    Json::Object(op)
}

fn is_well_known(field: &FieldDescriptor) -> bool {
    field
        .kind()
        .as_message()
        .is_some_and(|m| m.full_name().starts_with("google.protobuf."))
}

/// A `$ref` to a message's schema, adding it (and what it uses) to
/// `schemas`.
fn message_ref(message: &MessageDescriptor, schemas: &mut BTreeMap<String, Json>) -> Json {
    if let Some(schema) = well_known(message.full_name()) {
        return schema;
    }
    let name = message.full_name().to_owned();
    if !schemas.contains_key(&name) {
        // A placeholder first, so recursive messages end.
        schemas.insert(name.clone(), json!({}));
        let mut properties = Map::new();
        for field in message.fields() {
            properties.insert(field.json_name().to_owned(), field_schema(&field, schemas));
        }
        schemas.insert(
            name.clone(),
            json!({"type": "object", "properties": properties, "additionalProperties": false}),
        );
    }
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The JSON schema of a field as the proto3 JSON mapping writes it.
fn field_schema(field: &FieldDescriptor, schemas: &mut BTreeMap<String, Json>) -> Json {
    if field.is_map() {
        let value = field
            .kind()
            .as_message()
            .and_then(|entry| entry.get_field_by_name("value"))
            .map_or_else(|| json!({}), |v| field_schema(&v, schemas));
        return json!({"type": "object", "additionalProperties": value});
    }
    let single = scalar_schema(field, schemas);
    if field.is_list() {
        json!({"type": "array", "items": single})
    } else {
        single
    }
}

/// The schema of one value of the field's kind.
fn scalar_schema(field: &FieldDescriptor, schemas: &mut BTreeMap<String, Json>) -> Json {
    match field.kind() {
        Kind::Double | Kind::Float => json!({"type": "number"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({"type": "integer", "format": "int32"})
        }
        Kind::Uint32 | Kind::Fixed32 => json!({"type": "integer", "format": "int64", "minimum": 0}),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({"type": "string", "format": "int64"}),
        Kind::Uint64 | Kind::Fixed64 => json!({"type": "string", "format": "uint64"}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "format": "byte"}),
        Kind::Enum(e) => {
            let names: Vec<Json> = e
                .values()
                .map(|v| Json::String(v.name().to_owned()))
                .collect();
            json!({"type": "string", "enum": names})
        }
        Kind::Message(m) => message_ref(&m, schemas),
    }
}

/// The JSON forms of the well-known types used in the contracts.
fn well_known(name: &str) -> Option<Json> {
    Some(match name {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => {
            json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$"})
        }
        "google.protobuf.FieldMask" => json!({"type": "string"}),
        "google.protobuf.Empty" => json!({"type": "object"}),
        "google.protobuf.Struct" => json!({"type": "object", "additionalProperties": true}),
        "google.protobuf.Value" | "google.protobuf.Any" => json!({}),
        "google.protobuf.StringValue" | "google.protobuf.BytesValue" => {
            json!({"type": "string", "nullable": true})
        }
        "google.protobuf.BoolValue" => json!({"type": "boolean", "nullable": true}),
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => {
            json!({"type": "integer", "nullable": true})
        }
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
            json!({"type": "string", "nullable": true})
        }
        "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => {
            json!({"type": "number", "nullable": true})
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_become_openapi_paths() {
        assert_eq!(
            openapi_path("/v1/users/{user_id}:disable"),
            "/v1/users/{user_id}:disable"
        );
        assert_eq!(
            openapi_path("/v1/{name=shelves/*}/books"),
            "/v1/{name}/books"
        );
        assert_eq!(
            openapi_path("/v1/rate-limit-plans/{plan.name}"),
            "/v1/rate-limit-plans/{plan_name}"
        );
        assert_eq!(path_variables("/v1/{a.b}/x/{c=**}"), ["a.b", "c"]);
    }
}
