//! The Auth checks every request pays, and login under a burst.
//!
//! `cargo bench -p harsha-auth --bench verify`:
//!
//! 1. **Access token, first sight**: a token never seen before (signed in
//!    the untimed setup), checked by the cached [`Verifier`]: header,
//!    Ed25519 signature, claims, revocation set of 10,000 ids, and the
//!    insertion into the verified-token cache. Budget: under 50 µs.
//! 2. **Access token, seen again**: the same token from the cache, with the
//!    expiry and revocation checks. Budget: under 2 µs.
//! 3. **Ed25519 `verify_strict` alone** (ed25519-dalek), the floor under (1).
//! 4. **API key, warm cache**: `ApiKeys::authenticate` for a key already
//!    looked up (prefix lookup, SHA-256 of the secret, constant-time
//!    compare, allow-list and scope checks). Budget: under 10 µs.
//! 5. **Login burst**: 32 logins at once on an embedded database; every one
//!    succeeds, no more Argon2id hashes run than cores, and the latency
//!    percentiles show the queue.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signer, SigningKey, pkcs8::EncodePrivateKey};
use harsha_auth::{
    Accounts, AuthError, AuthSettings,
    accounts::UserRequest,
    api_keys::KeyRequest,
    domain::Scope,
    tokens::Claims,
    verifier::{PublicKey, TrustSource, Verifier, VerifierSettings},
};
use harsha_store::{Engine, Role};
use harsha_testkit::{TestDatabase, bench::report_percentiles};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use uuid::Uuid;

struct StaticSource {
    key: PublicKey,
    revoked: Vec<String>,
}

#[async_trait]
impl TrustSource for StaticSource {
    async fn keys(&self) -> Result<Vec<PublicKey>, AuthError> {
        Ok(vec![self.key.clone()])
    }

    async fn revoked(&self) -> Result<Vec<String>, AuthError> {
        Ok(self.revoked.clone())
    }
}

fn claims() -> Claims {
    let now = Utc::now().timestamp();
    Claims {
        sub: Uuid::now_v7().to_string(),
        preferred_username: "shop".into(),
        roles: vec!["storefront".into()],
        scopes: vec![
            "customer:read".into(),
            "inventory:read".into(),
            "pricing:quote".into(),
            "order:write".into(),
        ],
        plan: "partner".into(),
        jti: Uuid::now_v7().to_string(),
        iat: now,
        nbf: now,
        exp: now + 900,
        iss: "harsha-auth".into(),
        aud: "harsha-mesh".into(),
    }
}

fn tokens(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let signing = SigningKey::from_bytes(&[42; 32]);
    let encoding = EncodingKey::from_ed_der(signing.to_pkcs8_der().unwrap().as_bytes());
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("bench-key".into());
    let source = Arc::new(StaticSource {
        key: PublicKey {
            kid: "bench-key".into(),
            x: URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes()),
        },
        revoked: (0..10_000).map(|_| Uuid::now_v7().to_string()).collect(),
    });
    let verifier = runtime
        .block_on(Verifier::load(source, VerifierSettings::default()))
        .unwrap();
    let sign = || jsonwebtoken::encode(&header, &claims(), &encoding).unwrap();

    c.bench_function("access token, first sight", |b| {
        b.iter_batched(
            sign,
            |token| verifier.verify_cached(&token, Utc::now()).unwrap().unwrap(),
            BatchSize::SmallInput,
        );
    });
    let token = sign();
    verifier.verify_cached(&token, Utc::now()).unwrap().unwrap();
    c.bench_function("access token, seen again", |b| {
        b.iter(|| verifier.verify_cached(&token, Utc::now()).unwrap().unwrap());
    });
    let message = b"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJiZW5jaCJ9";
    let signature = signing.sign(message);
    let verifying = signing.verifying_key();
    c.bench_function("ed25519 verify_strict alone", |b| {
        b.iter(|| verifying.verify_strict(message, &signature).unwrap());
    });
}

fn api_keys_and_logins(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_database, accounts, key) = runtime.block_on(async {
        let database = TestDatabase::new(Role::Gateway, Engine::Sqlite).await;
        let accounts =
            Accounts::new(database.db.pg_pool().unwrap(), AuthSettings::default()).unwrap();
        let mut first = None;
        for i in 0..32 {
            let user = accounts
                .create_user(UserRequest {
                    username: format!("shop{i}"),
                    email: format!("shop{i}@harshadelights.in"),
                    password: "kaju katli at diwali".into(),
                    roles: vec!["storefront".into()],
                    plan: String::new(),
                })
                .await
                .unwrap();
            first.get_or_insert(user);
        }
        let user = first.unwrap();
        let (_, key) = accounts
            .keys
            .create(
                KeyRequest {
                    user_id: user.id.clone(),
                    name: "bench".into(),
                    scopes: vec!["order:write".into(), "pricing:quote".into()],
                    allowed_cidrs: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
                    plan: String::new(),
                    expires_at: None,
                },
                accounts.users.as_ref(),
                Utc::now(),
            )
            .await
            .unwrap();
        (database, accounts, key)
    });
    let client = Some("10.1.2.3".parse().unwrap());
    runtime
        .block_on(
            accounts
                .keys
                .authenticate(&key, client, Some(Scope::OrderWrite), Utc::now()),
        )
        .unwrap();
    c.bench_function("api key, warm cache", |b| {
        b.to_async(&runtime).iter(|| async {
            accounts
                .keys
                .authenticate(&key, client, Some(Scope::OrderWrite), Utc::now())
                .await
                .unwrap()
        });
    });

    // A burst of 32 logins, three times.
    let mut latencies = Vec::new();
    let mut bursts = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let done: Vec<Duration> = runtime.block_on(async {
            let calls = (0..32).map(|i| {
                let accounts = accounts.clone();
                tokio::spawn(async move {
                    let begun = Instant::now();
                    accounts
                        .login(&format!("shop{i}"), "kaju katli at diwali", Utc::now())
                        .await
                        .unwrap();
                    begun.elapsed()
                })
            });
            futures::future::join_all(calls)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect()
        });
        bursts.push(started.elapsed());
        latencies.extend(done);
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    eprintln!("login burst: 32 logins at once, {cores} hashing slots; bursts took {bursts:.2?}");
    report_percentiles("login under a burst of 32", latencies);
}

criterion_group!(benches, tokens, api_keys_and_logins);
criterion_main!(benches);
