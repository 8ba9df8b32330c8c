//! [`Accounts`]: the Auth service's operations on users and sessions, used
//! by the gRPC server and by the operator commands alike. Requests arrive
//! as plain text and are validated here, with errors naming the field.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use harsha_store::PgPool;

use crate::{
    AuthError,
    api_keys::ApiKeys,
    domain::{Email, LockoutPolicy, Password, PasswordHasher, Role, Username},
    login::check_login,
    plans::Plans,
    store::{NewUser, SqlUserStore, User, UserPatch, UserStatus, UserStore},
    tokens::{TokenPair, TokenService, TokenSettings},
};

/// The plan users get when none is named.
pub const DEFAULT_PLAN: &str = "standard";
/// The first admin's user name.
pub const FIRST_ADMIN: &str = "admin";
/// The account the mesh's own services call each other as (through API
/// keys scoped to what each call needs; it has no usable password).
pub const MESH_USER: &str = "mesh-internal";

/// How the Auth service behaves.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// Token lifetimes and names.
    pub tokens: TokenSettings,
    /// The lockout rule.
    pub lockout: LockoutPolicy,
}

/// A user to create, as requested.
#[derive(Debug, Clone, Default)]
pub struct UserRequest {
    /// Login name.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Password (checked against the policy).
    pub password: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Rate-limit plan name; empty for [`DEFAULT_PLAN`].
    pub plan: String,
}

/// Users and sessions on a `gateway` database.
#[derive(Clone)]
pub struct Accounts {
    /// Where users are kept.
    pub users: Arc<dyn UserStore>,
    /// Tokens.
    pub tokens: TokenService,
    /// Password hashing, bounded per core.
    pub hasher: PasswordHasher,
    /// The lockout rule.
    pub lockout: LockoutPolicy,
    /// API keys.
    pub keys: ApiKeys,
    /// Rate-limit plans.
    pub plans: Plans,
}

/// Parses role names; `field` names the request field (`roles`).
pub fn parse_roles(field: &str, names: &[String]) -> Result<Vec<Role>, AuthError> {
    let mut roles = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            name.trim()
                .parse::<Role>()
                .map_err(|e| AuthError::invalid(format!("{field}[{i}]"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    roles.sort();
    roles.dedup();
    Ok(roles)
}

impl Accounts {
    /// Accounts on `pool` (migrated).
    pub fn new(pool: PgPool, settings: AuthSettings) -> Result<Self, AuthError> {
        Ok(Self {
            users: Arc::new(SqlUserStore::new(pool.clone())),
            keys: ApiKeys::new(pool.clone()),
            plans: Plans::new(pool.clone()),
            tokens: TokenService::new(pool, settings.tokens),
            hasher: PasswordHasher::per_core()?,
            lockout: settings.lockout,
        })
    }

    /// Creates a user after checking every field.
    pub async fn create_user(&self, request: UserRequest) -> Result<User, AuthError> {
        let username =
            Username::parse(&request.username).map_err(|e| AuthError::invalid("username", e))?;
        let email = Email::parse(&request.email).map_err(|e| AuthError::invalid("email", e))?;
        let password =
            Password::new(&request.password).map_err(|e| AuthError::invalid("password", e))?;
        if request.roles.is_empty() {
            return Err(AuthError::invalid("roles", "at least one role is needed"));
        }
        let roles = parse_roles("roles", &request.roles)?;
        let plan = match request.plan.trim() {
            "" => DEFAULT_PLAN.to_owned(),
            plan => plan.to_owned(),
        };
        let password_hash = self.hasher.hash(&password).await?;
        self.users
            .create_user(NewUser {
                username,
                email,
                password_hash,
                roles,
                plan,
            })
            .await
    }

    /// Checks a login and issues a new session.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<(User, TokenPair), AuthError> {
        let user = check_login(
            self.users.as_ref(),
            &self.hasher,
            self.lockout,
            username,
            password,
            now,
        )
        .await?;
        let pair = self.tokens.issue(&user, now).await?;
        Ok((user, pair))
    }

    /// Sets a new password, ending every session of the user. With
    /// `current`, the current password must match first.
    pub async fn change_password(
        &self,
        user_id: &str,
        current: Option<&str>,
        new_password: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        let password =
            Password::new(new_password).map_err(|e| AuthError::invalid("new_password", e))?;
        if let Some(current) = current {
            let user = self.users.user(user_id).await?;
            let username = Username::parse(&user.username)
                .map_err(|_| AuthError::UserNotFound(user_id.to_owned()))?;
            let matches = match self.users.user_for_login(&username).await? {
                Some((_, hash)) => match Password::attempt(current) {
                    Ok(attempt) => self.hasher.verify(Some(&hash), &attempt).await?,
                    Err(_) => false,
                },
                None => false,
            };
            if !matches {
                return Err(AuthError::invalid(
                    "current_password",
                    "is not the user's password",
                ));
            }
        }
        let hash = self.hasher.hash(&password).await?;
        self.users
            .set_password(user_id, &hash, now, self.tokens.settings().access_ttl)
            .await
    }

    /// Disables a user, ending their sessions.
    pub async fn disable(&self, user_id: &str, now: DateTime<Utc>) -> Result<User, AuthError> {
        self.users
            .set_status(
                user_id,
                UserStatus::Disabled,
                now,
                self.tokens.settings().access_ttl,
            )
            .await
    }

    /// Lets a disabled or locked-out user log in again.
    pub async fn enable(&self, user_id: &str, now: DateTime<Utc>) -> Result<User, AuthError> {
        self.users
            .set_status(
                user_id,
                UserStatus::Active,
                now,
                self.tokens.settings().access_ttl,
            )
            .await
    }

    /// Changes a user's email, roles or plan; empty fields stay.
    pub async fn update_user(
        &self,
        user_id: &str,
        email: &str,
        roles: &[String],
        plan: &str,
        now: DateTime<Utc>,
    ) -> Result<User, AuthError> {
        let patch = UserPatch {
            email: match email.trim() {
                "" => None,
                email => Some(Email::parse(email).map_err(|e| AuthError::invalid("email", e))?),
            },
            roles: if roles.is_empty() {
                None
            } else {
                Some(parse_roles("roles", roles)?)
            },
            plan: match plan.trim() {
                "" => None,
                plan => Some(plan.to_owned()),
            },
        };
        self.users.update_user(user_id, patch, now).await
    }

    /// A fresh API key named `name` for [`MESH_USER`] (created if absent),
    /// holding only `scopes`; live keys of that name are revoked first, so
    /// each start of `harsha up` leaves one.
    pub async fn internal_key(
        &self,
        name: &str,
        scopes: &[crate::domain::Scope],
        now: DateTime<Utc>,
    ) -> Result<String, AuthError> {
        let username = Username::parse(MESH_USER).map_err(|e| AuthError::invalid("username", e))?;
        let user = match self.users.user_for_login(&username).await? {
            Some((user, _)) => user,
            None => {
                let created = self
                    .create_user(UserRequest {
                        username: MESH_USER.into(),
                        email: "mesh-internal@harsha-mesh.local".into(),
                        password: Password::generate().reveal().to_owned(),
                        roles: vec![Role::Admin.as_str().to_owned()],
                        plan: "internal".into(),
                    })
                    .await;
                match created {
                    Ok(user) => user,
                    Err(AuthError::Taken(_)) => self
                        .users
                        .user_for_login(&username)
                        .await?
                        .map(|(user, _)| user)
                        .ok_or_else(|| AuthError::UserNotFound(MESH_USER.into()))?,
                    Err(error) => return Err(error),
                }
            }
        };
        let mut token = String::new();
        loop {
            let page = self.keys.list(Some(&user.id), false, 500, &token).await?;
            for key in page.items.iter().filter(|k| k.name == name) {
                self.keys.revoke(&key.id, now).await?;
            }
            match page.next_token {
                Some(next) => token = next,
                None => break,
            }
        }
        let (_, key) = self
            .keys
            .create(
                crate::api_keys::KeyRequest {
                    user_id: user.id,
                    name: name.to_owned(),
                    scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
                    allowed_cidrs: Vec::new(),
                    plan: "internal".into(),
                    expires_at: None,
                },
                self.users.as_ref(),
                now,
            )
            .await?;
        Ok(key)
    }

    /// On a database without users, creates [`FIRST_ADMIN`] with a random
    /// password and returns it (to be shown once); otherwise `None`.
    pub async fn ensure_first_admin(&self) -> Result<Option<(User, Password)>, AuthError> {
        if self.users.has_users().await? {
            return Ok(None);
        }
        let password = Password::generate();
        let user = self
            .create_user(UserRequest {
                username: FIRST_ADMIN.into(),
                email: "admin@harsha-mesh.local".into(),
                password: password.reveal().to_owned(),
                roles: vec![Role::Admin.as_str().to_owned()],
                plan: "internal".into(),
            })
            .await;
        match user {
            Ok(user) => Ok(Some((user, password))),
            // Another process made it first.
            Err(AuthError::Taken(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }
}
