//! The cached verifier: issued tokens verify without the database, a token
//! seen again is served from the cache yet never past its expiry or its
//! revocation, a freshly rotated key is fetched on first sight, and forged
//! tokens are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use async_trait::async_trait;
use chrono::{Duration, Utc};
use harsha_auth::{
    Accounts, AuthError, AuthSettings,
    accounts::UserRequest,
    tokens::TokenService,
    verifier::{PublicKey, TrustSource, Verifier, VerifierSettings},
};
use harsha_store::{Engine, Role as DbRole};
use harsha_testkit::TestDatabase;

harsha_testkit::on_sqlite_and_postgres!(
    tokens_verify_from_the_cache_until_they_expire_or_are_revoked,
    a_rotated_key_is_fetched_on_first_sight,
    forged_tokens_are_refused,
);

/// Counts how often the verifier goes back to its source.
struct Counting {
    tokens: TokenService,
    key_fetches: AtomicUsize,
}

#[async_trait]
impl TrustSource for Counting {
    async fn keys(&self) -> Result<Vec<PublicKey>, AuthError> {
        self.key_fetches.fetch_add(1, Ordering::SeqCst);
        TrustSource::keys(&self.tokens).await
    }

    async fn revoked(&self) -> Result<Vec<String>, AuthError> {
        TrustSource::revoked(&self.tokens).await
    }
}

struct Fixture {
    _database: TestDatabase,
    accounts: Accounts,
    source: Arc<Counting>,
    verifier: Arc<Verifier>,
}

async fn fixture(engine: Engine) -> Fixture {
    let database = TestDatabase::new(DbRole::Gateway, engine).await;
    let accounts = Accounts::new(database.db.pg_pool().unwrap(), AuthSettings::default()).unwrap();
    accounts
        .create_user(UserRequest {
            username: "mobile".into(),
            email: "mobile@harshadelights.in".into(),
            password: "kaju katli at diwali".into(),
            roles: vec!["storefront".into()],
            plan: String::new(),
        })
        .await
        .unwrap();
    accounts.tokens.rotate_keys(Utc::now()).await.unwrap();
    let source = Arc::new(Counting {
        tokens: accounts.tokens.clone(),
        key_fetches: AtomicUsize::new(0),
    });
    let verifier = Verifier::load(source.clone(), VerifierSettings::default())
        .await
        .unwrap();
    Fixture {
        _database: database,
        accounts,
        source,
        verifier,
    }
}

impl Fixture {
    async fn token(&self) -> harsha_auth::tokens::TokenPair {
        self.accounts
            .login("mobile", "kaju katli at diwali", Utc::now())
            .await
            .unwrap()
            .1
    }
}

async fn tokens_verify_from_the_cache_until_they_expire_or_are_revoked(engine: Engine) {
    let f = fixture(engine).await;
    let pair = f.token().await;
    let now = Utc::now();
    let claims = f.verifier.verify(&pair.access_token, now).await.unwrap();
    assert_eq!(claims.jti, pair.claims.jti);
    assert!(claims.scopes.iter().any(|s| s == "order:write"));
    let again = f
        .verifier
        .verify_cached(&pair.access_token, now)
        .unwrap()
        .unwrap();
    assert!(
        Arc::ptr_eq(&claims, &again),
        "the second time comes from the cache"
    );
    assert_eq!(
        f.source.key_fetches.load(Ordering::SeqCst),
        1,
        "only the initial fetch"
    );

    // Past its expiry, the cached token is refused.
    let late = now + Duration::minutes(16);
    assert!(matches!(
        f.verifier.verify(&pair.access_token, late).await,
        Err(AuthError::InvalidToken)
    ));

    // Revoked: refused once the verifier has refreshed.
    let expires = chrono::DateTime::from_timestamp(pair.claims.exp, 0).unwrap();
    f.accounts
        .tokens
        .revoke_jti(
            &pair.claims.jti,
            &pair.claims.sub,
            expires,
            "lost phone",
            now,
        )
        .await
        .unwrap();
    f.verifier.verify(&pair.access_token, now).await.unwrap();
    f.verifier.refresh().await.unwrap();
    assert!(matches!(
        f.verifier.verify(&pair.access_token, now).await,
        Err(AuthError::InvalidToken)
    ));
    // Another token of the same user is unaffected (checked at its own
    // time: it may be issued a second later than `now`).
    let other = f.token().await;
    f.verifier
        .verify(&other.access_token, Utc::now())
        .await
        .unwrap();
}

async fn a_rotated_key_is_fetched_on_first_sight(engine: Engine) {
    let f = fixture(engine).await;
    let before = f.token().await;
    f.accounts.tokens.rotate_keys(Utc::now()).await.unwrap();
    let after = f.token().await;
    let now = Utc::now();
    assert!(
        f.verifier
            .verify_cached(&after.access_token, now)
            .unwrap()
            .is_none(),
        "unknown kid"
    );
    f.verifier.verify(&after.access_token, now).await.unwrap();
    assert_eq!(f.source.key_fetches.load(Ordering::SeqCst), 2);
    // The retired key still verifies what it signed.
    f.verifier.verify(&before.access_token, now).await.unwrap();
    // Unknown kids do not make it hammer its source.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("no-such-key".into());
    let stranger = {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let der = signing.to_pkcs8_der().unwrap();
        jsonwebtoken::encode(
            &header,
            &before.claims,
            &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
        )
        .unwrap()
    };
    for _ in 0..5 {
        assert!(f.verifier.verify(&stranger, now).await.is_err());
    }
    assert!(f.source.key_fetches.load(Ordering::SeqCst) <= 3);
}

async fn forged_tokens_are_refused(engine: Engine) {
    let f = fixture(engine).await;
    let pair = f.token().await;
    let now = Utc::now();
    let (head, rest) = pair.access_token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let mut claims = pair.claims.clone();
    claims.scopes.push("auth:admin".into());
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let tampered = format!("{head}.{payload}.{signature}");
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
    );
    let kid = jsonwebtoken::decode_header(&pair.access_token)
        .unwrap()
        .kid
        .unwrap();
    let x = f
        .accounts
        .tokens
        .public_keys(now)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.kid == kid)
        .unwrap()
        .x;
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(kid);
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(x.as_bytes()),
    )
    .unwrap();
    for forged in [
        tampered.as_str(),
        none.as_str(),
        hs256.as_str(),
        "not-a-token",
        "",
    ] {
        assert!(
            matches!(
                f.verifier.verify(forged, now).await,
                Err(AuthError::InvalidToken)
            ),
            "{forged}"
        );
    }
    // Not yet valid, wrong audience (another verifier's settings).
    let strict = Verifier::load(
        f.source.clone(),
        VerifierSettings {
            audience: "someone-else".into(),
            ..VerifierSettings::default()
        },
    )
    .await
    .unwrap();
    assert!(strict.verify(&pair.access_token, now).await.is_err());
    assert!(
        f.verifier
            .verify(&pair.access_token, now - Duration::minutes(5))
            .await
            .is_err()
    );
}
