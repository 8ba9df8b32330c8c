//! API keys and rate-limit plans on SQLite and PostgreSQL: a key is shown
//! once and works only with its secret, from its networks, for its scopes,
//! until it is revoked or expires or its user is disabled; refusals name the
//! field; revocation is immediate on the replica that made it and seen by
//! others within their cache's lifetime.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{net::IpAddr, time::Duration};

use chrono::Utc;
use harsha_auth::{
    Accounts, AuthError, AuthSettings,
    accounts::UserRequest,
    api_keys::{ApiKeys, KeyRequest},
    domain::Scope,
    plans::RateLimitPlan,
    store::User,
};
use harsha_store::{Engine, Role as DbRole};
use harsha_testkit::TestDatabase;

harsha_testkit::on_sqlite_and_postgres!(
    a_key_works_only_with_its_secret_from_its_networks_for_its_scopes,
    bad_key_requests_name_the_field,
    revoked_expired_and_disabled_keys_stop_working,
    keys_list_without_secrets_and_record_their_last_use,
    plans_are_listed_and_set,
    a_key_read_earlier_works_while_the_database_is_away,
);

struct Fixture {
    database: TestDatabase,
    accounts: Accounts,
}

async fn fixture(engine: Engine) -> Fixture {
    let database = TestDatabase::new(DbRole::Gateway, engine).await;
    let accounts = Accounts::new(database.db.pg_pool().unwrap(), AuthSettings::default()).unwrap();
    Fixture { database, accounts }
}

impl Fixture {
    async fn user(&self, name: &str, role: &str) -> User {
        self.accounts
            .create_user(UserRequest {
                username: name.into(),
                email: format!("{name}@harshadelights.in"),
                password: "kaju katli at diwali".into(),
                roles: vec![role.into()],
                plan: "partner".into(),
            })
            .await
            .unwrap()
    }

    async fn key(
        &self,
        request: KeyRequest,
    ) -> Result<(harsha_auth::api_keys::ApiKey, String), AuthError> {
        self.accounts
            .keys
            .create(request, self.accounts.users.as_ref(), Utc::now())
            .await
    }
}

fn request(user: &User) -> KeyRequest {
    KeyRequest {
        user_id: user.id.clone(),
        name: "CRM nightly sync".into(),
        scopes: vec!["customer:read".into(), "pricing:quote".into()],
        allowed_cidrs: vec!["10.20.0.0/16".into(), "2001:db8:42::/48".into()],
        plan: String::new(),
        expires_at: None,
    }
}

fn ip(text: &str) -> Option<IpAddr> {
    text.parse().ok()
}

fn field_of(result: Result<impl std::fmt::Debug, AuthError>) -> String {
    match result {
        Err(AuthError::InvalidArgument { field, .. }) => field,
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

async fn a_key_works_only_with_its_secret_from_its_networks_for_its_scopes(engine: Engine) {
    let f = fixture(engine).await;
    let crm = f.user("crm", "sales").await;
    let (key, secret) = f.key(request(&crm)).await.unwrap();
    assert!(secret.starts_with(&format!("{}.", key.prefix)));
    assert_eq!(key.plan, "partner", "the user's plan by default");
    let keys = &f.accounts.keys;
    let now = Utc::now();
    let who = keys
        .authenticate(&secret, ip("10.20.3.4"), Some(Scope::PricingQuote), now)
        .await
        .unwrap();
    assert_eq!(
        (who.user_id.as_str(), who.key_id.as_str()),
        (crm.id.as_str(), key.id.as_str())
    );
    assert_eq!(who.scopes, [Scope::CustomerRead, Scope::PricingQuote]);
    keys.authenticate(&secret, ip("2001:db8:42:7::1"), None, now)
        .await
        .unwrap();
    keys.authenticate(&secret, ip("::ffff:10.20.9.9"), None, now)
        .await
        .unwrap();
    assert!(matches!(
        keys.authenticate(&secret, ip("10.21.0.1"), None, now).await,
        Err(AuthError::AddressNotAllowed)
    ));
    assert!(matches!(
        keys.authenticate(&secret, None, None, now).await,
        Err(AuthError::AddressNotAllowed)
    ));
    assert!(matches!(
        keys.authenticate(&secret, ip("10.20.3.4"), Some(Scope::CustomerWrite), now)
            .await,
        Err(AuthError::PermissionDenied("customer:write"))
    ));
    // Another secret under the same prefix, a made-up key, garbage.
    let forged = format!("{}.{}", key.prefix, "A".repeat(43));
    for bad in [
        forged.as_str(),
        "hk_abcdefghijkm.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "Bearer nonsense",
    ] {
        assert!(
            matches!(
                keys.authenticate(bad, ip("10.20.3.4"), None, now).await,
                Err(AuthError::InvalidToken)
            ),
            "{bad}"
        );
    }
    // A key without an allow-list works from anywhere.
    let mut open = request(&crm);
    open.allowed_cidrs.clear();
    let (_, open_secret) = f.key(open).await.unwrap();
    keys.authenticate(&open_secret, None, None, now)
        .await
        .unwrap();
}

async fn bad_key_requests_name_the_field(engine: Engine) {
    let f = fixture(engine).await;
    let clerk = f.user("clerk", "warehouse").await;
    let cases: Vec<(&str, KeyRequest)> = vec![
        (
            "user_id",
            KeyRequest {
                user_id: String::new(),
                ..request(&clerk)
            },
        ),
        (
            "name",
            KeyRequest {
                name: " ".into(),
                ..request(&clerk)
            },
        ),
        (
            "scopes",
            KeyRequest {
                scopes: vec![],
                ..request(&clerk)
            },
        ),
        (
            "scopes[0]",
            KeyRequest {
                scopes: vec!["inventory:delete".into()],
                ..request(&clerk)
            },
        ),
        // A warehouse user cannot hand out pricing.
        (
            "scopes[1]",
            KeyRequest {
                scopes: vec!["inventory:read".into(), "pricing:quote".into()],
                ..request(&clerk)
            },
        ),
        (
            "allowed_cidrs[1]",
            KeyRequest {
                scopes: vec!["inventory:read".into()],
                allowed_cidrs: vec!["10.0.0.0/8".into(), "10.0.0.0/33".into()],
                ..request(&clerk)
            },
        ),
        (
            "expire_time",
            KeyRequest {
                scopes: vec!["inventory:read".into()],
                expires_at: Some(Utc::now() - chrono::Duration::seconds(1)),
                ..request(&clerk)
            },
        ),
        (
            "rate_limit_plan",
            KeyRequest {
                scopes: vec!["inventory:read".into()],
                plan: "diamond".into(),
                ..request(&clerk)
            },
        ),
    ];
    for (field, bad) in cases {
        assert_eq!(field_of(f.key(bad).await), field);
    }
    assert!(matches!(
        f.key(KeyRequest {
            user_id: "nobody".into(),
            ..request(&clerk)
        })
        .await,
        Err(AuthError::UserNotFound(_))
    ));
    let page = f.accounts.keys.list(None, true, 50, "").await.unwrap();
    assert!(page.items.is_empty(), "nothing was written");
}

async fn revoked_expired_and_disabled_keys_stop_working(engine: Engine) {
    let f = fixture(engine).await;
    let crm = f.user("crm", "sales").await;
    let keys = &f.accounts.keys;
    // Another replica, whose cache lives 200 ms.
    let other =
        ApiKeys::with_cache_ttl(f.database.db.pg_pool().unwrap(), Duration::from_millis(200));
    let mut open = request(&crm);
    open.allowed_cidrs.clear();
    let (key, secret) = f.key(open.clone()).await.unwrap();
    let now = Utc::now();
    keys.authenticate(&secret, None, None, now).await.unwrap();
    other.authenticate(&secret, None, None, now).await.unwrap();
    let revoked = keys.revoke(&key.id, now).await.unwrap();
    assert_eq!(
        revoked.revoked_at.map(|t| t.timestamp()),
        Some(now.timestamp())
    );
    assert!(matches!(
        keys.authenticate(&secret, None, None, now).await,
        Err(AuthError::InvalidToken)
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(matches!(
        other.authenticate(&secret, None, None, now).await,
        Err(AuthError::InvalidToken)
    ));
    // Revoking twice keeps the first time; an unknown key is NOT_FOUND.
    let again = keys
        .revoke(&key.id, now + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(again.revoked_at, revoked.revoked_at);
    assert!(matches!(
        keys.revoke("nope", now).await,
        Err(AuthError::KeyNotFound(_))
    ));

    let expiring = KeyRequest {
        expires_at: Some(now + chrono::Duration::hours(1)),
        ..open.clone()
    };
    let (_, expiring) = f.key(expiring).await.unwrap();
    keys.authenticate(&expiring, None, None, now).await.unwrap();
    assert!(matches!(
        keys.authenticate(&expiring, None, None, now + chrono::Duration::hours(1))
            .await,
        Err(AuthError::InvalidToken)
    ));

    let (_, live) = f.key(open).await.unwrap();
    f.accounts.disable(&crm.id, now).await.unwrap();
    let fresh = ApiKeys::new(f.database.db.pg_pool().unwrap());
    assert!(matches!(
        fresh.authenticate(&live, None, None, now).await,
        Err(AuthError::InvalidToken)
    ));
}

async fn keys_list_without_secrets_and_record_their_last_use(engine: Engine) {
    let f = fixture(engine).await;
    let crm = f.user("crm", "sales").await;
    let shop = f.user("shop", "storefront").await;
    let mut secrets = Vec::new();
    let mut open = request(&crm);
    open.allowed_cidrs.clear();
    for _ in 0..3 {
        secrets.push(f.key(open.clone()).await.unwrap());
    }
    let (shop_key, _) = f
        .key(KeyRequest {
            scopes: vec!["order:write".into()],
            ..request(&shop)
        })
        .await
        .unwrap();
    f.accounts
        .keys
        .revoke(&secrets[0].0.id, Utc::now())
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = f
            .accounts
            .keys
            .list(Some(&crm.id), false, 1, &token)
            .await
            .unwrap();
        seen.extend(page.items.into_iter().map(|k| k.id));
        match page.next_token {
            Some(next) => token = next,
            None => break,
        }
    }
    assert_eq!(
        seen,
        [secrets[2].0.id.clone(), secrets[1].0.id.clone()],
        "newest first, live only"
    );
    let all = f
        .accounts
        .keys
        .list(None, true, 50, "")
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].id, shop_key.id);

    // A use is written off the caller's path.
    let (used, secret) = &secrets[2];
    assert!(used.last_used_at.is_none());
    f.accounts
        .keys
        .authenticate(secret, None, None, Utc::now())
        .await
        .unwrap();
    let mut written = None;
    for _ in 0..50 {
        written = f.accounts.keys.get(&used.id).await.unwrap().last_used_at;
        if written.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(written.is_some(), "the last use was recorded");
}

async fn plans_are_listed_and_set(engine: Engine) {
    let f = fixture(engine).await;
    let names: Vec<String> = f
        .accounts
        .plans
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["internal", "partner", "standard"]);
    let plan = |name: &str, minute| RateLimitPlan {
        name: name.into(),
        per_minute: minute,
        per_hour: 10_000,
        per_day: 100_000,
    };
    f.accounts.plans.set(plan("wholesale", 300)).await.unwrap();
    f.accounts.plans.set(plan("wholesale", 400)).await.unwrap();
    let plans = f.accounts.plans.list().await.unwrap();
    let wholesale = plans.iter().find(|p| p.name == "wholesale").unwrap();
    assert_eq!(wholesale.per_minute, 400);
    assert_eq!(
        field_of(f.accounts.plans.set(plan("wholesale", 20_000)).await),
        "plan.per_hour"
    );
    // The new plan can be given to a key.
    let crm = f.user("crm", "sales").await;
    let (key, _) = f
        .key(KeyRequest {
            plan: "wholesale".into(),
            ..request(&crm)
        })
        .await
        .unwrap();
    assert_eq!(key.plan, "wholesale");
}

async fn a_key_read_earlier_works_while_the_database_is_away(engine: Engine) {
    let f = fixture(engine).await;
    let crm = f.user("crm", "sales").await;
    let mut open = request(&crm);
    open.allowed_cidrs.clear();
    let (_, secret) = f.key(open).await.unwrap();
    let (_, unread) = f.key(request(&crm)).await.unwrap();
    // A replica whose entries are due for a fresh read at once.
    let replica = ApiKeys::with_cache_ttl(f.database.db.pg_pool().unwrap(), Duration::ZERO);
    let now = Utc::now();
    let first = replica
        .authenticate(&secret, None, None, now)
        .await
        .unwrap();
    f.database.db.close().await;
    // The database is gone: the key read before still works as it was…
    let again = replica
        .authenticate(&secret, None, None, now)
        .await
        .unwrap();
    assert_eq!(again.key_id, first.key_id);
    assert_eq!(again.scopes, first.scopes);
    // …a key never read cannot be checked, and says the database is why.
    let refused = replica.authenticate(&unread, None, None, now).await;
    assert!(matches!(refused, Err(AuthError::Store(_))), "{refused:?}");
}
