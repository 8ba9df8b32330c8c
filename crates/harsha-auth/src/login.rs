//! Checking a login: the same answer for an unknown user and a wrong
//! password (and the same time, by checking a dummy hash), lockout after
//! repeated failures, and no hint about the password while locked.

use chrono::{DateTime, Utc};

use crate::{
    AuthError,
    domain::{LockoutPolicy, Password, PasswordHasher, Username},
    store::{User, UserStatus, UserStore},
};

/// Checks `username` and `password` at `now`; on success the user's
/// failures are cleared and the user is returned.
pub async fn check_login(
    store: &dyn UserStore,
    hasher: &PasswordHasher,
    policy: LockoutPolicy,
    username: &str,
    password: &str,
    now: DateTime<Utc>,
) -> Result<User, AuthError> {
    let password = Password::attempt(password).map_err(|_| AuthError::InvalidCredentials)?;
    let Ok(username) = Username::parse(username) else {
        hasher.verify(None, &password).await?;
        return Err(AuthError::InvalidCredentials);
    };
    let Some((user, hash)) = store.user_for_login(&username).await? else {
        hasher.verify(None, &password).await?;
        return Err(AuthError::InvalidCredentials);
    };
    if policy.is_locked(user.failures, now) {
        // The password is not even checked: a locked account says nothing
        // about it.
        return Err(AuthError::Locked);
    }
    if !hasher.verify(Some(&hash), &password).await? {
        let after = store.record_failure(&user.id, now, policy).await?;
        return Err(if policy.is_locked(after, now) {
            AuthError::Locked
        } else {
            AuthError::InvalidCredentials
        });
    }
    if user.status == UserStatus::Disabled {
        return Err(AuthError::Disabled);
    }
    store.record_success(&user.id, now).await?;
    Ok(user)
}
