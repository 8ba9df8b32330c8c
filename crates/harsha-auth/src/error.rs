//! The Auth service's error type; `grpc` maps it to statuses in one place.

use harsha_store::StoreError;

/// Why an Auth operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A request field is invalid.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The request field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Unknown user or wrong password: the same answer for both.
    #[error("the user name or password is not right")]
    InvalidCredentials,
    /// Too many failed logins: the account is locked for a while.
    #[error("the account is locked; try again later")]
    Locked,
    /// A token is missing, malformed, forged, expired, revoked or reused.
    #[error("the token is not valid")]
    InvalidToken,
    /// The call needs an access token and none was presented.
    #[error(
        "this call needs a credential: an access token (authorization: Bearer <token>) or an API key (x-api-key)"
    )]
    MissingToken,
    /// The caller's token lacks what the call needs.
    #[error("this call needs the {0} scope")]
    PermissionDenied(&'static str),
    /// An API key may not be used from the caller's address.
    #[error("this API key may not be used from this address")]
    AddressNotAllowed,
    /// No such API key.
    #[error("API key {0:?} not found")]
    KeyNotFound(String),
    /// A service this one depends on cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// The database is not connected yet.
    #[error("the auth service is starting; retry shortly")]
    NotReady,
    /// The account is disabled.
    #[error("the account is disabled")]
    Disabled,
    /// No such user.
    #[error("user {0:?} not found")]
    UserNotFound(String),
    /// The user name or email is taken.
    #[error("{0} is already taken")]
    Taken(&'static str),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] crate::domain::HashError),
    /// The database failed.
    #[error("auth storage failed")]
    Store(#[from] StoreError),
}

impl AuthError {
    /// A stored value in `column` that does not read back.
    pub(crate) fn corrupt(column: &str, error: impl std::fmt::Display) -> Self {
        Self::Store(StoreError::Sql(sqlx::Error::ColumnDecode {
            index: column.to_owned(),
            source: error.to_string().into(),
        }))
    }

    /// An invalid-argument error for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

impl From<sqlx::Error> for AuthError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Sql(error))
    }
}
