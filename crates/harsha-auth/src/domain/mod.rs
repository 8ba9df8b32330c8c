//! The Auth service's types and rules, free of gRPC and SQL: user names,
//! email addresses, roles and the scopes they grant, the password policy
//! and Argon2id hashing, the lockout rule, and API keys with their
//! network allow-lists.

mod api_key;
mod lockout;
mod password;
mod values;

pub use api_key::{AllowList, FreshKey, PresentedKey, parse_network};
pub use harsha_types::ValueError;
pub use lockout::{Failures, LockoutPolicy};
pub use password::{HashError, MAX_PASSWORD, MIN_PASSWORD, Password, PasswordHasher};
pub use values::{Email, Role, Scope, Username, scopes_of};
