//! The `harsha.pricing.v1.PricingService` server: converts requests into
//! validated domain values (naming the field that is wrong), prices from
//! the rule cache, keeps quotes and applications in the store, and maps
//! [`PricingError`] to a gRPC status in one place.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use harsha_proto::{
    convert::{
        date_from_proto, date_to_proto, decimal_from_proto, decimal_to_proto, naive_utc_to_proto,
    },
    google::r#type::{Date, DayOfWeek, TimeOfDay},
    harsha::{
        pricing::v1::{self as pb, pricing_service_server::PricingService},
        r#type::v1::Decimal as WireDecimal,
    },
    metadata::actor_name,
};
use harsha_store::{page::page_size, status::store_status};
use rust_decimal::Decimal;
use tonic::{Code as StatusCode, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use uuid::Uuid;

use crate::{
    PricingError, PricingStore,
    cache::RuleCache,
    domain::{
        Actor, AppliedRule, CartRequest, Code, Conditions, DaySet, Discount, DiscountKind, DocName,
        LineRequest, Overlap, PricedCart, Quantity, QuoteError, Rule, RuleDiscount, RuleSpec,
        Schedule, SkipReason, SkippedRule, Specificity, Stacking, Target, Tier, TierBasis, Tiers,
        TimeWindow, overlaps,
    },
    profiles::CustomerProfiles,
    store::{Effectiveness, Festival, ItemPrice, QuoteStatus, RuleApplication, StoredQuote},
};

pub use harsha_proto::harsha::pricing::v1::pricing_service_server::PricingServiceServer;

/// The most lines a quote may have.
pub const MAX_QUOTE_LINES: usize = 500;

/// How the service behaves where the contract leaves it to configuration.
#[derive(Debug, Clone, Copy)]
pub struct PricingConfig {
    /// The business time zone (rules default to it; application dates use it).
    pub time_zone: Tz,
    /// How stackable rules combine.
    pub stacking: Stacking,
    /// How long a quote may be applied.
    pub quote_validity: Duration,
}

/// The store and the rule cache, once the database is ready.
pub struct Ready {
    /// The store.
    pub store: Arc<dyn PricingStore>,
    /// The rule cache.
    pub cache: Arc<RuleCache>,
}

/// Where [`Ready`] appears; until then every call answers `UNAVAILABLE`.
pub type ReadySlot = Arc<OnceLock<Ready>>;

/// The Pricing gRPC service.
#[derive(Clone)]
pub struct PricingGrpc {
    ready: ReadySlot,
    profiles: Arc<dyn CustomerProfiles>,
    config: PricingConfig,
}

impl PricingGrpc {
    /// A service reading its store and cache from `ready`, and customer
    /// profiles from `profiles`.
    pub fn new(
        ready: ReadySlot,
        profiles: Arc<dyn CustomerProfiles>,
        config: PricingConfig,
    ) -> Self {
        Self {
            ready,
            profiles,
            config,
        }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> PricingServiceServer<Self> {
        PricingServiceServer::new(self)
    }

    fn ready(&self) -> Result<&Ready, PricingError> {
        self.ready.get().ok_or(PricingError::NotReady)
    }

    fn today(&self) -> NaiveDate {
        Utc::now()
            .with_timezone(&self.config.time_zone)
            .date_naive()
    }

    /// Reloads the cache after a committed change; a failure is logged (the
    /// poll picks the change up), never reported as the change failing.
    async fn reload_after_change(&self) {
        if let Ok(ready) = self.ready()
            && let Err(error) = ready.cache.reload().await
        {
            tracing::warn!(error = %harsha_store::status::error_chain(&error), "rule cache reload after a change failed");
        }
    }

    /// Reloads the cache after a change, then the overlaps of `rule`.
    async fn overlaps_after_change(&self, rule: &Rule) -> Result<Vec<Overlap>, PricingError> {
        let ready = self.ready()?;
        // The change is committed: a failed reload must not report it as
        // failed. The poll picks the change up; overlaps use the book at hand.
        if let Err(error) = ready.cache.reload().await {
            tracing::warn!(error = %harsha_store::status::error_chain(&error), "rule cache reload after a change failed");
        }
        if !rule.spec.active {
            return Ok(Vec::new());
        }
        let book = ready.cache.current();
        Ok(overlaps(&rule.spec, book.rules(), book.catalogue()))
    }
}

/// Names a store's field error inside the request's `rule` message.
fn within_rule(error: PricingError) -> PricingError {
    match error {
        PricingError::InvalidArgument { field, reason } => PricingError::InvalidArgument {
            field: format!("rule.{field}"),
            reason,
        },
        other => other,
    }
}

fn actor<T>(request: &Request<T>) -> Actor {
    actor_name(request).map_or_else(Actor::system, Actor::named)
}

fn invalid(field: impl Into<String>) -> impl FnOnce(harsha_types::ValueError) -> PricingError {
    let field = field.into();
    move |error| PricingError::invalid(field, error)
}

fn code(value: &str, field: &str) -> Result<Code, PricingError> {
    Code::parse(value).map_err(invalid(field))
}

fn doc_name(value: &str, field: &str) -> Result<DocName, PricingError> {
    DocName::parse(value).map_err(invalid(field))
}

fn decimal(value: Option<&WireDecimal>, field: &str) -> Result<Option<Decimal>, PricingError> {
    value
        .filter(|v| !v.value.is_empty())
        .map(|v| decimal_from_proto(v).map_err(|e| PricingError::invalid(field, e)))
        .transpose()
}

fn date(value: Option<&Date>, field: &str) -> Result<Option<NaiveDate>, PricingError> {
    value
        .map(|d| date_from_proto(d).map_err(|e| PricingError::invalid(field, e)))
        .transpose()
}

fn required_date(value: Option<&Date>, field: &str) -> Result<NaiveDate, PricingError> {
    date(value, field)?.ok_or_else(|| PricingError::invalid(field, "is required"))
}

fn time(value: Option<&TimeOfDay>, field: &str) -> Result<Option<NaiveTime>, PricingError> {
    value
        .map(|t| {
            let part = |v: i32| u32::try_from(v).ok();
            part(t.hours)
                .zip(part(t.minutes))
                .zip(part(t.seconds))
                .and_then(|((h, m), s)| NaiveTime::from_hms_opt(h, m, s))
                .ok_or_else(|| {
                    PricingError::invalid(
                        field,
                        format!(
                            "{:02}:{:02}:{:02} is not a time of day",
                            t.hours, t.minutes, t.seconds
                        ),
                    )
                })
        })
        .transpose()
}

fn time_to_proto(value: NaiveTime) -> TimeOfDay {
    let seconds = chrono::Timelike::num_seconds_from_midnight(&value);
    let part = |v: u32| i32::try_from(v).unwrap_or_default();
    TimeOfDay {
        hours: part(seconds / 3600),
        minutes: part(seconds / 60 % 60),
        seconds: part(seconds % 60),
        nanos: 0,
    }
}

fn weekday_from(value: i32, field: &str) -> Result<Weekday, PricingError> {
    Ok(match DayOfWeek::try_from(value) {
        Ok(DayOfWeek::Monday) => Weekday::Mon,
        Ok(DayOfWeek::Tuesday) => Weekday::Tue,
        Ok(DayOfWeek::Wednesday) => Weekday::Wed,
        Ok(DayOfWeek::Thursday) => Weekday::Thu,
        Ok(DayOfWeek::Friday) => Weekday::Fri,
        Ok(DayOfWeek::Saturday) => Weekday::Sat,
        Ok(DayOfWeek::Sunday) => Weekday::Sun,
        Ok(DayOfWeek::Unspecified) | Err(_) => {
            return Err(PricingError::invalid(
                field,
                format!("{value} is not a day of the week"),
            ));
        }
    })
}

fn weekday_to(day: Weekday) -> DayOfWeek {
    match day {
        Weekday::Mon => DayOfWeek::Monday,
        Weekday::Tue => DayOfWeek::Tuesday,
        Weekday::Wed => DayOfWeek::Wednesday,
        Weekday::Thu => DayOfWeek::Thursday,
        Weekday::Fri => DayOfWeek::Friday,
        Weekday::Sat => DayOfWeek::Saturday,
        Weekday::Sun => DayOfWeek::Sunday,
    }
}

fn discount_from(value: Option<&pb::Discount>, field: &str) -> Result<Discount, PricingError> {
    let value = value.ok_or_else(|| PricingError::invalid(field, "is required"))?;
    let kind = match pb::DiscountKind::try_from(value.kind) {
        Ok(pb::DiscountKind::Percentage) => DiscountKind::Percentage,
        Ok(pb::DiscountKind::AmountOff) => DiscountKind::AmountOff,
        Ok(pb::DiscountKind::FixedPrice) => DiscountKind::FixedPrice,
        _ => {
            return Err(PricingError::invalid(
                format!("{field}.kind"),
                "is required",
            ));
        }
    };
    let amount = decimal(value.value.as_ref(), &format!("{field}.value"))?
        .ok_or_else(|| PricingError::invalid(format!("{field}.value"), "is required"))?;
    Discount::new(kind, amount).map_err(invalid(format!("{field}.value")))
}

fn discount_to(discount: Discount) -> pb::Discount {
    let kind = match discount.kind() {
        DiscountKind::Percentage => pb::DiscountKind::Percentage,
        DiscountKind::AmountOff => pb::DiscountKind::AmountOff,
        DiscountKind::FixedPrice => pb::DiscountKind::FixedPrice,
    };
    pb::Discount {
        kind: kind.into(),
        value: Some(decimal_to_proto(discount.value())),
    }
}

fn codes(values: &[String], field: &str) -> Result<Vec<Code>, PricingError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| code(v, &format!("{field}[{i}]")))
        .collect()
}

fn rule_from(rule: Option<pb::PricingRule>, default_zone: Tz) -> Result<RuleSpec, PricingError> {
    let rule = rule.ok_or_else(|| PricingError::invalid("rule", "is required"))?;
    let time_zone: Tz = if rule.time_zone.is_empty() {
        default_zone
    } else {
        rule.time_zone.parse().map_err(|_| {
            PricingError::invalid(
                "rule.time_zone",
                format!("{:?} is not an IANA time zone", rule.time_zone),
            )
        })?
    };
    let time_window = match (
        time(rule.window_start.as_ref(), "rule.window_start")?,
        time(rule.window_end.as_ref(), "rule.window_end")?,
    ) {
        (None, None) => None,
        (Some(from), Some(to)) => {
            Some(TimeWindow::new(from, to).map_err(invalid("rule.window_end"))?)
        }
        (Some(_), None) => {
            return Err(PricingError::invalid(
                "rule.window_end",
                "is required with window_start",
            ));
        }
        (None, Some(_)) => {
            return Err(PricingError::invalid(
                "rule.window_start",
                "is required with window_end",
            ));
        }
    };
    let days = rule
        .days_of_week
        .iter()
        .enumerate()
        .map(|(i, d)| weekday_from(*d, &format!("rule.days_of_week[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let targets = rule
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| match &t.target {
            Some(pb::rule_target::Target::ItemCode(item)) => {
                doc_name(item, &format!("rule.targets[{i}].item_code")).map(Target::Item)
            }
            Some(pb::rule_target::Target::ItemGroup(group)) => {
                doc_name(group, &format!("rule.targets[{i}].item_group")).map(Target::ItemGroup)
            }
            None => Err(PricingError::invalid(
                format!("rule.targets[{i}]"),
                "names neither an item nor an item group",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let discount = match pb::TierBasis::try_from(rule.tier_basis) {
        Ok(pb::TierBasis::Unspecified) => {
            if !rule.tiers.is_empty() {
                return Err(PricingError::invalid(
                    "rule.tier_basis",
                    "is required with tiers",
                ));
            }
            RuleDiscount::Flat(discount_from(rule.discount.as_ref(), "rule.discount")?)
        }
        Ok(basis) => {
            let basis = match basis {
                pb::TierBasis::Quantity => TierBasis::Quantity,
                pb::TierBasis::LineAmount => TierBasis::LineAmount,
                _ => TierBasis::CartAmount,
            };
            let tiers = rule
                .tiers
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    Ok(Tier {
                        min: decimal(t.min.as_ref(), &format!("rule.tiers[{i}].min"))?.ok_or_else(
                            || PricingError::invalid(format!("rule.tiers[{i}].min"), "is required"),
                        )?,
                        max: decimal(t.max.as_ref(), &format!("rule.tiers[{i}].max"))?,
                        discount: discount_from(
                            t.discount.as_ref(),
                            &format!("rule.tiers[{i}].discount"),
                        )?,
                    })
                })
                .collect::<Result<Vec<_>, PricingError>>()?;
            RuleDiscount::Tiered(
                Tiers::new(basis, tiers)
                    .map_err(|(i, e)| PricingError::invalid(format!("rule.tiers[{i}]"), e))?,
            )
        }
        Err(_) => {
            return Err(PricingError::invalid(
                "rule.tier_basis",
                format!("{} is not a tier basis", rule.tier_basis),
            ));
        }
    };
    let spec = RuleSpec {
        code: code(&rule.code, "rule.code")?,
        rule_name: rule.rule_name.trim().to_owned(),
        description: rule.description.trim().to_owned(),
        priority: rule.priority,
        active: true,
        schedule: Schedule {
            valid_from: date(rule.valid_from.as_ref(), "rule.valid_from")?,
            valid_to: date(rule.valid_to.as_ref(), "rule.valid_to")?,
            days: DaySet::of(days),
            time_window,
            time_zone,
            festivals: codes(&rule.festivals, "rule.festivals")?,
        },
        conditions: Conditions {
            segments: codes(&rule.customer_segments, "rule.customer_segments")?,
            territories: rule
                .territories
                .iter()
                .enumerate()
                .map(|(i, t)| doc_name(t, &format!("rule.territories[{i}]")))
                .collect::<Result<Vec<_>, _>>()?,
            channels: codes(&rule.channels, "rule.channels")?,
            min_qty: decimal(rule.min_qty.as_ref(), "rule.min_qty")?,
            max_qty: decimal(rule.max_qty.as_ref(), "rule.max_qty")?,
            min_amount: decimal(rule.min_amount.as_ref(), "rule.min_amount")?,
            max_amount: decimal(rule.max_amount.as_ref(), "rule.max_amount")?,
        },
        targets,
        discount,
        max_discount_per_line: decimal(
            rule.max_discount_per_line.as_ref(),
            "rule.max_discount_per_line",
        )?,
        exclusive: rule.exclusive,
        currency: if rule.currency.is_empty() {
            "INR".into()
        } else {
            rule.currency.clone()
        },
    };
    spec.validate()
        .map_err(|(field, error)| PricingError::invalid(format!("rule.{field}"), error))
}

fn rule_to_proto(rule: Rule) -> pb::PricingRule {
    let spec = rule.spec;
    let (discount, tier_basis, tiers) = match &spec.discount {
        RuleDiscount::Flat(d) => (
            Some(discount_to(*d)),
            pb::TierBasis::Unspecified,
            Vec::new(),
        ),
        RuleDiscount::Tiered(tiers) => (
            None,
            match tiers.basis() {
                TierBasis::Quantity => pb::TierBasis::Quantity,
                TierBasis::LineAmount => pb::TierBasis::LineAmount,
                TierBasis::CartAmount => pb::TierBasis::CartAmount,
            },
            tiers
                .tiers()
                .iter()
                .map(|t| pb::PricingTier {
                    min: Some(decimal_to_proto(t.min)),
                    max: t.max.map(decimal_to_proto),
                    discount: Some(discount_to(t.discount)),
                })
                .collect(),
        ),
    };
    let wire = |d: Option<Decimal>| d.map(decimal_to_proto);
    pb::PricingRule {
        code: spec.code.to_string(),
        rule_name: spec.rule_name,
        description: spec.description,
        priority: spec.priority,
        active: spec.active,
        valid_from: spec.schedule.valid_from.map(date_to_proto),
        valid_to: spec.schedule.valid_to.map(date_to_proto),
        days_of_week: spec
            .schedule
            .days
            .days()
            .into_iter()
            .map(|d| weekday_to(d).into())
            .collect(),
        window_start: spec.schedule.time_window.map(|w| time_to_proto(w.from())),
        window_end: spec.schedule.time_window.map(|w| time_to_proto(w.to())),
        time_zone: spec.schedule.time_zone.name().to_owned(),
        festivals: spec
            .schedule
            .festivals
            .iter()
            .map(Code::to_string)
            .collect(),
        customer_segments: spec
            .conditions
            .segments
            .iter()
            .map(Code::to_string)
            .collect(),
        territories: spec
            .conditions
            .territories
            .iter()
            .map(DocName::to_string)
            .collect(),
        channels: spec
            .conditions
            .channels
            .iter()
            .map(Code::to_string)
            .collect(),
        targets: spec
            .targets
            .iter()
            .map(|t| pb::RuleTarget {
                target: Some(match t {
                    Target::Item(item) => pb::rule_target::Target::ItemCode(item.to_string()),
                    Target::ItemGroup(group) => {
                        pb::rule_target::Target::ItemGroup(group.to_string())
                    }
                }),
            })
            .collect(),
        min_qty: wire(spec.conditions.min_qty),
        max_qty: wire(spec.conditions.max_qty),
        min_amount: wire(spec.conditions.min_amount),
        max_amount: wire(spec.conditions.max_amount),
        discount,
        tier_basis: tier_basis.into(),
        tiers,
        max_discount_per_line: wire(spec.max_discount_per_line),
        exclusive: spec.exclusive,
        currency: spec.currency,
        create_time: Some(naive_utc_to_proto(rule.created)),
        update_time: Some(naive_utc_to_proto(rule.modified)),
    }
}

fn overlaps_to_proto(overlaps: Vec<Overlap>) -> Vec<pb::RuleOverlap> {
    overlaps
        .into_iter()
        .map(|o| pb::RuleOverlap {
            rule_code: o.rule.to_string(),
            tie: o.tie,
            explanation: o.explanation,
        })
        .collect()
}

fn festival_to_proto(festival: Festival) -> pb::Festival {
    pb::Festival {
        festival_code: festival.code.to_string(),
        windows: festival
            .windows
            .into_iter()
            .map(|w| pb::FestivalWindow {
                window_id: w.id,
                start_date: Some(date_to_proto(w.start)),
                end_date: Some(date_to_proto(w.end)),
            })
            .collect(),
    }
}

fn price_to_proto(price: ItemPrice) -> pb::ItemPrice {
    pb::ItemPrice {
        item_code: price.item_code,
        price_list: price.price_list,
        rate: Some(decimal_to_proto(price.rate)),
        currency: price.currency,
        uom: price.uom,
    }
}

fn specificity_to(specificity: Specificity) -> pb::Specificity {
    match specificity {
        Specificity::AllItems => pb::Specificity::AllItems,
        Specificity::Group { .. } => pb::Specificity::ItemGroup,
        Specificity::Item => pb::Specificity::Item,
    }
}

fn skip_reason_to(reason: SkipReason) -> pb::SkipReason {
    match reason {
        SkipReason::CurrencyMismatch => pb::SkipReason::CurrencyMismatch,
        SkipReason::OutsideValidity => pb::SkipReason::OutsideValidity,
        SkipReason::WrongDay => pb::SkipReason::WrongDay,
        SkipReason::OutsideTimeWindow => pb::SkipReason::OutsideTimeWindow,
        SkipReason::OutsideFestival => pb::SkipReason::OutsideFestival,
        SkipReason::SegmentMismatch => pb::SkipReason::SegmentMismatch,
        SkipReason::TerritoryMismatch => pb::SkipReason::TerritoryMismatch,
        SkipReason::ChannelMismatch => pb::SkipReason::ChannelMismatch,
        SkipReason::BelowMinQty => pb::SkipReason::BelowMinQty,
        SkipReason::AboveMaxQty => pb::SkipReason::AboveMaxQty,
        SkipReason::BelowMinAmount => pb::SkipReason::BelowMinAmount,
        SkipReason::AboveMaxAmount => pb::SkipReason::AboveMaxAmount,
        SkipReason::NoTier => pb::SkipReason::NoTier,
        SkipReason::LostToExclusive => pb::SkipReason::LostToExclusive,
    }
}

fn skipped_to_proto(skipped: SkippedRule) -> pb::SkippedRule {
    pb::SkippedRule {
        rule_code: skipped.rule.to_string(),
        reason: skip_reason_to(skipped.reason).into(),
        lost_to: skipped.lost_to.map(|c| c.to_string()).unwrap_or_default(),
    }
}

fn applied_to_proto(applied: AppliedRule) -> pb::AppliedRule {
    pb::AppliedRule {
        rule_code: applied.rule.to_string(),
        rule_name: applied.rule_name,
        priority: applied.priority,
        specificity: specificity_to(applied.specificity).into(),
        discount: Some(discount_to(applied.discount)),
        tier_min: applied.tier_min.map(decimal_to_proto),
        unit_discount: Some(decimal_to_proto(applied.unit_discount)),
        line_discount: Some(decimal_to_proto(applied.line_discount)),
        unit_price_after: Some(decimal_to_proto(applied.unit_price_after)),
        capped: applied.capped,
    }
}

fn cart_lines_to_proto(cart: PricedCart) -> Vec<pb::QuoteLine> {
    cart.lines
        .into_iter()
        .map(|line| pb::QuoteLine {
            item_code: line.item_code,
            qty: Some(decimal_to_proto(line.qty)),
            uom: line.uom,
            price_list: line.price_list,
            base_rate: Some(decimal_to_proto(line.base_rate)),
            unit_price: Some(decimal_to_proto(line.unit_price)),
            gross_amount: Some(decimal_to_proto(line.gross_amount)),
            net_amount: Some(decimal_to_proto(line.net_amount)),
            discount_amount: Some(decimal_to_proto(line.discount_amount)),
            applied_rules: line.applied.into_iter().map(applied_to_proto).collect(),
            skipped_rules: line.skipped.into_iter().map(skipped_to_proto).collect(),
            ties: line
                .ties
                .into_iter()
                .map(|t| pb::RuleTie {
                    rule_codes: t.rules.iter().map(Code::to_string).collect(),
                    priority: t.priority,
                })
                .collect(),
        })
        .collect()
}

fn quote_to_proto(quote: StoredQuote) -> pb::Quote {
    let cart = quote.cart;
    pb::Quote {
        quote_id: quote.id,
        customer: quote.customer,
        channel: quote.channel.unwrap_or_default(),
        price_time: Some(naive_utc_to_proto(quote.price_time)),
        expire_time: Some(naive_utc_to_proto(quote.expires_at)),
        currency: cart.currency.clone(),
        subtotal: Some(decimal_to_proto(cart.subtotal)),
        total_discount: Some(decimal_to_proto(cart.total_discount)),
        total: Some(decimal_to_proto(cart.total)),
        stacking: match cart.stacking {
            Stacking::Compound => pb::Stacking::Compound,
            Stacking::Additive => pb::Stacking::Additive,
        }
        .into(),
        lines: cart_lines_to_proto(cart),
        status: match quote.status {
            QuoteStatus::Quoted => pb::QuoteStatus::Quoted,
            QuoteStatus::Applied => pb::QuoteStatus::Applied,
        }
        .into(),
        apply_time: quote.applied_at.map(naive_utc_to_proto),
        order_reference: quote.order_reference.unwrap_or_default(),
        price_tier: quote.price_tier.unwrap_or_default(),
    }
}

fn application_to_proto(application: RuleApplication) -> pb::RuleApplication {
    pb::RuleApplication {
        application_id: application.id,
        rule_code: application.rule,
        quote_id: application.quote,
        line_index: i32::try_from(application.line_index).unwrap_or(i32::MAX),
        item_code: application.item_code,
        customer: application.customer,
        discount_amount: Some(decimal_to_proto(application.discount_amount)),
        currency: application.currency,
        application_date: Some(date_to_proto(application.application_date)),
    }
}

fn effectiveness_to_proto(found: Effectiveness) -> pb::RuleEffectiveness {
    pb::RuleEffectiveness {
        rule_code: found.rule,
        usage_count: found.usage_count,
        total_discount: Some(decimal_to_proto(found.total_discount)),
        currency: found.currency,
    }
}

impl From<QuoteError> for PricingError {
    fn from(error: QuoteError) -> Self {
        match error {
            // The request is fine; the price lists are not.
            QuoteError::NoPrice { .. } | QuoteError::MixedCurrency { .. } => {
                PricingError::FailedPrecondition(format!("{}: {error}", error.field()))
            }
            _ => PricingError::invalid(error.field(), error),
        }
    }
}

impl From<PricingError> for Status {
    fn from(error: PricingError) -> Self {
        let message = error.to_string();
        match error {
            PricingError::InvalidArgument { field, reason } => Status::with_error_details(
                StatusCode::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(field, reason),
            ),
            PricingError::RuleNotFound(_)
            | PricingError::QuoteNotFound(_)
            | PricingError::WindowNotFound(_) => Status::not_found(message),
            PricingError::RuleExists(_) => Status::already_exists(message),
            PricingError::FailedPrecondition(_) => Status::failed_precondition(message),
            PricingError::Aborted(_) => Status::aborted(message),
            PricingError::Unavailable(_) | PricingError::NotReady => Status::unavailable(message),
            PricingError::Store(store) => store_status("pricing", &store),
        }
    }
}

type RpcResult<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl PricingService for PricingGrpc {
    #[tracing::instrument(name = "PricingService.CreateRule", skip_all)]
    async fn create_rule(
        &self,
        request: Request<pb::CreateRuleRequest>,
    ) -> RpcResult<pb::CreateRuleResponse> {
        let actor = actor(&request);
        let spec = rule_from(request.into_inner().rule, self.config.time_zone)?;
        let rule = self
            .ready()?
            .store
            .create_rule(spec, &actor)
            .await
            .map_err(within_rule)?;
        let overlaps = self.overlaps_after_change(&rule).await?;
        Ok(Response::new(pb::CreateRuleResponse {
            rule: Some(rule_to_proto(rule)),
            overlaps: overlaps_to_proto(overlaps),
        }))
    }

    #[tracing::instrument(name = "PricingService.GetRule", skip_all)]
    async fn get_rule(
        &self,
        request: Request<pb::GetRuleRequest>,
    ) -> RpcResult<pb::GetRuleResponse> {
        let code = code(&request.get_ref().code, "code")?;
        let rule = self.ready()?.store.rule(&code).await?;
        Ok(Response::new(pb::GetRuleResponse {
            rule: Some(rule_to_proto(rule)),
        }))
    }

    #[tracing::instrument(name = "PricingService.UpdateRule", skip_all)]
    async fn update_rule(
        &self,
        request: Request<pb::UpdateRuleRequest>,
    ) -> RpcResult<pb::UpdateRuleResponse> {
        let actor = actor(&request);
        let spec = rule_from(request.into_inner().rule, self.config.time_zone)?;
        let rule = self
            .ready()?
            .store
            .update_rule(spec, &actor)
            .await
            .map_err(within_rule)?;
        let overlaps = self.overlaps_after_change(&rule).await?;
        Ok(Response::new(pb::UpdateRuleResponse {
            rule: Some(rule_to_proto(rule)),
            overlaps: overlaps_to_proto(overlaps),
        }))
    }

    #[tracing::instrument(name = "PricingService.ActivateRule", skip_all)]
    async fn activate_rule(
        &self,
        request: Request<pb::ActivateRuleRequest>,
    ) -> RpcResult<pb::ActivateRuleResponse> {
        let actor = actor(&request);
        let code = code(&request.get_ref().code, "code")?;
        let rule = self
            .ready()?
            .store
            .set_rule_active(&code, true, &actor)
            .await?;
        let overlaps = self.overlaps_after_change(&rule).await?;
        Ok(Response::new(pb::ActivateRuleResponse {
            rule: Some(rule_to_proto(rule)),
            overlaps: overlaps_to_proto(overlaps),
        }))
    }

    #[tracing::instrument(name = "PricingService.DeactivateRule", skip_all)]
    async fn deactivate_rule(
        &self,
        request: Request<pb::DeactivateRuleRequest>,
    ) -> RpcResult<pb::DeactivateRuleResponse> {
        let actor = actor(&request);
        let code = code(&request.get_ref().code, "code")?;
        let rule = self
            .ready()?
            .store
            .set_rule_active(&code, false, &actor)
            .await?;
        self.reload_after_change().await;
        Ok(Response::new(pb::DeactivateRuleResponse {
            rule: Some(rule_to_proto(rule)),
        }))
    }

    #[tracing::instrument(name = "PricingService.ListRules", skip_all)]
    async fn list_rules(
        &self,
        request: Request<pb::ListRulesRequest>,
    ) -> RpcResult<pb::ListRulesResponse> {
        let request = request.into_inner();
        let valid_on = date(request.valid_on.as_ref(), "valid_on")?;
        let size = page_size(request.page_size).map_err(PricingError::from)?;
        let page = self
            .ready()?
            .store
            .list_rules(request.active_only, valid_on, size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListRulesResponse {
            rules: page.items.into_iter().map(rule_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(name = "PricingService.AddFestivalWindow", skip_all)]
    async fn add_festival_window(
        &self,
        request: Request<pb::AddFestivalWindowRequest>,
    ) -> RpcResult<pb::AddFestivalWindowResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        let festival = code(&request.festival_code, "festival_code")?;
        let start = required_date(request.start_date.as_ref(), "start_date")?;
        let end = required_date(request.end_date.as_ref(), "end_date")?;
        if end < start {
            return Err(PricingError::invalid(
                "end_date",
                format!("{end} is before start_date {start}"),
            )
            .into());
        }
        if (end - start).num_days() > 366 {
            return Err(
                PricingError::invalid("end_date", "a window is at most 366 days long").into(),
            );
        }
        let festival = self
            .ready()?
            .store
            .add_festival_window(&festival, start, end, &actor)
            .await?;
        self.reload_after_change().await;
        Ok(Response::new(pb::AddFestivalWindowResponse {
            festival: Some(festival_to_proto(festival)),
        }))
    }

    #[tracing::instrument(name = "PricingService.RemoveFestivalWindow", skip_all)]
    async fn remove_festival_window(
        &self,
        request: Request<pb::RemoveFestivalWindowRequest>,
    ) -> RpcResult<pb::RemoveFestivalWindowResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        let festival = code(&request.festival_code, "festival_code")?;
        if request.window_id.is_empty() {
            return Err(PricingError::invalid("window_id", "is required").into());
        }
        let festival = self
            .ready()?
            .store
            .remove_festival_window(&festival, &request.window_id, &actor)
            .await?;
        self.reload_after_change().await;
        Ok(Response::new(pb::RemoveFestivalWindowResponse {
            festival: Some(festival_to_proto(festival)),
        }))
    }

    #[tracing::instrument(name = "PricingService.ListFestivals", skip_all)]
    async fn list_festivals(
        &self,
        _request: Request<pb::ListFestivalsRequest>,
    ) -> RpcResult<pb::ListFestivalsResponse> {
        let festivals = self.ready()?.store.festivals().await?;
        Ok(Response::new(pb::ListFestivalsResponse {
            festivals: festivals.into_iter().map(festival_to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "PricingService.SetItemPrice", skip_all)]
    async fn set_item_price(
        &self,
        request: Request<pb::SetItemPriceRequest>,
    ) -> RpcResult<pb::SetItemPriceResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        let item = doc_name(&request.item_code, "item_code")?;
        let price_list = doc_name(&request.price_list, "price_list")?;
        let rate = decimal(request.rate.as_ref(), "rate")?
            .ok_or_else(|| PricingError::invalid("rate", "is required"))?;
        if rate < Decimal::ZERO || rate > harsha_types::max_quantity() || rate.scale() > 4 {
            return Err(PricingError::invalid(
                "rate",
                "must be between 0 and 999,999,999 with at most 4 decimal places",
            )
            .into());
        }
        let currency = if request.currency.is_empty() {
            "INR".to_owned()
        } else {
            request.currency.clone()
        };
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(PricingError::invalid(
                "currency",
                format!("{currency:?} is not an ISO 4217 code"),
            )
            .into());
        }
        let uom = (!request.uom.is_empty()).then_some(request.uom.as_str());
        let price = self
            .ready()?
            .store
            .set_item_price(&item, price_list.as_str(), rate, &currency, uom, &actor)
            .await?;
        self.reload_after_change().await;
        Ok(Response::new(pb::SetItemPriceResponse {
            price: Some(price_to_proto(price)),
        }))
    }

    #[tracing::instrument(name = "PricingService.ListItemPrices", skip_all)]
    async fn list_item_prices(
        &self,
        request: Request<pb::ListItemPricesRequest>,
    ) -> RpcResult<pb::ListItemPricesResponse> {
        let item = doc_name(&request.get_ref().item_code, "item_code")?;
        let prices = self.ready()?.store.item_prices(&item).await?;
        Ok(Response::new(pb::ListItemPricesResponse {
            prices: prices.into_iter().map(price_to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "PricingService.QuotePrice", skip_all, fields(lines))]
    async fn quote_price(
        &self,
        request: Request<pb::QuotePriceRequest>,
    ) -> RpcResult<pb::QuotePriceResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        tracing::Span::current().record("lines", request.lines.len());
        let customer = doc_name(&request.customer, "customer")?;
        if request.lines.is_empty() || request.lines.len() > MAX_QUOTE_LINES {
            return Err(PricingError::invalid(
                "lines",
                format!("1 to {MAX_QUOTE_LINES} lines, not {}", request.lines.len()),
            )
            .into());
        }
        let lines = request
            .lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let qty =
                    decimal(line.qty.as_ref(), &format!("lines[{i}].qty"))?.ok_or_else(|| {
                        PricingError::invalid(format!("lines[{i}].qty"), "is required")
                    })?;
                Ok(LineRequest {
                    item_code: doc_name(&line.item_code, &format!("lines[{i}].item_code"))?
                        .to_string(),
                    qty: Quantity::new(qty).map_err(invalid(format!("lines[{i}].qty")))?,
                    uom: (!line.uom.is_empty()).then(|| line.uom.clone()),
                })
            })
            .collect::<Result<Vec<_>, PricingError>>()?;
        let channel = if request.channel.is_empty() {
            None
        } else {
            Some(code(&request.channel, "channel")?)
        };
        let now = Utc::now();
        let at = match request.price_time.as_ref() {
            Some(t) => {
                DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or_default())
                    .ok_or_else(|| PricingError::invalid("price_time", "is out of range"))?
            }
            None => now,
        };
        let ready = self.ready()?;
        let local_day = at.with_timezone(&self.config.time_zone).date_naive();
        let mut facts = self.profiles.facts(&customer, local_day).await?;
        let book = ready.cache.current();
        facts.territories = book.catalogue().territories_covering(&facts.territories);
        let price_tier = facts.price_tier.clone();
        let cart = CartRequest {
            customer: facts,
            channel: channel.clone(),
            at,
            lines,
        };
        let priced = book
            .quote(&cart, self.config.stacking)
            .map_err(PricingError::from)?;
        let created = now.naive_utc();
        let mut quote = StoredQuote {
            id: Uuid::now_v7().to_string(),
            customer: customer.to_string(),
            channel: channel.map(|c| c.to_string()),
            price_tier,
            price_time: at.naive_utc(),
            expires_at: created + self.config.quote_validity,
            cart: priced,
            status: QuoteStatus::Quoted,
            applied_at: None,
            order_reference: None,
            created,
        };
        // The kept quote holds what applied; why other rules did not is
        // answered here only (it is half the explanation and not needed to
        // apply the quote).
        let skipped: Vec<_> = quote
            .cart
            .lines
            .iter_mut()
            .map(|line| std::mem::take(&mut line.skipped))
            .collect();
        ready.store.save_quote(&quote, &actor).await?;
        let mut response = quote_to_proto(quote);
        for (line, skipped) in response.lines.iter_mut().zip(skipped) {
            line.skipped_rules = skipped.into_iter().map(skipped_to_proto).collect();
        }
        Ok(Response::new(pb::QuotePriceResponse {
            quote: Some(response),
        }))
    }

    #[tracing::instrument(name = "PricingService.GetQuote", skip_all)]
    async fn get_quote(
        &self,
        request: Request<pb::GetQuoteRequest>,
    ) -> RpcResult<pb::GetQuoteResponse> {
        let id = &request.get_ref().quote_id;
        if id.is_empty() {
            return Err(PricingError::invalid("quote_id", "is required").into());
        }
        let quote = self.ready()?.store.quote(id).await?;
        Ok(Response::new(pb::GetQuoteResponse {
            quote: Some(quote_to_proto(quote)),
        }))
    }

    #[tracing::instrument(name = "PricingService.ApplyQuote", skip_all)]
    async fn apply_quote(
        &self,
        request: Request<pb::ApplyQuoteRequest>,
    ) -> RpcResult<pb::ApplyQuoteResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        if request.quote_id.is_empty() {
            return Err(PricingError::invalid("quote_id", "is required").into());
        }
        let order = if request.order_reference.is_empty() {
            None
        } else {
            Some(doc_name(&request.order_reference, "order_reference")?.to_string())
        };
        let (quote, applications) = self
            .ready()?
            .store
            .apply_quote(&request.quote_id, order.as_deref(), self.today(), &actor)
            .await?;
        Ok(Response::new(pb::ApplyQuoteResponse {
            quote: Some(quote_to_proto(quote)),
            applications: applications.into_iter().map(application_to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "PricingService.GetRuleEffectiveness", skip_all)]
    async fn get_rule_effectiveness(
        &self,
        request: Request<pb::GetRuleEffectivenessRequest>,
    ) -> RpcResult<pb::GetRuleEffectivenessResponse> {
        let request = request.into_inner();
        let to = date(request.to_date.as_ref(), "to_date")?.unwrap_or_else(|| self.today());
        let from = date(request.from_date.as_ref(), "from_date")?
            .unwrap_or_else(|| to.checked_sub_days(chrono::Days::new(30)).unwrap_or(to));
        if to < from {
            return Err(PricingError::invalid(
                "to_date",
                format!("{to} is before from_date {from}"),
            )
            .into());
        }
        let rule = if request.rule_code.is_empty() {
            None
        } else {
            Some(code(&request.rule_code, "rule_code")?)
        };
        let found = self
            .ready()?
            .store
            .effectiveness(from, to, rule.as_ref())
            .await?;
        Ok(Response::new(pb::GetRuleEffectivenessResponse {
            rules: found.into_iter().map(effectiveness_to_proto).collect(),
        }))
    }
}
