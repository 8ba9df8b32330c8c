//! API users on SQLite and PostgreSQL: creation and uniqueness, login with
//! the same answer for unknown users and wrong passwords, lockout at exactly
//! the fifth failure (also under concurrent attempts) and its lifting,
//! disabled accounts, and a password change revoking refresh tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use chrono::{Duration, Utc};
use harsha_auth::{
    AuthError,
    domain::{Email, LockoutPolicy, Password, PasswordHasher, Role, Username},
    login::check_login,
    store::{NewUser, SqlUserStore, UserStatus, UserStore},
};
use harsha_store::{Engine, Role as DbRole, pg_dispatch};
use harsha_testkit::TestDatabase;

harsha_testkit::on_sqlite_and_postgres!(
    users_are_created_once_per_name_and_email,
    logins_give_one_answer_for_unknown_users_and_wrong_passwords,
    the_fifth_failure_locks_and_the_lock_lifts,
    concurrent_wrong_passwords_cannot_slip_past_the_lockout,
    disabled_users_cannot_log_in,
    a_new_password_revokes_refresh_tokens,
);

const PASSWORD: &str = "kaju katli at diwali";

struct Fixture {
    database: TestDatabase,
    store: Arc<dyn UserStore>,
    hasher: PasswordHasher,
}

async fn fixture(engine: Engine) -> Fixture {
    let database = TestDatabase::new(DbRole::Gateway, engine).await;
    let store: Arc<dyn UserStore> = Arc::new(SqlUserStore::new(database.db.pg_pool().unwrap()));
    Fixture {
        database,
        store,
        hasher: PasswordHasher::new(2).unwrap(),
    }
}

impl Fixture {
    async fn user(&self, name: &str) -> String {
        let hash = self
            .hasher
            .hash(&Password::new(PASSWORD).unwrap())
            .await
            .unwrap();
        self.store
            .create_user(NewUser {
                username: Username::parse(name).unwrap(),
                email: Email::parse(&format!("{name}@harshadelights.in")).unwrap(),
                password_hash: hash,
                roles: vec![Role::Sales],
                plan: "standard".into(),
            })
            .await
            .unwrap()
            .id
    }

    async fn login(
        &self,
        name: &str,
        password: &str,
        at: chrono::DateTime<Utc>,
    ) -> Result<String, AuthError> {
        check_login(
            self.store.as_ref(),
            &self.hasher,
            LockoutPolicy::default(),
            name,
            password,
            at,
        )
        .await
        .map(|user| user.id)
    }
}

async fn users_are_created_once_per_name_and_email(engine: Engine) {
    let f = fixture(engine).await;
    let id = f.user("ravi").await;
    let (user, hash) = f
        .store
        .user_for_login(&Username::parse("RAVI").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.id, id);
    assert_eq!(user.roles, [Role::Sales]);
    assert_eq!(user.status, UserStatus::Active);
    assert!(hash.starts_with("$argon2id$"));
    let again = NewUser {
        username: Username::parse("ravi").unwrap(),
        email: Email::parse("other@harshadelights.in").unwrap(),
        password_hash: hash.clone(),
        roles: Vec::new(),
        plan: "standard".into(),
    };
    assert!(matches!(
        f.store.create_user(again.clone()).await,
        Err(AuthError::Taken(_))
    ));
    let same_email = NewUser {
        username: Username::parse("ravi2").unwrap(),
        email: Email::parse("ravi@harshadelights.in").unwrap(),
        ..again.clone()
    };
    assert!(matches!(
        f.store.create_user(same_email).await,
        Err(AuthError::Taken(_))
    ));
    let no_plan = NewUser {
        username: Username::parse("ravi3").unwrap(),
        email: Email::parse("r3@harshadelights.in").unwrap(),
        plan: "gold".into(),
        ..again
    };
    assert!(
        matches!(f.store.create_user(no_plan).await, Err(AuthError::InvalidArgument { field, .. }) if field == "rate_limit_plan")
    );
}

async fn logins_give_one_answer_for_unknown_users_and_wrong_passwords(engine: Engine) {
    let f = fixture(engine).await;
    let id = f.user("meena").await;
    let now = Utc::now();
    assert_eq!(f.login("meena", PASSWORD, now).await.unwrap(), id);
    let unknown = f.login("nobody", PASSWORD, now).await.unwrap_err();
    let wrong = f
        .login("meena", "soan papdi forever", now)
        .await
        .unwrap_err();
    assert!(matches!(unknown, AuthError::InvalidCredentials));
    assert!(matches!(wrong, AuthError::InvalidCredentials));
    assert_eq!(unknown.to_string(), wrong.to_string());
    let (user, _) = f
        .store
        .user_for_login(&Username::parse("meena").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.failures.count, 1);
    // A success clears the count.
    f.login("meena", PASSWORD, now).await.unwrap();
    let (user, _) = f
        .store
        .user_for_login(&Username::parse("meena").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.failures.count, 0);
    assert!(user.last_login_at.is_some());
}

async fn the_fifth_failure_locks_and_the_lock_lifts(engine: Engine) {
    let f = fixture(engine).await;
    f.user("arjun").await;
    let start = Utc::now();
    for i in 0..4 {
        let err = f
            .login("arjun", "not the password", start + Duration::seconds(i))
            .await
            .unwrap_err();
        assert!(
            matches!(err, AuthError::InvalidCredentials),
            "failure {}",
            i + 1
        );
    }
    let fifth = f
        .login("arjun", "not the password", start + Duration::seconds(4))
        .await
        .unwrap_err();
    assert!(
        matches!(fifth, AuthError::Locked),
        "the fifth failure locks"
    );
    // While locked, even the right password gets the same answer.
    let right = f
        .login("arjun", PASSWORD, start + Duration::minutes(10))
        .await
        .unwrap_err();
    assert!(matches!(right, AuthError::Locked));
    // Fifteen minutes after locking, the right password works again.
    f.login(
        "arjun",
        PASSWORD,
        start + Duration::seconds(4) + Duration::minutes(15),
    )
    .await
    .unwrap();
}

async fn concurrent_wrong_passwords_cannot_slip_past_the_lockout(engine: Engine) {
    let f = Arc::new(fixture(engine).await);
    f.user("priya").await;
    let now = Utc::now();
    let attempts = futures::future::join_all((0..12).map(|_| {
        let f = Arc::clone(&f);
        tokio::spawn(async move { f.login("priya", "guess guess guess", now).await })
    }))
    .await;
    let locked = attempts
        .into_iter()
        .filter(|a| matches!(a.as_ref().unwrap(), Err(AuthError::Locked)))
        .count();
    assert!(locked >= 1, "at least the fifth attempt locks");
    let (user, _) = f
        .store
        .user_for_login(&Username::parse("priya").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(LockoutPolicy::default().is_locked(user.failures, now));
    assert!(matches!(
        f.login("priya", PASSWORD, now).await,
        Err(AuthError::Locked)
    ));
}

async fn disabled_users_cannot_log_in(engine: Engine) {
    let f = fixture(engine).await;
    let id = f.user("kiran").await;
    let user = f
        .store
        .set_status(
            &id,
            UserStatus::Disabled,
            Utc::now(),
            chrono::Duration::minutes(15),
        )
        .await
        .unwrap();
    assert_eq!(user.status, UserStatus::Disabled);
    assert!(matches!(
        f.login("kiran", PASSWORD, Utc::now()).await,
        Err(AuthError::Disabled)
    ));
    assert!(matches!(
        f.login("kiran", "wrong wrong wrong", Utc::now()).await,
        Err(AuthError::InvalidCredentials)
    ));
}

async fn a_new_password_revokes_refresh_tokens(engine: Engine) {
    let f = fixture(engine).await;
    let id = f.user("lakshmi").await;
    let pool = f.database.db.pg_pool().unwrap();
    let now = Utc::now();
    pg_dispatch!(&pool, pool => {
        sqlx::query(
            "INSERT INTO jwt_tokens (id, user_id, family_id, token_hash, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind("t1").bind(&id).bind("f1").bind("hash-1").bind(now).bind(now + Duration::days(30))
        .execute(pool)
        .await
        .unwrap();
    });
    let new_hash = f
        .hasher
        .hash(&Password::new("mysore pak for everyone").unwrap())
        .await
        .unwrap();
    f.store
        .set_password(&id, &new_hash, now, chrono::Duration::minutes(15))
        .await
        .unwrap();
    let revoked: Option<String> = pg_dispatch!(&pool, pool => {
        sqlx::query_scalar("SELECT revoked_reason FROM jwt_tokens WHERE id = 't1'").fetch_one(pool).await.unwrap()
    });
    assert_eq!(revoked.as_deref(), Some("password changed"));
    assert!(matches!(
        f.login("lakshmi", PASSWORD, now).await,
        Err(AuthError::InvalidCredentials)
    ));
    f.login("lakshmi", "mysore pak for everyone", now)
        .await
        .unwrap();
}
