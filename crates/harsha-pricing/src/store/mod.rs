//! Persistence of rules, festival windows, base prices, quotes and rule
//! applications: the [`PricingStore`] trait and [`SqlPricingStore`], its
//! implementation on MariaDB and SQLite (SQL written once).

mod rows;
mod sql;

use async_trait::async_trait;
use chrono::{NaiveDate, NaiveDateTime};
use harsha_store::page::Page;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use sql::SqlPricingStore;

/// The queries behind listings and reports, for `EXPLAIN` in benchmarks
/// and operational checks.
pub mod queries {
    pub use super::sql::{LIST_RULES, RULE_EFFECTIVENESS};
}

use crate::{
    PricingError,
    domain::{Actor, Catalogue, Code, DocName, FestivalCalendar, PricedCart, Rule, RuleSpec},
};

/// Everything a rule book is built from, read in one go.
#[derive(Debug, Clone, Default)]
pub struct BookData {
    /// The active rules.
    pub rules: Vec<RuleSpec>,
    /// Festival and season windows.
    pub festivals: FestivalCalendar,
    /// Items, groups, territories and prices.
    pub catalogue: Catalogue,
}

/// A festival window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FestivalWindow {
    /// The window's id.
    pub id: String,
    /// First day (inclusive).
    pub start: NaiveDate,
    /// Last day (inclusive).
    pub end: NaiveDate,
}

/// A festival or season with its windows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Festival {
    /// Its code.
    pub code: Code,
    /// Its windows, by start date.
    pub windows: Vec<FestivalWindow>,
}

/// A base price as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemPrice {
    /// The item.
    pub item_code: String,
    /// The price list.
    pub price_list: String,
    /// Price per unit.
    pub rate: Decimal,
    /// Its currency.
    pub currency: String,
    /// Its unit.
    pub uom: String,
}

/// Where a quote is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuoteStatus {
    /// Priced, not yet applied.
    Quoted,
    /// Applied to an order.
    Applied,
}

impl QuoteStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quoted => "Quoted",
            Self::Applied => "Applied",
        }
    }
}

/// A quote as kept for `ApplyQuote`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredQuote {
    /// Its id.
    pub id: String,
    /// The customer.
    pub customer: String,
    /// The channel.
    pub channel: Option<String>,
    /// The customer's price tier used.
    pub price_tier: Option<String>,
    /// The instant priced for (UTC).
    pub price_time: NaiveDateTime,
    /// Until when it may be applied (UTC).
    pub expires_at: NaiveDateTime,
    /// The priced cart with its explanation.
    pub cart: PricedCart,
    /// Where it is in its life.
    pub status: QuoteStatus,
    /// When it was applied (UTC).
    pub applied_at: Option<NaiveDateTime>,
    /// The order it was applied to.
    pub order_reference: Option<String>,
    /// Created (UTC).
    pub created: NaiveDateTime,
}

/// One rule applied to one line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleApplication {
    /// Its id.
    pub id: String,
    /// The rule.
    pub rule: String,
    /// The quote.
    pub quote: String,
    /// The line's index.
    pub line_index: u32,
    /// The item.
    pub item_code: String,
    /// The customer.
    pub customer: String,
    /// The order.
    pub order_reference: Option<String>,
    /// What the rule took off the line (rounded).
    pub discount_amount: Decimal,
    /// The currency.
    pub currency: String,
    /// The day it was applied (business time zone).
    pub application_date: NaiveDate,
}

/// A rule's use over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Effectiveness {
    /// The rule.
    pub rule: String,
    /// Lines it was applied to.
    pub usage_count: i64,
    /// What it took off in total.
    pub total_discount: Decimal,
    /// The currency.
    pub currency: String,
}

/// Where the Pricing service keeps its data. Every change is one
/// transaction that records an outbox event and, for what quotes read
/// (rules, festivals, prices), bumps the cache version.
#[async_trait]
pub trait PricingStore: Send + Sync + 'static {
    /// Creates a rule (active).
    async fn create_rule(&self, spec: RuleSpec, actor: &Actor) -> Result<Rule, PricingError>;
    /// Replaces a rule's definition (its active flag is kept).
    async fn update_rule(&self, spec: RuleSpec, actor: &Actor) -> Result<Rule, PricingError>;
    /// Activates or deactivates a rule.
    async fn set_rule_active(
        &self,
        code: &Code,
        active: bool,
        actor: &Actor,
    ) -> Result<Rule, PricingError>;
    /// Reads a rule.
    async fn rule(&self, code: &Code) -> Result<Rule, PricingError>;
    /// Lists rules by priority (highest first), then code.
    async fn list_rules(
        &self,
        active_only: bool,
        valid_on: Option<NaiveDate>,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<Rule>, PricingError>;
    /// The cache version: it changes whenever rules, festivals or prices do.
    async fn cache_version(&self) -> Result<i64, PricingError>;
    /// Everything the rule cache holds.
    async fn load_book(&self) -> Result<BookData, PricingError>;
    /// Adds a festival window.
    async fn add_festival_window(
        &self,
        festival: &Code,
        start: NaiveDate,
        end: NaiveDate,
        actor: &Actor,
    ) -> Result<Festival, PricingError>;
    /// Removes a festival window.
    async fn remove_festival_window(
        &self,
        festival: &Code,
        window_id: &str,
        actor: &Actor,
    ) -> Result<Festival, PricingError>;
    /// Every festival with its windows.
    async fn festivals(&self) -> Result<Vec<Festival>, PricingError>;
    /// Sets an item's base price in a price list.
    async fn set_item_price(
        &self,
        item_code: &DocName,
        price_list: &str,
        rate: Decimal,
        currency: &str,
        uom: Option<&str>,
        actor: &Actor,
    ) -> Result<ItemPrice, PricingError>;
    /// An item's base prices.
    async fn item_prices(&self, item_code: &DocName) -> Result<Vec<ItemPrice>, PricingError>;
    /// Keeps a quote.
    async fn save_quote(&self, quote: &StoredQuote, actor: &Actor) -> Result<(), PricingError>;
    /// Reads a quote.
    async fn quote(&self, id: &str) -> Result<StoredQuote, PricingError>;
    /// Applies a quote once: records its rule applications dated `today`.
    async fn apply_quote(
        &self,
        id: &str,
        order_reference: Option<&str>,
        today: NaiveDate,
        actor: &Actor,
    ) -> Result<(StoredQuote, Vec<RuleApplication>), PricingError>;
    /// Usage and discount per rule over application dates `[from, to]`.
    async fn effectiveness(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        rule: Option<&Code>,
    ) -> Result<Vec<Effectiveness>, PricingError>;
    /// Adds monthly partitions to the application table (MariaDB).
    async fn ensure_application_partitions(
        &self,
        through: NaiveDate,
    ) -> Result<Vec<String>, PricingError>;
}
