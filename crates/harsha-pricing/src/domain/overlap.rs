//! Which active rules a rule may apply alongside: reported when a rule is
//! saved, so a pricing manager sees a conflict before a customer does.
//!
//! Two rules overlap when some sale could match both: their items meet (the
//! same item, an item and a group it is in, a group and one of its
//! sub-groups, or either for all items), their validity dates, days, time
//! windows and festivals meet, and their segments, territories and channels
//! meet (an empty list meets everything). Overlapping rules with the same
//! priority that meet on the very same target (the same item, the same
//! group, or both on every item) tie, and the rule code decides between
//! them. It is a warning, so it errs towards reporting: time windows are
//! compared as clock times even for rules in different zones, festivals by
//! code, and quantity or amount ranges are not compared.

use std::collections::BTreeSet;

use chrono::NaiveTime;
use serde::Serialize;

use super::{Catalogue, Code, RuleSpec, Target, TimeWindow};

/// Another rule that may apply to the same sales.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overlap {
    /// The other rule.
    pub rule: Code,
    /// Whether the two tie (same priority, same kind of target).
    pub tie: bool,
    /// What they share, in words.
    pub explanation: String,
}

/// The rules among `others` (active ones, other than `rule` itself) that
/// overlap `rule`.
pub fn overlaps<'a>(
    rule: &RuleSpec,
    others: impl IntoIterator<Item = &'a RuleSpec>,
    catalogue: &Catalogue,
) -> Vec<Overlap> {
    others
        .into_iter()
        .filter(|other| other.active && other.code != rule.code)
        .filter_map(|other| overlap(rule, other, catalogue))
        .collect()
}

fn overlap(a: &RuleSpec, b: &RuleSpec, catalogue: &Catalogue) -> Option<Overlap> {
    let (items, same_target) = shared_items(a, b, catalogue)?;
    let dates_meet = a
        .schedule
        .valid_from
        .max(b.schedule.valid_from)
        .is_none_or(|start| match (a.schedule.valid_to, b.schedule.valid_to) {
            (Some(x), Some(y)) => start <= x.min(y),
            (Some(x), None) | (None, Some(x)) => start <= x,
            (None, None) => true,
        });
    let a_days: BTreeSet<_> = a
        .schedule
        .days
        .days()
        .into_iter()
        .map(|d| d.num_days_from_monday())
        .collect();
    let b_days: BTreeSet<_> = b
        .schedule
        .days
        .days()
        .into_iter()
        .map(|d| d.num_days_from_monday())
        .collect();
    let days_meet = a_days.is_empty() || b_days.is_empty() || !a_days.is_disjoint(&b_days);
    let windows_meet = match (a.schedule.time_window, b.schedule.time_window) {
        (Some(x), Some(y)) => windows_intersect(x, y),
        _ => true,
    };
    let festivals_meet = meet(&a.schedule.festivals, &b.schedule.festivals);
    let who_meets = meet(&a.conditions.segments, &b.conditions.segments)
        && meet(&a.conditions.territories, &b.conditions.territories)
        && meet(&a.conditions.channels, &b.conditions.channels);
    if !(dates_meet && days_meet && windows_meet && festivals_meet && who_meets) {
        return None;
    }
    let tie = a.priority == b.priority && same_target;
    let ranks = if tie {
        format!("same priority {}: a tie, decided by rule code", a.priority)
    } else {
        format!("priorities {} and {}", a.priority, b.priority)
    };
    let explanation = format!(
        "{} and {} both apply to {items}, on overlapping dates and times, to the same customers; {ranks}",
        a.code, b.code
    );
    Some(Overlap {
        rule: b.code.clone(),
        tie,
        explanation: explanation.replacen(
            b.code.as_str(),
            &format!("{} and {}", a.code, b.code),
            1,
        ),
    })
}

/// Whether two lists meet (an empty list meets everything).
fn meet<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.is_empty() || b.is_empty() || a.iter().any(|x| b.contains(x))
}

/// The minutes of the day a window covers, as one or two ranges.
fn minute_ranges(window: TimeWindow) -> Vec<(u32, u32)> {
    let minute = |t: NaiveTime| chrono::Timelike::num_seconds_from_midnight(&t) / 60;
    let (from, to) = (minute(window.from()), minute(window.to()));
    if window.crosses_midnight() {
        vec![(from, 24 * 60), (0, to)]
    } else {
        vec![(from, to)]
    }
}

fn windows_intersect(a: TimeWindow, b: TimeWindow) -> bool {
    minute_ranges(a).into_iter().any(|(s1, e1)| {
        minute_ranges(b)
            .into_iter()
            .any(|(s2, e2)| s1 < e2 && s2 < e1)
    })
}

/// What the two rules' targets have in common, in words, if anything, and
/// whether they meet on the very same target (so that the engine would rank
/// them alike).
fn shared_items(a: &RuleSpec, b: &RuleSpec, catalogue: &Catalogue) -> Option<(String, bool)> {
    match (a.targets.is_empty(), b.targets.is_empty()) {
        (true, true) => return Some(("every item".into(), true)),
        (true, false) => return Some((describe(&b.targets[0]), false)),
        (false, true) => return Some((describe(&a.targets[0]), false)),
        (false, false) => {}
    }
    if let Some(same) = a.targets.iter().find(|x| b.targets.contains(x)) {
        return Some((describe(same), true));
    }
    for x in &a.targets {
        for y in &b.targets {
            if targets_meet(x, y, catalogue) {
                return Some((describe(x), false));
            }
        }
    }
    None
}

fn describe(target: &Target) -> String {
    match target {
        Target::Item(item) => format!("item {item}"),
        Target::ItemGroup(group) => format!("item group {group}"),
    }
}

fn targets_meet(x: &Target, y: &Target, catalogue: &Catalogue) -> bool {
    match (x, y) {
        (Target::Item(a), Target::Item(b)) => a == b,
        (Target::Item(item), Target::ItemGroup(group))
        | (Target::ItemGroup(group), Target::Item(item)) => {
            catalogue.groups_of(item.as_str()).contains(&group.as_str())
        }
        (Target::ItemGroup(a), Target::ItemGroup(b)) => {
            a == b
                || catalogue.group_lineage(a.as_str()).contains(&b.as_str())
                || catalogue.group_lineage(b.as_str()).contains(&a.as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Conditions, Discount, DiscountKind, DocName, RuleDiscount, Schedule};

    fn rule(code: &str, priority: i32, targets: Vec<Target>) -> RuleSpec {
        RuleSpec {
            code: Code::parse(code).unwrap_or_else(|_| unreachable!()),
            rule_name: code.into(),
            description: String::new(),
            priority,
            active: true,
            schedule: Schedule::always(chrono_tz::Asia::Kolkata),
            conditions: Conditions::default(),
            targets,
            discount: RuleDiscount::Flat(
                Discount::new(DiscountKind::Percentage, rust_decimal::Decimal::ONE)
                    .unwrap_or_else(|_| unreachable!()),
            ),
            max_discount_per_line: None,
            exclusive: false,
            currency: "INR".into(),
        }
    }

    fn name(value: &str) -> DocName {
        DocName::parse(value).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn rules_on_related_items_overlap_and_equal_ranks_tie() {
        let mut catalogue = Catalogue::default();
        catalogue.add_group("Sweets", "");
        catalogue.add_group("Milk Sweets", "Sweets");
        catalogue.add_item("RASGULLA", "Milk Sweets");
        catalogue.add_item("LADDU", "Sweets");
        let new = rule("NEW", 10, vec![Target::ItemGroup(name("Sweets"))]);
        let same_group = rule("GROUP", 10, vec![Target::ItemGroup(name("Milk Sweets"))]);
        let item = rule("ITEM", 10, vec![Target::Item(name("RASGULLA"))]);
        let everything = rule("ALL", 5, Vec::new());
        let elsewhere = RuleSpec {
            conditions: Conditions {
                channels: vec![Code::parse("COUNTER").unwrap_or_else(|_| unreachable!())],
                ..Conditions::default()
            },
            ..rule("COUNTER-ONLY", 10, vec![Target::Item(name("LADDU"))])
        };
        let scoped_new = RuleSpec {
            conditions: Conditions {
                channels: vec![Code::parse("ECOMMERCE").unwrap_or_else(|_| unreachable!())],
                ..Conditions::default()
            },
            ..new.clone()
        };
        let found = overlaps(
            &scoped_new,
            [&same_group, &item, &everything, &elsewhere],
            &catalogue,
        );
        let summary: Vec<(&str, bool)> = found.iter().map(|o| (o.rule.as_str(), o.tie)).collect();
        // Sweets and Milk Sweets rank apart for an item (the nearer group
        // first), so they overlap without a tie; the same group would tie.
        assert_eq!(summary, [("GROUP", false), ("ITEM", false), ("ALL", false)]);
        let same_group = rule("SAME", 10, vec![Target::ItemGroup(name("Sweets"))]);
        let found = overlaps(&scoped_new, [&same_group], &catalogue);
        assert!(found[0].tie);
        assert!(found[0].explanation.contains("tie"));
        let night = |f: u32, t: u32| {
            TimeWindow::new(
                NaiveTime::from_hms_opt(f, 0, 0).unwrap_or_default(),
                NaiveTime::from_hms_opt(t, 0, 0).unwrap_or_default(),
            )
            .unwrap_or_else(|_| unreachable!())
        };
        assert!(windows_intersect(night(22, 2), night(1, 3)));
        assert!(!windows_intersect(night(22, 2), night(9, 17)));
    }
}
