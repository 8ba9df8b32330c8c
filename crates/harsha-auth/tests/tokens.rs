//! Tokens on SQLite and PostgreSQL: what verifies and what does not (the
//! usual attacks included), key rotation with the JWKS, refresh rotation
//! with reuse detection, exactly one winner among concurrent refreshes, and
//! revocation.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{Duration, Utc};
use harsha_auth::{
    AuthError,
    domain::{Email, Role, Username},
    store::{NewUser, SqlUserStore, User, UserStore},
    tokens::{TokenService, TokenSettings},
};
use harsha_store::{Engine, Role as DbRole};
use harsha_testkit::TestDatabase;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

harsha_testkit::on_sqlite_and_postgres!(
    issued_tokens_verify_and_forged_ones_do_not,
    rotated_keys_keep_verifying_what_they_signed,
    a_reused_refresh_token_revokes_its_family,
    concurrent_refreshes_of_one_token_let_exactly_one_through,
    revoked_access_tokens_stop_verifying,
);

struct Fixture {
    _database: TestDatabase,
    users: Arc<dyn UserStore>,
    tokens: TokenService,
    user: User,
    pool: harsha_store::PgPool,
}

async fn fixture(engine: Engine) -> Fixture {
    let database = TestDatabase::new(DbRole::Gateway, engine).await;
    let pool = database.db.pg_pool().unwrap();
    let users: Arc<dyn UserStore> = Arc::new(SqlUserStore::new(pool.clone()));
    let user = users
        .create_user(NewUser {
            username: Username::parse("crm-bot").unwrap(),
            email: Email::parse("crm@harshadelights.in").unwrap(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            roles: vec![Role::Sales],
            plan: "partner".into(),
        })
        .await
        .unwrap();
    let tokens = TokenService::new(pool.clone(), TokenSettings::default());
    Fixture {
        _database: database,
        users,
        tokens,
        user,
        pool,
    }
}

fn forge(header: Header, claims: &serde_json::Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

async fn issued_tokens_verify_and_forged_ones_do_not(engine: Engine) {
    let f = fixture(engine).await;
    let now = Utc::now();
    let pair = f.tokens.issue(&f.user, now).await.unwrap();
    let claims = f.tokens.verify(&pair.access_token, now).await.unwrap();
    assert_eq!(claims.sub, f.user.id);
    assert_eq!(claims.roles, ["sales"]);
    assert!(claims.scopes.contains(&"pricing:quote".to_owned()));
    assert_eq!(
        (
            claims.iss.as_str(),
            claims.aud.as_str(),
            claims.plan.as_str()
        ),
        ("harsha-auth", "harsha-mesh", "partner")
    );
    let jwks = f.tokens.jwks(now).await.unwrap();
    assert_eq!(jwks.keys.len(), 1);

    let reject = |token: String| {
        let tokens = f.tokens.clone();
        async move {
            matches!(
                tokens.verify(&token, now).await,
                Err(AuthError::InvalidToken)
            )
        }
    };
    // Expired and not yet valid.
    assert!(matches!(
        f.tokens
            .verify(&pair.access_token, now + Duration::minutes(16))
            .await,
        Err(AuthError::InvalidToken)
    ));
    assert!(matches!(
        f.tokens
            .verify(&pair.access_token, now - Duration::minutes(1))
            .await,
        Err(AuthError::InvalidToken)
    ));
    // Tampered payload.
    let mut parts: Vec<String> = pair.access_token.split('.').map(str::to_owned).collect();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    payload["roles"] = serde_json::json!(["admin"]);
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
    assert!(reject(parts.join(".")).await, "tampered");
    // alg none.
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    assert!(
        reject(format!("{none_header}.{}.", parts[1])).await,
        "alg none"
    );
    // HS256 signed with the public key as the secret.
    let public = jwks.keys[0].clone();
    let x = match &public.algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) => p.x.clone(),
        _ => unreachable!(),
    };
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = public.common.key_id.clone();
    assert!(
        reject(forge(hs, &payload, &EncodingKey::from_secret(x.as_bytes()))).await,
        "HS256 with the public key"
    );
    // Signed by a key we never issued, under a kid we do not know.
    let stranger = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&stranger).unwrap();
    let mut unknown = Header::new(Algorithm::EdDSA);
    unknown.kid = Some("not-ours".into());
    let original: serde_json::Value = serde_json::to_value(&claims).unwrap();
    assert!(
        reject(forge(
            unknown,
            &original,
            &EncodingKey::from_ed_der(der.as_bytes())
        ))
        .await,
        "unknown kid"
    );
    // A stranger's signature under our kid.
    let mut ours = Header::new(Algorithm::EdDSA);
    ours.kid = public.common.key_id.clone();
    assert!(
        reject(forge(
            ours.clone(),
            &original,
            &EncodingKey::from_ed_der(der.as_bytes())
        ))
        .await,
        "wrong key"
    );
    // Wrong audience or issuer, even correctly signed.
    let elsewhere = TokenService::new(
        f.pool.clone(),
        TokenSettings {
            audience: "someone-else".into(),
            ..TokenSettings::default()
        },
    );
    assert!(
        matches!(
            elsewhere.verify(&pair.access_token, now).await,
            Err(AuthError::InvalidToken)
        ),
        "wrong audience"
    );
    let impostor = TokenService::new(
        f.pool.clone(),
        TokenSettings {
            issuer: "impostor".into(),
            ..TokenSettings::default()
        },
    );
    assert!(
        matches!(
            impostor.verify(&pair.access_token, now).await,
            Err(AuthError::InvalidToken)
        ),
        "wrong issuer"
    );
    let _ = &f.users;
}

async fn rotated_keys_keep_verifying_what_they_signed(engine: Engine) {
    let f = fixture(engine).await;
    let now = Utc::now();
    let old = f.tokens.issue(&f.user, now).await.unwrap();
    let new_kid = f.tokens.rotate_keys(now).await.unwrap();
    let new = f.tokens.issue(&f.user, now).await.unwrap();
    let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    assert_eq!(kid(&new.access_token), new_kid);
    assert_ne!(kid(&old.access_token), new_kid);
    assert!(
        f.tokens.verify(&old.access_token, now).await.is_ok(),
        "the retired key still verifies"
    );
    assert!(f.tokens.verify(&new.access_token, now).await.is_ok());
    assert_eq!(f.tokens.jwks(now).await.unwrap().keys.len(), 2);
    // Once its tokens have all expired, the retired key leaves the JWKS.
    assert_eq!(
        f.tokens
            .jwks(now + Duration::minutes(17))
            .await
            .unwrap()
            .keys
            .len(),
        1
    );
}

async fn a_reused_refresh_token_revokes_its_family(engine: Engine) {
    let f = fixture(engine).await;
    let now = Utc::now();
    let first = f.tokens.issue(&f.user, now).await.unwrap();
    let second = f
        .tokens
        .refresh(&first.refresh_token, f.users.as_ref(), now)
        .await
        .unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert!(f.tokens.verify(&second.access_token, now).await.is_ok());
    // The first refresh token again: theft. The whole family goes.
    assert!(matches!(
        f.tokens
            .refresh(&first.refresh_token, f.users.as_ref(), now)
            .await,
        Err(AuthError::InvalidToken)
    ));
    assert!(matches!(
        f.tokens
            .refresh(&second.refresh_token, f.users.as_ref(), now)
            .await,
        Err(AuthError::InvalidToken)
    ));
    assert!(matches!(
        f.tokens.verify(&second.access_token, now).await,
        Err(AuthError::InvalidToken)
    ));
    assert!(matches!(
        f.tokens.refresh("made-up", f.users.as_ref(), now).await,
        Err(AuthError::InvalidToken)
    ));
}

async fn concurrent_refreshes_of_one_token_let_exactly_one_through(engine: Engine) {
    let f = Arc::new(fixture(engine).await);
    let now = Utc::now();
    let pair = f.tokens.issue(&f.user, now).await.unwrap();
    let results = futures::future::join_all((0..8).map(|_| {
        let f = Arc::clone(&f);
        let token = pair.refresh_token.clone();
        tokio::spawn(async move {
            f.tokens
                .refresh(&token, f.users.as_ref(), now)
                .await
                .is_ok()
        })
    }))
    .await;
    let winners = results.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(winners, 1);
}

async fn revoked_access_tokens_stop_verifying(engine: Engine) {
    let f = fixture(engine).await;
    let now = Utc::now();
    let pair = f.tokens.issue(&f.user, now).await.unwrap();
    let expires = chrono::DateTime::from_timestamp(pair.claims.exp, 0).unwrap();
    f.tokens
        .revoke_jti(&pair.claims.jti, &f.user.id, expires, "logout", now)
        .await
        .unwrap();
    f.tokens
        .revoke_jti(&pair.claims.jti, &f.user.id, expires, "logout", now)
        .await
        .unwrap();
    assert!(matches!(
        f.tokens.verify(&pair.access_token, now).await,
        Err(AuthError::InvalidToken)
    ));
    assert_eq!(
        f.tokens.revoked_jtis(now).await.unwrap(),
        std::slice::from_ref(&pair.claims.jti)
    );
    assert!(
        f.tokens.revoked_jtis(expires).await.unwrap().is_empty(),
        "the list forgets expired tokens"
    );
}
