//! Between JSON and protobuf: a request message is built from the body (the
//! whole message or one field), the path variables and the query string
//! (nested `a.b=1`, repeated `r=1&r=2`, enums by name), in the proto3 JSON
//! mapping (lowerCamelCase or proto names accepted, 64-bit integers as
//! strings, Timestamp/Duration/wrappers in their JSON forms); unknown fields
//! and malformed JSON are refused with a message naming the problem. A
//! response becomes proto3 JSON with lowerCamelCase names and every field
//! present.

use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage,
    SerializeOptions,
};
use serde_json::{Map, Value as Json};

use crate::routes::{BodyTarget, Route};

/// Why a request could not become a message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

/// Builds the request message for `route`.
pub fn request_message(
    route: &Route,
    captured: &[(String, String)],
    query: Option<&str>,
    body: &[u8],
) -> Result<DynamicMessage, BadRequest> {
    let input = route.method.input();
    let body_json: Option<Json> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(
            serde_json::from_slice(body)
                .map_err(|e| BadRequest(format!("the body is not valid JSON: {e}")))?,
        )
    };
    let mut root = match (&route.body, body_json) {
        (BodyTarget::None, Some(_)) => {
            return Err(BadRequest(format!(
                "{} {} takes no body",
                route.http_method, route.template
            )));
        }
        (BodyTarget::None, None) | (_, None) => Map::new(),
        (BodyTarget::Whole, Some(Json::Object(map))) => map,
        (BodyTarget::Whole, Some(_)) => {
            return Err(BadRequest("the body must be a JSON object".into()));
        }
        (BodyTarget::Field(field), Some(value)) => {
            let mut map = Map::new();
            map.insert(field.clone(), value);
            map
        }
    };
    for (path, value) in captured {
        set_path(&mut root, &input, path, value, false)?;
    }
    if let Some(query) = query {
        for (key, value) in form_urlencoded_pairs(query) {
            if let BodyTarget::Field(field) = &route.body {
                let top = key.split('.').next().unwrap_or_default();
                if top == field
                    || input
                        .get_field_by_json_name(top)
                        .map(|f| f.name() == field)
                        .unwrap_or(false)
                {
                    return Err(BadRequest(format!(
                        "query parameter {key:?} is part of the body"
                    )));
                }
            }
            if route.body == BodyTarget::Whole {
                return Err(BadRequest(format!(
                    "query parameter {key:?}: {} {} takes every field in the body",
                    route.http_method, route.template
                )));
            }
            set_path(&mut root, &input, &key, &value, true)?;
        }
    }
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let mut track = serde_path_to_error::Track::new();
    let deserializer = serde_path_to_error::Deserializer::new(Json::Object(root), &mut track);
    DynamicMessage::deserialize_with_options(input, deserializer, &options).map_err(|e| {
        let path = track.path().to_string();
        if path.is_empty() || path == "." {
            BadRequest(e.to_string())
        } else {
            BadRequest(format!("{path}: {e}"))
        }
    })
}

/// `key=value` pairs of a query string, percent- and `+`-decoded.
fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(key), decode_component(value))
        })
        .collect()
}

fn decode_component(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

fn field_named(message: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    message
        .get_field_by_name(name)
        .or_else(|| message.get_field_by_json_name(name))
}

/// Sets `path` (`a.b.c`) in the JSON tree to `text`, converted for the
/// field's kind; repeated fields collect values when `append`.
fn set_path(
    root: &mut Map<String, Json>,
    message: &MessageDescriptor,
    path: &str,
    text: &str,
    append: bool,
) -> Result<(), BadRequest> {
    let mut current_map = root;
    let mut current = message.clone();
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let field = field_named(&current, part).ok_or_else(|| {
            BadRequest(format!(
                "{path:?}: {} has no field {part:?}",
                current.name()
            ))
        })?;
        let last = i + 1 == parts.len();
        if last {
            let value = scalar_json(&field, text)
                .map_err(|reason| BadRequest(format!("{path:?}: {reason}")))?;
            let key = field.name().to_owned();
            if field.is_list() {
                let slot = current_map
                    .entry(key)
                    .or_insert_with(|| Json::Array(Vec::new()));
                match slot {
                    Json::Array(items) if append => items.push(value),
                    other => *other = Json::Array(vec![value]),
                }
            } else {
                current_map.insert(key, value);
            }
            return Ok(());
        }
        let Some(next) = field
            .kind()
            .as_message()
            .cloned()
            .filter(|_| !field.is_list() && !field.is_map())
        else {
            return Err(BadRequest(format!(
                "{path:?}: {part:?} is not a message field"
            )));
        };
        let slot = current_map
            .entry(field.name().to_owned())
            .or_insert_with(|| Json::Object(Map::new()));
        if !slot.is_object() {
            *slot = Json::Object(Map::new());
        }
        let Json::Object(map) = slot else {
            return Err(BadRequest(format!("{path:?}: not an object")));
        };
        current_map = map;
        current = next;
    }
    Ok(())
}

/// A path or query value as the JSON the field's kind expects.
fn scalar_json(field: &FieldDescriptor, text: &str) -> Result<Json, String> {
    Ok(match field.kind() {
        Kind::Bool => match text {
            "true" | "1" => Json::Bool(true),
            "false" | "0" => Json::Bool(false),
            other => return Err(format!("{other:?} is not true or false")),
        },
        Kind::Enum(_) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            Json::Number(text.parse::<u64>().map_err(|e| e.to_string())?.into())
        }
        // Numbers travel as strings, which proto3 JSON accepts for every
        // numeric kind; messages (Timestamp, Duration, wrappers) take
        // their JSON string forms.
        _ => Json::String(text.to_owned()),
    })
}

/// The JSON of a response message (or of its `response_body` field).
pub fn response_json(
    message: &DynamicMessage,
    response_body: Option<&str>,
) -> Result<Vec<u8>, serde_json::Error> {
    let options = SerializeOptions::new().skip_default_fields(false);
    let Some(field) = response_body else {
        // The whole message: written straight out, no JSON tree between.
        // Most answers fit; measuring the message first would walk it twice.
        let mut out = Vec::with_capacity(4096);
        message.serialize_with_options(&mut serde_json::Serializer::new(&mut out), &options)?;
        return Ok(out);
    };
    let whole = message.serialize_with_options(serde_json::value::Serializer, &options)?;
    let json_name = message
        .descriptor()
        .get_field_by_name(field)
        .map(|f| f.json_name().to_owned())
        .unwrap_or_else(|| field.to_owned());
    serde_json::to_vec(whole.get(&json_name).unwrap_or(&Json::Null))
}

#[cfg(test)]
mod tests {
    use http::Method;
    use prost_reflect::DescriptorPool;

    use super::*;
    use crate::routes::RouteTable;

    fn build(
        method: Method,
        path: &str,
        query: Option<&str>,
        body: &str,
    ) -> Result<serde_json::Value, BadRequest> {
        let pool = DescriptorPool::decode(harsha_proto::FILE_DESCRIPTOR_SET)
            .unwrap_or_else(|e| panic!("{e}"));
        let table = RouteTable::build(
            &pool,
            &[
                "harsha.auth.v1.AuthService",
                "harsha.customer.v1.CustomerService",
                "harsha.pricing.v1.PricingService",
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let matched = table
            .find(&method, path)
            .unwrap_or_else(|_| panic!("no route for {path}"));
        let message = request_message(matched.route, &matched.captured, query, body.as_bytes())?;
        let options = SerializeOptions::new().use_proto_field_name(true);
        Ok(message
            .serialize_with_options(serde_json::value::Serializer, &options)
            .unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn body_path_and_query_fill_one_message() {
        let made = build(
            Method::PATCH,
            "/v1/users/u-7",
            None,
            r#"{"email": "a@b.in", "rateLimitPlan": "partner", "roles": ["sales"]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(made["user_id"], "u-7");
        assert_eq!(made["rate_limit_plan"], "partner");
        // A body field, with a nested path variable inside it.
        let made = build(
            Method::PUT,
            "/v1/rate-limit-plans/gold",
            None,
            r#"{"perMinute": 10, "per_hour": 100, "perDay": "1000"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(made["plan"]["name"], "gold");
        assert_eq!(made["plan"]["per_day"], 1000);
        // Query parameters: numbers, booleans, repeated values.
        let made = build(
            Method::GET,
            "/v1/api-keys",
            Some("userId=u1&show_revoked=true&pageSize=5"),
            "",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(made["user_id"], "u1");
        assert_eq!(made["show_revoked"], true);
        assert_eq!(made["page_size"], 5);
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let error =
            |method, path, query, body| build(method, path, query, body).map(|_| ()).unwrap_err().0;
        assert!(error(Method::POST, "/v1/users", None, "{not json").contains("not valid JSON"));
        assert!(
            error(Method::POST, "/v1/users", None, r#"{"nickname": "x"}"#).contains("nickname")
        );
        assert!(error(Method::POST, "/v1/users", None, "[1]").contains("JSON object"));
        assert!(
            error(Method::GET, "/v1/api-keys", Some("showRevoked=maybe"), "").contains("maybe")
        );
        assert!(error(Method::GET, "/v1/api-keys", Some("colour=red"), "").contains("colour"));
        assert!(error(Method::GET, "/v1/api-keys", None, r#"{"a":1}"#).contains("takes no body"));
        let not_a_number = error(Method::GET, "/v1/api-keys", Some("pageSize=ten"), "");
        assert!(not_a_number.starts_with("page_size: "), "{not_a_number}");
        let in_body = error(
            Method::PUT,
            "/v1/rate-limit-plans/gold",
            None,
            r#"{"perMinute": "lots"}"#,
        );
        assert!(in_body.starts_with("plan.perMinute: "), "{in_body}");
    }
}
