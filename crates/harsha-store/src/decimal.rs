//! Exact decimals in both `erp` engines, converted in this one place.
//!
//! MariaDB stores quantities and money as `decimal(21,9)` and sqlx maps
//! them to [`Decimal`] directly. SQLite has no exact decimal type (its
//! `NUMERIC` is a float), so the embedded database stores them as an
//! `INTEGER` count of billionths (9 implied decimal places). With that, the
//! same SQL text is exact on both engines: comparisons with `0`, `SUM`,
//! `ORDER BY` and arithmetic between columns and bound values all work on
//! integers in SQLite and on decimals in MariaDB. The one rule: never write
//! a non-zero decimal literal in SQL (`qty > 1`); bind it instead.

use rust_decimal::{Decimal, prelude::ToPrimitive};
use sqlx::{
    Decode, Encode, MySql, Sqlite, Type,
    encode::IsNull,
    error::BoxDynError,
    mysql::{MySqlTypeInfo, MySqlValueRef},
    sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef},
};

/// The number of decimal places the SQLite encoding implies.
const SQLITE_SCALE: u32 = 9;
const SQLITE_UNIT: i64 = 1_000_000_000;

/// A [`Decimal`] as the `erp` engines store it (see the module docs). Bind
/// and read every quantity or amount through this type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DbDecimal(pub Decimal);

impl DbDecimal {
    /// The decimal, normalised (no trailing zeros).
    pub fn get(self) -> Decimal {
        self.0.normalize()
    }

    fn to_billionths(self) -> Result<i64, BoxDynError> {
        let scaled = self
            .0
            .checked_mul(Decimal::from(SQLITE_UNIT))
            .ok_or("decimal overflows the SQLite encoding")?;
        if !scaled.fract().is_zero() {
            return Err(format!("{} has more than {SQLITE_SCALE} decimal places", self.0).into());
        }
        scaled
            .to_i64()
            .ok_or_else(|| format!("{} overflows the SQLite encoding", self.0).into())
    }
}

impl From<Decimal> for DbDecimal {
    fn from(value: Decimal) -> Self {
        Self(value)
    }
}

impl From<DbDecimal> for Decimal {
    fn from(value: DbDecimal) -> Self {
        value.get()
    }
}

impl Type<MySql> for DbDecimal {
    fn type_info() -> MySqlTypeInfo {
        <Decimal as Type<MySql>>::type_info()
    }

    fn compatible(ty: &MySqlTypeInfo) -> bool {
        <Decimal as Type<MySql>>::compatible(ty)
    }
}

impl Encode<'_, MySql> for DbDecimal {
    fn encode_by_ref(&self, buf: &mut Vec<u8>) -> Result<IsNull, BoxDynError> {
        <Decimal as Encode<'_, MySql>>::encode_by_ref(&self.0, buf)
    }
}

impl Decode<'_, MySql> for DbDecimal {
    fn decode(value: MySqlValueRef<'_>) -> Result<Self, BoxDynError> {
        Ok(Self(
            <Decimal as Decode<'_, MySql>>::decode(value)?.normalize(),
        ))
    }
}

impl Type<Sqlite> for DbDecimal {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for DbDecimal {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'_, Sqlite>>::encode_by_ref(&self.to_billionths()?, buf)
    }
}

impl Decode<'_, Sqlite> for DbDecimal {
    fn decode(value: SqliteValueRef<'_>) -> Result<Self, BoxDynError> {
        let billionths = <i64 as Decode<'_, Sqlite>>::decode(value)?;
        Ok(Self(Decimal::new(billionths, SQLITE_SCALE).normalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sqlite_encoding_is_exact_to_nine_places() {
        let value = DbDecimal(Decimal::new(1_234_567_890_123, 9));
        assert_eq!(value.to_billionths().ok(), Some(1_234_567_890_123));
        assert!(DbDecimal(Decimal::new(1, 10)).to_billionths().is_err());
        assert_eq!(
            DbDecimal(Decimal::new(-25, 1)).to_billionths().ok(),
            Some(-2_500_000_000)
        );
    }
}
