//! Effective-dated ranges and the replacement rule shared by segment
//! assignments and territory mappings.
//!
//! A range is half-open, `[from, to)`: `from` is the first day in force and
//! `to`, when set, the first day no longer in force. A new record effective
//! from `D` replaces the records it conflicts with (for a primary
//! assignment, every other primary; for any record, the customer's other
//! records of the same segment or territory) like this:
//!
//! * a conflicting record that started before `D` and is still in force on
//!   `D` is ended at `D`;
//! * a conflicting record that starts on `D` is superseded (ended at `D`, so
//!   it is never in force, and kept for history);
//! * a conflicting record that starts after `D` is left alone, and the new
//!   record's range is cut short to end where it begins.
//!
//! So after the change no two conflicting records are in force on the same
//! day, nothing is deleted, and no record's start is moved.

use chrono::NaiveDate;
use serde::Serialize;

use super::ValueError;

/// A half-open range of dates, `[from, to)`, open-ended when `to` is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EffectiveRange {
    from: NaiveDate,
    to: Option<NaiveDate>,
}

impl EffectiveRange {
    /// A range of at least one day: `to`, when set, must be after `from`.
    pub fn new(from: NaiveDate, to: Option<NaiveDate>) -> Result<Self, ValueError> {
        match to {
            Some(to) if to <= from => Err(ValueError(format!(
                "{to} is not after effective_from ({from})"
            ))),
            _ => Ok(Self { from, to }),
        }
    }

    /// A stored range, which may be empty (a superseded record's).
    pub fn stored(from: NaiveDate, to: Option<NaiveDate>) -> Self {
        Self { from, to }
    }

    /// The first day in force.
    pub fn from(&self) -> NaiveDate {
        self.from
    }

    /// The first day no longer in force, if any.
    pub fn to(&self) -> Option<NaiveDate> {
        self.to
    }

    /// Whether the range is in force on `day`.
    pub fn contains(&self, day: NaiveDate) -> bool {
        self.from <= day && self.to.is_none_or(|to| day < to)
    }

    /// Whether the range holds no day at all.
    pub fn is_empty(&self) -> bool {
        self.to.is_some_and(|to| to <= self.from)
    }

    /// Whether the two ranges share at least one day.
    pub fn overlaps(&self, other: &Self) -> bool {
        !self.is_empty()
            && !other.is_empty()
            && self.to.is_none_or(|to| other.from < to)
            && other.to.is_none_or(|to| self.from < to)
    }
}

/// What happens to one existing record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeChange {
    /// It ends at `effective_to` and stays active.
    End {
        /// The record's id.
        id: String,
        /// Its new end.
        effective_to: NaiveDate,
    },
    /// It never takes effect: ended at its own start and marked superseded.
    Supersede {
        /// The record's id.
        id: String,
        /// Its start, which becomes its end.
        effective_to: NaiveDate,
    },
}

/// The outcome of [`plan_replacement`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// The new record's range, possibly cut short.
    pub range: EffectiveRange,
    /// Changes to existing records, in the order given.
    pub changes: Vec<RangeChange>,
}

/// Plans how a new record over `requested` replaces the active records it
/// conflicts with (given as id and range), per the module's rule.
pub fn plan_replacement<'a>(
    requested: EffectiveRange,
    conflicting: impl IntoIterator<Item = (&'a str, EffectiveRange)> + Clone,
) -> Replacement {
    let start = requested.from;
    let end = conflicting
        .clone()
        .into_iter()
        .filter(|(_, existing)| existing.from > start && existing.overlaps(&requested))
        .map(|(_, existing)| existing.from)
        .fold(requested.to, |end, next| {
            Some(end.map_or(next, |end| end.min(next)))
        });
    let range = EffectiveRange {
        from: start,
        to: end,
    };
    let changes = conflicting
        .into_iter()
        .filter(|(_, existing)| existing.overlaps(&range))
        .map(|(id, existing)| {
            if existing.from < start {
                RangeChange::End {
                    id: id.to_owned(),
                    effective_to: start,
                }
            } else {
                RangeChange::Supersede {
                    id: id.to_owned(),
                    effective_to: start,
                }
            }
        })
        .collect();
    Replacement { range, changes }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn day(n: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default()
            + chrono::Days::new(n.unsigned_abs())
    }

    fn range(from: i64, to: Option<i64>) -> EffectiveRange {
        EffectiveRange::stored(day(from), to.map(day))
    }

    #[test]
    fn a_range_needs_at_least_one_day() {
        assert!(EffectiveRange::new(day(3), Some(day(3))).is_err());
        assert!(EffectiveRange::new(day(3), Some(day(2))).is_err());
        assert!(EffectiveRange::new(day(3), Some(day(4))).is_ok());
        assert!(EffectiveRange::new(day(3), None).is_ok());
    }

    #[test]
    fn containment_is_half_open() {
        let r = range(10, Some(20));
        assert!(!r.contains(day(9)));
        assert!(r.contains(day(10)));
        assert!(r.contains(day(19)));
        assert!(!r.contains(day(20)));
        assert!(range(10, None).contains(day(10_000)));
    }

    #[test]
    fn ends_the_record_in_force_on_the_new_start() {
        let plan = plan_replacement(range(10, None), [("old", range(0, None))]);
        assert_eq!(plan.range, range(10, None));
        assert_eq!(
            plan.changes,
            vec![RangeChange::End {
                id: "old".into(),
                effective_to: day(10)
            }]
        );
    }

    #[test]
    fn supersedes_a_record_starting_the_same_day() {
        let plan = plan_replacement(range(10, None), [("same-day", range(10, None))]);
        assert_eq!(
            plan.changes,
            vec![RangeChange::Supersede {
                id: "same-day".into(),
                effective_to: day(10)
            }]
        );
    }

    #[test]
    fn stops_short_of_a_later_record_and_leaves_it_alone() {
        let plan = plan_replacement(
            range(10, None),
            [("old", range(0, Some(12))), ("future", range(30, None))],
        );
        assert_eq!(plan.range, range(10, Some(30)));
        assert_eq!(
            plan.changes,
            vec![RangeChange::End {
                id: "old".into(),
                effective_to: day(10)
            }]
        );
    }

    #[test]
    fn ignores_records_that_ended_before_or_start_after_the_range() {
        let plan = plan_replacement(
            range(10, Some(20)),
            [("past", range(0, Some(10))), ("later", range(20, None))],
        );
        assert_eq!(plan.range, range(10, Some(20)));
        assert!(plan.changes.is_empty());
    }

    proptest! {
        /// Whatever active, non-overlapping records exist, applying the plan
        /// leaves no two records in force on the same day, never moves a
        /// start, and never lengthens a record.
        #[test]
        fn replacement_leaves_no_overlap(
            starts in proptest::collection::btree_set(0i64..60, 0..6),
            open_last in any::<bool>(),
            new_from in 0i64..70,
            new_len in proptest::option::of(1i64..40),
        ) {
            let starts: Vec<i64> = starts.into_iter().collect();
            let existing: Vec<(String, EffectiveRange)> = starts
                .iter()
                .enumerate()
                .map(|(i, &from)| {
                    let to = starts.get(i + 1).copied().or(if open_last { None } else { Some(from + 5) });
                    (format!("r{i}"), range(from, to))
                })
                .collect();
            let requested = range(new_from, new_len.map(|len| new_from + len));
            let plan = plan_replacement(requested, existing.iter().map(|(id, r)| (id.as_str(), *r)));

            prop_assert_eq!(plan.range.from(), requested.from());
            prop_assert!(!plan.range.is_empty());
            let mut after: Vec<EffectiveRange> = existing
                .iter()
                .map(|(id, r)| {
                    plan.changes
                        .iter()
                        .find_map(|change| match change {
                            RangeChange::End { id: changed, effective_to }
                            | RangeChange::Supersede { id: changed, effective_to }
                                if changed == id =>
                            {
                                Some(EffectiveRange::stored(r.from(), Some(*effective_to)))
                            }
                            _ => None,
                        })
                        .unwrap_or(*r)
                })
                .collect();
            for (before, now) in existing.iter().map(|(_, r)| r).zip(&after) {
                prop_assert_eq!(before.from(), now.from());
                prop_assert!(now.to().is_some() || before.to().is_none());
                if let (Some(b), Some(n)) = (before.to(), now.to()) {
                    prop_assert!(n <= b);
                }
            }
            after.push(plan.range);
            for (i, a) in after.iter().enumerate() {
                for b in &after[i + 1..] {
                    prop_assert!(!a.overlaps(b), "{:?} overlaps {:?}", a, b);
                }
            }
        }
    }
}
