//! Conflicts and how they are settled.
//!
//! An incoming change made on base version `b` conflicts when another
//! system has reported a version of the same entity newer than `b`: the
//! entity changed elsewhere since the base this change was made on (the
//! target changed it, or two sources changed it concurrently). Versions are
//! one counter per entity that every system advances from the version it
//! changed; a change that names no base (0) cannot be checked.
//!
//! The three sides of a conflict are the base (the entity at version `b`,
//! when the stream holds it), the source's change and the competing
//! change. Fields changed on one side only merge cleanly; fields changed on
//! both sides to different values are the conflicting ones.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{System, routing::ConflictStrategy, values::ValueError};

/// One side of a conflict: a system's version of the entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    /// The system that reported it.
    pub system: System,
    /// Its version.
    pub version: i64,
    /// The entity's fields.
    pub payload: Map<String, Value>,
    /// When the change happened.
    pub occurred_at: DateTime<Utc>,
}

/// Which side changed a field since the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangedIn {
    /// Neither.
    None,
    /// Only the source.
    Source,
    /// Only the competing change.
    Target,
    /// Both, to the same value.
    BothSame,
    /// Both, to different values: a conflicting field.
    Both,
}

/// One field in the three-way view.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldView {
    /// The field.
    pub field: String,
    /// Its value at the base (`None`: absent, or the base is unknown).
    pub base: Option<Value>,
    /// The source's value.
    pub source: Option<Value>,
    /// The competing value.
    pub target: Option<Value>,
    /// Who changed it.
    pub changed_in: ChangedIn,
}

/// The three-way view of every field any side has. Without a base, every
/// field whose values differ counts as changed on both sides.
pub fn three_way(
    base: Option<&Map<String, Value>>,
    source: &Map<String, Value>,
    target: &Map<String, Value>,
) -> Vec<FieldView> {
    let fields: BTreeSet<&String> = source
        .keys()
        .chain(target.keys())
        .chain(base.into_iter().flat_map(|b| b.keys()))
        .collect();
    fields
        .into_iter()
        .map(|field| {
            let base_value = base.and_then(|b| b.get(field)).cloned();
            let source_value = source.get(field).cloned();
            let target_value = target.get(field).cloned();
            let changed_in = match base {
                Some(_) => {
                    let source_changed = source_value != base_value;
                    let target_changed = target_value != base_value;
                    match (source_changed, target_changed) {
                        (false, false) => ChangedIn::None,
                        (true, false) => ChangedIn::Source,
                        (false, true) => ChangedIn::Target,
                        (true, true) if source_value == target_value => ChangedIn::BothSame,
                        (true, true) => ChangedIn::Both,
                    }
                }
                None if source_value == target_value => ChangedIn::None,
                None => ChangedIn::Both,
            };
            FieldView {
                field: field.clone(),
                base: base_value,
                source: source_value,
                target: target_value,
                changed_in,
            }
        })
        .collect()
}

/// The fields two sides changed to different values.
pub fn conflicting_fields(view: &[FieldView]) -> Vec<String> {
    view.iter()
        .filter(|f| f.changed_in == ChangedIn::Both)
        .map(|f| f.field.clone())
        .collect()
}

/// How a conflicting field is settled when merging: `source`, `target`,
/// `latest` (the newer change) or `manual` (a person decides). The rule
/// under `*` applies to fields without their own; with none, `manual`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeRules(pub BTreeMap<String, String>);

/// The per-field merge rules.
pub const MERGE_RULES: &[&str] = &["source", "target", "latest", "manual"];

impl MergeRules {
    /// Checks every rule is one of [`MERGE_RULES`].
    pub fn parse(rules: BTreeMap<String, String>) -> Result<Self, ValueError> {
        for (field, rule) in &rules {
            if field.is_empty() {
                return Err(ValueError("a merge rule names no field".into()));
            }
            if !MERGE_RULES.contains(&rule.as_str()) {
                return Err(ValueError(format!(
                    "{rule:?} (for {field:?}) is not a merge rule: expected one of {}",
                    MERGE_RULES.join(", ")
                )));
            }
        }
        Ok(Self(rules))
    }

    fn rule(&self, field: &str) -> &str {
        self.0
            .get(field)
            .or_else(|| self.0.get("*"))
            .map_or("manual", String::as_str)
    }
}

/// What to do with a conflicting change for one target.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Deliver the source's change as it is.
    Source,
    /// Keep the target's version: deliver nothing.
    Target,
    /// Deliver this merged entity.
    Merged(Map<String, Value>),
    /// A person decides; the entity waits for this target.
    Manual,
}

impl Decision {
    /// The stored name of the resolution.
    pub fn resolution(&self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Target => "target",
            Self::Merged(_) => "merged",
            Self::Manual => "manual",
        }
    }
}

/// Merges the sides field by field: one-sided changes as made, conflicting
/// fields by `rules`; `None` when a conflicting field's rule is `manual`.
pub fn merge(
    view: &[FieldView],
    rules: &MergeRules,
    source: &Side,
    target: &Side,
) -> Option<Map<String, Value>> {
    let mut merged = Map::new();
    for field in view {
        let value = match field.changed_in {
            ChangedIn::None | ChangedIn::Target => field.target.clone().or(field.base.clone()),
            ChangedIn::Source | ChangedIn::BothSame => field.source.clone(),
            ChangedIn::Both => match rules.rule(&field.field) {
                "source" => field.source.clone(),
                "target" => field.target.clone(),
                "latest" if source.occurred_at >= target.occurred_at => field.source.clone(),
                "latest" => field.target.clone(),
                _ => return None,
            },
        };
        if let Some(value) = value {
            merged.insert(field.field.clone(), value);
        }
    }
    Some(merged)
}

/// The stock-count fields `highest_stock_count_wins` compares, in order.
const STOCK_FIELDS: &[&str] = &["actual_qty", "stock_qty", "qty", "quantity"];

fn stock_count(payload: &Map<String, Value>, field: &str) -> Option<f64> {
    match payload.get(field)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Settles a conflict by a named business rule; `Manual` when the rule
/// cannot tell (e.g. no stock count on either side).
pub fn business_rule(rule: &str, source: &Side, target: &Side) -> Decision {
    match rule {
        "highest_stock_count_wins" => {
            let counts = STOCK_FIELDS.iter().find_map(|field| {
                Some((
                    stock_count(&source.payload, field)?,
                    stock_count(&target.payload, field)?,
                ))
            });
            match counts {
                Some((mine, theirs)) if mine >= theirs => Decision::Source,
                Some(_) => Decision::Target,
                None => Decision::Manual,
            }
        }
        "latest_erpnext_price_wins" => match (source.system, target.system) {
            (System::Erpnext, _) => Decision::Source,
            (_, System::Erpnext) => Decision::Target,
            _ => latest(source, target),
        },
        "latest_change_wins" => latest(source, target),
        _ => Decision::Manual,
    }
}

fn latest(source: &Side, target: &Side) -> Decision {
    if source.occurred_at >= target.occurred_at {
        Decision::Source
    } else {
        Decision::Target
    }
}

/// What a route's strategy decides for a conflict.
pub fn decide(
    strategy: ConflictStrategy,
    rule: Option<&str>,
    rules: &MergeRules,
    view: &[FieldView],
    source: &Side,
    target: &Side,
) -> Decision {
    match strategy {
        ConflictStrategy::SourceWins => Decision::Source,
        ConflictStrategy::TargetWins => Decision::Target,
        ConflictStrategy::Merge => {
            merge(view, rules, source, target).map_or(Decision::Manual, Decision::Merged)
        }
        ConflictStrategy::BusinessRule => business_rule(rule.unwrap_or_default(), source, target),
        ConflictStrategy::Manual => Decision::Manual,
    }
}

/// Where a conflict stands in the manual workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConflictStatus {
    /// Found; nobody is on it yet.
    Detected,
    /// Someone is on it.
    Assigned,
    /// Its assignee is reviewing it.
    InReview,
    /// Its assignee decided; waiting for validation by someone else.
    Resolved,
    /// A second person approved the resolution.
    Validated,
    /// Done: the entity's deliveries go on.
    Closed,
}

impl ConflictStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Detected => "detected",
            Self::Assigned => "assigned",
            Self::InReview => "in_review",
            Self::Resolved => "resolved",
            Self::Validated => "validated",
            Self::Closed => "closed",
        }
    }

    /// The status stored as `value`.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        match value {
            "detected" => Ok(Self::Detected),
            "assigned" => Ok(Self::Assigned),
            "in_review" => Ok(Self::InReview),
            "resolved" => Ok(Self::Resolved),
            "validated" => Ok(Self::Validated),
            "closed" => Ok(Self::Closed),
            other => Err(ValueError(format!("unknown conflict status {other:?}"))),
        }
    }
}

/// A step of the manual workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Give it to someone (again).
    Assign,
    /// The assignee starts reviewing.
    Review,
    /// The assignee decides.
    Resolve,
    /// A second person approves the decision.
    Approve,
    /// A second person sends the decision back for another review.
    Reject,
    /// Release the entity with the decision.
    Close,
}

impl Step {
    /// The stored name of the step.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assign => "assign",
            Self::Review => "review",
            Self::Resolve => "resolve",
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::Close => "close",
        }
    }

    /// The status after this step from `from`, or why it is not allowed.
    pub fn next(self, from: ConflictStatus) -> Result<ConflictStatus, String> {
        use ConflictStatus as S;
        let to = match (self, from) {
            (Self::Assign, S::Detected | S::Assigned | S::InReview) => S::Assigned,
            (Self::Review, S::Assigned) => S::InReview,
            (Self::Resolve, S::InReview) => S::Resolved,
            (Self::Approve, S::Resolved) => S::Validated,
            (Self::Reject, S::Resolved) => S::InReview,
            (Self::Close, S::Validated) => S::Closed,
            (step, from) => {
                let needs = match step {
                    Self::Assign => "detected, assigned or in review",
                    Self::Review => "assigned",
                    Self::Resolve => "in review",
                    Self::Approve | Self::Reject => "resolved",
                    Self::Close => "validated (resolved, then approved by a second person)",
                };
                return Err(format!(
                    "a conflict that is {} cannot {}: it must be {needs}",
                    from.as_str().replace('_', " "),
                    step.as_str()
                ));
            }
        };
        Ok(to)
    }
}

/// A person's pick for one field when resolving.
#[derive(Debug, Clone, PartialEq)]
pub enum Pick {
    /// The base value.
    Base,
    /// The source's value.
    Source,
    /// The competing value.
    Target,
    /// A value entered by the reviewer.
    Value(Value),
}

/// The entity a reviewer's picks make: picked fields as picked, the rest
/// merged as changed; every conflicting field must be picked.
pub fn resolve(
    view: &[FieldView],
    picks: &BTreeMap<String, Pick>,
) -> Result<Map<String, Value>, ValueError> {
    let known: BTreeSet<&str> = view.iter().map(|f| f.field.as_str()).collect();
    if let Some(unknown) = picks.keys().find(|field| !known.contains(field.as_str())) {
        return Err(ValueError(format!(
            "{unknown:?} is not a field of this entity"
        )));
    }
    let missing: Vec<&str> = view
        .iter()
        .filter(|f| f.changed_in == ChangedIn::Both && !picks.contains_key(&f.field))
        .map(|f| f.field.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(ValueError(format!(
            "every conflicting field needs a pick; missing: {}",
            missing.join(", ")
        )));
    }
    let mut resolved = Map::new();
    for field in view {
        let value = match picks.get(&field.field) {
            Some(Pick::Base) => field.base.clone(),
            Some(Pick::Source) => field.source.clone(),
            Some(Pick::Target) => field.target.clone(),
            Some(Pick::Value(value)) => Some(value.clone()),
            None => match field.changed_in {
                ChangedIn::Source | ChangedIn::BothSame | ChangedIn::Both => field.source.clone(),
                ChangedIn::None | ChangedIn::Target => field.target.clone().or(field.base.clone()),
            },
        };
        if let Some(value) = value {
            resolved.insert(field.field.clone(), value);
        }
    }
    Ok(resolved)
}

/// What settled a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The source's change went out.
    Source,
    /// The target's version stayed.
    Target,
    /// A merge went out.
    Merged,
    /// A person's resolution went out.
    Manual,
}

impl Resolution {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Target => "target",
            Self::Merged => "merged",
            Self::Manual => "manual",
        }
    }

    /// The resolution stored as `value`.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        match value {
            "source" => Ok(Self::Source),
            "target" => Ok(Self::Target),
            "merged" => Ok(Self::Merged),
            "manual" => Ok(Self::Manual),
            other => Err(ValueError(format!("unknown resolution {other:?}"))),
        }
    }
}

/// How long a conflict may stay open before it is reported as stale.
pub const STALE_AFTER: chrono::Duration = chrono::Duration::hours(24);

/// A stored conflict.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// Its id.
    pub id: String,
    /// The conflicting event.
    pub position: i64,
    /// The target it was on its way to.
    pub target: String,
    /// The route.
    pub configuration_id: String,
    /// The entity's type.
    pub entity_type: String,
    /// The entity's key.
    pub entity_key: String,
    /// Where the change came from.
    pub source_system: System,
    /// Whose newer version it conflicts with.
    pub competing_system: System,
    /// The version the change was made on.
    pub base_version: i64,
    /// The change's version.
    pub source_version: i64,
    /// The competing version.
    pub competing_version: i64,
    /// The entity at the base version, when known.
    pub base: Option<Map<String, Value>>,
    /// The source's entity.
    pub source: Map<String, Value>,
    /// The competing entity.
    pub competing: Map<String, Value>,
    /// The fields changed on both sides to different values.
    pub conflicting_fields: Vec<String>,
    /// The route's strategy at detection.
    pub strategy: ConflictStrategy,
    /// Whether the strategy settled it.
    pub auto_resolved: bool,
    /// What settled it.
    pub resolution: Option<Resolution>,
    /// The entity after resolution.
    pub resolved: Option<Map<String, Value>>,
    /// Where it stands.
    pub status: ConflictStatus,
    /// Who it is given to.
    pub assignee: Option<String>,
    /// When it should be settled by.
    pub due_at: Option<DateTime<Utc>>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// Who approved the resolution.
    pub validated_by: Option<String>,
    /// When it was detected.
    pub detected_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
}

impl Conflict {
    /// The three-way view of its fields.
    pub fn view(&self) -> Vec<FieldView> {
        three_way(self.base.as_ref(), &self.source, &self.competing)
    }

    /// Whether it is still open [`STALE_AFTER`] after detection.
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        self.status != ConflictStatus::Closed && now - self.detected_at > STALE_AFTER
    }
}

/// One step in a conflict's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// What (`detect`, `auto_resolve`, or a [`Step`]).
    pub step: String,
    /// The status before (none at detection).
    pub from: Option<ConflictStatus>,
    /// The status after.
    pub to: ConflictStatus,
    /// The actor's note.
    pub note: Option<String>,
}

/// A workflow request.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Give it to `assignee`, due at `due_at`.
    Assign {
        /// The person.
        assignee: String,
        /// When it should be settled by.
        due_at: DateTime<Utc>,
    },
    /// Start the review.
    Review,
    /// Decide with these picks.
    Resolve(BTreeMap<String, Pick>),
    /// Approve the decision.
    Approve,
    /// Send the decision back.
    Reject,
    /// Release the entity.
    Close,
}

impl Action {
    /// The workflow step this is.
    pub fn step(&self) -> Step {
        match self {
            Self::Assign { .. } => Step::Assign,
            Self::Review => Step::Review,
            Self::Resolve(_) => Step::Resolve,
            Self::Approve => Step::Approve,
            Self::Reject => Step::Reject,
            Self::Close => Step::Close,
        }
    }
}

/// Why a workflow step was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not allowed now, or not by this person.
    NotNow(String),
    /// The request itself is wrong (a field of it).
    Invalid(&'static str, String),
}

/// Takes a workflow step on `conflict` for `actor`: checks the transition
/// and who may take it (review and resolution are the assignee's; approval
/// is someone else's than the resolver's), applies it, and returns the
/// history entry.
pub fn apply(
    conflict: &mut Conflict,
    action: Action,
    actor: &str,
    note: Option<String>,
    now: DateTime<Utc>,
) -> Result<HistoryEntry, Refusal> {
    let step = action.step();
    let from = conflict.status;
    let to = step.next(from).map_err(Refusal::NotNow)?;
    let assignee = conflict.assignee.clone().unwrap_or_default();
    match action {
        Action::Assign { assignee, due_at } => {
            if assignee.trim().is_empty() {
                return Err(Refusal::Invalid(
                    "assignee",
                    "a login name is required".into(),
                ));
            }
            if due_at <= now {
                return Err(Refusal::Invalid("due_time", "must be in the future".into()));
            }
            conflict.assignee = Some(assignee);
            conflict.due_at = Some(due_at);
        }
        Action::Review => {
            if assignee != actor {
                return Err(Refusal::NotNow(format!(
                    "the conflict is assigned to {assignee:?}; only they may review it"
                )));
            }
        }
        Action::Resolve(picks) => {
            if assignee != actor {
                return Err(Refusal::NotNow(format!(
                    "the conflict is assigned to {assignee:?}; only they may resolve it"
                )));
            }
            let resolved =
                resolve(&conflict.view(), &picks).map_err(|e| Refusal::Invalid("choices", e.0))?;
            conflict.resolved = Some(resolved);
            conflict.resolution = Some(Resolution::Manual);
            conflict.resolved_by = Some(actor.to_owned());
        }
        Action::Approve => {
            if conflict.resolved_by.as_deref() == Some(actor) {
                return Err(Refusal::NotNow(
                    "a resolution is validated by someone other than the person who made it".into(),
                ));
            }
            conflict.validated_by = Some(actor.to_owned());
        }
        Action::Reject => {
            if conflict.resolved_by.as_deref() == Some(actor) {
                return Err(Refusal::NotNow(
                    "a resolution is validated by someone other than the person who made it".into(),
                ));
            }
            conflict.resolved = None;
            conflict.resolution = None;
            conflict.resolved_by = None;
        }
        Action::Close => conflict.closed_at = Some(now),
    }
    conflict.status = to;
    conflict.updated_at = now;
    Ok(HistoryEntry {
        at: now,
        actor: actor.to_owned(),
        step: step.as_str().to_owned(),
        from: Some(from),
        to,
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    fn side(system: System, version: i64, payload: Value, minute: u32) -> Side {
        Side {
            system,
            version,
            payload: object(payload),
            occurred_at: DateTime::parse_from_rfc3339(&format!("2026-12-01T10:{minute:02}:00Z"))
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
        }
    }

    /// The CRM renamed a customer and changed its phone while the
    /// e-commerce platform changed the phone differently and its email.
    fn customer() -> (Map<String, Value>, Side, Side) {
        let base = object(
            json!({"name": "Ravi Sweets", "phone": "100", "email": "r@x.in", "city": "Pune"}),
        );
        let source = side(
            System::Crm,
            6,
            json!({"name": "Ravi Sweets Pvt", "phone": "200", "email": "r@x.in", "city": "Pune"}),
            5,
        );
        let target = side(
            System::Ecommerce,
            6,
            json!({"name": "Ravi Sweets", "phone": "300", "email": "ravi@x.in", "city": "Pune"}),
            7,
        );
        (base, source, target)
    }

    #[test]
    fn the_three_way_view_tells_one_sided_from_conflicting_changes() {
        let (base, source, target) = customer();
        let view = three_way(Some(&base), &source.payload, &target.payload);
        let changed: Vec<(&str, ChangedIn)> = view
            .iter()
            .map(|f| (f.field.as_str(), f.changed_in))
            .collect();
        assert_eq!(
            changed,
            [
                ("city", ChangedIn::None),
                ("email", ChangedIn::Target),
                ("name", ChangedIn::Source),
                ("phone", ChangedIn::Both)
            ]
        );
        assert_eq!(conflicting_fields(&view), ["phone"]);
        // Without the base, every difference conflicts.
        let blind = three_way(None, &source.payload, &target.payload);
        assert_eq!(conflicting_fields(&blind), ["email", "name", "phone"]);
    }

    #[test]
    fn merge_takes_one_sided_changes_and_settles_the_rest_by_rule() {
        let (base, source, target) = customer();
        let view = three_way(Some(&base), &source.payload, &target.payload);
        let by = |rule: &str| MergeRules([("phone".to_owned(), rule.to_owned())].into());
        let merged = merge(&view, &by("target"), &source, &target);
        assert_eq!(
            merged.map(Value::Object),
            Some(
                json!({"name": "Ravi Sweets Pvt", "phone": "300", "email": "ravi@x.in", "city": "Pune"})
            )
        );
        // The competing change is newer (10:07 against 10:05).
        let latest = merge(&view, &by("latest"), &source, &target).unwrap_or_default();
        assert_eq!(latest["phone"], json!("300"));
        let default = MergeRules([("*".to_owned(), "source".to_owned())].into());
        assert_eq!(
            merge(&view, &default, &source, &target).unwrap_or_default()["phone"],
            json!("200")
        );
        assert_eq!(
            merge(&view, &MergeRules::default(), &source, &target),
            None,
            "manual by default"
        );
        assert_eq!(
            decide(
                ConflictStrategy::Merge,
                None,
                &MergeRules::default(),
                &view,
                &source,
                &target
            ),
            Decision::Manual
        );
        assert!(MergeRules::parse([("phone".to_owned(), "coin".to_owned())].into()).is_err());
    }

    #[test]
    fn business_rules_pick_a_side() {
        let stock = |system, qty: i64, minute| side(system, 2, json!({"actual_qty": qty}), minute);
        assert_eq!(
            business_rule(
                "highest_stock_count_wins",
                &stock(System::Warehouse, 120, 1),
                &stock(System::Erpnext, 80, 2)
            ),
            Decision::Source
        );
        assert_eq!(
            business_rule(
                "highest_stock_count_wins",
                &stock(System::Warehouse, 20, 1),
                &stock(System::Erpnext, 80, 2)
            ),
            Decision::Target
        );
        let no_count = side(System::Warehouse, 2, json!({"note": "x"}), 1);
        assert_eq!(
            business_rule("highest_stock_count_wins", &no_count, &no_count),
            Decision::Manual
        );
        let price = |system, minute| side(system, 2, json!({"price_list_rate": "450.00"}), minute);
        assert_eq!(
            business_rule(
                "latest_erpnext_price_wins",
                &price(System::Ecommerce, 9),
                &price(System::Erpnext, 1)
            ),
            Decision::Target,
            "ERPNext's price wins even when older"
        );
        assert_eq!(
            business_rule(
                "latest_erpnext_price_wins",
                &price(System::Erpnext, 1),
                &price(System::Crm, 9)
            ),
            Decision::Source
        );
        assert_eq!(
            business_rule(
                "latest_change_wins",
                &price(System::Crm, 1),
                &price(System::Mobile, 9)
            ),
            Decision::Target
        );
    }

    fn open_conflict() -> Conflict {
        let (base, source, target) = customer();
        let now = Utc::now();
        Conflict {
            id: "c1".into(),
            position: 9,
            target: "crm".into(),
            configuration_id: "r1".into(),
            entity_type: "Customer".into(),
            entity_key: "CUST-1".into(),
            source_system: source.system,
            competing_system: target.system,
            base_version: 5,
            source_version: 6,
            competing_version: 6,
            base: Some(base),
            conflicting_fields: vec!["phone".into()],
            source: source.payload,
            competing: target.payload,
            strategy: ConflictStrategy::Manual,
            auto_resolved: false,
            resolution: None,
            resolved: None,
            status: ConflictStatus::Detected,
            assignee: None,
            due_at: None,
            resolved_by: None,
            validated_by: None,
            detected_at: now,
            updated_at: now,
            closed_at: None,
        }
    }

    #[test]
    fn people_take_the_steps_that_are_theirs() {
        let now = Utc::now();
        let mut c = open_conflict();
        let later = now + chrono::Duration::hours(4);
        assert!(matches!(
            apply(
                &mut c,
                Action::Assign {
                    assignee: "asha".into(),
                    due_at: now
                },
                "lead",
                None,
                now
            ),
            Err(Refusal::Invalid("due_time", _))
        ));
        let entry = apply(
            &mut c,
            Action::Assign {
                assignee: "asha".into(),
                due_at: later,
            },
            "lead",
            Some("urgent".into()),
            now,
        );
        assert_eq!(
            entry.map(|e| (e.from, e.to, e.actor)),
            Ok((
                Some(ConflictStatus::Detected),
                ConflictStatus::Assigned,
                "lead".into()
            ))
        );
        assert!(matches!(
            apply(&mut c, Action::Review, "vikram", None, now),
            Err(Refusal::NotNow(_))
        ));
        assert!(apply(&mut c, Action::Review, "asha", None, now).is_ok());
        assert!(matches!(
            apply(&mut c, Action::Resolve(BTreeMap::new()), "asha", None, now),
            Err(Refusal::Invalid("choices", _))
        ));
        assert_eq!(
            c.status,
            ConflictStatus::InReview,
            "a refused step changes nothing"
        );
        let picks = [("phone".to_owned(), Pick::Target)].into();
        assert!(apply(&mut c, Action::Resolve(picks), "asha", None, now).is_ok());
        assert_eq!(
            c.resolved.as_ref().map(|r| r["phone"].clone()),
            Some(json!("300"))
        );
        assert!(
            matches!(
                apply(&mut c, Action::Approve, "asha", None, now),
                Err(Refusal::NotNow(_))
            ),
            "four eyes"
        );
        assert!(apply(&mut c, Action::Approve, "lead", None, now).is_ok());
        assert!(apply(&mut c, Action::Close, "lead", None, now).is_ok());
        assert_eq!(c.status, ConflictStatus::Closed);
        assert!(!c.is_stale(now + chrono::Duration::days(3)));
        let old = open_conflict();
        assert!(old.is_stale(now + chrono::Duration::hours(25)));
        assert!(!old.is_stale(now + chrono::Duration::hours(23)));
    }

    #[test]
    fn the_workflow_allows_only_its_own_order() {
        use ConflictStatus as S;
        let mut status = S::Detected;
        for step in [
            Step::Assign,
            Step::Review,
            Step::Resolve,
            Step::Reject,
            Step::Resolve,
            Step::Approve,
            Step::Close,
        ] {
            status = step.next(status).unwrap_or(status);
        }
        assert_eq!(status, S::Closed);
        let refused = Step::Close.next(S::InReview).err().unwrap_or_default();
        assert!(refused.contains("in review cannot close"), "{refused}");
        assert!(Step::Resolve.next(S::Assigned).is_err());
        assert!(Step::Review.next(S::Detected).is_err());
        assert!(Step::Assign.next(S::Closed).is_err());
        assert!(Step::Approve.next(S::Validated).is_err());
    }

    #[test]
    fn a_resolution_needs_every_conflicting_field_picked() {
        let (base, source, target) = customer();
        let view = three_way(Some(&base), &source.payload, &target.payload);
        assert!(resolve(&view, &BTreeMap::new()).is_err());
        assert!(resolve(&view, &[("colour".to_owned(), Pick::Source)].into()).is_err());
        let resolved = resolve(
            &view,
            &[("phone".to_owned(), Pick::Value(json!("999")))].into(),
        )
        .unwrap_or_default();
        assert_eq!(
            Value::Object(resolved),
            json!({"name": "Ravi Sweets Pvt", "phone": "999", "email": "ravi@x.in", "city": "Pune"})
        );
        let kept = resolve(
            &view,
            &[
                ("phone".to_owned(), Pick::Base),
                ("name".to_owned(), Pick::Target),
            ]
            .into(),
        )
        .unwrap_or_default();
        assert_eq!(kept["phone"], json!("100"));
        assert_eq!(kept["name"], json!("Ravi Sweets"));
    }
}
