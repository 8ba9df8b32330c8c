//! Where events go: targets (a system's endpoint) and configurations (which
//! target receives which entity type from which source, how, and with what
//! field mapping and conflict strategy).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{
    conflict::MergeRules,
    values::{EntityType, System, TargetName, ValueError},
};

/// The shortest signing secret accepted.
pub const MIN_SECRET: usize = 16;
/// The default and largest delivery timeout, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: i32 = 5_000;
/// The largest delivery timeout, in milliseconds.
pub const MAX_TIMEOUT_MS: i32 = 60_000;
/// The default number of attempts before a dead letter.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 8;
/// The largest number of attempts.
pub const MAX_ATTEMPTS: i32 = 50;

/// How a target is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// Signed JSON posts to an HTTP endpoint.
    Webhook,
    /// Calls of `harsha.sync.v1.SyncSinkService.Apply`.
    Grpc,
}

impl TargetKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Grpc => "grpc",
        }
    }

    /// The kind stored as `value`.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        match value {
            "webhook" => Ok(Self::Webhook),
            "grpc" => Ok(Self::Grpc),
            other => Err(ValueError(format!("unknown target kind {other:?}"))),
        }
    }
}

/// Checks a webhook URL: absolute `http://` with a host. (HTTPS targets
/// need the mesh's TLS support and are refused until it lands.)
pub fn check_url(url: &str) -> Result<(), ValueError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| ValueError(format!("{url:?} is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(ValueError(
                "https:// targets are not supported yet; use http:// (inside the cluster) until TLS support lands".into(),
            ));
        }
        _ => return Err(ValueError(format!("{url:?} must start with http://"))),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(ValueError(format!("{url:?} has no host")));
    }
    Ok(())
}

/// Checks a signing secret.
pub fn check_secret(secret: &str) -> Result<(), ValueError> {
    if secret.chars().count() < MIN_SECRET {
        Err(ValueError(format!(
            "a secret of at least {MIN_SECRET} characters is required"
        )))
    } else {
        Ok(())
    }
}

/// Checks a delivery timeout in milliseconds.
pub fn check_timeout(timeout_ms: i32) -> Result<(), ValueError> {
    if (1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        Ok(())
    } else {
        Err(ValueError(format!(
            "{timeout_ms} is not between 1 and {MAX_TIMEOUT_MS} milliseconds"
        )))
    }
}

/// Checks an attempt limit.
pub fn check_attempts(max_attempts: i32) -> Result<(), ValueError> {
    if (1..=MAX_ATTEMPTS).contains(&max_attempts) {
        Ok(())
    } else {
        Err(ValueError(format!(
            "{max_attempts} is not between 1 and {MAX_ATTEMPTS}"
        )))
    }
}

/// A target to register (validated).
#[derive(Debug, Clone)]
pub struct NewTarget {
    /// Its name.
    pub name: TargetName,
    /// The system it belongs to.
    pub system: System,
    /// How it is reached.
    pub kind: TargetKind,
    /// Its URL.
    pub url: String,
    /// The signing key.
    pub secret: String,
    /// Per-delivery timeout.
    pub timeout_ms: i32,
    /// Attempts before a dead letter.
    pub max_attempts: i32,
    /// Whether deliveries are made.
    pub enabled: bool,
}

/// A stored target.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Its name.
    pub name: String,
    /// The system it belongs to.
    pub system: System,
    /// How it is reached.
    pub kind: TargetKind,
    /// Its URL.
    pub url: String,
    /// The signing key (never sent to callers).
    pub secret: String,
    /// Per-delivery timeout.
    pub timeout_ms: i32,
    /// Attempts before a dead letter.
    pub max_attempts: i32,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Changes to a target (validated); `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct TargetPatch {
    /// New system.
    pub system: Option<System>,
    /// New kind.
    pub kind: Option<TargetKind>,
    /// New URL.
    pub url: Option<String>,
    /// New secret.
    pub secret: Option<String>,
    /// New timeout.
    pub timeout_ms: Option<i32>,
    /// New attempt limit.
    pub max_attempts: Option<i32>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// Which sources a configuration routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFilter {
    /// Every system (`*`).
    Any,
    /// One system.
    Only(System),
}

impl SourceFilter {
    /// The stored form: `*` or the system's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "*",
            Self::Only(system) => system.as_str(),
        }
    }

    /// The filter written `value`.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        if value == "*" {
            Ok(Self::Any)
        } else {
            System::parse(value)
                .map(Self::Only)
                .map_err(|e| ValueError(format!("{e} (or * for every system)")))
        }
    }
}

/// Real time or batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Delivered as recorded.
    Realtime,
    /// Left for batch runs.
    Batch,
}

impl SyncMode {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Realtime => "realtime",
            Self::Batch => "batch",
        }
    }

    /// The mode stored as `value`.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        match value {
            "realtime" => Ok(Self::Realtime),
            "batch" => Ok(Self::Batch),
            other => Err(ValueError(format!("unknown sync mode {other:?}"))),
        }
    }
}

/// How conflicts on a route are settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictStrategy {
    /// The source's version wins.
    SourceWins,
    /// The target's version stays.
    TargetWins,
    /// Non-conflicting fields merged, conflicting ones by a per-field rule.
    Merge,
    /// A named business rule decides.
    BusinessRule,
    /// A person decides.
    Manual,
}

impl ConflictStrategy {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SourceWins => "source_wins",
            Self::TargetWins => "target_wins",
            Self::Merge => "merge",
            Self::BusinessRule => "business_rule",
            Self::Manual => "manual",
        }
    }

    /// The strategy stored as `value`.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        match value {
            "source_wins" => Ok(Self::SourceWins),
            "target_wins" => Ok(Self::TargetWins),
            "merge" => Ok(Self::Merge),
            "business_rule" => Ok(Self::BusinessRule),
            "manual" => Ok(Self::Manual),
            other => Err(ValueError(format!("unknown conflict strategy {other:?}"))),
        }
    }
}

/// The named business rules a route may settle conflicts with.
pub const BUSINESS_RULES: &[&str] = &[
    "highest_stock_count_wins",
    "latest_erpnext_price_wins",
    "latest_change_wins",
];

/// Checks a strategy and its rule name go together.
pub fn check_rule(strategy: ConflictStrategy, rule: Option<&str>) -> Result<(), ValueError> {
    match (strategy, rule) {
        (ConflictStrategy::BusinessRule, Some(rule)) if BUSINESS_RULES.contains(&rule) => Ok(()),
        (ConflictStrategy::BusinessRule, Some(rule)) => Err(ValueError(format!(
            "unknown business rule {rule:?}: expected one of {}",
            BUSINESS_RULES.join(", ")
        ))),
        (ConflictStrategy::BusinessRule, None) => Err(ValueError(format!(
            "the business_rule strategy needs a rule: one of {}",
            BUSINESS_RULES.join(", ")
        ))),
        (_, Some(_)) => Err(ValueError(
            "a business rule is only used with the business_rule strategy".into(),
        )),
        (_, None) => Ok(()),
    }
}

/// Renames payload fields on the way to a target: source field → target
/// field; a field mapped to "" is left out; others pass unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldMapping(pub BTreeMap<String, String>);

impl FieldMapping {
    /// Checks every name is non-empty on the source side, and that no two
    /// fields land on the same target name.
    pub fn parse(mapping: BTreeMap<String, String>) -> Result<Self, ValueError> {
        let mut seen = std::collections::BTreeSet::new();
        for (from, to) in &mapping {
            if from.is_empty() {
                return Err(ValueError("a mapped field name is empty".into()));
            }
            if !to.is_empty() && !seen.insert(to.as_str()) {
                return Err(ValueError(format!("two fields are mapped to {to:?}")));
            }
        }
        Ok(Self(mapping))
    }

    /// The payload as the target sees it.
    pub fn apply(&self, payload: &Map<String, Value>) -> Map<String, Value> {
        if self.0.is_empty() {
            return payload.clone();
        }
        let mut out = Map::with_capacity(payload.len());
        for (field, value) in payload {
            match self.0.get(field) {
                Some(to) if to.is_empty() => {}
                Some(to) => {
                    out.insert(to.clone(), value.clone());
                }
                None => {
                    // A mapped field's new name wins over an unmapped field
                    // of the same name.
                    out.entry(field.clone()).or_insert_with(|| value.clone());
                }
            }
        }
        out
    }
}

/// A route to create (validated).
#[derive(Debug, Clone)]
pub struct NewConfiguration {
    /// The entity type routed.
    pub entity_type: EntityType,
    /// The sources routed.
    pub source: SourceFilter,
    /// The target.
    pub target: TargetName,
    /// Real time or batch.
    pub mode: SyncMode,
    /// How conflicts are settled.
    pub strategy: ConflictStrategy,
    /// The rule, for the business-rule strategy.
    pub business_rule: Option<String>,
    /// Field renames.
    pub mapping: FieldMapping,
    /// How a merge settles fields changed on both sides.
    pub merge_rules: MergeRules,
    /// Batch mode: minutes between scheduled runs (0: on demand only).
    pub batch_every_minutes: i32,
    /// Whether it is used.
    pub enabled: bool,
}

/// A stored route.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    /// Its id.
    pub id: String,
    /// The entity type routed.
    pub entity_type: String,
    /// The sources routed.
    pub source: SourceFilter,
    /// The target's name.
    pub target: String,
    /// Real time or batch.
    pub mode: SyncMode,
    /// How conflicts are settled.
    pub strategy: ConflictStrategy,
    /// The rule, for the business-rule strategy.
    pub business_rule: Option<String>,
    /// Field renames.
    pub mapping: FieldMapping,
    /// How a merge settles fields changed on both sides.
    pub merge_rules: MergeRules,
    /// Batch mode: minutes between scheduled runs (0: on demand only).
    pub batch_every_minutes: i32,
    /// Whether it is used.
    pub enabled: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Who last changed it.
    pub updated_by: String,
}

/// Changes to a route; `None` keeps a field. `business_rule: Some(None)`
/// clears the rule.
#[derive(Debug, Clone, Default)]
pub struct ConfigurationPatch {
    /// New mode.
    pub mode: Option<SyncMode>,
    /// New strategy.
    pub strategy: Option<ConflictStrategy>,
    /// New rule.
    pub business_rule: Option<Option<String>>,
    /// New mapping.
    pub mapping: Option<FieldMapping>,
    /// New merge rules.
    pub merge_rules: Option<MergeRules>,
    /// New batch schedule.
    pub batch_every_minutes: Option<i32>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_must_be_plain_http_with_a_host() {
        assert!(check_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(check_url("https://crm.example/hook").is_err());
        assert!(check_url("ftp://x/").is_err());
        assert!(check_url("/relative").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn field_mapping_renames_drops_and_passes_through() {
        let mapping = FieldMapping::parse(BTreeMap::from([
            ("customer_name".to_owned(), "name".to_owned()),
            ("internal_note".to_owned(), String::new()),
        ]))
        .unwrap_or_default();
        let payload = json!({"customer_name": "Ravi", "internal_note": "x", "territory": "Pune"});
        let mapped = mapping.apply(payload.as_object().unwrap_or(&Map::new()));
        assert_eq!(
            Value::Object(mapped),
            json!({"name": "Ravi", "territory": "Pune"})
        );
        assert!(
            FieldMapping::parse(BTreeMap::from([
                ("a".to_owned(), "x".to_owned()),
                ("b".to_owned(), "x".to_owned()),
            ]))
            .is_err()
        );
    }

    #[test]
    fn rules_go_with_the_business_rule_strategy_only() {
        assert!(check_rule(ConflictStrategy::BusinessRule, Some("latest_change_wins")).is_ok());
        assert!(check_rule(ConflictStrategy::BusinessRule, Some("coin_flip")).is_err());
        assert!(check_rule(ConflictStrategy::BusinessRule, None).is_err());
        assert!(check_rule(ConflictStrategy::Merge, Some("latest_change_wins")).is_err());
        assert!(check_rule(ConflictStrategy::Merge, None).is_ok());
        assert_eq!(SourceFilter::parse("*"), Ok(SourceFilter::Any));
        assert!(SourceFilter::parse("nowhere").is_err());
    }
}
