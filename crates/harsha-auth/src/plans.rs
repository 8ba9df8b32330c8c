//! Rate-limit plans: named limits per minute, hour and day that users and
//! API keys are on. The edge enforces them and reports usage into
//! `rate_limit_tracking`; here they are listed and set.

use chrono::{DateTime, Utc};
use harsha_store::{PgDialect, PgPool, pg_dispatch};

use crate::AuthError;

/// The longest plan name.
const MAX_NAME: usize = 40;

/// A rate-limit plan.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RateLimitPlan {
    /// Its name.
    pub name: String,
    /// Requests per minute.
    pub per_minute: i32,
    /// Requests per hour.
    pub per_hour: i32,
    /// Requests per day.
    pub per_day: i32,
}

impl RateLimitPlan {
    /// Checks a plan: a name of lower-case letters, digits and `-`, and
    /// positive limits that grow with the window. Errors name the field
    /// under `plan.`.
    pub fn validated(self) -> Result<Self, AuthError> {
        let name = self.name.trim().to_owned();
        let name_ok = !name.is_empty()
            && name.len() <= MAX_NAME
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(AuthError::invalid(
                "plan.name",
                format!("must be 1 to {MAX_NAME} of a-z, 0-9 and '-'"),
            ));
        }
        if self.per_minute <= 0 {
            return Err(AuthError::invalid("plan.per_minute", "must be positive"));
        }
        if self.per_hour < self.per_minute {
            return Err(AuthError::invalid(
                "plan.per_hour",
                "must be at least per_minute",
            ));
        }
        if self.per_day < self.per_hour {
            return Err(AuthError::invalid(
                "plan.per_day",
                "must be at least per_hour",
            ));
        }
        Ok(Self { name, ..self })
    }
}

/// Requests of one principal in one window, to add to `rate_limit_tracking`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// `user:<id>`, `key:<id>` or `ip:<address>`.
    pub principal: String,
    /// `minute`, `hour` or `day`.
    pub window_kind: &'static str,
    /// The window's start.
    pub window_start: DateTime<Utc>,
    /// Requests admitted.
    pub requests: i64,
    /// Requests refused.
    pub rejected: i64,
}

/// Plans on a `gateway` database.
#[derive(Debug, Clone)]
pub struct Plans {
    pool: PgPool,
}

impl Plans {
    /// Plans on `pool` (migrated).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Every plan, by name.
    pub async fn list(&self) -> Result<Vec<RateLimitPlan>, AuthError> {
        let plans: Vec<RateLimitPlan> = pg_dispatch!(&self.pool, pool => {
            sqlx::query_as("SELECT name, per_minute, per_hour, per_day FROM rate_limit_plans ORDER BY name")
                .fetch_all(pool)
                .await?
        });
        Ok(plans)
    }

    /// Adds usage to `rate_limit_tracking`, in one transaction (rows of
    /// the same window from several edges add up).
    pub async fn record_usage(&self, rows: &[UsageRow]) -> Result<(), AuthError> {
        if rows.is_empty() {
            return Ok(());
        }
        pg_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            for row in rows {
                sqlx::query(
                    "INSERT INTO rate_limit_tracking (principal, window_kind, window_start, request_count, rejected_count) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (principal, window_kind, window_start) DO UPDATE SET \
                     request_count = rate_limit_tracking.request_count + excluded.request_count, \
                     rejected_count = rate_limit_tracking.rejected_count + excluded.rejected_count",
                )
                .bind(&row.principal)
                .bind(row.window_kind)
                .bind(row.window_start)
                .bind(row.requests)
                .bind(row.rejected)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Creates or changes a plan.
    pub async fn set(&self, plan: RateLimitPlan) -> Result<RateLimitPlan, AuthError> {
        let plan = plan.validated()?;
        pg_dispatch!(&self.pool, pool => {
            sqlx::query(
                "INSERT INTO rate_limit_plans (name, per_minute, per_hour, per_day) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET per_minute = excluded.per_minute, \
                 per_hour = excluded.per_hour, per_day = excluded.per_day",
            )
            .bind(&plan.name)
            .bind(plan.per_minute)
            .bind(plan.per_hour)
            .bind(plan.per_day)
            .execute(pool)
            .await?;
        });
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str, minute: i32, hour: i32, day: i32) -> RateLimitPlan {
        RateLimitPlan {
            name: name.into(),
            per_minute: minute,
            per_hour: hour,
            per_day: day,
        }
    }

    fn field(result: Result<RateLimitPlan, AuthError>) -> String {
        match result {
            Err(AuthError::InvalidArgument { field, .. }) => field,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn plans_grow_with_their_window() {
        assert!(plan("wholesale-b2b", 100, 5000, 50000).validated().is_ok());
        assert_eq!(field(plan("Gold Plan", 1, 1, 1).validated()), "plan.name");
        assert_eq!(field(plan("x", 0, 1, 1).validated()), "plan.per_minute");
        assert_eq!(field(plan("x", 10, 9, 100).validated()), "plan.per_hour");
        assert_eq!(field(plan("x", 10, 100, 99).validated()), "plan.per_day");
    }
}
