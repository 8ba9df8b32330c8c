//! Passwords: the policy a new password must meet, and Argon2id hashing.
//!
//! Parameters: Argon2id, 19 MiB of memory, 2 passes, 1 lane (the OWASP
//! minimum), with a random 16-byte salt, stored in the PHC string format
//! (`$argon2id$v=19$m=19456,t=2,p=1$…`), so the parameters can be raised
//! later and old hashes still verify. Hashing runs on the blocking pool,
//! at most one hash per core at a time: a burst of logins waits its turn
//! instead of piling up.

use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier, Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use harsha_types::ValueError;
use tokio::sync::Semaphore;

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 12;
/// The longest password accepted (Argon2 takes any length; this bounds work).
pub const MAX_PASSWORD: usize = 128;

/// A password that meets the policy. It never prints.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

impl Password {
    /// Checks a new password: 12 to 128 characters, not one repeated
    /// character, not all digits.
    pub fn new(value: &str) -> Result<Self, ValueError> {
        let length = value.chars().count();
        if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&length) {
            return Err(ValueError(format!(
                "must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"
            )));
        }
        let first = value.chars().next();
        if value.chars().all(|c| Some(c) == first) || value.chars().all(|c| c.is_ascii_digit()) {
            return Err(ValueError("is too easy to guess".into()));
        }
        Ok(Self(value.to_owned()))
    }

    /// A random password of 24 characters (144 bits), for accounts made by
    /// operators and the first admin.
    pub fn generate() -> Self {
        use argon2::password_hash::rand_core::RngCore;
        use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
        let mut bytes = [0u8; 18];
        OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The password itself, to show once to whoever it was made for.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// A password as typed at login, not checked against the policy (an
    /// old password may predate it); bounded in length only.
    pub fn attempt(value: &str) -> Result<Self, ValueError> {
        if value.is_empty() || value.chars().count() > MAX_PASSWORD {
            return Err(ValueError("is empty or too long".into()));
        }
        Ok(Self(value.to_owned()))
    }
}

/// Why hashing failed.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Argon2id hashing with bounded concurrency.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
    dummy: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with the documented parameters, hashing at most
    /// `concurrency` passwords at a time.
    pub fn new(concurrency: usize) -> Result<Self, HashError> {
        let params = Params::new(19 * 1024, 2, 1, None).map_err(|e| HashError(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let dummy = argon2
            .hash_password(b"no such user, no such password", &salt)
            .map_err(|e| HashError(e.to_string()))?
            .to_string();
        Ok(Self {
            argon2,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: dummy.into(),
        })
    }

    /// A hasher allowing one hash per available core.
    pub fn per_core() -> Result<Self, HashError> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self::new(cores)
    }

    /// Runs `work` on the blocking pool once a hashing slot is free.
    async fn limited<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>) -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        let argon2 = self.argon2.clone();
        tokio::task::spawn_blocking(move || work(&argon2))
            .await
            .map_err(|e| HashError(e.to_string()))?
    }

    /// The PHC string of `password`.
    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let secret = password.0.clone();
        self.limited(move |argon2| {
            let salt = SaltString::generate(&mut OsRng);
            argon2
                .hash_password(secret.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| HashError(e.to_string()))
        })
        .await
    }

    /// Whether `password` matches `hash`. With `None` (no such user), a
    /// hash of the same cost is still checked, so that the answer takes the
    /// same time either way.
    pub async fn verify(&self, hash: Option<&str>, password: &Password) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.map_or_else(|| self.dummy.to_string(), str::to_owned);
        let secret = password.0.clone();
        self.limited(move |argon2| {
            let parsed = PasswordHash::new(&hash).map_err(|e| HashError(e.to_string()))?;
            Ok(argon2.verify_password(secret.as_bytes(), &parsed).is_ok() && known)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_refuses_short_and_trivial_passwords() {
        assert!(Password::new("short").is_err());
        assert!(Password::new("aaaaaaaaaaaaaaaa").is_err());
        assert!(Password::new("123456789012").is_err());
        assert!(Password::new(&"x".repeat(129)).is_err());
        assert!(Password::new("kaju katli at diwali").is_ok());
        assert_eq!(
            format!("{:?}", Password::new("kaju katli at diwali").ok()),
            "Some(Password(…))"
        );
    }

    #[tokio::test]
    async fn hashes_verify_and_are_salted() {
        let hasher = PasswordHasher::new(2).unwrap_or_else(|_| unreachable!());
        let password = Password::new("kaju katli at diwali").unwrap_or_else(|_| unreachable!());
        let one = hasher.hash(&password).await.unwrap_or_default();
        let two = hasher.hash(&password).await.unwrap_or_default();
        assert!(one.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_ne!(one, two, "salted");
        assert!(hasher.verify(Some(&one), &password).await.unwrap_or(false));
        let wrong = Password::attempt("soan papdi").unwrap_or_else(|_| unreachable!());
        assert!(!hasher.verify(Some(&one), &wrong).await.unwrap_or(true));
        assert!(
            !hasher.verify(None, &password).await.unwrap_or(true),
            "no user, no match"
        );
    }
}
