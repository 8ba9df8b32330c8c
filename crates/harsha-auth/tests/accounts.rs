//! Accounts on SQLite and PostgreSQL: the first admin made once, field-named
//! refusals, user updates and pages, and every way a session ends (logout,
//! revoking a user, disabling, a password change) taking the refresh tokens
//! and the access tokens issued with them.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use chrono::Utc;
use harsha_auth::{
    Accounts, AuthError, AuthSettings,
    accounts::{FIRST_ADMIN, UserRequest},
    store::User,
};
use harsha_store::{Engine, Role as DbRole};
use harsha_testkit::TestDatabase;

harsha_testkit::on_sqlite_and_postgres!(
    the_first_admin_is_made_once_and_logs_in,
    bad_requests_name_the_field_and_write_nothing,
    users_update_and_list_in_pages,
    logout_ends_the_family_and_its_access_tokens,
    revoking_a_user_ends_every_session,
    a_password_change_needs_the_current_one_and_ends_sessions,
    disabling_ends_sessions_and_enabling_lifts_a_lock,
);

const PASSWORD: &str = "kaju katli at diwali";

struct Fixture {
    _database: TestDatabase,
    accounts: Accounts,
}

async fn fixture(engine: Engine) -> Fixture {
    let database = TestDatabase::new(DbRole::Gateway, engine).await;
    let accounts = Accounts::new(database.db.pg_pool().unwrap(), AuthSettings::default()).unwrap();
    Fixture {
        _database: database,
        accounts,
    }
}

impl Fixture {
    async fn user(&self, name: &str) -> User {
        self.accounts.create_user(request(name)).await.unwrap()
    }

    async fn is_revoked(&self, access_token: &str) -> bool {
        matches!(
            self.accounts.tokens.verify(access_token, Utc::now()).await,
            Err(AuthError::InvalidToken)
        )
    }
}

fn request(name: &str) -> UserRequest {
    UserRequest {
        username: name.into(),
        email: format!("{name}@harshadelights.in"),
        password: PASSWORD.into(),
        roles: vec!["sales".into()],
        plan: String::new(),
    }
}

fn field_of(error: AuthError) -> String {
    match error {
        AuthError::InvalidArgument { field, .. } => field,
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

async fn the_first_admin_is_made_once_and_logs_in(engine: Engine) {
    let f = fixture(engine).await;
    let (admin, password) = f.accounts.ensure_first_admin().await.unwrap().unwrap();
    assert_eq!(admin.username, FIRST_ADMIN);
    assert_eq!(admin.plan, "internal");
    assert!(password.reveal().len() >= 24);
    assert!(f.accounts.ensure_first_admin().await.unwrap().is_none());
    let (user, pair) = f
        .accounts
        .login(FIRST_ADMIN, password.reveal(), Utc::now())
        .await
        .unwrap();
    assert_eq!(user.id, admin.id);
    assert!(pair.claims.scopes.iter().any(|s| s == "auth:admin"));
}

async fn bad_requests_name_the_field_and_write_nothing(engine: Engine) {
    let f = fixture(engine).await;
    type Spoil = Box<dyn Fn(&mut UserRequest)>;
    let cases: Vec<(&str, Spoil)> = vec![
        ("username", Box::new(|r| r.username = "9lives".into())),
        ("email", Box::new(|r| r.email = "no-at-sign".into())),
        ("password", Box::new(|r| r.password = "too short".into())),
        ("roles", Box::new(|r| r.roles.clear())),
        ("roles[1]", Box::new(|r| r.roles.push("emperor".into()))),
        ("rate_limit_plan", Box::new(|r| r.plan = "platinum".into())),
    ];
    for (field, spoil) in cases {
        let mut bad = request("meena");
        spoil(&mut bad);
        let error = f.accounts.create_user(bad).await.unwrap_err();
        assert_eq!(field_of(error), field);
    }
    assert!(
        !f.accounts.users.has_users().await.unwrap(),
        "nothing was written"
    );
    f.user("meena").await;
    let mut same_email = request("meena2");
    same_email.email = "meena@harshadelights.in".into();
    assert!(matches!(
        f.accounts.create_user(same_email).await,
        Err(AuthError::Taken("email"))
    ));
    let mut same_name = request("meena");
    same_name.email = "meena.k@harshadelights.in".into();
    assert!(matches!(
        f.accounts.create_user(same_name).await,
        Err(AuthError::Taken("username"))
    ));
}

async fn users_update_and_list_in_pages(engine: Engine) {
    let f = fixture(engine).await;
    for name in ["dev", "asha", "chitra", "bala", "esha"] {
        f.user(name).await;
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = f.accounts.users.list_users(2, &token).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|u| u.username));
        match page.next_token {
            Some(next) => token = next,
            None => break,
        }
    }
    assert_eq!(seen, ["asha", "bala", "chitra", "dev", "esha"]);
    assert_eq!(
        field_of(
            f.accounts
                .users
                .list_users(2, "garbage!")
                .await
                .unwrap_err()
        ),
        "page_token"
    );

    let dev = f.accounts.users.list_users(500, "").await.unwrap().items[3].clone();
    let roles = vec!["viewer".to_owned(), "warehouse".to_owned()];
    let updated = f
        .accounts
        .update_user(&dev.id, "", &roles, "partner", Utc::now())
        .await
        .unwrap();
    assert_eq!(updated.email, dev.email, "an empty email stays");
    assert_eq!(updated.plan, "partner");
    assert_eq!(
        updated.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        ["warehouse", "viewer"]
    );
    let error = f
        .accounts
        .update_user(&dev.id, "", &[], "platinum", Utc::now())
        .await
        .unwrap_err();
    assert_eq!(field_of(error), "rate_limit_plan");
    assert!(matches!(
        f.accounts
            .update_user(&dev.id, "asha@harshadelights.in", &[], "", Utc::now())
            .await,
        Err(AuthError::Taken("email"))
    ));
    assert!(matches!(
        f.accounts
            .update_user("nobody", "", &[], "partner", Utc::now())
            .await,
        Err(AuthError::UserNotFound(_))
    ));
    assert_eq!(
        f.accounts.users.user(&dev.id).await.unwrap().plan,
        "partner"
    );
}

async fn logout_ends_the_family_and_its_access_tokens(engine: Engine) {
    let f = fixture(engine).await;
    f.user("ravi").await;
    let now = Utc::now();
    let (_, first) = f.accounts.login("ravi", PASSWORD, now).await.unwrap();
    let (_, other) = f.accounts.login("ravi", PASSWORD, now).await.unwrap();
    let users = f.accounts.users.as_ref();
    let second = f
        .accounts
        .tokens
        .refresh(&first.refresh_token, users, now)
        .await
        .unwrap();
    f.accounts
        .tokens
        .logout(&second.refresh_token, None, now)
        .await
        .unwrap();
    assert!(f.is_revoked(&first.access_token).await);
    assert!(f.is_revoked(&second.access_token).await);
    assert!(matches!(
        f.accounts
            .tokens
            .refresh(&second.refresh_token, users, now)
            .await,
        Err(AuthError::InvalidToken)
    ));
    // The other session (another device) goes on.
    assert!(!f.is_revoked(&other.access_token).await);
    f.accounts
        .tokens
        .refresh(&other.refresh_token, users, now)
        .await
        .unwrap();
    // Twice is fine; an unknown token is not.
    f.accounts
        .tokens
        .logout(&second.refresh_token, None, now)
        .await
        .unwrap();
    assert!(matches!(
        f.accounts.tokens.logout("never-issued", None, now).await,
        Err(AuthError::InvalidToken)
    ));
}

async fn revoking_a_user_ends_every_session(engine: Engine) {
    let f = fixture(engine).await;
    f.user("sita").await;
    let bystander = f.user("gita").await;
    let now = Utc::now();
    let (sita, one) = f.accounts.login("sita", PASSWORD, now).await.unwrap();
    let (_, two) = f.accounts.login("sita", PASSWORD, now).await.unwrap();
    let (_, theirs) = f.accounts.login("gita", PASSWORD, now).await.unwrap();
    let revoked = f
        .accounts
        .tokens
        .revoke_user(&sita.id, "laptop stolen", now)
        .await
        .unwrap();
    assert_eq!(revoked, 2);
    for pair in [&one, &two] {
        assert!(f.is_revoked(&pair.access_token).await);
        assert!(
            f.accounts
                .tokens
                .refresh(&pair.refresh_token, f.accounts.users.as_ref(), now)
                .await
                .is_err()
        );
    }
    assert_eq!(
        f.accounts
            .tokens
            .verify(&theirs.access_token, now)
            .await
            .unwrap()
            .sub,
        bystander.id
    );
    // New logins work again.
    let (_, fresh) = f.accounts.login("sita", PASSWORD, now).await.unwrap();
    assert!(!f.is_revoked(&fresh.access_token).await);
}

async fn a_password_change_needs_the_current_one_and_ends_sessions(engine: Engine) {
    let f = fixture(engine).await;
    let user = f.user("farah").await;
    let now = Utc::now();
    let (_, session) = f.accounts.login("farah", PASSWORD, now).await.unwrap();
    let error = f
        .accounts
        .change_password(&user.id, Some("not my password"), "mysore pak for all", now)
        .await
        .unwrap_err();
    assert_eq!(field_of(error), "current_password");
    let error = f
        .accounts
        .change_password(&user.id, Some(PASSWORD), "short", now)
        .await
        .unwrap_err();
    assert_eq!(field_of(error), "new_password");
    assert!(
        !f.is_revoked(&session.access_token).await,
        "refusals change nothing"
    );
    f.accounts
        .change_password(&user.id, Some(PASSWORD), "mysore pak for all", now)
        .await
        .unwrap();
    assert!(f.is_revoked(&session.access_token).await);
    assert!(matches!(
        f.accounts.login("farah", PASSWORD, now).await,
        Err(AuthError::InvalidCredentials)
    ));
    // An administrator sets it without the current one.
    f.accounts
        .change_password(&user.id, None, "peda and more peda", now)
        .await
        .unwrap();
    f.accounts
        .login("farah", "peda and more peda", now)
        .await
        .unwrap();
}

async fn disabling_ends_sessions_and_enabling_lifts_a_lock(engine: Engine) {
    let f = fixture(engine).await;
    let user = f.user("noor").await;
    let now = Utc::now();
    let (_, session) = f.accounts.login("noor", PASSWORD, now).await.unwrap();
    let disabled = f.accounts.disable(&user.id, now).await.unwrap();
    assert_eq!(disabled.status, harsha_auth::store::UserStatus::Disabled);
    assert!(f.is_revoked(&session.access_token).await);
    assert!(matches!(
        f.accounts.login("noor", PASSWORD, now).await,
        Err(AuthError::Disabled)
    ));
    assert!(matches!(
        f.accounts.disable("nobody", now).await,
        Err(AuthError::UserNotFound(_))
    ));
    // Enabled again, and a lock-out is lifted with it.
    for _ in 0..5 {
        let _ = f.accounts.login("noor", "wrong wrong wrong", now).await;
    }
    let enabled = f.accounts.enable(&user.id, now).await.unwrap();
    assert_eq!(enabled.status, harsha_auth::store::UserStatus::Active);
    assert_eq!(enabled.failures.count, 0);
    f.accounts.login("noor", PASSWORD, now).await.unwrap();
}
