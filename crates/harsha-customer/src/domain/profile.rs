//! A customer's resolved profile on a date: the rule that picks the
//! effective service level and price tier from the primary segment and the
//! primary territory.

use chrono::NaiveDate;
use serde::Serialize;

use super::{CoverageType, CustomerSegment, DocName, SegmentCode, ServiceLevel, TerritoryMapping};

/// The ERPNext customer fields the service reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Customer {
    /// The document name.
    pub name: DocName,
    /// Display name.
    pub customer_name: String,
    /// ERPNext customer group.
    pub customer_group: String,
    /// Whether ERPNext has disabled the customer.
    pub disabled: bool,
}

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ProfileSource {
    /// Nothing set it.
    Default,
    /// The primary segment.
    PrimarySegment,
    /// The primary territory mapping.
    PrimaryTerritory,
}

/// Everything known about a customer on one date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerProfile {
    /// The customer.
    pub customer: Customer,
    /// The date resolved for.
    pub as_of: NaiveDate,
    /// Segments in force, primary first.
    pub segments: Vec<CustomerSegment>,
    /// Territory mappings in force, primary first.
    pub territories: Vec<TerritoryMapping>,
    /// The effective service level.
    pub service_level: ServiceLevel,
    /// Where it came from.
    pub service_level_source: ProfileSource,
    /// The effective price tier; `None` for the standard tier.
    pub price_tier: Option<SegmentCode>,
    /// Where it came from.
    pub price_tier_source: ProfileSource,
}

impl CustomerProfile {
    /// Resolves the profile from what is in force on `as_of`:
    ///
    /// * service level: the higher of the primary segment's and the primary
    ///   territory's (the segment's on a tie); `Standard` when neither sets one;
    /// * price tier: the primary territory's if it sets one, else the primary
    ///   segment's; the standard tier otherwise.
    pub fn resolve(
        customer: Customer,
        as_of: NaiveDate,
        segments: Vec<CustomerSegment>,
        territories: Vec<TerritoryMapping>,
    ) -> Self {
        let primary_segment = segments
            .iter()
            .find(|s| s.assignment.is_primary)
            .map(|s| &s.segment);
        let primary_territory = territories
            .iter()
            .find(|t| t.coverage == CoverageType::Primary);

        let from_segment =
            primary_segment.map(|s| (s.service_level, ProfileSource::PrimarySegment));
        let from_territory = primary_territory
            .and_then(|t| t.service_level)
            .map(|level| (level, ProfileSource::PrimaryTerritory));
        let (service_level, service_level_source) = match (from_segment, from_territory) {
            (Some(segment), Some(territory)) if territory.0 > segment.0 => territory,
            (Some(segment), _) => segment,
            (None, Some(territory)) => territory,
            (None, None) => (ServiceLevel::Standard, ProfileSource::Default),
        };

        let (price_tier, price_tier_source) = primary_territory
            .and_then(|t| t.price_tier.clone())
            .map(|tier| (Some(tier), ProfileSource::PrimaryTerritory))
            .or_else(|| {
                primary_segment
                    .and_then(|s| s.price_tier.clone())
                    .map(|tier| (Some(tier), ProfileSource::PrimarySegment))
            })
            .unwrap_or((None, ProfileSource::Default));

        Self {
            customer,
            as_of,
            segments,
            territories,
            service_level,
            service_level_source,
            price_tier,
            price_tier_source,
        }
    }

    /// The primary segment in force, if any.
    pub fn primary(&self) -> Option<&CustomerSegment> {
        self.segments.iter().find(|s| s.assignment.is_primary)
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDateTime;

    use super::*;
    use crate::domain::{
        Assignment, AssignmentStatus, Description, EffectiveRange, Priority, Segment, SegmentName,
        SegmentStatus,
    };

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 26).unwrap_or_default()
    }

    fn customer() -> Customer {
        Customer {
            name: DocName::parse("CUST-1").unwrap_or_else(|_| unreachable!()),
            customer_name: "Sweet Corner".into(),
            customer_group: "Retail".into(),
            disabled: false,
        }
    }

    fn code(value: &str) -> SegmentCode {
        SegmentCode::parse(value).unwrap_or_else(|_| unreachable!())
    }

    fn member(
        segment: &str,
        primary: bool,
        level: ServiceLevel,
        tier: Option<&str>,
    ) -> CustomerSegment {
        CustomerSegment {
            assignment: Assignment {
                id: format!("a-{segment}"),
                customer: customer().name,
                segment: code(segment),
                is_primary: primary,
                range: EffectiveRange::stored(day(), None),
                status: AssignmentStatus::Active,
                created: NaiveDateTime::default(),
                modified: NaiveDateTime::default(),
            },
            segment: Segment {
                code: code(segment),
                segment_name: SegmentName::parse(segment).unwrap_or_else(|_| unreachable!()),
                description: Description::default(),
                status: SegmentStatus::Active,
                service_level: level,
                priority: Priority::default(),
                price_tier: tier.map(code),
                created: NaiveDateTime::default(),
                modified: NaiveDateTime::default(),
            },
        }
    }

    fn territory(
        coverage: CoverageType,
        level: Option<ServiceLevel>,
        tier: Option<&str>,
    ) -> TerritoryMapping {
        TerritoryMapping {
            id: "t".into(),
            customer: customer().name,
            territory: DocName::parse("Bengaluru").unwrap_or_else(|_| unreachable!()),
            coverage,
            range: EffectiveRange::stored(day(), None),
            price_tier: tier.map(code),
            service_level: level,
            status: AssignmentStatus::Active,
            created: NaiveDateTime::default(),
            modified: NaiveDateTime::default(),
        }
    }

    #[test]
    fn defaults_when_nothing_is_in_force() {
        let profile = CustomerProfile::resolve(customer(), day(), vec![], vec![]);
        assert_eq!(profile.service_level, ServiceLevel::Standard);
        assert_eq!(profile.service_level_source, ProfileSource::Default);
        assert_eq!(profile.price_tier, None);
        assert_eq!(profile.price_tier_source, ProfileSource::Default);
    }

    #[test]
    fn a_non_primary_segment_sets_nothing() {
        let profile = CustomerProfile::resolve(
            customer(),
            day(),
            vec![member(
                "FESTIVAL",
                false,
                ServiceLevel::Premium,
                Some("GIFTING"),
            )],
            vec![],
        );
        assert_eq!(profile.service_level_source, ProfileSource::Default);
        assert_eq!(profile.price_tier, None);
    }

    #[test]
    fn the_primary_territory_tier_overrides_the_segment_and_the_higher_level_wins() {
        let profile = CustomerProfile::resolve(
            customer(),
            day(),
            vec![member(
                "WHOLESALE",
                true,
                ServiceLevel::Priority,
                Some("WHOLESALE"),
            )],
            vec![territory(
                CoverageType::Primary,
                Some(ServiceLevel::Standard),
                Some("METRO"),
            )],
        );
        assert_eq!(profile.price_tier, Some(code("METRO")));
        assert_eq!(profile.price_tier_source, ProfileSource::PrimaryTerritory);
        assert_eq!(profile.service_level, ServiceLevel::Priority);
        assert_eq!(profile.service_level_source, ProfileSource::PrimarySegment);

        let profile = CustomerProfile::resolve(
            customer(),
            day(),
            vec![member(
                "RETAIL",
                true,
                ServiceLevel::Standard,
                Some("RETAIL"),
            )],
            vec![
                territory(
                    CoverageType::Secondary,
                    Some(ServiceLevel::Premium),
                    Some("UPCOUNTRY"),
                ),
                territory(CoverageType::Primary, Some(ServiceLevel::Premium), None),
            ],
        );
        assert_eq!(profile.service_level, ServiceLevel::Premium);
        assert_eq!(
            profile.service_level_source,
            ProfileSource::PrimaryTerritory
        );
        assert_eq!(profile.price_tier, Some(code("RETAIL")));
        assert_eq!(profile.price_tier_source, ProfileSource::PrimarySegment);
    }
}
