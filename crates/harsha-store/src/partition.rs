//! Monthly partitions of the `erp` role's history tables on MariaDB
//! (`tabHD Batch Movement`, `tabHD Pricing Rule Application`): each table is
//! created with a `p_history` partition and a catch-all `p_future`, and
//! [`ensure_monthly`] splits `p_future` so that every month up to a horizon
//! has its own partition. Rows are never refused if it has not run: they
//! land in `p_future`. SQLite has no partitioning; there it does nothing.

use chrono::{Datelike, Months, NaiveDate};
use sqlx::AssertSqlSafe;

use crate::ErpPool;

const PARTITIONS: &str = "SELECT CAST(`PARTITION_NAME` AS CHAR), CAST(`PARTITION_DESCRIPTION` AS CHAR) \
     FROM information_schema.PARTITIONS WHERE `TABLE_SCHEMA` = DATABASE() \
     AND `TABLE_NAME` = ? AND `PARTITION_NAME` IS NOT NULL";

/// Adds monthly partitions to `table` (partitioned `RANGE COLUMNS` on a date
/// or datetime, with a `p_future` catch-all) up to the month of `through`.
/// Returns the partitions added (`p202612`, …); none on SQLite, or when the
/// table has them already.
pub async fn ensure_monthly(
    pool: &ErpPool,
    table: &str,
    through: NaiveDate,
) -> Result<Vec<String>, sqlx::Error> {
    let ErpPool::MySql(pool) = pool else {
        return Ok(Vec::new());
    };
    let partitions: Vec<(String, String)> = sqlx::query_as(PARTITIONS)
        .bind(table)
        .fetch_all(pool)
        .await?;
    // Bounds read `'2026-12-01'` (or with a time of day); MAXVALUE has none.
    let highest = partitions
        .iter()
        .filter_map(|(_, bound)| {
            let date = bound.trim_matches('\'').get(..10)?;
            NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
        })
        .max();
    let Some(highest) = highest else {
        tracing::warn!(table, ?partitions, "no dated partition bound found");
        return Ok(Vec::new());
    };
    let added = months_to_add(highest, through);
    if added.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<String> = added
        .iter()
        .map(|(name, end)| format!("PARTITION `{name}` VALUES LESS THAN ('{end}')"))
        .collect();
    let sql = format!(
        "ALTER TABLE `{}` REORGANIZE PARTITION `p_future` INTO ({}, \
         PARTITION `p_future` VALUES LESS THAN (MAXVALUE))",
        table.replace('`', ""),
        parts.join(", ")
    );
    sqlx::query(AssertSqlSafe(sql)).execute(pool).await?;
    Ok(added.into_iter().map(|(name, _)| name).collect())
}

/// The monthly partitions to add after the highest existing bound
/// (`highest`, the exclusive upper bound of the last dated partition) so
/// that every month up to that of `through` has one: (name, exclusive
/// upper bound).
fn months_to_add(highest: NaiveDate, through: NaiveDate) -> Vec<(String, NaiveDate)> {
    let mut start = highest.with_day(1).unwrap_or(highest);
    let mut added = Vec::new();
    while start <= through {
        let Some(end) = start.checked_add_months(Months::new(1)) else {
            break;
        };
        if end > highest {
            added.push((format!("p{:04}{:02}", start.year(), start.month()), end));
        }
        start = end;
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_follow_the_highest_bound_up_to_the_horizon() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
        let added = months_to_add(day(2026, 11, 1), day(2027, 1, 15));
        let names: Vec<&str> = added.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["p202611", "p202612", "p202701"]);
        assert_eq!(added[2].1, day(2027, 2, 1));
        assert!(months_to_add(day(2027, 2, 1), day(2027, 1, 31)).is_empty());
    }
}
