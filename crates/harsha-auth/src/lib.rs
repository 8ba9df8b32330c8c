//! The Auth service of Harsha Mesh (under construction): the gateway
//! database's schema (users, refresh tokens, revocations, signing keys, API
//! keys, rate-limit plans and tracking), API users with Argon2id passwords,
//! roles and the scopes they grant, login checking with lockout, and tokens
//! (Ed25519-signed access JWTs with key rotation and a JWKS, rotating
//! refresh tokens with reuse detection, revocation by token id).
//!
//! API keys, rate-limit plans beyond their table, the RBAC layer and the
//! gRPC server are not built yet.

pub mod domain;
mod error;
pub mod login;
pub mod store;
pub mod tokens;

pub use error::AuthError;
