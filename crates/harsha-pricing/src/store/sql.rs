//! [`SqlPricingStore`]: the Pricing store on MariaDB and SQLite.
//!
//! Rules are written with their items and tiers in one transaction that
//! also bumps `tabHD Pricing Cache Version`, so every replica's rule cache
//! sees the change on its next poll. Quotes are kept whole (their priced
//! cart as JSON) so that applying one charges what was quoted; applying
//! locks the quote row, so a quote is applied once however often it is
//! sent.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use chrono::{NaiveDate, NaiveDateTime, SubsecRound, Utc};
use harsha_store::{DbDecimal, ErpDialect, ErpPool, begin_snapshot, erp_dispatch, page::Page};
use rust_decimal::Decimal;
use sqlx::AssertSqlSafe;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    BookData, Effectiveness, Festival, FestivalWindow, ItemPrice, PricingStore, QuoteStatus,
    RuleApplication, StoredQuote,
    rows::{RuleItemRow, RuleRow, RuleTierRow},
};
use crate::{
    PricingError,
    domain::{
        Actor, BasePrice, Catalogue, Code, DocName, FestivalCalendar, Rule, RuleDiscount, RuleSpec,
        Target,
    },
};

/// The service name recorded as the source of outbox events.
const SOURCE_SERVICE: &str = "pricing";

macro_rules! rule_columns {
    () => {
        "`name`, `creation`, `modified`, `rule_name`, `description`, `priority`, `is_active`, `valid_from`, \
         `valid_to`, `days_of_week`, `time_from`, `time_to`, `time_zone`, `festivals`, `customer_segments`, \
         `territories`, `channels`, `min_qty`, `max_qty`, `min_amount`, `max_amount`, `discount_kind`, \
         `discount_value`, `tier_basis`, `max_discount_per_line`, `is_exclusive`, `currency`"
    };
}

const SELECT_RULE: &str = concat!(
    "SELECT ",
    rule_columns!(),
    " FROM `tabHD Dynamic Pricing Rule` WHERE `name` = ?"
);
const ACTIVE_RULES: &str = concat!(
    "SELECT ",
    rule_columns!(),
    " FROM `tabHD Dynamic Pricing Rule` WHERE `is_active` = 1"
);
/// Rules by priority (highest first), then code, keyset-paged: the page's
/// codes are chosen on `idx_pricing_rule_priority_active` alone (it covers
/// the filter and, with the primary key, the order), then joined to their
/// rows. `?` active-only flag, valid-on date (three times), last (priority,
/// code) or NULLs, limit.
pub const LIST_RULES: &str = "SELECT r.`name`, r.`creation`, r.`modified`, r.`rule_name`, r.`description`, \
     r.`priority`, r.`is_active`, r.`valid_from`, r.`valid_to`, r.`days_of_week`, r.`time_from`, r.`time_to`, \
     r.`time_zone`, r.`festivals`, r.`customer_segments`, r.`territories`, r.`channels`, r.`min_qty`, \
     r.`max_qty`, r.`min_amount`, r.`max_amount`, r.`discount_kind`, r.`discount_value`, r.`tier_basis`, \
     r.`max_discount_per_line`, r.`is_exclusive`, r.`currency` \
     FROM (SELECT `name`, `priority` FROM `tabHD Dynamic Pricing Rule` WHERE (? = 0 OR `is_active` = 1) \
       AND (? IS NULL OR ((`valid_from` IS NULL OR `valid_from` <= ?) AND (`valid_to` IS NULL OR `valid_to` >= ?))) \
       AND (? IS NULL OR `priority` < ? OR (`priority` = ? AND `name` > ?)) \
       ORDER BY `priority` DESC, `name` LIMIT ?) page \
     JOIN `tabHD Dynamic Pricing Rule` r ON r.`name` = page.`name` \
     ORDER BY page.`priority` DESC, page.`name`";
const INSERT_RULE: &str = "INSERT INTO `tabHD Dynamic Pricing Rule` (`name`, `creation`, `modified`, `modified_by`, \
     `owner`, `rule_name`, `description`, `priority`, `is_active`, `valid_from`, `valid_to`, `days_of_week`, \
     `time_from`, `time_to`, `time_zone`, `festivals`, `customer_segments`, `territories`, `channels`, `min_qty`, \
     `max_qty`, `min_amount`, `max_amount`, `discount_kind`, `discount_value`, `tier_basis`, \
     `max_discount_per_line`, `is_exclusive`, `currency`) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const SELECT_OWNER: &str = "SELECT `owner` FROM `tabHD Dynamic Pricing Rule` WHERE `name` = ?";
const DELETE_RULE: &str = "DELETE FROM `tabHD Dynamic Pricing Rule` WHERE `name` = ?";
const SET_ACTIVE: &str = "UPDATE `tabHD Dynamic Pricing Rule` SET `is_active` = ?, `modified` = ?, `modified_by` = ? \
     WHERE `name` = ?";
const RULE_ITEMS: &str = "SELECT `parent`, `applies_to`, `item_code`, `item_group` FROM `tabHD Pricing Rule Item` \
     WHERE `parent` = ? ORDER BY `idx`";
const ALL_RULE_ITEMS: &str = "SELECT `parent`, `applies_to`, `item_code`, `item_group` FROM `tabHD Pricing Rule Item` \
     ORDER BY `parent`, `idx`";
const INSERT_RULE_ITEM: &str = "INSERT INTO `tabHD Pricing Rule Item` (`name`, `parent`, `idx`, `applies_to`, \
     `item_code`, `item_group`) VALUES (?, ?, ?, ?, ?, ?)";
const DELETE_RULE_ITEMS: &str = "DELETE FROM `tabHD Pricing Rule Item` WHERE `parent` = ?";
const RULE_TIERS: &str = "SELECT `parent`, `min_value`, `max_value`, `discount_kind`, `discount_value` \
     FROM `tabHD Pricing Rule Tier` WHERE `parent` = ? ORDER BY `idx`";
const ALL_RULE_TIERS: &str = "SELECT `parent`, `min_value`, `max_value`, `discount_kind`, `discount_value` \
     FROM `tabHD Pricing Rule Tier` ORDER BY `parent`, `idx`";
const INSERT_RULE_TIER: &str = "INSERT INTO `tabHD Pricing Rule Tier` (`name`, `parent`, `idx`, `min_value`, \
     `max_value`, `discount_kind`, `discount_value`) VALUES (?, ?, ?, ?, ?, ?, ?)";
const DELETE_RULE_TIERS: &str = "DELETE FROM `tabHD Pricing Rule Tier` WHERE `parent` = ?";

const BUMP_VERSION: &str =
    "UPDATE `tabHD Pricing Cache Version` SET `version` = `version` + 1 WHERE `name` = 'rules'";
const SELECT_VERSION: &str =
    "SELECT `version` FROM `tabHD Pricing Cache Version` WHERE `name` = 'rules'";

const ITEM_EXISTS: &str = "SELECT COUNT(*) FROM `tabItem` WHERE `name` = ? AND `disabled` = 0";
const GROUP_EXISTS: &str = "SELECT COUNT(*) FROM `tabItem Group` WHERE `name` = ?";
const TERRITORY_EXISTS: &str = "SELECT COUNT(*) FROM `tabTerritory` WHERE `name` = ?";
const FESTIVAL_EXISTS: &str =
    "SELECT COUNT(*) FROM `tabHD Pricing Festival Window` WHERE `festival` = ?";

const ALL_ITEMS: &str =
    "SELECT `name`, `item_group`, `stock_uom` FROM `tabItem` WHERE `disabled` = 0";
const ALL_GROUPS: &str = "SELECT `name`, `parent_item_group` FROM `tabItem Group`";
const ALL_TERRITORIES: &str = "SELECT `name`, `parent_territory` FROM `tabTerritory`";
/// Selling prices valid on a date (`?` twice). Where a list has several for
/// an item, the one valid from the latest date (then the latest modified)
/// wins: it is read last.
const ALL_PRICES: &str = "SELECT `item_code`, `price_list`, `price_list_rate`, `currency`, `uom` FROM `tabItem Price` \
     WHERE `selling` = 1 AND `item_code` IS NOT NULL AND `price_list` IS NOT NULL \
     AND (`valid_from` IS NULL OR `valid_from` <= ?) AND (`valid_upto` IS NULL OR `valid_upto` >= ?) \
     ORDER BY `item_code`, `price_list`, `valid_from`, `modified`, `name`";
const ITEM_PRICES: &str = "SELECT `item_code`, `price_list`, `price_list_rate`, `currency`, `uom` FROM `tabItem Price` \
     WHERE `selling` = 1 AND `item_code` = ? ORDER BY `price_list`";
const SELECT_PRICE: &str = "SELECT `name` FROM `tabItem Price` WHERE `item_code` = ? AND `price_list` = ? AND `selling` = 1";
const UPDATE_PRICE: &str = "UPDATE `tabItem Price` SET `price_list_rate` = ?, `currency` = ?, `uom` = ?, `modified` = ?, \
     `modified_by` = ? WHERE `name` = ?";
const INSERT_PRICE: &str = "INSERT INTO `tabItem Price` (`name`, `creation`, `modified`, `modified_by`, `owner`, \
     `item_code`, `uom`, `price_list`, `selling`, `buying`, `currency`, `price_list_rate`) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, 0, ?, ?)";
const ITEM_UOM: &str = "SELECT `stock_uom` FROM `tabItem` WHERE `name` = ? AND `disabled` = 0";

const ALL_WINDOWS: &str = "SELECT `name`, `festival`, `start_date`, `end_date` FROM `tabHD Pricing Festival Window` \
     ORDER BY `festival`, `start_date`, `name`";
const FESTIVAL_WINDOWS: &str = "SELECT `name`, `festival`, `start_date`, `end_date` FROM `tabHD Pricing Festival Window` \
     WHERE `festival` = ? ORDER BY `start_date`, `name`";
const INSERT_WINDOW: &str = "INSERT INTO `tabHD Pricing Festival Window` (`name`, `creation`, `owner`, `festival`, \
     `start_date`, `end_date`) VALUES (?, ?, ?, ?, ?, ?)";
const DELETE_WINDOW: &str =
    "DELETE FROM `tabHD Pricing Festival Window` WHERE `name` = ? AND `festival` = ?";

const INSERT_QUOTE: &str = "INSERT INTO `tabHD Price Quote` (`name`, `creation`, `modified`, `owner`, `customer`, \
     `channel`, `price_time`, `expires_at`, `currency`, `total`, `status`, `payload`) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const SELECT_QUOTE: &str = "SELECT `payload` FROM `tabHD Price Quote` WHERE `name` = ?";
const MARK_APPLIED: &str = "UPDATE `tabHD Price Quote` SET `status` = 'Applied', `applied_at` = ?, \
     `order_reference` = ?, `modified` = ?, `payload` = ? WHERE `name` = ?";
const INSERT_APPLICATION: &str = "INSERT INTO `tabHD Pricing Rule Application` (`name`, `application_date`, \
     `creation`, `owner`, `rule`, `quote`, `line_index`, `item_code`, `customer`, `order_reference`, \
     `discount_amount`, `currency`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const QUOTE_APPLICATIONS: &str = "SELECT `name`, `application_date`, `rule`, `quote`, `line_index`, `item_code`, \
     `customer`, `order_reference`, `discount_amount`, `currency` FROM `tabHD Pricing Rule Application` \
     WHERE `quote` = ? ORDER BY `line_index`, `name`";
/// Use and discount per rule over application dates (uses
/// `idx_rule_application`; on MariaDB only the months asked for are read).
pub const RULE_EFFECTIVENESS: &str = "SELECT `rule`, COUNT(*), SUM(`discount_amount`), `currency` \
     FROM `tabHD Pricing Rule Application` WHERE `application_date` >= ? AND `application_date` <= ? \
     AND (? IS NULL OR `rule` = ?) GROUP BY `rule`, `currency`";

/// Writes one outbox event inside the open transaction `$tx`.
macro_rules! record_event {
    ($tx:expr, $at:expr, $actor:expr, $entity_type:expr, $entity_name:expr, $event_type:expr, $payload:expr) => {
        harsha_store::record_change!(
            $tx,
            SOURCE_SERVICE,
            $at,
            $actor,
            $entity_type,
            $entity_name,
            $event_type,
            $payload
        )
    };
}

/// Checks on `$conn` that every item, item group, territory and festival a
/// rule names exists; returns early naming the field.
macro_rules! check_references {
    ($conn:expr, $spec:expr) => {{
        for (i, target) in $spec.targets.iter().enumerate() {
            let (sql, field, value) = match target {
                Target::Item(item) => (
                    ITEM_EXISTS,
                    format!("targets[{i}].item_code"),
                    item.as_str(),
                ),
                Target::ItemGroup(group) => (
                    GROUP_EXISTS,
                    format!("targets[{i}].item_group"),
                    group.as_str(),
                ),
            };
            let found: i64 = sqlx::query_scalar(sql)
                .bind(value)
                .fetch_one(&mut *$conn)
                .await?;
            if found == 0 {
                return Err(PricingError::invalid(field, format!("{value:?} not found")));
            }
        }
        for (i, territory) in $spec.conditions.territories.iter().enumerate() {
            let found: i64 = sqlx::query_scalar(TERRITORY_EXISTS)
                .bind(territory.as_str())
                .fetch_one(&mut *$conn)
                .await?;
            if found == 0 {
                return Err(PricingError::invalid(
                    format!("territories[{i}]"),
                    format!("{territory:?} not found"),
                ));
            }
        }
        for (i, festival) in $spec.schedule.festivals.iter().enumerate() {
            let found: i64 = sqlx::query_scalar(FESTIVAL_EXISTS)
                .bind(festival.as_str())
                .fetch_one(&mut *$conn)
                .await?;
            if found == 0 {
                return Err(PricingError::invalid(
                    format!("festivals[{i}]"),
                    format!("{festival} has no windows; add one with AddFestivalWindow first"),
                ));
            }
        }
    }};
}

/// Inserts a rule row with its items and tiers.
macro_rules! insert_rule {
    ($conn:expr, $spec:expr, $created:expr, $at:expr, $owner:expr, $actor:expr) => {{
        let spec: &RuleSpec = $spec;
        // Lists are JSON arrays: names may hold commas.
        let join =
            |values: Vec<&str>| serde_json::to_string(&values).unwrap_or_else(|_| "[]".into());
        let (kind, value, basis) = match &spec.discount {
            RuleDiscount::Flat(d) => (Some(d.kind().as_str()), Some(DbDecimal(d.value())), None),
            RuleDiscount::Tiered(tiers) => (None, None, Some(tiers.basis().as_str())),
        };
        let window = spec.schedule.time_window;
        let inserted = sqlx::query(INSERT_RULE)
            .bind(spec.code.as_str())
            .bind($created)
            .bind($at)
            .bind($actor.as_str())
            .bind($owner)
            .bind(&spec.rule_name)
            .bind(&spec.description)
            .bind(spec.priority)
            .bind(i32::from(spec.active))
            .bind(spec.schedule.valid_from)
            .bind(spec.schedule.valid_to)
            .bind(spec.schedule.days.to_stored())
            .bind(window.map(|w| w.from()))
            .bind(window.map(|w| w.to()))
            .bind(spec.schedule.time_zone.name())
            .bind(join(
                spec.schedule.festivals.iter().map(Code::as_str).collect(),
            ))
            .bind(join(
                spec.conditions.segments.iter().map(Code::as_str).collect(),
            ))
            .bind(join(
                spec.conditions
                    .territories
                    .iter()
                    .map(DocName::as_str)
                    .collect(),
            ))
            .bind(join(
                spec.conditions.channels.iter().map(Code::as_str).collect(),
            ))
            .bind(spec.conditions.min_qty.map(DbDecimal))
            .bind(spec.conditions.max_qty.map(DbDecimal))
            .bind(spec.conditions.min_amount.map(DbDecimal))
            .bind(spec.conditions.max_amount.map(DbDecimal))
            .bind(kind)
            .bind(value)
            .bind(basis)
            .bind(spec.max_discount_per_line.map(DbDecimal))
            .bind(i32::from(spec.exclusive))
            .bind(&spec.currency)
            .execute(&mut *$conn)
            .await;
        match inserted {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(PricingError::RuleExists(spec.code.to_string()));
            }
            other => other?,
        };
        for (idx, target) in spec.targets.iter().enumerate() {
            let (applies_to, item, group) = match target {
                Target::Item(item) => ("Item", Some(item.as_str()), None),
                Target::ItemGroup(group) => ("Item Group", None, Some(group.as_str())),
            };
            sqlx::query(INSERT_RULE_ITEM)
                .bind(new_id())
                .bind(spec.code.as_str())
                .bind(i64::try_from(idx).unwrap_or(i64::MAX))
                .bind(applies_to)
                .bind(item)
                .bind(group)
                .execute(&mut *$conn)
                .await?;
        }
        if let RuleDiscount::Tiered(tiers) = &spec.discount {
            for (idx, tier) in tiers.tiers().iter().enumerate() {
                sqlx::query(INSERT_RULE_TIER)
                    .bind(new_id())
                    .bind(spec.code.as_str())
                    .bind(i64::try_from(idx).unwrap_or(i64::MAX))
                    .bind(DbDecimal(tier.min))
                    .bind(tier.max.map(DbDecimal))
                    .bind(tier.discount.kind().as_str())
                    .bind(DbDecimal(tier.discount.value()))
                    .execute(&mut *$conn)
                    .await?;
            }
        }
    }};
}

/// Reads a rule with its items and tiers on `$conn` (`$sql` selects the
/// row, optionally locking it); evaluates to `Option<Rule>`.
macro_rules! read_rule {
    ($conn:expr, $sql:expr, $code:expr) => {{
        let row: Option<RuleRow> = sqlx::query_as($sql)
            .bind($code)
            .fetch_optional(&mut *$conn)
            .await?;
        match row {
            None => None,
            Some(row) => {
                let items: Vec<RuleItemRow> = sqlx::query_as(RULE_ITEMS)
                    .bind($code)
                    .fetch_all(&mut *$conn)
                    .await?;
                let tiers: Vec<RuleTierRow> = sqlx::query_as(RULE_TIERS)
                    .bind($code)
                    .fetch_all(&mut *$conn)
                    .await?;
                Some(row.into_rule(&items, &tiers)?)
            }
        }
    }};
}

/// Reads a festival's windows on `$conn`.
macro_rules! read_festival {
    ($conn:expr, $festival:expr) => {{
        let rows: Vec<(String, String, NaiveDate, NaiveDate)> = sqlx::query_as(FESTIVAL_WINDOWS)
            .bind($festival.as_str())
            .fetch_all(&mut *$conn)
            .await?;
        Festival {
            code: $festival.clone(),
            windows: rows
                .into_iter()
                .map(|(id, _, start, end)| FestivalWindow { id, start, end })
                .collect(),
        }
    }};
}

fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

fn new_id() -> String {
    Uuid::now_v7().to_string()
}

fn decode_payload(payload: &str) -> Result<StoredQuote, PricingError> {
    serde_json::from_str(payload).map_err(|e| {
        PricingError::Store(harsha_store::StoreError::Sql(sqlx::Error::ColumnDecode {
            index: "payload".into(),
            source: Box::new(e),
        }))
    })
}

fn encode_payload(quote: &StoredQuote) -> String {
    // A quote serialises to JSON without failure (no maps with non-string
    // keys, decimals as strings).
    serde_json::to_string(quote).unwrap_or_default()
}

/// How far a quote's priced-for time may be from when it was made and still
/// be applied; further off, it is a what-if quote.
pub const WHAT_IF_TOLERANCE_MINUTES: i64 = 5;

/// The most quotes written in one transaction.
const QUOTE_BATCH: usize = 128;

/// A quote waiting to be written, and who waits for it.
struct PendingQuote {
    id: String,
    created: NaiveDateTime,
    actor: String,
    customer: String,
    channel: Option<String>,
    price_time: NaiveDateTime,
    expires_at: NaiveDateTime,
    currency: String,
    total: Decimal,
    payload: String,
    written: oneshot::Sender<Result<(), String>>,
}

/// Writes quotes in batches: each transaction takes every quote waiting
/// (up to [`QUOTE_BATCH`]) and commits them together, and each caller is
/// answered only once its quote is committed. Under load, many quotes share
/// one commit; alone, a quote is written at once. A batch that loses a lock
/// race is tried again; one that fails otherwise is written quote by quote,
/// so a bad quote fails only its own caller.
async fn write_quotes(pool: ErpPool, mut queue: mpsc::Receiver<PendingQuote>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < QUOTE_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let together = harsha_store::retry::with_retries(harsha_store::is_contention, || {
            insert_quotes(&pool, &batch)
        })
        .await;
        if together.is_ok() {
            for pending in batch {
                let _ = pending.written.send(Ok(()));
            }
            continue;
        }
        for pending in batch {
            let written = insert_quotes(&pool, std::slice::from_ref(&pending))
                .await
                .map_err(|e| harsha_store::status::error_chain(&e));
            if let Err(error) = &written {
                tracing::error!(quote = pending.id, %error, "quote could not be kept");
            }
            let _ = pending.written.send(written);
        }
    }
}

async fn insert_quotes(pool: &ErpPool, batch: &[PendingQuote]) -> Result<(), sqlx::Error> {
    erp_dispatch!(pool, pool => {
        let mut tx = pool.begin_write().await?;
        for quote in batch {
            sqlx::query(INSERT_QUOTE)
                .bind(&quote.id)
                .bind(quote.created)
                .bind(quote.created)
                .bind(&quote.actor)
                .bind(&quote.customer)
                .bind(&quote.channel)
                .bind(quote.price_time)
                .bind(quote.expires_at)
                .bind(&quote.currency)
                .bind(DbDecimal(quote.total))
                .bind(QuoteStatus::Quoted.as_str())
                .bind(&quote.payload)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    })
}

/// The Pricing store on an `erp` database.
#[derive(Debug, Clone)]
pub struct SqlPricingStore {
    pool: ErpPool,
    quote_writer: Arc<Mutex<Option<mpsc::Sender<PendingQuote>>>>,
}

impl SqlPricingStore {
    /// A store on `pool`, whose database must be migrated.
    pub fn new(pool: ErpPool) -> Self {
        Self {
            pool,
            quote_writer: Arc::default(),
        }
    }

    /// The queue of the quote writer, started on first use and again if it
    /// has stopped.
    fn quote_writer(&self) -> mpsc::Sender<PendingQuote> {
        let mut writer = match self.quote_writer.lock() {
            Ok(writer) => writer,
            Err(poisoned) => poisoned.into_inner(),
        };
        match writer.as_ref() {
            Some(sender) if !sender.is_closed() => sender.clone(),
            _ => {
                let (sender, queue) = mpsc::channel(4 * QUOTE_BATCH);
                tokio::spawn(write_quotes(self.pool.clone(), queue));
                *writer = Some(sender.clone());
                sender
            }
        }
    }

    /// Runs `attempt` again while it loses races (see
    /// [`harsha_store::retry`]).
    async fn retrying<T, F, Fut>(&self, attempt: F) -> Result<T, PricingError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PricingError>>,
    {
        harsha_store::retry::with_retries(PricingError::is_retryable, attempt).await
    }

    async fn save_rule(
        &self,
        spec: RuleSpec,
        actor: &Actor,
        update: bool,
    ) -> Result<Rule, PricingError> {
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            check_references!(tx, spec);
            let at = now();
            let mut spec = spec;
            let mut created = at;
            let mut owner = actor.as_str().to_owned();
            if update {
                let locked = AssertSqlSafe(format!("{SELECT_RULE}{}", pool.for_update()));
                let Some(existing) = read_rule!(tx, locked, spec.code.as_str()) else {
                    return Err(PricingError::RuleNotFound(spec.code.to_string()));
                };
                spec.active = existing.spec.active;
                created = existing.created;
                owner = sqlx::query_scalar(SELECT_OWNER).bind(spec.code.as_str()).fetch_one(&mut *tx).await?;
                sqlx::query(DELETE_RULE_ITEMS).bind(spec.code.as_str()).execute(&mut *tx).await?;
                sqlx::query(DELETE_RULE_TIERS).bind(spec.code.as_str()).execute(&mut *tx).await?;
                sqlx::query(DELETE_RULE).bind(spec.code.as_str()).execute(&mut *tx).await?;
            } else {
                spec.active = true;
            }
            insert_rule!(tx, &spec, created, at, owner.as_str(), actor);
            sqlx::query(BUMP_VERSION).execute(&mut *tx).await?;
            let rule = Rule { spec, created, modified: at };
            let event = if update { "pricing.rule.updated" } else { "pricing.rule.created" };
            record_event!(tx, at, actor, "PricingRule", rule.spec.code.as_str(), event, &rule)?;
            tx.commit().await?;
            Ok(rule)
        })
    }
}

#[async_trait::async_trait]
impl PricingStore for SqlPricingStore {
    #[tracing::instrument(name = "store.create_rule", skip_all, fields(rule = %spec.code))]
    async fn create_rule(&self, spec: RuleSpec, actor: &Actor) -> Result<Rule, PricingError> {
        self.retrying(|| self.save_rule(spec.clone(), actor, false))
            .await
    }

    #[tracing::instrument(name = "store.update_rule", skip_all, fields(rule = %spec.code))]
    async fn update_rule(&self, spec: RuleSpec, actor: &Actor) -> Result<Rule, PricingError> {
        self.retrying(|| self.save_rule(spec.clone(), actor, true))
            .await
    }

    #[tracing::instrument(name = "store.set_rule_active", skip_all, fields(rule = %code, active))]
    async fn set_rule_active(
        &self,
        code: &Code,
        active: bool,
        actor: &Actor,
    ) -> Result<Rule, PricingError> {
        self.retrying(|| async {
            erp_dispatch!(&self.pool, pool => {
                let mut tx = pool.begin_write().await?;
                let locked = AssertSqlSafe(format!("{SELECT_RULE}{}", pool.for_update()));
                let Some(mut rule) = read_rule!(tx, locked, code.as_str()) else {
                    return Err(PricingError::RuleNotFound(code.to_string()));
                };
                if rule.spec.active == active {
                    return Ok(rule);
                }
                let at = now();
                sqlx::query(SET_ACTIVE).bind(i32::from(active)).bind(at).bind(actor.as_str()).bind(code.as_str())
                    .execute(&mut *tx).await?;
                sqlx::query(BUMP_VERSION).execute(&mut *tx).await?;
                rule.spec.active = active;
                rule.modified = at;
                let event = if active { "pricing.rule.activated" } else { "pricing.rule.deactivated" };
                record_event!(tx, at, actor, "PricingRule", code.as_str(), event, &rule)?;
                tx.commit().await?;
                Ok(rule)
            })
        })
        .await
    }

    #[tracing::instrument(name = "store.rule", skip_all, fields(rule = %code))]
    async fn rule(&self, code: &Code) -> Result<Rule, PricingError> {
        let rule = erp_dispatch!(&self.pool, pool => {
            let mut conn = pool.acquire().await?;
            read_rule!(conn, SELECT_RULE, code.as_str())
        });
        rule.ok_or_else(|| PricingError::RuleNotFound(code.to_string()))
    }

    #[tracing::instrument(name = "store.list_rules", skip_all)]
    async fn list_rules(
        &self,
        active_only: bool,
        valid_on: Option<NaiveDate>,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<Rule>, PricingError> {
        let after: Option<(i32, String)> = harsha_store::page::decode_token(page_token)?;
        let priority = after.as_ref().map(|(p, _)| *p);
        let code = after.as_ref().map(|(_, c)| c.as_str());
        // The page and its rules' items and tiers from one snapshot, so a
        // rule changed meanwhile reads whole.
        let (rows, items, tiers): (Vec<RuleRow>, Vec<RuleItemRow>, Vec<RuleTierRow>) = erp_dispatch!(&self.pool, pool => {
            let mut conn = pool.acquire().await?;
            let mut tx = begin_snapshot!(pool, conn);
            let rows = sqlx::query_as(LIST_RULES)
                .bind(i32::from(active_only))
                .bind(valid_on).bind(valid_on).bind(valid_on)
                .bind(priority).bind(priority).bind(priority)
                .bind(code)
                .bind(i64::from(page_size) + 1)
                .fetch_all(&mut *tx)
                .await?;
            let items = sqlx::query_as(ALL_RULE_ITEMS).fetch_all(&mut *tx).await?;
            let tiers = sqlx::query_as(ALL_RULE_TIERS).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            (rows, items, tiers)
        });
        let page = Page::from_rows(rows, page_size, |row| (row.priority, row.name.clone()));
        page.try_map(|row| row.into_rule(&items, &tiers))
    }

    async fn cache_version(&self) -> Result<i64, PricingError> {
        let version: i64 = erp_dispatch!(&self.pool, pool => {
            sqlx::query_scalar(SELECT_VERSION).fetch_one(pool).await?
        });
        Ok(version)
    }

    #[tracing::instrument(name = "store.load_book", skip_all)]
    async fn load_book(&self) -> Result<BookData, PricingError> {
        type Loaded = (
            Vec<RuleRow>,
            Vec<RuleItemRow>,
            Vec<RuleTierRow>,
            Vec<(String, String, NaiveDate, NaiveDate)>,
            Vec<(String, Option<String>, Option<String>)>,
            Vec<(String, Option<String>)>,
            Vec<(String, Option<String>)>,
            Vec<(String, String, DbDecimal, Option<String>, Option<String>)>,
        );
        let today = Utc::now().date_naive();
        // One connection, one snapshot.
        let loaded: Loaded = erp_dispatch!(&self.pool, pool => {
            let mut conn = pool.acquire().await?;
            let mut tx = begin_snapshot!(pool, conn);
            let loaded = (
                sqlx::query_as(ACTIVE_RULES).fetch_all(&mut *tx).await?,
                sqlx::query_as(ALL_RULE_ITEMS).fetch_all(&mut *tx).await?,
                sqlx::query_as(ALL_RULE_TIERS).fetch_all(&mut *tx).await?,
                sqlx::query_as(ALL_WINDOWS).fetch_all(&mut *tx).await?,
                sqlx::query_as(ALL_ITEMS).fetch_all(&mut *tx).await?,
                sqlx::query_as(ALL_GROUPS).fetch_all(&mut *tx).await?,
                sqlx::query_as(ALL_TERRITORIES).fetch_all(&mut *tx).await?,
                sqlx::query_as(ALL_PRICES).bind(today).bind(today).fetch_all(&mut *tx).await?,
            );
            tx.commit().await?;
            loaded
        });
        let (rules, items, tiers, windows, catalogue_items, groups, territories, prices) = loaded;
        // A rule that no longer reads (edited by hand in the database) is
        // left out and logged, so that it cannot stop all pricing.
        let rules = rules
            .into_iter()
            .filter_map(|row| {
                let code = row.name.clone();
                match row.into_rule(&items, &tiers) {
                    Ok(rule) => Some(rule.spec),
                    Err(error) => {
                        tracing::error!(rule = code, error = %harsha_store::status::error_chain(&error), "pricing rule left out of the cache");
                        None
                    }
                }
            })
            .collect();
        let mut festivals = FestivalCalendar::default();
        for (_, festival, start, end) in windows {
            if let Ok(code) = Code::parse(&festival) {
                festivals.add(code, start, end);
            }
        }
        let mut catalogue = Catalogue::default();
        let mut stock_uoms = BTreeMap::new();
        for (item, group, uom) in catalogue_items {
            catalogue.add_item(&item, group.as_deref().unwrap_or_default());
            stock_uoms.insert(item, uom.unwrap_or_default());
        }
        for (group, parent) in groups {
            catalogue.add_group(&group, parent.as_deref().unwrap_or_default());
        }
        for (territory, parent) in territories {
            catalogue.add_territory(&territory, parent.as_deref().unwrap_or_default());
        }
        for (item, price_list, rate, currency, uom) in prices {
            let uom = uom
                .filter(|u| !u.is_empty())
                .or_else(|| stock_uoms.get(&item).cloned())
                .unwrap_or_default();
            catalogue.set_price(
                &item,
                BasePrice {
                    price_list,
                    rate: rate.get(),
                    currency: currency
                        .filter(|c| !c.is_empty())
                        .unwrap_or_else(|| "INR".into()),
                    uom,
                },
            );
        }
        Ok(BookData {
            rules,
            festivals,
            catalogue,
        })
    }

    #[tracing::instrument(name = "store.add_festival_window", skip_all, fields(festival = %festival))]
    async fn add_festival_window(
        &self,
        festival: &Code,
        start: NaiveDate,
        end: NaiveDate,
        actor: &Actor,
    ) -> Result<Festival, PricingError> {
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let at = now();
            let id = new_id();
            sqlx::query(INSERT_WINDOW).bind(&id).bind(at).bind(actor.as_str()).bind(festival.as_str())
                .bind(start).bind(end).execute(&mut *tx).await?;
            sqlx::query(BUMP_VERSION).execute(&mut *tx).await?;
            let window = FestivalWindow { id: id.clone(), start, end };
            record_event!(tx, at, actor, "FestivalWindow", &id, "pricing.festival.window_added", &(festival, &window))?;
            let festival = read_festival!(tx, festival);
            tx.commit().await?;
            Ok(festival)
        })
    }

    #[tracing::instrument(name = "store.remove_festival_window", skip_all, fields(festival = %festival))]
    async fn remove_festival_window(
        &self,
        festival: &Code,
        window_id: &str,
        actor: &Actor,
    ) -> Result<Festival, PricingError> {
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let removed = sqlx::query(DELETE_WINDOW).bind(window_id).bind(festival.as_str()).execute(&mut *tx).await?;
            if removed.rows_affected() == 0 {
                return Err(PricingError::WindowNotFound(window_id.to_owned()));
            }
            let at = now();
            sqlx::query(BUMP_VERSION).execute(&mut *tx).await?;
            record_event!(tx, at, actor, "FestivalWindow", window_id, "pricing.festival.window_removed", &festival)?;
            let festival = read_festival!(tx, festival);
            tx.commit().await?;
            Ok(festival)
        })
    }

    async fn festivals(&self) -> Result<Vec<Festival>, PricingError> {
        let rows: Vec<(String, String, NaiveDate, NaiveDate)> = erp_dispatch!(&self.pool, pool => {
            sqlx::query_as(ALL_WINDOWS).fetch_all(pool).await?
        });
        let mut festivals: Vec<Festival> = Vec::new();
        for (id, festival, start, end) in rows {
            let Ok(code) = Code::parse(&festival) else {
                continue;
            };
            match festivals.last_mut() {
                Some(last) if last.code == code => {
                    last.windows.push(FestivalWindow { id, start, end })
                }
                _ => festivals.push(Festival {
                    code,
                    windows: vec![FestivalWindow { id, start, end }],
                }),
            }
        }
        Ok(festivals)
    }

    #[tracing::instrument(name = "store.set_item_price", skip_all, fields(item = %item_code, price_list))]
    async fn set_item_price(
        &self,
        item_code: &DocName,
        price_list: &str,
        rate: Decimal,
        currency: &str,
        uom: Option<&str>,
        actor: &Actor,
    ) -> Result<ItemPrice, PricingError> {
        self.retrying(|| async {
            erp_dispatch!(&self.pool, pool => {
                let mut tx = pool.begin_write().await?;
                let stock_uom: Option<Option<String>> = sqlx::query_scalar(ITEM_UOM)
                    .bind(item_code.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(stock_uom) = stock_uom else {
                    return Err(PricingError::invalid("item_code", format!("{item_code:?} not found")));
                };
                let uom = uom.map(str::to_owned).or(stock_uom).unwrap_or_else(|| "Nos".into());
                let at = now();
                let existing: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!("{SELECT_PRICE}{}", pool.for_update())))
                    .bind(item_code.as_str())
                    .bind(price_list)
                    .fetch_optional(&mut *tx)
                    .await?;
                match existing {
                    Some(name) => {
                        sqlx::query(UPDATE_PRICE).bind(DbDecimal(rate)).bind(currency).bind(&uom).bind(at)
                            .bind(actor.as_str()).bind(&name).execute(&mut *tx).await?;
                    }
                    None => {
                        sqlx::query(INSERT_PRICE).bind(new_id()).bind(at).bind(at).bind(actor.as_str())
                            .bind(actor.as_str()).bind(item_code.as_str()).bind(&uom).bind(price_list)
                            .bind(currency).bind(DbDecimal(rate)).execute(&mut *tx).await?;
                    }
                }
                sqlx::query(BUMP_VERSION).execute(&mut *tx).await?;
                let price = ItemPrice {
                    item_code: item_code.to_string(),
                    price_list: price_list.to_owned(),
                    rate: rate.normalize(),
                    currency: currency.to_owned(),
                    uom,
                };
                record_event!(tx, at, actor, "ItemPrice", item_code.as_str(), "pricing.item_price.set", &price)?;
                tx.commit().await?;
                Ok(price)
            })
        })
        .await
    }

    async fn item_prices(&self, item_code: &DocName) -> Result<Vec<ItemPrice>, PricingError> {
        let rows: Vec<(String, String, DbDecimal, Option<String>, Option<String>)> = erp_dispatch!(&self.pool, pool => {
            sqlx::query_as(ITEM_PRICES).bind(item_code.as_str()).fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|(item_code, price_list, rate, currency, uom)| ItemPrice {
                item_code,
                price_list,
                rate: rate.get(),
                currency: currency.unwrap_or_else(|| "INR".into()),
                uom: uom.unwrap_or_default(),
            })
            .collect())
    }

    #[tracing::instrument(name = "store.save_quote", skip_all, fields(quote = %quote.id))]
    async fn save_quote(&self, quote: &StoredQuote, actor: &Actor) -> Result<(), PricingError> {
        let (written, answer) = oneshot::channel();
        let pending = PendingQuote {
            id: quote.id.clone(),
            created: quote.created,
            actor: actor.as_str().to_owned(),
            customer: quote.customer.clone(),
            channel: quote.channel.clone(),
            price_time: quote.price_time,
            expires_at: quote.expires_at,
            currency: quote.cart.currency.clone(),
            total: quote.cart.total,
            payload: encode_payload(quote),
            written,
        };
        let lost = || PricingError::Unavailable("the quote could not be kept; quote again".into());
        self.quote_writer()
            .send(pending)
            .await
            .map_err(|_| lost())?;
        answer.await.map_err(|_| lost())?.map_err(|error| {
            PricingError::Unavailable(format!(
                "the quote could not be kept ({error}); quote again"
            ))
        })
    }

    #[tracing::instrument(name = "store.quote", skip_all, fields(quote = id))]
    async fn quote(&self, id: &str) -> Result<StoredQuote, PricingError> {
        let payload: Option<String> = erp_dispatch!(&self.pool, pool => {
            sqlx::query_scalar(SELECT_QUOTE).bind(id).fetch_optional(pool).await?
        });
        decode_payload(&payload.ok_or_else(|| PricingError::QuoteNotFound(id.to_owned()))?)
    }

    #[tracing::instrument(name = "store.apply_quote", skip_all, fields(quote = id))]
    async fn apply_quote(
        &self,
        id: &str,
        order_reference: Option<&str>,
        today: NaiveDate,
        actor: &Actor,
    ) -> Result<(StoredQuote, Vec<RuleApplication>), PricingError> {
        self.retrying(|| async {
            erp_dispatch!(&self.pool, pool => {
                let mut tx = pool.begin_write().await?;
                let payload: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!("{SELECT_QUOTE}{}", pool.for_update())))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let mut quote = decode_payload(&payload.ok_or_else(|| PricingError::QuoteNotFound(id.to_owned()))?)?;
                if quote.status == QuoteStatus::Applied {
                    if order_reference.is_some() && quote.order_reference.as_deref() != order_reference {
                        return Err(PricingError::FailedPrecondition(format!(
                            "quote {id} was applied to {}",
                            quote.order_reference.as_deref().unwrap_or("another order")
                        )));
                    }
                    let rows: Vec<(String, NaiveDate, String, String, i64, String, String, Option<String>, DbDecimal, String)> =
                        sqlx::query_as(QUOTE_APPLICATIONS).bind(id).fetch_all(&mut *tx).await?;
                    tx.commit().await?;
                    let applications = rows
                        .into_iter()
                        .map(|(id, date, rule, quote, line, item, customer, order, discount, currency)| RuleApplication {
                            id,
                            rule,
                            quote,
                            line_index: u32::try_from(line).unwrap_or_default(),
                            item_code: item,
                            customer,
                            order_reference: order,
                            discount_amount: discount.get(),
                            currency,
                            application_date: date,
                        })
                        .collect();
                    return Ok((quote, applications));
                }
                let at = now();
                if (quote.price_time - quote.created).abs() > chrono::Duration::minutes(WHAT_IF_TOLERANCE_MINUTES) {
                    return Err(PricingError::FailedPrecondition(format!(
                        "quote {id} was priced for {} UTC, not for when it was made: a what-if quote cannot be applied",
                        quote.price_time
                    )));
                }
                if quote.expires_at <= at {
                    return Err(PricingError::FailedPrecondition(format!(
                        "quote {id} expired at {} UTC; quote again",
                        quote.expires_at
                    )));
                }
                let mut applications = Vec::new();
                for (index, line) in quote.cart.lines.iter().enumerate() {
                    for (rule, discount) in line.rule_discounts() {
                        let application = RuleApplication {
                            id: new_id(),
                            rule: rule.to_string(),
                            quote: id.to_owned(),
                            line_index: u32::try_from(index).unwrap_or(u32::MAX),
                            item_code: line.item_code.clone(),
                            customer: quote.customer.clone(),
                            order_reference: order_reference.map(str::to_owned),
                            discount_amount: discount,
                            currency: quote.cart.currency.clone(),
                            application_date: today,
                        };
                        sqlx::query(INSERT_APPLICATION)
                            .bind(&application.id)
                            .bind(application.application_date)
                            .bind(at)
                            .bind(actor.as_str())
                            .bind(&application.rule)
                            .bind(&application.quote)
                            .bind(i64::from(application.line_index))
                            .bind(&application.item_code)
                            .bind(&application.customer)
                            .bind(&application.order_reference)
                            .bind(DbDecimal(application.discount_amount))
                            .bind(&application.currency)
                            .execute(&mut *tx)
                            .await?;
                        applications.push(application);
                    }
                }
                quote.status = QuoteStatus::Applied;
                quote.applied_at = Some(at);
                quote.order_reference = order_reference.map(str::to_owned);
                sqlx::query(MARK_APPLIED)
                    .bind(at)
                    .bind(order_reference)
                    .bind(at)
                    .bind(encode_payload(&quote))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                record_event!(tx, at, actor, "PriceQuote", id, "pricing.quote.applied", &applications)?;
                tx.commit().await?;
                count_applications(&applications);
                Ok((quote, applications))
            })
        })
        .await
    }

    #[tracing::instrument(name = "store.effectiveness", skip_all)]
    async fn effectiveness(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        rule: Option<&Code>,
    ) -> Result<Vec<Effectiveness>, PricingError> {
        let rule = rule.map(Code::as_str);
        let rows: Vec<(String, i64, Option<DbDecimal>, String)> = erp_dispatch!(&self.pool, pool => {
            sqlx::query_as(RULE_EFFECTIVENESS)
                .bind(from).bind(to).bind(rule).bind(rule)
                .fetch_all(pool)
                .await?
        });
        let mut found: Vec<Effectiveness> = rows
            .into_iter()
            .map(|(rule, usage_count, total, currency)| Effectiveness {
                rule,
                usage_count,
                total_discount: total.map(DbDecimal::get).unwrap_or_default(),
                currency,
            })
            .collect();
        found.sort_by(|a, b| {
            b.total_discount
                .cmp(&a.total_discount)
                .then_with(|| a.rule.cmp(&b.rule))
        });
        Ok(found)
    }

    async fn ensure_application_partitions(
        &self,
        through: NaiveDate,
    ) -> Result<Vec<String>, PricingError> {
        Ok(harsha_store::partition::ensure_monthly(
            &self.pool,
            "tabHD Pricing Rule Application",
            through,
        )
        .await?)
    }
}

/// Counts rule applications as they are first recorded, and the discount
/// they gave in the currency's minor unit (paise).
fn count_applications(applications: &[RuleApplication]) {
    use rust_decimal::prelude::ToPrimitive as _;

    for application in applications {
        metrics::counter!("harsha_pricing_rule_applications_total", "rule" => application.rule.clone())
            .increment(1);
        let minor = (application.discount_amount * Decimal::ONE_HUNDRED)
            .round()
            .to_u64()
            .unwrap_or_default();
        metrics::counter!(
            "harsha_pricing_discount_given_minor_total",
            "rule" => application.rule.clone(),
            "currency" => application.currency.clone(),
        )
        .increment(minor);
    }
}
