//! [`SqlUserStore`]: users on PostgreSQL and SQLite. Failed logins are
//! counted under a row lock (`FOR UPDATE` on PostgreSQL; SQLite's write
//! transaction excludes other writers), so concurrent wrong passwords
//! cannot slip past the lockout.

use chrono::{DateTime, Duration, Utc};
use harsha_store::{PgDialect, PgPool, page::Page, pg_dispatch};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{
    NewUser, User, UserPatch, UserStatus, UserStore,
    revocation::{ACCESS_OF_USER, REFRESH_OF_USER, revoke},
};
use crate::{
    AuthError,
    domain::{Failures, LockoutPolicy, Role, Username},
};

const USER_COLUMNS: &str = "id, username, email, roles, status, rate_limit_plan, failed_attempts, first_failed_at, \
     locked_until, password_changed_at, last_login_at, created_at";

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    username: String,
    email: String,
    roles: String,
    status: String,
    rate_limit_plan: String,
    failed_attempts: i32,
    first_failed_at: Option<DateTime<Utc>>,
    locked_until: Option<DateTime<Utc>>,
    password_changed_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for User {
    type Error = AuthError;

    fn try_from(row: UserRow) -> Result<Self, Self::Error> {
        let roles: Vec<String> =
            serde_json::from_str(&row.roles).map_err(|e| AuthError::corrupt("roles", e))?;
        Ok(User {
            roles: roles
                .iter()
                .map(|r| {
                    r.parse::<Role>()
                        .map_err(|e| AuthError::corrupt("roles", e))
                })
                .collect::<Result<_, _>>()?,
            status: match row.status.as_str() {
                "active" => UserStatus::Active,
                "disabled" => UserStatus::Disabled,
                other => {
                    return Err(AuthError::corrupt(
                        "status",
                        format!("unknown status {other:?}"),
                    ));
                }
            },
            failures: Failures {
                count: u32::try_from(row.failed_attempts).unwrap_or_default(),
                first_at: row.first_failed_at,
                locked_until: row.locked_until,
            },
            id: row.id,
            username: row.username,
            email: row.email,
            plan: row.rate_limit_plan,
            password_changed_at: row.password_changed_at,
            last_login_at: row.last_login_at,
            created_at: row.created_at,
        })
    }
}

/// Users on a `gateway` database.
#[derive(Debug, Clone)]
pub struct SqlUserStore {
    pool: PgPool,
}

impl SqlUserStore {
    /// A store on `pool`, whose database must be migrated.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl UserStore for SqlUserStore {
    #[tracing::instrument(name = "store.create_user", skip_all, fields(username = %user.username))]
    async fn create_user(&self, user: NewUser) -> Result<User, AuthError> {
        let now = Utc::now();
        let id = Uuid::now_v7().to_string();
        let roles = roles_json(&user.roles);
        let inserted = pg_dispatch!(&self.pool, pool => {
            sqlx::query(
                "INSERT INTO api_users (id, username, email, password_hash, roles, status, rate_limit_plan, \
                 password_changed_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $7, $7)",
            )
            .bind(&id)
            .bind(user.username.as_str())
            .bind(user.email.as_str())
            .bind(&user.password_hash)
            .bind(&roles)
            .bind(&user.plan)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())
        });
        inserted.map_err(|error| write_error(error, &user.plan))?;
        self.user_for_login(&user.username)
            .await?
            .map(|(user, _)| user)
            .ok_or_else(|| AuthError::UserNotFound(id))
    }

    async fn user(&self, id: &str) -> Result<User, AuthError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM api_users WHERE id = $1");
        let row: Option<UserRow> = pg_dispatch!(&self.pool, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        });
        User::try_from(row.ok_or_else(|| AuthError::UserNotFound(id.to_owned()))?)
    }

    async fn user_for_login(
        &self,
        username: &Username,
    ) -> Result<Option<(User, String)>, AuthError> {
        let sql =
            format!("SELECT {USER_COLUMNS}, password_hash FROM api_users WHERE username = $1");
        let found: Option<(UserRow, String)> = pg_dispatch!(&self.pool, pool => {
            let row = sqlx::query(AssertSqlSafe(sql.clone())).bind(username.as_str()).fetch_optional(pool).await?;
            match row {
                None => None,
                Some(row) => {
                    use sqlx::{FromRow, Row};
                    let hash: String = row.try_get("password_hash")?;
                    Some((UserRow::from_row(&row)?, hash))
                }
            }
        });
        found
            .map(|(row, hash)| User::try_from(row).map(|user| (user, hash)))
            .transpose()
    }

    #[tracing::instrument(name = "store.record_failure", skip_all)]
    async fn record_failure(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
        policy: LockoutPolicy,
    ) -> Result<Failures, AuthError> {
        pg_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let sql = format!(
                "SELECT failed_attempts, first_failed_at, locked_until FROM api_users WHERE id = $1{}",
                pool.for_update()
            );
            let row: Option<(i32, Option<DateTime<Utc>>, Option<DateTime<Utc>>)> =
                sqlx::query_as(AssertSqlSafe(sql)).bind(user_id).fetch_optional(&mut *tx).await?;
            let (count, first_at, locked_until) = row.ok_or_else(|| AuthError::UserNotFound(user_id.to_owned()))?;
            let before = Failures { count: u32::try_from(count).unwrap_or_default(), first_at, locked_until };
            let after = policy.after_failure(before, now);
            sqlx::query(
                "UPDATE api_users SET failed_attempts = $1, first_failed_at = $2, locked_until = $3, updated_at = $4 \
                 WHERE id = $5",
            )
            .bind(i32::try_from(after.count).unwrap_or(i32::MAX))
            .bind(after.first_at)
            .bind(after.locked_until)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(after)
        })
    }

    async fn record_success(&self, user_id: &str, now: DateTime<Utc>) -> Result<(), AuthError> {
        pg_dispatch!(&self.pool, pool => {
            sqlx::query(
                "UPDATE api_users SET failed_attempts = 0, first_failed_at = NULL, locked_until = NULL, \
                 last_login_at = $1, updated_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(user_id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    #[tracing::instrument(name = "store.set_password", skip_all)]
    async fn set_password(
        &self,
        user_id: &str,
        hash: &str,
        now: DateTime<Utc>,
        access_ttl: Duration,
    ) -> Result<(), AuthError> {
        pg_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let changed = sqlx::query(
                "UPDATE api_users SET password_hash = $1, password_changed_at = $2, updated_at = $2 WHERE id = $3",
            )
            .bind(hash)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            if changed.rows_affected() == 0 {
                return Err(AuthError::UserNotFound(user_id.to_owned()));
            }
            revoke!(tx, REFRESH_OF_USER, ACCESS_OF_USER, user_id, "password changed", now, access_ttl);
            tx.commit().await?;
            Ok(())
        })
    }

    #[tracing::instrument(name = "store.set_status", skip_all)]
    async fn set_status(
        &self,
        user_id: &str,
        status: UserStatus,
        now: DateTime<Utc>,
        access_ttl: Duration,
    ) -> Result<User, AuthError> {
        pg_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let changed = sqlx::query("UPDATE api_users SET status = $1, updated_at = $2 WHERE id = $3")
                .bind(status.as_str())
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            if changed.rows_affected() == 0 {
                return Err(AuthError::UserNotFound(user_id.to_owned()));
            }
            match status {
                UserStatus::Disabled => {
                    revoke!(tx, REFRESH_OF_USER, ACCESS_OF_USER, user_id, "user disabled", now, access_ttl);
                }
                UserStatus::Active => {
                    sqlx::query(
                        "UPDATE api_users SET failed_attempts = 0, first_failed_at = NULL, locked_until = NULL WHERE id = $1",
                    )
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
        });
        self.user(user_id).await
    }

    async fn list_users(&self, page_size: u32, page_token: &str) -> Result<Page<User>, AuthError> {
        let after: String = harsha_store::page::decode_token(page_token)
            .map_err(|e| AuthError::invalid(e.field(), e))?
            .unwrap_or_default();
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM api_users WHERE username > $1 ORDER BY username LIMIT $2"
        );
        let rows: Vec<UserRow> = pg_dispatch!(&self.pool, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(&after)
                .bind(i64::from(page_size) + 1)
                .fetch_all(pool)
                .await?
        });
        Page::from_rows(rows, page_size, |row| row.username.clone()).try_map(User::try_from)
    }

    async fn has_users(&self) -> Result<bool, AuthError> {
        let found: Option<i32> = pg_dispatch!(&self.pool, pool => {
            sqlx::query_scalar("SELECT 1 FROM api_users LIMIT 1").fetch_optional(pool).await?
        });
        Ok(found.is_some())
    }

    #[tracing::instrument(name = "store.update_user", skip_all)]
    async fn update_user(
        &self,
        user_id: &str,
        patch: UserPatch,
        now: DateTime<Utc>,
    ) -> Result<User, AuthError> {
        let roles = patch.roles.as_ref().map(|roles| roles_json(roles));
        let updated = pg_dispatch!(&self.pool, pool => {
            sqlx::query(
                "UPDATE api_users SET email = COALESCE($1, email), roles = COALESCE($2, roles), \
                 rate_limit_plan = COALESCE($3, rate_limit_plan), updated_at = $4 WHERE id = $5",
            )
            .bind(patch.email.as_ref().map(|e| e.as_str()))
            .bind(roles)
            .bind(patch.plan.as_deref())
            .bind(now)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        });
        match updated {
            Ok(0) => {
                return Err(AuthError::UserNotFound(user_id.to_owned()));
            }
            Ok(_) => {}
            Err(error) => return Err(write_error(error, patch.plan.as_deref().unwrap_or(""))),
        }
        self.user(user_id).await
    }
}

/// Roles as stored: a JSON array of names.
fn roles_json(roles: &[Role]) -> String {
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    serde_json::to_string(&names).unwrap_or_else(|_| "[]".into())
}

/// A failed user write, as the caller should see it: a taken name or
/// address, or an unknown plan.
fn write_error(error: sqlx::Error, plan: &str) -> AuthError {
    match error {
        sqlx::Error::Database(e) if e.is_unique_violation() => {
            AuthError::Taken(if e.message().contains("email") {
                "email"
            } else {
                "username"
            })
        }
        sqlx::Error::Database(e) if e.is_foreign_key_violation() => {
            AuthError::invalid("rate_limit_plan", format!("no plan named {plan:?}"))
        }
        other => other.into(),
    }
}
