//! [`SqlOrderStore`]: the order store on MariaDB and SQLite, SQL written
//! once. Decimals go through `DbDecimal`; a line's price and batches are
//! JSON (exact decimal strings), its amounts also columns for queries.

use chrono::NaiveDateTime;
use harsha_store::{
    DbDecimal, ErpDialect as _, ErpPool, erp_dispatch,
    page::{Page, decode_token},
    sqlx::{self, AssertSqlSafe},
};
use rust_decimal::Decimal;

use super::{Inserted, LogEntry, OrderFilter, OrderStore, Save};
use crate::{
    OrderError,
    domain::{Failure, Order, OrderLine, OrderStatus, SagaStep, Step},
};

/// The service name recorded as the source of its outbox events.
const SOURCE_SERVICE: &str = "order";

const ORDER_COLUMNS: &str = "`name`, `creation`, `modified`, `owner`, `customer`, `channel`, \
     `set_warehouse`, `status`, `saga_step`, `version`, `idempotency_key`, `request_hash`, \
     `attempt`, `min_shelf_life_days`, `currency`, `subtotal`, `total_discount`, `grand_total`, `quote`, `price_tier`, \
     `primary_segment`, `territory`, `failure_code`, `failure_step`, `failure_message`, \
     `placed_at`, `cancelled_at`, `fulfilled_at`, `cancel_reason`";

const INSERT_ORDER: &str = "INSERT INTO `tabHD Order` (`name`, `creation`, `modified`, `modified_by`, \
     `owner`, `customer`, `channel`, `set_warehouse`, `status`, `saga_step`, `lease_until`, `version`, \
     `idempotency_key`, `request_hash`, `attempt`, `min_shelf_life_days`) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)";

const UPDATE_ORDER: &str = "UPDATE `tabHD Order` SET `modified` = ?, `modified_by` = ?, `status` = ?, \
     `saga_step` = ?, `lease_until` = ?, `version` = `version` + 1, `attempt` = ?, `currency` = ?, `subtotal` = ?, \
     `total_discount` = ?, `grand_total` = ?, `quote` = ?, `price_tier` = ?, `primary_segment` = ?, \
     `territory` = ?, `failure_code` = ?, `failure_step` = ?, `failure_message` = ?, `placed_at` = ?, \
     `cancelled_at` = ?, `fulfilled_at` = ?, `cancel_reason` = ? WHERE `name` = ? AND `version` = ?";

const INSERT_LINE: &str = "INSERT INTO `tabHD Order Item` (`name`, `creation`, `parent`, `idx`, \
     `item_code`, `qty`, `uom`, `rate`, `net_amount`, `pricing`, `allocation`, `batches`) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

const UPDATE_LINE: &str = "UPDATE `tabHD Order Item` SET `uom` = ?, `rate` = ?, `net_amount` = ?, \
     `pricing` = ?, `allocation` = ?, `batches` = ? WHERE `parent` = ? AND `idx` = ?";

const SELECT_LINES: &str = "SELECT `parent`, `idx`, `item_code`, `qty`, `uom`, `pricing`, \
     `allocation`, `batches` FROM `tabHD Order Item` WHERE `parent` IN ";

const INSERT_LOG: &str = "INSERT INTO `tabHD Order Saga Log` (`name`, `creation`, `parent`, `owner`, \
     `status`, `saga_step`, `detail`) VALUES (?, ?, ?, ?, ?, ?, ?)";

/// A row of `tabHD Order`.
#[derive(sqlx::FromRow)]
struct OrderRow {
    name: String,
    creation: NaiveDateTime,
    modified: NaiveDateTime,
    owner: String,
    customer: String,
    channel: String,
    set_warehouse: Option<String>,
    status: String,
    saga_step: String,
    version: i64,
    idempotency_key: String,
    request_hash: String,
    attempt: i32,
    min_shelf_life_days: i32,
    currency: Option<String>,
    subtotal: Option<DbDecimal>,
    total_discount: Option<DbDecimal>,
    grand_total: Option<DbDecimal>,
    quote: Option<String>,
    price_tier: Option<String>,
    primary_segment: Option<String>,
    territory: Option<String>,
    failure_code: Option<i32>,
    failure_step: Option<String>,
    failure_message: Option<String>,
    placed_at: Option<NaiveDateTime>,
    cancelled_at: Option<NaiveDateTime>,
    fulfilled_at: Option<NaiveDateTime>,
    cancel_reason: Option<String>,
}

/// A row of `tabHD Order Item`.
#[derive(sqlx::FromRow)]
struct LineRow {
    parent: String,
    idx: i32,
    item_code: String,
    qty: DbDecimal,
    uom: Option<String>,
    pricing: Option<String>,
    allocation: Option<String>,
    batches: String,
}

/// A row of `tabHD Order Saga Log`.
#[derive(sqlx::FromRow)]
struct LogRow {
    creation: NaiveDateTime,
    owner: String,
    status: String,
    saga_step: String,
    detail: Option<String>,
}

fn corrupt(what: &str, value: &str) -> OrderError {
    OrderError::Store(harsha_store::StoreError::Sql(sqlx::Error::Decode(
        format!("unreadable {what} {value:?} in tabHD Order").into(),
    )))
}

/// An amount as the Pricing service wrote it (SQLite keeps nine places).
fn money(value: DbDecimal) -> Decimal {
    value.get().normalize()
}

impl OrderRow {
    fn into_order(self, lines: Vec<OrderLine>) -> Result<Order, OrderError> {
        let status =
            OrderStatus::parse(&self.status).ok_or_else(|| corrupt("status", &self.status))?;
        let saga_step = SagaStep::parse(&self.saga_step)
            .ok_or_else(|| corrupt("saga step", &self.saga_step))?;
        let failure = match (self.failure_code, self.failure_message) {
            (Some(code), Some(message)) => Some(Failure {
                code,
                message,
                step: self
                    .failure_step
                    .as_deref()
                    .and_then(Step::parse)
                    .unwrap_or(Step::Recovery),
            }),
            _ => None,
        };
        Ok(Order {
            id: self.name,
            owner: self.owner,
            customer: self.customer,
            channel: self.channel,
            warehouse: self.set_warehouse,
            status,
            saga_step,
            idempotency_key: self.idempotency_key,
            request_hash: self.request_hash,
            attempt: u32::try_from(self.attempt).unwrap_or(1),
            min_shelf_life_days: self.min_shelf_life_days,
            currency: self.currency,
            subtotal: self.subtotal.map(money),
            total_discount: self.total_discount.map(money),
            total: self.grand_total.map(money),
            quote_id: self.quote,
            price_tier: self.price_tier,
            primary_segment: self.primary_segment,
            territory: self.territory,
            lines,
            failure,
            created: self.creation,
            modified: self.modified,
            placed_at: self.placed_at,
            cancelled_at: self.cancelled_at,
            fulfilled_at: self.fulfilled_at,
            cancel_reason: self.cancel_reason,
            version: self.version,
        })
    }
}

impl LineRow {
    fn into_line(self) -> Result<OrderLine, OrderError> {
        let pricing = self
            .pricing
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|_| corrupt("line pricing of", &self.parent))?;
        let batches = serde_json::from_str(&self.batches)
            .map_err(|_| corrupt("line batches of", &self.parent))?;
        Ok(OrderLine {
            index: u32::try_from(self.idx).unwrap_or(0),
            item_code: self.item_code,
            qty: self.qty.get().normalize(),
            uom: self.uom,
            pricing,
            allocation_id: self.allocation,
            batches,
        })
    }
}

/// The order store on an `erp` pool.
#[derive(Debug, Clone)]
pub struct SqlOrderStore {
    pool: ErpPool,
}

impl SqlOrderStore {
    /// A store on `pool` (migrated).
    pub fn new(pool: ErpPool) -> Self {
        Self { pool }
    }
}

fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

fn placeholders(n: usize) -> String {
    let mut out = String::from("(");
    for i in 0..n {
        out.push_str(if i == 0 { "?" } else { ", ?" });
    }
    out.push(')');
    out
}

/// Reads the lines of the order rows `$rows` on `$conn`; evaluates to
/// the orders, in the rows' order.
macro_rules! with_lines {
    ($conn:expr, $rows:expr) => {{
        let rows: Vec<OrderRow> = $rows;
        let mut orders = Vec::with_capacity(rows.len());
        if !rows.is_empty() {
            let sql = format!(
                "{SELECT_LINES}{} ORDER BY `parent`, `idx`",
                placeholders(rows.len())
            );
            let mut query = sqlx::query_as::<_, LineRow>(AssertSqlSafe(sql));
            for row in &rows {
                query = query.bind(row.name.clone());
            }
            let mut lines: std::collections::HashMap<String, Vec<OrderLine>> =
                std::collections::HashMap::new();
            for line in query.fetch_all(&mut *$conn).await? {
                let parent = line.parent.clone();
                lines.entry(parent).or_default().push(line.into_line()?);
            }
            for row in rows {
                let own = lines.remove(&row.name).unwrap_or_default();
                orders.push(row.into_order(own)?);
            }
        }
        orders
    }};
}

/// Reads orders by a query (binding `$binds`) on `$conn`, with their
/// lines; evaluates to `Vec<Order>` in the query's order.
macro_rules! read_orders {
    ($conn:expr, $sql:expr, [$($bind:expr),*]) => {{
        let rows: Vec<OrderRow> = sqlx::query_as(AssertSqlSafe($sql))
            $(.bind($bind))*
            .fetch_all(&mut *$conn)
            .await?;
        with_lines!($conn, rows)
    }};
}

/// Writes `$order`'s lines on `$conn`: inserts them, or (`$existing`) updates those there.
macro_rules! write_lines {
    ($conn:expr, $order:expr, $at:expr, $existing:expr) => {{
        for line in &$order.lines {
            let pricing = line
                .pricing
                .as_ref()
                .map(|p| serde_json::to_string(p).unwrap_or_default());
            let batches = serde_json::to_string(&line.batches).unwrap_or_else(|_| "[]".into());
            let index = i32::try_from(line.index).unwrap_or(i32::MAX);
            if $existing {
                // An order's lines are fixed when it is recorded; what
                // changes is their price, reservation and batches.
                sqlx::query(UPDATE_LINE)
                    .bind(line.uom.as_deref())
                    .bind(line.pricing.as_ref().map(|p| DbDecimal(p.unit_price)))
                    .bind(line.pricing.as_ref().map(|p| DbDecimal(p.net_amount)))
                    .bind(pricing)
                    .bind(line.allocation_id.as_deref())
                    .bind(batches)
                    .bind($order.id.as_str())
                    .bind(index)
                    .execute(&mut *$conn)
                    .await?;
            } else {
                sqlx::query(INSERT_LINE)
                    .bind(new_id())
                    .bind($at)
                    .bind($order.id.as_str())
                    .bind(index)
                    .bind(line.item_code.as_str())
                    .bind(DbDecimal(line.qty))
                    .bind(line.uom.as_deref())
                    .bind(line.pricing.as_ref().map(|p| DbDecimal(p.unit_price)))
                    .bind(line.pricing.as_ref().map(|p| DbDecimal(p.net_amount)))
                    .bind(pricing)
                    .bind(line.allocation_id.as_deref())
                    .bind(batches)
                    .execute(&mut *$conn)
                    .await?;
            }
        }
    }};
}

/// Appends a saga-log line for `$order` on `$conn`.
macro_rules! write_log {
    ($conn:expr, $order:expr, $at:expr, $actor:expr, $detail:expr) => {
        sqlx::query(INSERT_LOG)
            .bind(new_id())
            .bind($at)
            .bind($order.id.as_str())
            .bind($actor)
            .bind($order.status.as_str())
            .bind($order.saga_step.as_str())
            .bind($detail)
            .execute(&mut *$conn)
            .await?
    };
}

#[async_trait::async_trait]
impl OrderStore for SqlOrderStore {
    #[tracing::instrument(name = "store.insert_order", skip_all, fields(order = %order.id))]
    async fn insert(
        &self,
        order: &Order,
        lease_until: NaiveDateTime,
    ) -> Result<Inserted, OrderError> {
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let inserted = sqlx::query(INSERT_ORDER)
                .bind(order.id.as_str())
                .bind(order.created)
                .bind(order.modified)
                .bind(order.owner.as_str())
                .bind(order.owner.as_str())
                .bind(order.customer.as_str())
                .bind(order.channel.as_str())
                .bind(order.warehouse.as_deref())
                .bind(order.status.as_str())
                .bind(order.saga_step.as_str())
                .bind(lease_until)
                .bind(order.idempotency_key.as_str())
                .bind(order.request_hash.as_str())
                .bind(i32::try_from(order.attempt).unwrap_or(i32::MAX))
                .bind(order.min_shelf_life_days)
                .execute(&mut *tx)
                .await;
            match inserted {
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    drop(tx);
                    return match self.by_key(&order.owner, &order.idempotency_key).await? {
                        Some(existing) => Ok(Inserted::Existing(Box::new(existing))),
                        None => Err(OrderError::Aborted(
                            "a concurrent request with the same idempotency key is being recorded; try again".into(),
                        )),
                    };
                }
                other => other?,
            };
            write_lines!(tx, order, order.created, false);
            write_log!(tx, order, super::now(), order.owner.as_str(), "order recorded");
            tx.commit().await?;
            Ok(Inserted::New)
        })
    }

    #[tracing::instrument(name = "store.save_order", skip_all, fields(order = %order.id, status = order.status.as_str(), step = order.saga_step.as_str()))]
    async fn save(&self, order: &mut Order, save: Save<'_>) -> Result<(), OrderError> {
        let at = super::now();
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let failure = order.failure.as_ref();
            let updated = sqlx::query(UPDATE_ORDER)
                .bind(at)
                .bind(save.actor)
                .bind(order.status.as_str())
                .bind(order.saga_step.as_str())
                .bind(save.lease_until)
                .bind(i32::try_from(order.attempt).unwrap_or(i32::MAX))
                .bind(order.currency.as_deref())
                .bind(order.subtotal.map(DbDecimal))
                .bind(order.total_discount.map(DbDecimal))
                .bind(order.total.map(DbDecimal))
                .bind(order.quote_id.as_deref())
                .bind(order.price_tier.as_deref())
                .bind(order.primary_segment.as_deref())
                .bind(order.territory.as_deref())
                .bind(failure.map(|f| f.code))
                .bind(failure.map(|f| f.step.as_str()))
                .bind(failure.map(|f| f.message.as_str()))
                .bind(order.placed_at)
                .bind(order.cancelled_at)
                .bind(order.fulfilled_at)
                .bind(order.cancel_reason.as_deref())
                .bind(order.id.as_str())
                .bind(order.version)
                .execute(&mut *tx)
                .await?;
            if updated.rows_affected() == 0 {
                return Err(OrderError::Aborted(format!(
                    "order {} was changed by another request; read it again",
                    order.id
                )));
            }
            if save.lines {
                write_lines!(tx, order, at, true);
            }
            write_log!(tx, order, at, save.actor, save.detail);
            order.modified = at;
            if let Some(event) = save.event {
                let reversal = event == super::OrderEvent::Cancelled;
                let payload = order.event_payload(reversal);
                harsha_store::record_outbox_event!(
                    tx,
                    harsha_store::outbox::OutboxEvent::new(
                        SOURCE_SERVICE,
                        at,
                        save.actor,
                        "Order",
                        &order.id,
                        event.event_type(),
                        &payload
                    )
                )?;
            }
            tx.commit().await?;
            order.version += 1;
            Ok(())
        })
    }

    #[tracing::instrument(name = "store.order", skip(self))]
    async fn order(&self, id: &str) -> Result<Order, OrderError> {
        erp_dispatch!(&self.pool, pool => {
            let mut conn = pool.acquire().await?;
            let sql = format!("SELECT {ORDER_COLUMNS} FROM `tabHD Order` WHERE `name` = ?");
            let mut orders = read_orders!(conn, sql, [id]);
            orders.pop().ok_or_else(|| OrderError::NotFound(id.to_owned()))
        })
    }

    #[tracing::instrument(name = "store.order_by_key", skip(self))]
    async fn by_key(&self, owner: &str, key: &str) -> Result<Option<Order>, OrderError> {
        erp_dispatch!(&self.pool, pool => {
            let mut conn = pool.acquire().await?;
            let sql = format!(
                "SELECT {ORDER_COLUMNS} FROM `tabHD Order` WHERE `owner` = ? AND `idempotency_key` = ?"
            );
            let mut orders = read_orders!(conn, sql, [owner, key]);
            Ok(orders.pop())
        })
    }

    #[tracing::instrument(name = "store.list_orders", skip(self))]
    async fn list(
        &self,
        filter: &OrderFilter,
        size: u32,
        token: &str,
    ) -> Result<Page<Order>, OrderError> {
        let after: Option<(NaiveDateTime, String)> = decode_token(token)?;
        let mut conditions: Vec<&str> = Vec::new();
        if filter.customer.is_some() {
            conditions.push("`customer` = ?");
        }
        if filter.status.is_some() {
            conditions.push("`status` = ?");
        }
        if filter.created_after.is_some() {
            conditions.push("`creation` >= ?");
        }
        if filter.created_before.is_some() {
            conditions.push("`creation` < ?");
        }
        if after.is_some() {
            conditions.push("(`creation` < ? OR (`creation` = ? AND `name` < ?))");
        }
        let mut sql = format!("SELECT {ORDER_COLUMNS} FROM `tabHD Order`");
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(&format!(
            " ORDER BY `creation` DESC, `name` DESC LIMIT {}",
            size + 1
        ));
        let orders = erp_dispatch!(&self.pool, pool => {
            let mut conn = pool.acquire().await?;
            let mut query = sqlx::query_as::<_, OrderRow>(AssertSqlSafe(sql));
            if let Some(customer) = &filter.customer {
                query = query.bind(customer.clone());
            }
            if let Some(status) = filter.status {
                query = query.bind(status.as_str());
            }
            if let Some(at) = filter.created_after {
                query = query.bind(at);
            }
            if let Some(at) = filter.created_before {
                query = query.bind(at);
            }
            if let Some((at, name)) = &after {
                query = query.bind(*at).bind(*at).bind(name.clone());
            }
            let rows = query.fetch_all(&mut *conn).await?;
            with_lines!(conn, rows)
        });
        Ok(Page::from_rows(orders, size, |o: &Order| {
            (o.created, o.id.clone())
        }))
    }

    #[tracing::instrument(name = "store.unfinished_orders", skip(self))]
    async fn unfinished(&self, now: NaiveDateTime, limit: u32) -> Result<Vec<Order>, OrderError> {
        erp_dispatch!(&self.pool, pool => {
            let mut conn = pool.acquire().await?;
            let sql = format!(
                "SELECT {ORDER_COLUMNS} FROM `tabHD Order` WHERE `status` IN ('Pending', 'Cancelling', 'Fulfilling') \
                 AND `lease_until` < ? ORDER BY `lease_until` LIMIT {limit}"
            );
            let orders = read_orders!(conn, sql, [now]);
            Ok(orders)
        })
    }

    #[tracing::instrument(name = "store.saga_log", skip(self))]
    async fn saga_log(&self, id: &str) -> Result<Vec<LogEntry>, OrderError> {
        erp_dispatch!(&self.pool, pool => {
            let rows: Vec<LogRow> = sqlx::query_as(
                "SELECT `creation`, `owner`, `status`, `saga_step`, `detail` FROM `tabHD Order Saga Log` \
                 WHERE `parent` = ? ORDER BY `creation`, `name`",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|r| LogEntry {
                    at: r.creation,
                    actor: r.owner,
                    status: r.status,
                    saga_step: r.saga_step,
                    detail: r.detail.unwrap_or_default(),
                })
                .collect())
        })
    }
}
