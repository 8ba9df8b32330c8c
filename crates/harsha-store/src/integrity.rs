//! What `harsha migrate status|validate|verify` read from a role's
//! database: each embedded migration's state against the history table
//! (applied, pending, edited since it was applied, failed, or applied but
//! unknown to this build), and the post-migration integrity checks — row
//! counts of the role's tables and the invariants its services keep (one
//! open primary segment per customer, batch balances equal to their
//! movements, one live refresh token per family, …), each as a count of
//! violating rows.

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use crate::{Database, Engine, Pool, Role, StoreError};

/// Where an embedded migration stands on a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationState {
    /// Applied, with the checksum it has now.
    Applied,
    /// Not applied yet.
    Pending,
    /// Applied, but its file changed since (the checksums differ).
    Edited,
    /// Recorded as failed.
    Failed,
    /// Recorded as applied, but this build has no such migration (the
    /// database is ahead of the binary, or a file was removed).
    Unknown,
}

impl MigrationState {
    /// Its name in `harsha migrate status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Pending => "pending",
            Self::Edited => "EDITED after it was applied",
            Self::Failed => "FAILED",
            Self::Unknown => "UNKNOWN to this build",
        }
    }

    /// Whether `harsha migrate validate` refuses it.
    pub fn is_problem(self) -> bool {
        matches!(self, Self::Edited | Self::Failed | Self::Unknown)
    }
}

/// One migration of a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Its version (the file name's timestamp).
    pub version: i64,
    /// Its description (the rest of the file name).
    pub description: String,
    /// Where it stands.
    pub state: MigrationState,
    /// When it was applied.
    pub installed_on: Option<DateTime<Utc>>,
    /// How long it took, in milliseconds.
    pub execution_ms: Option<i64>,
}

/// A row of the history table.
type HistoryRow = (i64, String, bool, Vec<u8>, i64, DateTime<Utc>);

/// A table of the role and its row count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    /// The table.
    pub table: &'static str,
    /// Its rows.
    pub rows: i64,
}

/// An invariant and how many rows break it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What must hold.
    pub invariant: &'static str,
    /// Rows (or groups of rows) that break it; 0 when it holds.
    pub violations: i64,
}

/// What `harsha migrate verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Row counts.
    pub tables: Vec<TableCount>,
    /// Invariants.
    pub checks: Vec<Check>,
}

impl Verification {
    /// Whether every invariant holds.
    pub fn holds(&self) -> bool {
        self.checks.iter().all(|check| check.violations == 0)
    }
}

/// The tables whose rows `verify` counts, per role.
fn tables(role: Role) -> &'static [&'static str] {
    match role {
        Role::Erp => &[
            "tabHD Customer Segment",
            "tabHD Customer Segment Assignment",
            "tabHD Customer Territory Mapping",
            "tabHD Batch Master",
            "tabHD Batch Movement",
            "tabHD Stock Allocation",
            "tabHD Dynamic Pricing Rule",
            "tabHD Price Quote",
            "tabHD Pricing Rule Application",
            "tabHD Order",
            "tabHD Order Item",
            "tabHD Sync Outbox",
        ],
        Role::Gateway => &[
            "api_users",
            "jwt_tokens",
            "api_keys",
            "rate_limit_plans",
            "rate_limit_tracking",
            "service_routes",
            "api_audit_logs",
        ],
        Role::Sync => &[
            "sync_events",
            "sync_targets",
            "sync_configurations",
            "sync_deliveries",
            "sync_status",
            "sync_conflicts",
            "sync_metrics",
        ],
    }
}

/// The invariants per role, each a query counting what breaks it. The SQL
/// runs on both of the role's engines (SQLite reads MariaDB's backquotes).
fn invariants(role: Role) -> &'static [(&'static str, &'static str)] {
    match role {
        Role::Erp => &[
            (
                "a customer has at most one open primary segment",
                "SELECT COUNT(*) FROM (SELECT `customer` FROM `tabHD Customer Segment Assignment` \
                 WHERE `is_primary` = 1 AND `status` = 'Active' AND `effective_to` IS NULL \
                 GROUP BY `customer` HAVING COUNT(*) > 1) AS breaches",
            ),
            (
                "a customer's active primary segments never overlap in time",
                "SELECT COUNT(*) FROM `tabHD Customer Segment Assignment` a \
                 JOIN `tabHD Customer Segment Assignment` b ON a.`customer` = b.`customer` AND a.`name` < b.`name` \
                 WHERE a.`is_primary` = 1 AND b.`is_primary` = 1 \
                 AND a.`status` = 'Active' AND b.`status` = 'Active' \
                 AND (b.`effective_to` IS NULL OR a.`effective_from` < b.`effective_to`) \
                 AND (a.`effective_to` IS NULL OR b.`effective_from` < a.`effective_to`)",
            ),
            (
                "a batch's available and reserved quantities equal the sums of its movements",
                "SELECT COUNT(*) FROM `tabHD Batch Master` b LEFT JOIN \
                 (SELECT `batch`, SUM(`available_change`) AS available, SUM(`reserved_change`) AS reserved \
                  FROM `tabHD Batch Movement` GROUP BY `batch`) m ON m.`batch` = b.`name` \
                 WHERE COALESCE(m.available, 0) <> b.`available_qty` OR COALESCE(m.reserved, 0) <> b.`reserved_qty`",
            ),
            (
                "no batch holds negative stock",
                "SELECT COUNT(*) FROM `tabHD Batch Master` WHERE `available_qty` < 0 OR `reserved_qty` < 0",
            ),
            (
                "every order line belongs to an order",
                "SELECT COUNT(*) FROM `tabHD Order Item` i \
                 WHERE NOT EXISTS (SELECT 1 FROM `tabHD Order` o WHERE o.`name` = i.`parent`)",
            ),
        ],
        Role::Gateway => &[
            (
                "a refresh-token family has at most one live token",
                "SELECT COUNT(*) FROM (SELECT family_id FROM jwt_tokens \
                 WHERE retired_at IS NULL AND revoked_at IS NULL \
                 GROUP BY family_id HAVING COUNT(*) > 1) AS breaches",
            ),
            (
                "every API key belongs to a user",
                "SELECT COUNT(*) FROM api_keys k WHERE NOT EXISTS (SELECT 1 FROM api_users u WHERE u.id = k.user_id)",
            ),
        ],
        Role::Sync => &[
            (
                "a delivered delivery records when",
                "SELECT COUNT(*) FROM sync_deliveries WHERE state = 'delivered' AND delivered_at IS NULL",
            ),
            (
                "an event's idempotency key names one event",
                "SELECT COUNT(*) FROM (SELECT idempotency_key FROM sync_events \
                 GROUP BY idempotency_key HAVING COUNT(*) > 1) AS breaches",
            ),
        ],
    }
}

impl Database {
    /// Every migration of the role — those this build embeds and those the
    /// history table records — and where each stands, oldest first.
    pub async fn migration_status(&self) -> Result<Vec<MigrationStatus>, StoreError> {
        let table = self.history_table();
        let sql = format!(
            "SELECT version, description, success, checksum, execution_time, installed_on \
             FROM {table} ORDER BY version"
        );
        let recorded: Result<Vec<HistoryRow>, sqlx::Error> = match self.pool() {
            Pool::Sqlite(pool) => sqlx::query_as(AssertSqlSafe(sql)).fetch_all(pool).await,
            Pool::MySql(pool) => sqlx::query_as(AssertSqlSafe(sql)).fetch_all(pool).await,
            Pool::Postgres(pool) => sqlx::query_as(AssertSqlSafe(sql)).fetch_all(pool).await,
        };
        let recorded = match recorded {
            Ok(rows) => rows,
            // No history table: nothing is applied.
            Err(sqlx::Error::Database(_)) => Vec::new(),
            Err(other) => return Err(other.into()),
        };
        let migrator = self.migrator();
        let embedded: Vec<_> = migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .collect();
        let mut statuses: Vec<MigrationStatus> = embedded
            .iter()
            .map(|migration| {
                let found = recorded.iter().find(|row| row.0 == migration.version);
                let state = match found {
                    None => MigrationState::Pending,
                    Some(row) if !row.2 => MigrationState::Failed,
                    Some(row) if row.3.as_slice() != migration.checksum.as_ref() => {
                        MigrationState::Edited
                    }
                    Some(_) => MigrationState::Applied,
                };
                MigrationStatus {
                    version: migration.version,
                    description: migration.description.to_string(),
                    state,
                    installed_on: found.map(|row| row.5),
                    execution_ms: found.map(|row| row.4 / 1_000_000),
                }
            })
            .collect();
        for row in &recorded {
            if !embedded.iter().any(|m| m.version == row.0) {
                statuses.push(MigrationStatus {
                    version: row.0,
                    description: row.1.clone(),
                    state: MigrationState::Unknown,
                    installed_on: Some(row.5),
                    execution_ms: Some(row.4 / 1_000_000),
                });
            }
        }
        statuses.sort_by_key(|status| status.version);
        Ok(statuses)
    }

    /// The post-migration integrity checks: row counts of the role's
    /// tables and the count of rows breaking each invariant.
    pub async fn verify(&self) -> Result<Verification, StoreError> {
        let mut verification = Verification {
            tables: Vec::new(),
            checks: Vec::new(),
        };
        for table in tables(self.role()) {
            let quoted = match self.engine() {
                Engine::Postgres => format!("\"{table}\""),
                Engine::MySql | Engine::Sqlite => format!("`{table}`"),
            };
            let rows = self.count(format!("SELECT COUNT(*) FROM {quoted}")).await?;
            verification.tables.push(TableCount { table, rows });
        }
        for (invariant, sql) in invariants(self.role()) {
            let violations = self.count((*sql).to_owned()).await?;
            verification.checks.push(Check {
                invariant,
                violations,
            });
        }
        Ok(verification)
    }

    async fn count(&self, sql: String) -> Result<i64, StoreError> {
        let sql = AssertSqlSafe(sql);
        Ok(match self.pool() {
            Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
            Pool::MySql(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
            Pool::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
        })
    }
}
