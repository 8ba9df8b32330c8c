//! Conversions between the wire's calendar types (`google.type.Date`,
//! `google.protobuf.Timestamp`) and chrono's, shared by every service's `grpc`
//! module so that each validates dates the same way.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};

use crate::google::r#type::Date;

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
