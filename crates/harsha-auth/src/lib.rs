//! The Auth service of Harsha Mesh: the gateway database's schema (users,
//! refresh tokens, revocations, signing keys, API keys, rate-limit plans
//! and tracking), API users with Argon2id passwords, roles and the scopes
//! they grant, login checking with lockout, tokens (Ed25519-signed access
//! JWTs with key rotation and a JWKS, rotating refresh tokens with reuse
//! detection, revocation by token id, user or family), API keys with
//! scopes and network allow-lists, rate-limit plans, and the gRPC server.
//! [`access`] decides whether a call may proceed; the tower layer in
//! `harsha-mesh` applies it on every server.

pub mod access;
pub mod accounts;
pub mod api_keys;
pub mod domain;
mod error;
pub mod grpc;
pub mod login;
pub mod plans;
pub mod store;
pub mod tokens;
pub mod verifier;

pub use accounts::{Accounts, AuthSettings};
pub use error::AuthError;
pub use grpc::AuthGrpc;
