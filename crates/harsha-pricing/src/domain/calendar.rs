//! When a rule applies: validity dates, days of the week, a local time
//! window (which may cross midnight) in a named time zone, and festival or
//! season windows. Everything is judged in the rule's time zone, so a rule
//! in a zone with daylight saving follows the wall clock there.
//!
//! A window that crosses midnight (22:00–02:00) belongs to the day it
//! starts: at 01:00 on a Saturday, a Friday 22:00–02:00 window is open, and
//! the rule's validity dates, days and festivals are judged on the Friday.
//!
//! Local times follow the zone's wall clock through daylight-saving
//! changes: a window inside the hour skipped in spring does not open that
//! day, and one inside the hour repeated in autumn is open in both.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use harsha_types::{Code, ValueError};
use serde::Serialize;

/// A set of weekdays; empty means every day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DaySet(u8);

impl DaySet {
    /// Every day.
    pub fn every_day() -> Self {
        Self(0)
    }

    /// The given days.
    pub fn of(days: impl IntoIterator<Item = Weekday>) -> Self {
        Self(
            days.into_iter()
                .fold(0, |bits, day| bits | 1 << day.num_days_from_monday()),
        )
    }

    /// Whether `day` is in the set (always, for an empty set).
    pub fn contains(self, day: Weekday) -> bool {
        self.0 == 0 || self.0 & (1 << day.num_days_from_monday()) != 0
    }

    /// The days, Monday first (empty for every day).
    pub fn days(self) -> Vec<Weekday> {
        (0..7)
            .filter(|i| self.0 & (1 << i) != 0)
            .filter_map(|i| Weekday::try_from(i).ok())
            .collect()
    }

    /// The stored form: `Mon,Tue,…` (empty for every day).
    pub fn to_stored(self) -> String {
        self.days()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses the stored form.
    pub fn from_stored(value: &str) -> Result<Self, ValueError> {
        value
            .split(',')
            .filter(|d| !d.is_empty())
            .map(|d| {
                d.parse::<Weekday>()
                    .map_err(|_| ValueError(format!("{d:?} is not a day of the week")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self::of)
    }
}

/// A daily local time window `[from, to)`; when `from > to` it crosses
/// midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimeWindow {
    from: NaiveTime,
    to: NaiveTime,
}

impl TimeWindow {
    /// A window; equal ends are refused (say "no window" instead).
    pub fn new(from: NaiveTime, to: NaiveTime) -> Result<Self, ValueError> {
        if from == to {
            return Err(ValueError(format!(
                "the window starts and ends at {from}; leave it out to mean all day"
            )));
        }
        Ok(Self { from, to })
    }

    /// The start.
    pub fn from(self) -> NaiveTime {
        self.from
    }

    /// The end (exclusive).
    pub fn to(self) -> NaiveTime {
        self.to
    }

    /// Whether the window crosses midnight.
    pub fn crosses_midnight(self) -> bool {
        self.from > self.to
    }

    /// Whether local time `time` is inside, and if so whether it is in the
    /// part after midnight of a window that started the day before.
    fn position(self, time: NaiveTime) -> Option<bool> {
        if self.crosses_midnight() {
            if time >= self.from {
                Some(false)
            } else if time < self.to {
                Some(true)
            } else {
                None
            }
        } else {
            (self.from <= time && time < self.to).then_some(false)
        }
    }
}

/// Named date windows (festivals and seasons), each a list of inclusive
/// date ranges, year by year.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FestivalCalendar {
    windows: BTreeMap<Code, Vec<(NaiveDate, NaiveDate)>>,
}

impl FestivalCalendar {
    /// Adds a window of a festival.
    pub fn add(&mut self, festival: Code, start: NaiveDate, end: NaiveDate) {
        self.windows.entry(festival).or_default().push((start, end));
    }

    /// Whether `date` falls in a window of `festival`.
    pub fn contains(&self, festival: &Code, date: NaiveDate) -> bool {
        self.windows
            .get(festival)
            .is_some_and(|ranges| ranges.iter().any(|(s, e)| *s <= date && date <= *e))
    }

    /// Whether the festival has any window.
    pub fn knows(&self, festival: &Code) -> bool {
        self.windows.contains_key(festival)
    }
}

/// Why a rule's calendar does not match an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum CalendarMiss {
    /// Before `valid_from` or after `valid_to`.
    OutsideValidity,
    /// Not one of the rule's days.
    WrongDay,
    /// Outside the daily time window.
    OutsideTimeWindow,
    /// Not in any of the rule's festival or season windows.
    OutsideFestival,
}

/// When a rule applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// First day in force (local), inclusive.
    pub valid_from: Option<NaiveDate>,
    /// Last day in force (local), inclusive.
    pub valid_to: Option<NaiveDate>,
    /// Days of the week.
    pub days: DaySet,
    /// Daily time window.
    pub time_window: Option<TimeWindow>,
    /// The zone the dates, days and times are read in.
    #[serde(serialize_with = "serialize_zone")]
    pub time_zone: Tz,
    /// Festival or season windows (any of them); empty for none.
    pub festivals: Vec<Code>,
}

fn serialize_zone<S: serde::Serializer>(zone: &Tz, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(zone.name())
}

impl Schedule {
    /// A schedule that is always in force, in `time_zone`.
    pub fn always(time_zone: Tz) -> Self {
        Self {
            valid_from: None,
            valid_to: None,
            days: DaySet::every_day(),
            time_window: None,
            time_zone,
            festivals: Vec::new(),
        }
    }

    /// Checks that `valid_to` is not before `valid_from`.
    pub fn validate(self) -> Result<Self, (&'static str, ValueError)> {
        if let (Some(from), Some(to)) = (self.valid_from, self.valid_to)
            && to < from
        {
            return Err((
                "valid_to",
                ValueError(format!("{to} is before valid_from {from}")),
            ));
        }
        Ok(self)
    }

    /// Whether the schedule is in force at `at`, or the first reason it is
    /// not.
    pub fn check(
        &self,
        at: DateTime<Utc>,
        festivals: &FestivalCalendar,
    ) -> Result<(), CalendarMiss> {
        let local = at.with_timezone(&self.time_zone).naive_local();
        // The day a window belongs to is the day it started: validity,
        // weekday and festival are all judged on that day.
        let mut day = local.date();
        let mut outside_window = false;
        if let Some(window) = self.time_window {
            match window.position(local.time()) {
                None => outside_window = true,
                Some(true) => day = day.checked_sub_days(Days::new(1)).unwrap_or(day),
                Some(false) => {}
            }
        }
        if self.valid_from.is_some_and(|from| day < from)
            || self.valid_to.is_some_and(|to| day > to)
        {
            return Err(CalendarMiss::OutsideValidity);
        }
        if outside_window {
            return Err(CalendarMiss::OutsideTimeWindow);
        }
        if !self.days.contains(day.weekday()) {
            return Err(CalendarMiss::WrongDay);
        }
        if !self.festivals.is_empty() && !self.festivals.iter().any(|f| festivals.contains(f, day))
        {
            return Err(CalendarMiss::OutsideFestival);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn time(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default()
    }

    fn kolkata(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Kolkata
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn a_window_across_midnight_is_open_at_23_59_and_00_01_and_belongs_to_its_start_day() {
        let schedule = Schedule {
            days: DaySet::of([Weekday::Fri]),
            time_window: TimeWindow::new(time(22, 0), time(2, 0)).ok(),
            ..Schedule::always(chrono_tz::Asia::Kolkata)
        };
        let none = FestivalCalendar::default();
        // 2026-11-27 is a Friday.
        assert_eq!(schedule.check(kolkata(2026, 11, 27, 23, 59), &none), Ok(()));
        assert_eq!(
            schedule.check(kolkata(2026, 11, 28, 0, 1), &none),
            Ok(()),
            "Saturday 00:01 is Friday night"
        );
        assert_eq!(
            schedule.check(kolkata(2026, 11, 28, 2, 0), &none),
            Err(CalendarMiss::OutsideTimeWindow)
        );
        assert_eq!(
            schedule.check(kolkata(2026, 11, 27, 21, 59), &none),
            Err(CalendarMiss::OutsideTimeWindow)
        );
        assert_eq!(
            schedule.check(kolkata(2026, 11, 28, 23, 0), &none),
            Err(CalendarMiss::WrongDay)
        );
        assert!(TimeWindow::new(time(9, 0), time(9, 0)).is_err());
    }

    #[test]
    fn a_zone_with_daylight_saving_follows_its_wall_clock() {
        // 09:00–10:00 in London: 09:30 local is 08:30 UTC in summer and
        // 09:30 UTC in winter (clocks went back on 2026-10-25).
        let schedule = Schedule {
            time_window: TimeWindow::new(time(9, 0), time(10, 0)).ok(),
            ..Schedule::always(chrono_tz::Europe::London)
        };
        let none = FestivalCalendar::default();
        let utc = |d: u32, h: u32, m: u32| {
            Utc.with_ymd_and_hms(2026, 10, d, h, m, 0)
                .single()
                .unwrap_or_default()
        };
        assert_eq!(
            schedule.check(utc(24, 8, 30), &none),
            Ok(()),
            "Saturday before the change, BST"
        );
        assert_eq!(
            schedule.check(utc(24, 9, 30), &none),
            Err(CalendarMiss::OutsideTimeWindow)
        );
        assert_eq!(
            schedule.check(utc(26, 9, 30), &none),
            Ok(()),
            "Monday after the change, GMT"
        );
        assert_eq!(
            schedule.check(utc(26, 8, 30), &none),
            Err(CalendarMiss::OutsideTimeWindow)
        );
    }

    #[test]
    fn festival_windows_include_their_first_and_last_day() {
        let diwali = Code::parse("DIWALI").unwrap_or_else(|_| unreachable!());
        let mut calendar = FestivalCalendar::default();
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap_or_default();
        calendar.add(diwali.clone(), day(6), day(10));
        let schedule = Schedule {
            festivals: vec![diwali],
            ..Schedule::always(chrono_tz::Asia::Kolkata)
        };
        assert_eq!(
            schedule.check(kolkata(2026, 11, 5, 23, 59), &calendar),
            Err(CalendarMiss::OutsideFestival)
        );
        assert_eq!(
            schedule.check(kolkata(2026, 11, 6, 0, 0), &calendar),
            Ok(())
        );
        assert_eq!(
            schedule.check(kolkata(2026, 11, 10, 23, 59), &calendar),
            Ok(())
        );
        assert_eq!(
            schedule.check(kolkata(2026, 11, 11, 0, 0), &calendar),
            Err(CalendarMiss::OutsideFestival)
        );
    }

    #[test]
    fn validity_and_festivals_follow_the_night_a_window_belongs_to() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
        let new_year_eve = Schedule {
            valid_from: day(2026, 12, 31),
            valid_to: day(2026, 12, 31),
            time_window: TimeWindow::new(time(22, 0), time(2, 0)).ok(),
            ..Schedule::always(chrono_tz::Asia::Kolkata)
        };
        let none = FestivalCalendar::default();
        assert_eq!(
            new_year_eve.check(kolkata(2027, 1, 1, 0, 30), &none),
            Ok(()),
            "still New Year's Eve"
        );
        assert_eq!(
            new_year_eve.check(kolkata(2026, 12, 31, 0, 30), &none),
            Err(CalendarMiss::OutsideValidity),
            "the night before the first day"
        );
        let diwali = Code::parse("DIWALI").unwrap_or_else(|_| unreachable!());
        let mut calendar = FestivalCalendar::default();
        calendar.add(
            diwali.clone(),
            day(2026, 11, 6).unwrap_or_default(),
            day(2026, 11, 10).unwrap_or_default(),
        );
        let last_night = Schedule {
            festivals: vec![diwali],
            time_window: TimeWindow::new(time(20, 0), time(2, 0)).ok(),
            ..Schedule::always(chrono_tz::Asia::Kolkata)
        };
        assert_eq!(
            last_night.check(kolkata(2026, 11, 11, 1, 0), &calendar),
            Ok(())
        );
    }

    #[test]
    fn validity_is_inclusive_and_ordered() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 12, d);
        let schedule = Schedule {
            valid_from: day(1),
            valid_to: day(31),
            ..Schedule::always(chrono_tz::Asia::Kolkata)
        };
        let none = FestivalCalendar::default();
        assert_eq!(schedule.check(kolkata(2026, 12, 31, 23, 59), &none), Ok(()));
        assert_eq!(
            schedule.check(kolkata(2027, 1, 1, 0, 0), &none),
            Err(CalendarMiss::OutsideValidity)
        );
        let backwards = Schedule {
            valid_from: day(5),
            valid_to: day(4),
            ..Schedule::always(chrono_tz::UTC)
        };
        assert_eq!(backwards.validate().err().map(|e| e.0), Some("valid_to"));
        assert_eq!(
            DaySet::from_stored("Mon,Sat").map(DaySet::to_stored),
            Ok("Mon,Sat".into())
        );
    }
}
