//! Persistence of API users and their failed logins on the `gateway`
//! database (PostgreSQL, or SQLite embedded): the [`UserStore`] trait and
//! [`SqlUserStore`], SQL written once with `$n` placeholders.

pub(crate) mod revocation;
mod sql;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use harsha_store::page::Page;
use serde::Serialize;

pub use sql::SqlUserStore;

use crate::{
    AuthError,
    domain::{Email, Failures, LockoutPolicy, Role, Username},
};

/// Whether a user may log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UserStatus {
    /// May log in.
    Active,
    /// May not.
    Disabled,
}

impl UserStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }
}

/// A user to create (the password already hashed).
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login name.
    pub username: Username,
    /// Email address.
    pub email: Email,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Roles.
    pub roles: Vec<Role>,
    /// Rate-limit plan name.
    pub plan: String,
}

/// A stored user (never with its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Its id.
    pub id: String,
    /// Login name.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Roles.
    pub roles: Vec<Role>,
    /// Whether it may log in.
    pub status: UserStatus,
    /// Rate-limit plan.
    pub plan: String,
    /// Failed-login state.
    pub failures: Failures,
    /// When the password was last set.
    pub password_changed_at: DateTime<Utc>,
    /// Last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// A new email address.
    pub email: Option<Email>,
    /// New roles, replacing the old.
    pub roles: Option<Vec<Role>>,
    /// A new rate-limit plan.
    pub plan: Option<String>,
}

/// Where users are kept.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Creates a user.
    async fn create_user(&self, user: NewUser) -> Result<User, AuthError>;
    /// A user by id.
    async fn user(&self, id: &str) -> Result<User, AuthError>;
    /// Users in user-name order, a page at a time.
    async fn list_users(&self, page_size: u32, page_token: &str) -> Result<Page<User>, AuthError>;
    /// Whether any user exists (a new database has none).
    async fn has_users(&self) -> Result<bool, AuthError>;
    /// Changes a user's email, roles or plan.
    async fn update_user(
        &self,
        user_id: &str,
        patch: UserPatch,
        now: DateTime<Utc>,
    ) -> Result<User, AuthError>;
    /// A user and their password hash, by login name.
    async fn user_for_login(
        &self,
        username: &Username,
    ) -> Result<Option<(User, String)>, AuthError>;
    /// Records a failed login at `now` under `policy`, atomically with other
    /// attempts; returns the state after it.
    async fn record_failure(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
        policy: LockoutPolicy,
    ) -> Result<Failures, AuthError>;
    /// Records a successful login: clears failures.
    async fn record_success(&self, user_id: &str, now: DateTime<Utc>) -> Result<(), AuthError>;
    /// Sets a new password hash; the user's refresh tokens, and the access
    /// tokens (of lifetime `access_ttl`) issued with them, are revoked in
    /// the same transaction.
    async fn set_password(
        &self,
        user_id: &str,
        hash: &str,
        now: DateTime<Utc>,
        access_ttl: chrono::Duration,
    ) -> Result<(), AuthError>;
    /// Enables or disables a user; disabling revokes the user's tokens
    /// (access tokens of lifetime `access_ttl`), enabling clears failed
    /// logins and any lock, in the same transaction.
    async fn set_status(
        &self,
        user_id: &str,
        status: UserStatus,
        now: DateTime<Utc>,
        access_ttl: chrono::Duration,
    ) -> Result<User, AuthError>;
}
