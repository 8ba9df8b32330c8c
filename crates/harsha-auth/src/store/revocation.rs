//! The statements that end sessions, shared by every path that revokes:
//! refresh tokens are marked revoked, and the access tokens issued with
//! them join `revoked_access_tokens` until they would have expired. Each
//! takes `$1` = now, `$2` = the reason, `$3` = the family or user id and,
//! for access tokens, `$4` = until when to keep the revocation (now plus
//! an access token's lifetime) and `$5` = the earliest issue time whose
//! access token may still be alive (now minus that lifetime).

/// Revokes the live refresh tokens of a family.
pub(crate) const REFRESH_OF_FAMILY: &str = "UPDATE jwt_tokens SET revoked_at = $1, revoked_reason = $2 \
     WHERE family_id = $3 AND revoked_at IS NULL";

/// Revokes the access tokens issued in a family.
pub(crate) const ACCESS_OF_FAMILY: &str = "INSERT INTO revoked_access_tokens (jti, user_id, expires_at, revoked_at, reason) \
     SELECT access_jti, user_id, $4, $1, $2 FROM jwt_tokens \
     WHERE family_id = $3 AND access_jti IS NOT NULL AND issued_at > $5 \
     AND access_jti NOT IN (SELECT jti FROM revoked_access_tokens)";

/// Revokes the live refresh tokens of a user.
pub(crate) const REFRESH_OF_USER: &str = "UPDATE jwt_tokens SET revoked_at = $1, revoked_reason = $2 \
     WHERE user_id = $3 AND revoked_at IS NULL";

/// Revokes the access tokens issued to a user that may still be alive.
pub(crate) const ACCESS_OF_USER: &str = "INSERT INTO revoked_access_tokens (jti, user_id, expires_at, revoked_at, reason) \
     SELECT access_jti, user_id, $4, $1, $2 FROM jwt_tokens \
     WHERE user_id = $3 AND access_jti IS NOT NULL AND issued_at > $5 \
     AND access_jti NOT IN (SELECT jti FROM revoked_access_tokens)";

/// Runs a refresh statement and its access statement on a transaction of
/// either engine (inside `pg_dispatch!`): `revoke!(tx, REFRESH_OF_USER,
/// ACCESS_OF_USER, user_id, reason, now, access_ttl)`. Evaluates to the
/// number of refresh tokens revoked.
macro_rules! revoke {
    ($tx:expr, $refresh:expr, $access:expr, $key:expr, $reason:expr, $now:expr, $access_ttl:expr) => {{
        let now: chrono::DateTime<chrono::Utc> = $now;
        let access_ttl: chrono::Duration = $access_ttl;
        let revoked = sqlx::query($refresh)
            .bind(now)
            .bind($reason)
            .bind($key)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        sqlx::query($access)
            .bind(now)
            .bind($reason)
            .bind($key)
            .bind(now + access_ttl)
            .bind(now - access_ttl)
            .execute(&mut *$tx)
            .await?;
        revoked
    }};
}

pub(crate) use revoke;
