//! The `harsha.auth.v1.AuthService` server: converts requests, calls
//! [`Accounts`] and the token service, and maps [`AuthError`] to a gRPC
//! status in one place. Admin RPCs check the caller's access token (the
//! `authorization: Bearer …` metadata) for the `auth:admin` scope.

use std::sync::{Arc, OnceLock};

use chrono::Utc;
use harsha_proto::{
    convert::{timestamp_from_proto, timestamp_to_proto},
    harsha::auth::v1::{self as pb, auth_service_server::AuthService},
};
use harsha_store::{page::page_size, status::store_status};
use jsonwebtoken::jwk::{AlgorithmParameters, KeyAlgorithm, PublicKeyUse};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    AuthError,
    access::{Credential, Principal, bearer_token},
    accounts::{Accounts, UserRequest},
    api_keys::{ApiKey, KeyRequest},
    domain::{Scope, scopes_of},
    plans::RateLimitPlan,
    store::{User, UserStatus},
    tokens::{PresentedAccess, TokenPair},
};

pub use harsha_proto::harsha::auth::v1::auth_service_server::AuthServiceServer;

/// Where the accounts appear once the database is connected and migrated;
/// until then every call answers `UNAVAILABLE`.
pub type AccountsSlot = Arc<OnceLock<Accounts>>;

/// The longest free text accepted in reasons.
const MAX_REASON: usize = 500;

/// The Auth gRPC service.
#[derive(Clone)]
pub struct AuthGrpc {
    accounts: AccountsSlot,
}

impl AuthGrpc {
    /// A service reading its accounts from `accounts`.
    pub fn new(accounts: AccountsSlot) -> Self {
        Self { accounts }
    }

    /// A service on accounts that are ready now.
    pub fn with_accounts(accounts: Accounts) -> Self {
        let slot = AccountsSlot::default();
        let _ = slot.set(accounts);
        Self::new(slot)
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> AuthServiceServer<Self> {
        AuthServiceServer::new(self)
    }

    fn accounts(&self) -> Result<&Accounts, AuthError> {
        self.accounts.get().ok_or(AuthError::NotReady)
    }

    /// Who is calling: the principal the access layer admitted, or (when
    /// the service runs without the layer) the bearer token's, verified
    /// here.
    async fn caller<T>(&self, request: &Request<T>) -> Result<Principal, AuthError> {
        if let Some(principal) = request.extensions().get::<Principal>() {
            return Ok(principal.clone());
        }
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .ok_or(AuthError::MissingToken)?;
        let claims = self.accounts()?.tokens.verify(token, Utc::now()).await?;
        Ok(Principal::from_claims(&claims))
    }

    /// The caller, if they hold `scope`.
    async fn require<T>(&self, request: &Request<T>, scope: Scope) -> Result<Principal, AuthError> {
        let caller = self.caller(request).await?;
        if caller.holds(scope) {
            Ok(caller)
        } else {
            Err(AuthError::PermissionDenied(scope.as_str()))
        }
    }
}

fn user_to_proto(user: User) -> pb::User {
    pb::User {
        scopes: scopes_of(&user.roles)
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
        roles: user.roles.iter().map(|r| r.as_str().to_owned()).collect(),
        user_id: user.id,
        username: user.username,
        email: user.email,
        disabled: user.status == UserStatus::Disabled,
        rate_limit_plan: user.plan,
        create_time: Some(timestamp_to_proto(user.created_at)),
    }
}

fn key_to_proto(key: ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        scopes: key.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        allowed_cidrs: key.allowed.to_strings(),
        key_id: key.id,
        user_id: key.user_id,
        name: key.name,
        prefix: key.prefix,
        rate_limit_plan: key.plan,
        expire_time: key.expires_at.map(timestamp_to_proto),
        last_use_time: key.last_used_at.map(timestamp_to_proto),
        revoke_time: key.revoked_at.map(timestamp_to_proto),
        create_time: Some(timestamp_to_proto(key.created_at)),
    }
}

fn plan_to_proto(plan: RateLimitPlan) -> pb::RateLimitPlan {
    pb::RateLimitPlan {
        name: plan.name,
        per_minute: plan.per_minute,
        per_hour: plan.per_hour,
        per_day: plan.per_day,
    }
}

struct Session {
    access_token: String,
    expires_in: i64,
    refresh_token: String,
    refresh_expire_time: Option<prost_types::Timestamp>,
}

fn session(pair: TokenPair) -> Session {
    Session {
        expires_in: pair.claims.exp - pair.claims.iat,
        access_token: pair.access_token,
        refresh_token: pair.refresh_token,
        refresh_expire_time: Some(timestamp_to_proto(pair.refresh_expires_at)),
    }
}

fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, AuthError> {
    let value = value.trim();
    if value.is_empty() {
        Err(AuthError::invalid(field, "is required"))
    } else {
        Ok(value)
    }
}

impl From<AuthError> for Status {
    fn from(error: AuthError) -> Self {
        let message = error.to_string();
        match error {
            AuthError::InvalidArgument { field, reason } => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(field, reason),
            ),
            AuthError::InvalidCredentials | AuthError::InvalidToken | AuthError::MissingToken => {
                Status::unauthenticated(message)
            }
            AuthError::Locked => Status::resource_exhausted(message),
            AuthError::Disabled | AuthError::PermissionDenied(_) | AuthError::AddressNotAllowed => {
                Status::permission_denied(message)
            }
            AuthError::UserNotFound(_) | AuthError::KeyNotFound(_) => Status::not_found(message),
            AuthError::Taken(field) => Status::with_error_details(
                Code::AlreadyExists,
                message,
                ErrorDetails::with_bad_request_violation(field, "is already taken"),
            ),
            AuthError::NotReady | AuthError::Unavailable(_) => Status::unavailable(message),
            AuthError::Hash(error) => {
                tracing::error!(%error, "password hashing failed");
                Status::internal("internal error")
            }
            AuthError::Store(store) => store_status("auth", &store),
        }
    }
}

type RpcResult<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl AuthService for AuthGrpc {
    #[tracing::instrument(name = "AuthService.Login", skip_all)]
    async fn login(&self, request: Request<pb::LoginRequest>) -> RpcResult<pb::LoginResponse> {
        let request = request.into_inner();
        let (user, pair) = self
            .accounts()?
            .login(&request.username, &request.password, Utc::now())
            .await?;
        tracing::info!(user_id = %user.id, "logged in");
        let session = session(pair);
        Ok(Response::new(pb::LoginResponse {
            access_token: session.access_token,
            token_type: "Bearer".into(),
            expires_in: session.expires_in,
            refresh_token: session.refresh_token,
            refresh_expire_time: session.refresh_expire_time,
        }))
    }

    #[tracing::instrument(name = "AuthService.Refresh", skip_all)]
    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> RpcResult<pb::RefreshResponse> {
        let request = request.into_inner();
        let accounts = self.accounts()?;
        let token = required("refresh_token", &request.refresh_token)?;
        let pair = accounts
            .tokens
            .refresh(token, accounts.users.as_ref(), Utc::now())
            .await?;
        let session = session(pair);
        Ok(Response::new(pb::RefreshResponse {
            access_token: session.access_token,
            token_type: "Bearer".into(),
            expires_in: session.expires_in,
            refresh_token: session.refresh_token,
            refresh_expire_time: session.refresh_expire_time,
        }))
    }

    #[tracing::instrument(name = "AuthService.Logout", skip_all)]
    async fn logout(&self, request: Request<pb::LogoutRequest>) -> RpcResult<pb::LogoutResponse> {
        let accounts = self.accounts()?;
        let now = Utc::now();
        let token = required("refresh_token", &request.get_ref().refresh_token)?;
        // The access token presented, if it is still good, ends too (it
        // may belong to another session than the refresh token's), in the
        // same transaction: a logout that fails changes nothing.
        let caller = self.caller(&request).await;
        let access = match &caller {
            Ok(Principal {
                user_id,
                credential: Credential::Token { jti },
                ..
            }) => Some(PresentedAccess { jti, user_id }),
            _ => None,
        };
        accounts.tokens.logout(token, access.as_ref(), now).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    #[tracing::instrument(name = "AuthService.GetJwks", skip_all)]
    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> RpcResult<pb::GetJwksResponse> {
        let set = self.accounts()?.tokens.jwks(Utc::now()).await?;
        let keys = set
            .keys
            .into_iter()
            .filter_map(|jwk| {
                let AlgorithmParameters::OctetKeyPair(okp) = jwk.algorithm else {
                    return None;
                };
                Some(pb::Jwk {
                    kty: "OKP".into(),
                    crv: "Ed25519".into(),
                    x: okp.x,
                    kid: jwk.common.key_id.unwrap_or_default(),
                    r#use: match jwk.common.public_key_use {
                        Some(PublicKeyUse::Signature) | None => "sig".into(),
                        Some(_) => return None,
                    },
                    alg: match jwk.common.key_algorithm {
                        Some(KeyAlgorithm::EdDSA) | None => "EdDSA".into(),
                        Some(_) => return None,
                    },
                })
            })
            .collect();
        Ok(Response::new(pb::GetJwksResponse { keys }))
    }

    #[tracing::instrument(name = "AuthService.CreateUser", skip_all)]
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> RpcResult<pb::CreateUserResponse> {
        let admin = self.require(&request, Scope::AuthAdmin).await?;
        let request = request.into_inner();
        let user = self
            .accounts()?
            .create_user(UserRequest {
                username: request.username,
                email: request.email,
                password: request.password,
                roles: request.roles,
                plan: request.rate_limit_plan,
            })
            .await?;
        tracing::info!(by = %admin.user_id, user_id = %user.id, "user created");
        Ok(Response::new(pb::CreateUserResponse {
            user: Some(user_to_proto(user)),
        }))
    }

    #[tracing::instrument(name = "AuthService.GetUser", skip_all)]
    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> RpcResult<pb::GetUserResponse> {
        self.require(&request, Scope::AuthAdmin).await?;
        let id = required("user_id", &request.get_ref().user_id)?;
        let user = self.accounts()?.users.user(id).await?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(user_to_proto(user)),
        }))
    }

    #[tracing::instrument(name = "AuthService.ListUsers", skip_all)]
    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> RpcResult<pb::ListUsersResponse> {
        self.require(&request, Scope::AuthAdmin).await?;
        let request = request.into_inner();
        let size = page_size(request.page_size).map_err(|e| AuthError::invalid(e.field(), &e))?;
        let page = self
            .accounts()?
            .users
            .list_users(size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: page.items.into_iter().map(user_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(name = "AuthService.UpdateUser", skip_all)]
    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> RpcResult<pb::UpdateUserResponse> {
        let admin = self.require(&request, Scope::AuthAdmin).await?;
        let request = request.into_inner();
        let id = required("user_id", &request.user_id)?;
        let user = self
            .accounts()?
            .update_user(
                id,
                &request.email,
                &request.roles,
                &request.rate_limit_plan,
                Utc::now(),
            )
            .await?;
        tracing::info!(by = %admin.user_id, user_id = %user.id, "user updated");
        Ok(Response::new(pb::UpdateUserResponse {
            user: Some(user_to_proto(user)),
        }))
    }

    #[tracing::instrument(name = "AuthService.ChangePassword", skip_all)]
    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> RpcResult<pb::ChangePasswordResponse> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let id = required("user_id", &request.user_id)?;
        let is_admin = caller.holds(Scope::AuthAdmin);
        let current = if caller.user_id == id {
            Some(required("current_password", &request.current_password)?)
        } else if is_admin {
            None
        } else {
            return Err(AuthError::PermissionDenied(Scope::AuthAdmin.as_str()).into());
        };
        self.accounts()?
            .change_password(id, current, &request.new_password, Utc::now())
            .await?;
        tracing::info!(by = %caller.user_id, user_id = %id, "password changed");
        Ok(Response::new(pb::ChangePasswordResponse {}))
    }

    #[tracing::instrument(name = "AuthService.RevokeUserSessions", skip_all)]
    async fn revoke_user_sessions(
        &self,
        request: Request<pb::RevokeUserSessionsRequest>,
    ) -> RpcResult<pb::RevokeUserSessionsResponse> {
        let admin = self.require(&request, Scope::AuthAdmin).await?;
        let request = request.into_inner();
        let id = required("user_id", &request.user_id)?;
        let reason = reason(&request.reason, "revoked by an administrator")?;
        let accounts = self.accounts()?;
        // An unknown user is NOT_FOUND, not a silent nothing.
        accounts.users.user(id).await?;
        let revoked = accounts.tokens.revoke_user(id, &reason, Utc::now()).await?;
        tracing::info!(by = %admin.user_id, user_id = %id, revoked, "sessions revoked");
        Ok(Response::new(pb::RevokeUserSessionsResponse {
            revoked_refresh_tokens: i32::try_from(revoked).unwrap_or(i32::MAX),
        }))
    }

    #[tracing::instrument(name = "AuthService.CreateApiKey", skip_all)]
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> RpcResult<pb::CreateApiKeyResponse> {
        let admin = self.require(&request, Scope::AuthAdmin).await?;
        let request = request.into_inner();
        let accounts = self.accounts()?;
        let expires_at = request
            .expire_time
            .as_ref()
            .map(|at| {
                timestamp_from_proto(at)
                    .map(|at| at.and_utc())
                    .ok_or_else(|| AuthError::invalid("expire_time", "is not a valid time"))
            })
            .transpose()?;
        let (key, secret) = accounts
            .keys
            .create(
                KeyRequest {
                    user_id: request.user_id,
                    name: request.name,
                    scopes: request.scopes,
                    allowed_cidrs: request.allowed_cidrs,
                    plan: request.rate_limit_plan,
                    expires_at,
                },
                accounts.users.as_ref(),
                Utc::now(),
            )
            .await?;
        tracing::info!(by = %admin.user_id, key_id = %key.id, prefix = %key.prefix, "API key created");
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: Some(key_to_proto(key)),
            key: secret,
        }))
    }

    #[tracing::instrument(name = "AuthService.ListApiKeys", skip_all)]
    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> RpcResult<pb::ListApiKeysResponse> {
        self.require(&request, Scope::AuthAdmin).await?;
        let request = request.into_inner();
        let size = page_size(request.page_size).map_err(|e| AuthError::invalid(e.field(), &e))?;
        let user = Some(request.user_id.trim()).filter(|u| !u.is_empty());
        let page = self
            .accounts()?
            .keys
            .list(user, request.show_revoked, size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: page.items.into_iter().map(key_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(name = "AuthService.RevokeApiKey", skip_all)]
    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> RpcResult<pb::RevokeApiKeyResponse> {
        let admin = self.require(&request, Scope::AuthAdmin).await?;
        let id = required("key_id", &request.get_ref().key_id)?;
        let key = self.accounts()?.keys.revoke(id, Utc::now()).await?;
        tracing::info!(by = %admin.user_id, key_id = %key.id, "API key revoked");
        Ok(Response::new(pb::RevokeApiKeyResponse {
            api_key: Some(key_to_proto(key)),
        }))
    }

    #[tracing::instrument(name = "AuthService.AuthenticateApiKey", skip_all)]
    async fn authenticate_api_key(
        &self,
        request: Request<pb::AuthenticateApiKeyRequest>,
    ) -> RpcResult<pb::AuthenticateApiKeyResponse> {
        let request = request.into_inner();
        let client = match request.client_address.trim() {
            "" => None,
            address => Some(
                address
                    .parse::<std::net::IpAddr>()
                    .map_err(|_| AuthError::invalid("client_address", "is not an IP address"))?,
            ),
        };
        let required_scope = match request.required_scope.trim() {
            "" => None,
            scope => Some(
                scope
                    .parse::<Scope>()
                    .map_err(|e| AuthError::invalid("required_scope", e))?,
            ),
        };
        let principal = self
            .accounts()?
            .keys
            .authenticate(&request.key, client, required_scope, Utc::now())
            .await?;
        Ok(Response::new(pb::AuthenticateApiKeyResponse {
            key_id: principal.key_id,
            user_id: principal.user_id,
            username: principal.username,
            scopes: principal
                .scopes
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            rate_limit_plan: principal.plan,
        }))
    }

    #[tracing::instrument(name = "AuthService.ListRateLimitPlans", skip_all)]
    async fn list_rate_limit_plans(
        &self,
        _request: Request<pb::ListRateLimitPlansRequest>,
    ) -> RpcResult<pb::ListRateLimitPlansResponse> {
        let plans = self.accounts()?.plans.list().await?;
        Ok(Response::new(pb::ListRateLimitPlansResponse {
            plans: plans.into_iter().map(plan_to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "AuthService.SetRateLimitPlan", skip_all)]
    async fn set_rate_limit_plan(
        &self,
        request: Request<pb::SetRateLimitPlanRequest>,
    ) -> RpcResult<pb::SetRateLimitPlanResponse> {
        let admin = self.require(&request, Scope::AuthAdmin).await?;
        let plan = request
            .into_inner()
            .plan
            .ok_or_else(|| AuthError::invalid("plan", "is required"))?;
        let plan = self
            .accounts()?
            .plans
            .set(RateLimitPlan {
                name: plan.name,
                per_minute: plan.per_minute,
                per_hour: plan.per_hour,
                per_day: plan.per_day,
            })
            .await?;
        tracing::info!(by = %admin.user_id, plan = %plan.name, "rate-limit plan set");
        Ok(Response::new(pb::SetRateLimitPlanResponse {
            plan: Some(plan_to_proto(plan)),
        }))
    }

    #[tracing::instrument(name = "AuthService.DisableUser", skip_all)]
    async fn disable_user(
        &self,
        request: Request<pb::DisableUserRequest>,
    ) -> RpcResult<pb::DisableUserResponse> {
        let admin = self.require(&request, Scope::AuthAdmin).await?;
        let id = required("user_id", &request.get_ref().user_id)?;
        let user = self.accounts()?.disable(id, Utc::now()).await?;
        tracing::info!(by = %admin.user_id, user_id = %user.id, "user disabled");
        Ok(Response::new(pb::DisableUserResponse {
            user: Some(user_to_proto(user)),
        }))
    }

    #[tracing::instrument(name = "AuthService.EnableUser", skip_all)]
    async fn enable_user(
        &self,
        request: Request<pb::EnableUserRequest>,
    ) -> RpcResult<pb::EnableUserResponse> {
        let admin = self.require(&request, Scope::AuthAdmin).await?;
        let id = required("user_id", &request.get_ref().user_id)?;
        let user = self.accounts()?.enable(id, Utc::now()).await?;
        tracing::info!(by = %admin.user_id, user_id = %user.id, "user enabled");
        Ok(Response::new(pb::EnableUserResponse {
            user: Some(user_to_proto(user)),
        }))
    }

    #[tracing::instrument(name = "AuthService.RevokeToken", skip_all)]
    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> RpcResult<pb::RevokeTokenResponse> {
        let admin = self.require(&request, Scope::AuthAdmin).await?;
        let request = request.into_inner();
        let jti = required("jti", &request.jti)?;
        let user_id = required("user_id", &request.user_id)?;
        let now = Utc::now();
        let accounts = self.accounts()?;
        // Without an expiry the revocation is kept one token lifetime,
        // the longest an access token issued now could live.
        let expires = match &request.expire_time {
            None => now + accounts.tokens.settings().access_ttl,
            Some(at) => timestamp_from_proto(at)
                .map(|at| at.and_utc())
                .ok_or_else(|| AuthError::invalid("expire_time", "is not a valid time"))?,
        };
        let reason = reason(&request.reason, "revoked by an administrator")?;
        accounts
            .tokens
            .revoke_jti(jti, user_id, expires, &reason, now)
            .await?;
        tracing::info!(by = %admin.user_id, %jti, "access token revoked");
        Ok(Response::new(pb::RevokeTokenResponse {}))
    }

    #[tracing::instrument(name = "AuthService.ListRevokedTokens", skip_all)]
    async fn list_revoked_tokens(
        &self,
        _request: Request<pb::ListRevokedTokensRequest>,
    ) -> RpcResult<pb::ListRevokedTokensResponse> {
        let jtis = self.accounts()?.tokens.revoked_jtis(Utc::now()).await?;
        Ok(Response::new(pb::ListRevokedTokensResponse { jtis }))
    }

    #[tracing::instrument(name = "AuthService.RotateSigningKeys", skip_all)]
    async fn rotate_signing_keys(
        &self,
        request: Request<pb::RotateSigningKeysRequest>,
    ) -> RpcResult<pb::RotateSigningKeysResponse> {
        let admin = self.require(&request, Scope::AuthAdmin).await?;
        let kid = self.accounts()?.tokens.rotate_keys(Utc::now()).await?;
        tracing::info!(by = %admin.user_id, %kid, "signing key rotated");
        Ok(Response::new(pb::RotateSigningKeysResponse { kid }))
    }
}

/// A reason as given, or `default` when empty; bounded in length.
fn reason(given: &str, default: &str) -> Result<String, AuthError> {
    let given = given.trim();
    if given.chars().count() > MAX_REASON {
        return Err(AuthError::invalid(
            "reason",
            format!("is longer than {MAX_REASON} characters"),
        ));
    }
    Ok(if given.is_empty() { default } else { given }.to_owned())
}
