//! Conversions between the wire's calendar and number types
//! (`google.type.Date`, `google.protobuf.Timestamp`, `harsha.type.v1.Decimal`)
//! and chrono's and rust_decimal's, shared by every service's `grpc` module so
//! that each validates them the same way.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};

use crate::{google::r#type::Date, harsha::r#type::v1::Decimal as WireDecimal};

/// A `harsha.type.v1.Decimal` that is not a plain decimal number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a decimal number (digits with an optional sign and point, e.g. \"12.5\")")]
pub struct InvalidDecimal(pub String);

/// Parses a wire decimal exactly: an optional sign, digits and an optional
/// fraction; no exponent, no grouping, at most 28 significant digits.
pub fn decimal_from_proto(value: &WireDecimal) -> Result<rust_decimal::Decimal, InvalidDecimal> {
    let text = value.value.trim();
    let plain = !text.is_empty()
        && text
            .trim_start_matches(['-', '+'])
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.');
    if !plain {
        return Err(InvalidDecimal(value.value.clone()));
    }
    rust_decimal::Decimal::from_str_exact(text).map_err(|_| InvalidDecimal(value.value.clone()))
}

/// Writes a decimal to the wire in its shortest exact form (`"12.5"`).
pub fn decimal_to_proto(value: rust_decimal::Decimal) -> WireDecimal {
    WireDecimal {
        value: value.normalize().to_string(),
    }
}

/// Reads a wire timestamp as a naive UTC date-time, to the microsecond (as
/// stored); `None` if it is outside chrono's range.
pub fn timestamp_from_proto(at: &prost_types::Timestamp) -> Option<NaiveDateTime> {
    let nanos = u32::try_from(at.nanos).ok()?;
    DateTime::from_timestamp(at.seconds, nanos - nanos % 1000).map(|at| at.naive_utc())
}

/// A `google.type.Date` that is not a real calendar date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{year:04}-{month:02}-{day:02} is not a valid calendar date")]
pub struct InvalidDate {
    /// The year given.
    pub year: i32,
    /// The month given.
    pub month: i32,
    /// The day given.
    pub day: i32,
}

/// Converts a wire date to a calendar date; years outside 1..=9999 and
/// impossible days (such as February 30) are rejected.
pub fn date_from_proto(date: &Date) -> Result<NaiveDate, InvalidDate> {
    let invalid = || InvalidDate {
        year: date.year,
        month: date.month,
        day: date.day,
    };
    if !(1..=9999).contains(&date.year) {
        return Err(invalid());
    }
    let month = u32::try_from(date.month).map_err(|_| invalid())?;
    let day = u32::try_from(date.day).map_err(|_| invalid())?;
    NaiveDate::from_ymd_opt(date.year, month, day).ok_or_else(invalid)
}

/// Converts a calendar date to a wire date.
pub fn date_to_proto(date: NaiveDate) -> Date {
    Date {
        year: date.year(),
        month: i32::try_from(date.month()).unwrap_or_default(),
        day: i32::try_from(date.day()).unwrap_or_default(),
    }
}

/// Converts a UTC instant to a wire timestamp.
pub fn timestamp_to_proto(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or_default(),
    }
}

/// Converts a naive UTC date-time (as stored) to a wire timestamp.
pub fn naive_utc_to_proto(at: NaiveDateTime) -> prost_types::Timestamp {
    timestamp_to_proto(at.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_leap_day() {
        let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap_or_default();
        assert_eq!(date_from_proto(&date_to_proto(date)), Ok(date));
    }

    #[test]
    fn decimals_are_exact_and_plain() {
        let wire = |v: &str| WireDecimal { value: v.into() };
        assert_eq!(
            decimal_from_proto(&wire("12.50")).map(|d| decimal_to_proto(d).value),
            Ok("12.5".into())
        );
        assert_eq!(
            decimal_from_proto(&wire("-0.000000001")).map(|d| d.to_string()),
            Ok("-0.000000001".into())
        );
        for bad in ["", "1e3", "1,000", "abc", "NaN", "1.2.3"] {
            assert!(decimal_from_proto(&wire(bad)).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rejects_impossible_dates() {
        for (year, month, day) in [
            (2025, 2, 29),
            (2025, 13, 1),
            (0, 1, 1),
            (2025, 1, 0),
            (2025, -1, 3),
        ] {
            let err = date_from_proto(&Date { year, month, day });
            assert!(err.is_err(), "{year}-{month}-{day} accepted");
        }
    }
}

/// A `google.protobuf.Value` that has no JSON form (a NaN or infinite
/// number), named by its path in the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a finite number")]
pub struct NotJson(pub String);

/// Reads a `google.protobuf.Value` as JSON (`path` names it in errors).
/// Numbers that are whole and within ±2^53 become integers, so `12` stays
/// `12`.
pub fn value_to_json(value: prost_types::Value, path: &str) -> Result<serde_json::Value, NotJson> {
    use prost_types::value::Kind;
    Ok(match value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::NumberValue(n)) => {
            const EXACT: f64 = 9_007_199_254_740_992.0;
            if n.is_finite() && n.fract() == 0.0 && n.abs() <= EXACT {
                // Whole and exact in an i64.
                #[allow(clippy::cast_possible_truncation)]
                serde_json::Value::from(n as i64)
            } else {
                serde_json::Number::from_f64(n)
                    .map(serde_json::Value::Number)
                    .ok_or_else(|| NotJson(path.to_owned()))?
            }
        }
        Some(Kind::StructValue(s)) => {
            let mut object = serde_json::Map::with_capacity(s.fields.len());
            for (key, value) in s.fields {
                let inner = value_to_json(value, &format!("{path}.{key}"))?;
                object.insert(key, inner);
            }
            serde_json::Value::Object(object)
        }
        Some(Kind::ListValue(list)) => serde_json::Value::Array(
            list.values
                .into_iter()
                .enumerate()
                .map(|(i, v)| value_to_json(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// Reads a `google.protobuf.Struct` as a JSON object (see
/// [`value_to_json`]).
pub fn struct_to_json(
    value: prost_types::Struct,
) -> Result<serde_json::Map<String, serde_json::Value>, NotJson> {
    let mut object = serde_json::Map::with_capacity(value.fields.len());
    for (key, value) in value.fields {
        let inner = value_to_json(value, &key)?;
        object.insert(key, inner);
    }
    Ok(object)
}

/// Writes JSON as a `google.protobuf.Value`.
pub fn json_to_value(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(object) => Kind::StructValue(json_to_struct(object)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// Writes a JSON object as a `google.protobuf.Struct`.
pub fn json_to_struct(object: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: object
            .iter()
            .map(|(key, value)| (key.clone(), json_to_value(value)))
            .collect(),
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;

    #[test]
    fn structs_and_json_round_trip_with_whole_numbers_kept_whole() {
        let json = serde_json::json!({
            "name": "Kaju Katli", "stock": 120, "price": 12.5, "tags": ["sweet", null],
            "nested": {"ok": true}
        });
        let object = json.as_object().cloned().unwrap_or_default();
        let back = struct_to_json(json_to_struct(&object)).unwrap_or_default();
        assert_eq!(serde_json::Value::Object(back), json);
        let nan = prost_types::Struct {
            fields: [(
                "x".to_owned(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::NumberValue(f64::NAN)),
                },
            )]
            .into(),
        };
        assert_eq!(struct_to_json(nan), Err(NotJson("x".into())));
    }
}
