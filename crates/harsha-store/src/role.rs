//! Database roles and engines, and which engine each role may use.

use std::fmt;

use crate::StoreError;

/// A database engine, named by the scheme of its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// Embedded SQLite (`sqlite://path`), for every role.
    Sqlite,
    /// MariaDB or MySQL (`mysql://…`), for the `erp` role.
    MySql,
    /// PostgreSQL (`postgres://…`), for the `gateway` and `sync` roles.
    Postgres,
}

impl Engine {
    /// The engine a database URL names.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let scheme = url
            .split_once(':')
            .map(|(scheme, _)| scheme)
            .unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Self::Sqlite),
            "mysql" | "mariadb" => Ok(Self::MySql),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            _ => Err(StoreError::UnsupportedUrl {
                scheme: scheme.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "SQLite",
            Self::MySql => "MariaDB",
            Self::Postgres => "PostgreSQL",
        })
    }
}

/// A database role: a set of tables owned together, migrated together, and
/// placed in one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The ERPNext extensions (`tabHD …`): Customer, Inventory, Pricing, Order.
    Erp,
    /// The API gateway database: users, tokens, keys, routes, audit.
    Gateway,
    /// The sync database: events, status, conflicts, metrics, configurations.
    Sync,
}

impl Role {
    /// Every role, in migration order.
    pub const ALL: [Role; 3] = [Role::Erp, Role::Gateway, Role::Sync];

    /// The role's name, as in `migrations/<role>/`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Erp => "erp",
            Self::Gateway => "gateway",
            Self::Sync => "sync",
        }
    }

    /// The production engine of the role (SQLite is allowed for every role).
    pub fn production_engine(self) -> Engine {
        match self {
            Self::Erp => Engine::MySql,
            Self::Gateway | Self::Sync => Engine::Postgres,
        }
    }

    /// Checks that the role can run on `engine`.
    pub fn check_engine(self, engine: Engine) -> Result<(), StoreError> {
        if engine == Engine::Sqlite || engine == self.production_engine() {
            Ok(())
        } else {
            Err(StoreError::EngineNotSupported { role: self, engine })
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Role {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.name() == s)
            .ok_or_else(|| StoreError::UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_follow_the_url_scheme() {
        assert_eq!(
            Engine::from_url("sqlite://data/erp.sqlite").ok(),
            Some(Engine::Sqlite)
        );
        assert_eq!(
            Engine::from_url("mysql://root@127.0.0.1/erp").ok(),
            Some(Engine::MySql)
        );
        assert_eq!(
            Engine::from_url("postgres://localhost/gw").ok(),
            Some(Engine::Postgres)
        );
        assert!(matches!(
            Engine::from_url("redis://localhost"),
            Err(StoreError::UnsupportedUrl { scheme }) if scheme == "redis"
        ));
    }

    #[test]
    fn each_role_accepts_sqlite_and_its_production_engine_only() {
        assert!(Role::Erp.check_engine(Engine::MySql).is_ok());
        assert!(Role::Erp.check_engine(Engine::Sqlite).is_ok());
        assert!(Role::Erp.check_engine(Engine::Postgres).is_err());
        assert!(Role::Sync.check_engine(Engine::Postgres).is_ok());
        assert!(Role::Gateway.check_engine(Engine::MySql).is_err());
    }
}
