//! Validated values of a batch: its number, quality grade, allergens,
//! nutrition per 100 g and required storage conditions.

use std::{collections::BTreeSet, fmt, str::FromStr};

use harsha_types::{ValueError, check_text};
use rust_decimal::Decimal;
use serde::Serialize;

/// A batch number as printed on the pack: 1 to 140 characters, no control
/// characters, no surrounding spaces.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct BatchNo(String);

impl BatchNo {
    /// Checks and wraps a batch number.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        check_text(value, 140, "a batch number")?;
        if value.trim() != value {
            return Err(ValueError(
                "a batch number must not start or end with spaces".into(),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The batch number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BatchNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A batch's quality grade. `A` is the best; a minimum grade of `B` accepts
/// `A` and `B`. The order of the variants is best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum QualityGrade {
    /// Premium: gifting and export quality.
    A,
    /// Standard retail quality.
    B,
    /// Seconds: broken or misshapen pieces, for trade and bulk use.
    C,
}

impl QualityGrade {
    /// The stored letter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
        }
    }

    /// Whether this grade is `minimum` or better.
    pub fn meets(self, minimum: Self) -> bool {
        self <= minimum
    }
}

impl FromStr for QualityGrade {
    type Err = ValueError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "A" => Ok(Self::A),
            "B" => Ok(Self::B),
            "C" => Ok(Self::C),
            other => Err(ValueError(format!(
                "quality grade must be A, B or C, not {other:?}"
            ))),
        }
    }
}

macro_rules! allergens {
    ($($variant:ident => $code:literal, $doc:literal;)*) => {
        /// The allergens a batch may declare: the fourteen that Indian
        /// (FSSAI) and EU labelling rules name, nothing else. Stored as their
        /// codes, comma-separated in this order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Allergen {
            $(#[doc = $doc] $variant,)*
        }

        impl Allergen {
            /// Every allergen, in stored order.
            pub const ALL: &'static [Allergen] = &[$(Allergen::$variant),*];

            /// The stored code.
            pub fn code(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)*
                }
            }
        }

        impl FromStr for Allergen {
            type Err = ValueError;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $($code => Ok(Self::$variant),)*
                    other => Err(ValueError(format!("unknown allergen {other:?}"))),
                }
            }
        }
    };
}

allergens! {
    Milk => "milk", "Milk and milk products (lactose included).";
    Egg => "egg", "Eggs.";
    Peanuts => "peanuts", "Peanuts.";
    TreeNuts => "tree_nuts", "Tree nuts: almonds, cashews, pistachios, walnuts…";
    Gluten => "gluten", "Cereals containing gluten: wheat, barley, rye, oats.";
    Soy => "soy", "Soybeans.";
    Sesame => "sesame", "Sesame seeds.";
    Sulphites => "sulphites", "Sulphur dioxide and sulphites above 10 mg/kg.";
    Mustard => "mustard", "Mustard.";
    Celery => "celery", "Celery.";
    Lupin => "lupin", "Lupin.";
    Fish => "fish", "Fish.";
    Crustaceans => "crustaceans", "Crustaceans.";
    Molluscs => "molluscs", "Molluscs.";
}

/// The allergens a batch contains, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Allergens(BTreeSet<Allergen>);

impl Allergens {
    /// A set of allergens.
    pub fn new(allergens: impl IntoIterator<Item = Allergen>) -> Self {
        Self(allergens.into_iter().collect())
    }

    /// Parses the stored form: codes separated by commas (empty for none).
    pub fn from_stored(value: &str) -> Result<Self, ValueError> {
        value
            .split(',')
            .filter(|code| !code.is_empty())
            .map(str::parse)
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Self)
    }

    /// The stored form.
    pub fn to_stored(&self) -> String {
        self.0
            .iter()
            .map(|allergen| allergen.code())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The allergens, in stored order.
    pub fn iter(&self) -> impl Iterator<Item = Allergen> + '_ {
        self.0.iter().copied()
    }
}

/// Nutrition per 100 g of product, as printed on the label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nutrition {
    /// Energy, kcal.
    pub energy_kcal: Decimal,
    /// Protein, g.
    pub protein_g: Decimal,
    /// Carbohydrate, g.
    pub carbohydrate_g: Decimal,
    /// Of which sugars, g.
    pub sugars_g: Decimal,
    /// Fat, g.
    pub fat_g: Decimal,
    /// Of which saturated fat, g.
    pub saturated_fat_g: Decimal,
    /// Sodium, mg.
    pub sodium_mg: Decimal,
}

impl Nutrition {
    /// Checks that every value is non-negative and the parts fit their
    /// wholes; the error names the offending field.
    pub fn validate(self) -> Result<Self, (&'static str, ValueError)> {
        let fields = [
            ("energy_kcal", self.energy_kcal),
            ("protein_g", self.protein_g),
            ("carbohydrate_g", self.carbohydrate_g),
            ("sugars_g", self.sugars_g),
            ("fat_g", self.fat_g),
            ("saturated_fat_g", self.saturated_fat_g),
            ("sodium_mg", self.sodium_mg),
        ];
        for (field, value) in fields {
            if value.is_sign_negative() && !value.is_zero() {
                return Err((
                    field,
                    ValueError(format!("must not be negative, not {value}")),
                ));
            }
            if value.scale() > 3 {
                return Err((field, ValueError("has at most 3 decimal places".into())));
            }
            // Per 100 g: at most 100 g of anything, 100,000 mg of sodium,
            // 900 kcal (pure fat).
            let limit = match field {
                "energy_kcal" => Decimal::from(900),
                "sodium_mg" => Decimal::from(100_000),
                _ => Decimal::ONE_HUNDRED,
            };
            if value > limit {
                return Err((
                    field,
                    ValueError(format!("{value} per 100 g is more than {limit}")),
                ));
            }
        }
        if self.sugars_g > self.carbohydrate_g {
            return Err((
                "sugars_g",
                ValueError("sugars cannot exceed total carbohydrate".into()),
            ));
        }
        if self.saturated_fat_g > self.fat_g {
            return Err((
                "saturated_fat_g",
                ValueError("saturated fat cannot exceed total fat".into()),
            ));
        }
        let macros = self.protein_g + self.carbohydrate_g + self.fat_g;
        if macros > Decimal::ONE_HUNDRED {
            return Err((
                "carbohydrate_g",
                ValueError(format!(
                    "protein, carbohydrate and fat add up to {macros} g, more than 100 g"
                )),
            ));
        }
        Ok(self)
    }
}

/// A closed range `[min, max]` of a measured condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bounds {
    /// Lowest value allowed.
    pub min: Decimal,
    /// Highest value allowed.
    pub max: Decimal,
}

impl Bounds {
    /// A range, checked to be ordered and inside `limits`.
    pub fn new(min: Decimal, max: Decimal, limits: (Decimal, Decimal)) -> Result<Self, ValueError> {
        if min > max {
            return Err(ValueError(format!(
                "the minimum {min} is above the maximum {max}"
            )));
        }
        if min < limits.0 || max > limits.1 {
            return Err(ValueError(format!(
                "must lie between {} and {}",
                limits.0, limits.1
            )));
        }
        if min.scale() > 2 || max.scale() > 2 {
            return Err(ValueError("has at most 2 decimal places".into()));
        }
        Ok(Self { min, max })
    }

    /// Whether `value` lies inside the range (both ends included).
    pub fn contains(self, value: Decimal) -> bool {
        self.min <= value && value <= self.max
    }
}

/// The plausible range of a storage temperature, °C.
pub fn temperature_limits() -> (Decimal, Decimal) {
    (Decimal::from(-50), Decimal::from(80))
}

/// The range of a relative humidity, %.
pub fn humidity_limits() -> (Decimal, Decimal) {
    (Decimal::ZERO, Decimal::ONE_HUNDRED)
}

/// The conditions a batch must be stored in; either may be unspecified.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StorageConditions {
    /// Temperature, °C.
    pub temperature_c: Option<Bounds>,
    /// Relative humidity, %.
    pub humidity_pct: Option<Bounds>,
}

/// One reading of a warehouse's conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConditionReading {
    /// Temperature, °C, when measured.
    pub temperature_c: Option<Decimal>,
    /// Relative humidity, %, when measured.
    pub humidity_pct: Option<Decimal>,
}

/// Which of a batch's required conditions a reading breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Breach {
    /// The temperature was outside the batch's range.
    pub temperature: bool,
    /// The humidity was outside the batch's range.
    pub humidity: bool,
}

impl StorageConditions {
    /// What `reading` breaks, or `None` when it is within every range the
    /// batch requires (a condition not measured cannot breach).
    pub fn breached_by(&self, reading: ConditionReading) -> Option<Breach> {
        let outside = |bounds: Option<Bounds>, value: Option<Decimal>| match (bounds, value) {
            (Some(bounds), Some(value)) => !bounds.contains(value),
            _ => false,
        };
        let breach = Breach {
            temperature: outside(self.temperature_c, reading.temperature_c),
            humidity: outside(self.humidity_pct, reading.humidity_pct),
        };
        (breach.temperature || breach.humidity).then_some(breach)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(value: &str) -> Decimal {
        value.parse().unwrap_or_default()
    }

    #[test]
    fn grades_order_best_first() {
        assert!(QualityGrade::A.meets(QualityGrade::B));
        assert!(QualityGrade::B.meets(QualityGrade::B));
        assert!(!QualityGrade::C.meets(QualityGrade::B));
        assert!("D".parse::<QualityGrade>().is_err());
    }

    #[test]
    fn allergens_round_trip_in_a_fixed_order_without_duplicates() {
        let allergens = Allergens::new([Allergen::TreeNuts, Allergen::Milk, Allergen::Milk]);
        assert_eq!(allergens.to_stored(), "milk,tree_nuts");
        assert_eq!(Allergens::from_stored("milk,tree_nuts"), Ok(allergens));
        assert_eq!(Allergens::from_stored(""), Ok(Allergens::default()));
        assert!(Allergens::from_stored("milk,chocolate").is_err());
        assert_eq!(Allergen::ALL.len(), 14);
    }

    #[test]
    fn nutrition_parts_fit_their_wholes() {
        let kaju_katli = Nutrition {
            energy_kcal: dec("452"),
            protein_g: dec("9.2"),
            carbohydrate_g: dec("56.4"),
            sugars_g: dec("48.1"),
            fat_g: dec("21.5"),
            saturated_fat_g: dec("4.3"),
            sodium_mg: dec("12"),
        };
        assert!(kaju_katli.clone().validate().is_ok());
        let too_sweet = Nutrition {
            sugars_g: dec("60"),
            ..kaju_katli.clone()
        };
        assert_eq!(too_sweet.validate().err().map(|e| e.0), Some("sugars_g"));
        let negative = Nutrition {
            sodium_mg: dec("-1"),
            ..kaju_katli
        };
        assert_eq!(negative.validate().err().map(|e| e.0), Some("sodium_mg"));
    }

    #[test]
    fn readings_breach_only_measured_conditions_outside_the_range() {
        let conditions = StorageConditions {
            temperature_c: Bounds::new(dec("2"), dec("8"), temperature_limits()).ok(),
            humidity_pct: None,
        };
        let reading = |t: &str| ConditionReading {
            temperature_c: Some(dec(t)),
            humidity_pct: Some(dec("95")),
        };
        assert_eq!(conditions.breached_by(reading("8")), None);
        assert_eq!(conditions.breached_by(reading("2")), None);
        assert_eq!(
            conditions.breached_by(reading("8.01")),
            Some(Breach {
                temperature: true,
                humidity: false
            })
        );
        assert!(Bounds::new(dec("9"), dec("8"), temperature_limits()).is_err());
        assert!(Bounds::new(dec("0"), dec("101"), humidity_limits()).is_err());
    }
}
