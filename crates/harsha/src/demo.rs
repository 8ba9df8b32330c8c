//! `harsha up --demo`: a small, realistic data set for a confectioner —
//! territories, customers of every kind, segments with service levels and
//! price tiers, assignment histories, items and warehouses, batches whose
//! expiry falls in every alert level, reorder parameters, item groups, base
//! prices per price list, festival windows and pricing rules — loaded once
//! into an empty embedded database through the same stores the services use.

use anyhow::Context;
use chrono::NaiveDate;
use harsha_customer::{
    CustomerError, CustomerStore, SqlCustomerStore,
    domain::{
        Actor, CoverageType, Description, DocName, EffectiveRange, NewAssignment, NewSegment,
        NewTerritoryMapping, Priority, SegmentCode, SegmentName, ServiceLevel,
    },
};
use harsha_inventory::{
    InventoryError, InventoryStore, SqlInventoryStore,
    domain::{
        Allergen, Allergens, BatchNo, Bounds, NewBatch, Nutrition, QualityGrade, Quantity,
        Reference, ReorderParams, StorageConditions, humidity_limits, temperature_limits,
    },
};
use harsha_store::{
    ErpPool,
    erpnext::{self, StandInCustomer},
};
use rust_decimal::Decimal;

/// (item code, name, group, unit)
const ITEMS: &[(&str, &str, &str, &str)] = &[
    ("KAJU-KATLI", "Kaju Katli", "Mithai", "Kg"),
    ("MYSORE-PAK", "Mysore Pak", "Mithai", "Kg"),
    ("SOAN-PAPDI", "Soan Papdi 500 g", "Packaged Sweets", "Box"),
    ("MOTICHOOR-LADDU", "Motichoor Laddu", "Mithai", "Kg"),
    (
        "DARK-CHOC-70",
        "Dark Chocolate 70% 100 g",
        "Chocolate",
        "Bar",
    ),
];

const WAREHOUSES: &[&str] = &[
    "Stores - HD",
    "Bengaluru DC - HD",
    "Hyderabad DC - HD",
    "Mumbai DC - HD",
];

/// A demo batch: item, warehouse, batch number, days since made, days to
/// expiry (from today), quantity, grade.
type DemoBatch = (
    &'static str,
    &'static str,
    &'static str,
    u64,
    u64,
    &'static str,
    QualityGrade,
);

const BATCHES: &[DemoBatch] = &[
    (
        "KAJU-KATLI",
        "Stores - HD",
        "KK-01",
        20,
        5,
        "18.5",
        QualityGrade::A,
    ),
    (
        "KAJU-KATLI",
        "Stores - HD",
        "KK-02",
        10,
        20,
        "40",
        QualityGrade::A,
    ),
    (
        "KAJU-KATLI",
        "Bengaluru DC - HD",
        "KK-03",
        5,
        25,
        "25",
        QualityGrade::B,
    ),
    (
        "MYSORE-PAK",
        "Bengaluru DC - HD",
        "MP-01",
        8,
        12,
        "30",
        QualityGrade::A,
    ),
    (
        "MYSORE-PAK",
        "Stores - HD",
        "MP-02",
        2,
        18,
        "60",
        QualityGrade::A,
    ),
    (
        "SOAN-PAPDI",
        "Hyderabad DC - HD",
        "SP-01",
        60,
        120,
        "400",
        QualityGrade::A,
    ),
    (
        "SOAN-PAPDI",
        "Mumbai DC - HD",
        "SP-02",
        150,
        30,
        "150",
        QualityGrade::B,
    ),
    (
        "MOTICHOOR-LADDU",
        "Stores - HD",
        "ML-01",
        3,
        4,
        "12",
        QualityGrade::A,
    ),
    (
        "MOTICHOOR-LADDU",
        "Hyderabad DC - HD",
        "ML-02",
        1,
        6,
        "8",
        QualityGrade::C,
    ),
    (
        "DARK-CHOC-70",
        "Mumbai DC - HD",
        "DC-01",
        30,
        300,
        "500",
        QualityGrade::A,
    ),
];

const TERRITORIES: &[(&str, &str, bool)] = &[
    ("India", "", true),
    ("Karnataka", "India", true),
    ("Bengaluru Urban", "Karnataka", false),
    ("Mysuru", "Karnataka", false),
    ("Telangana", "India", true),
    ("Hyderabad", "Telangana", false),
    ("Maharashtra", "India", true),
    ("Mumbai", "Maharashtra", false),
    ("Pune", "Maharashtra", false),
];

/// (name, display name, group, territory, disabled)
const CUSTOMERS: &[(&str, &str, &str, &str, bool)] = &[
    (
        "CUST-0001",
        "Sweet Corner Bakers",
        "Retail",
        "Bengaluru Urban",
        false,
    ),
    (
        "CUST-0002",
        "Mithai Mahal Wholesale",
        "Wholesale",
        "Hyderabad",
        false,
    ),
    ("CUST-0003", "Cafe Cocoa", "HoReCa", "Mumbai", false),
    (
        "CUST-0004",
        "Diwali Gifts Corporate Pvt Ltd",
        "Corporate",
        "Pune",
        false,
    ),
    (
        "CUST-0005",
        "Deccan Confectionery Distributors",
        "Distributor",
        "Hyderabad",
        false,
    ),
    ("CUST-0006", "Mysore Pak House", "Retail", "Mysuru", false),
    (
        "CUST-0007",
        "Old Town Sweets (closed)",
        "Retail",
        "Bengaluru Urban",
        true,
    ),
];

/// A demo segment: code, name, description, level, priority, price tier.
type DemoSegment = (
    &'static str,
    &'static str,
    &'static str,
    ServiceLevel,
    i32,
    Option<&'static str>,
);

/// A demo territory mapping: customer, territory, coverage, from, price
/// tier, service level.
type DemoMapping = (
    &'static str,
    &'static str,
    CoverageType,
    &'static str,
    Option<&'static str>,
    Option<ServiceLevel>,
);

const SEGMENTS: &[DemoSegment] = &[
    (
        "RETAIL",
        "Retail shops",
        "Neighbourhood sweet shops and bakeries",
        ServiceLevel::Standard,
        10,
        Some("RETAIL"),
    ),
    (
        "WHOLESALE",
        "Wholesale buyers",
        "Bulk buyers reselling to shops",
        ServiceLevel::Priority,
        40,
        Some("WHOLESALE"),
    ),
    (
        "DISTRIBUTOR",
        "Distributors",
        "Regional distributors with credit terms",
        ServiceLevel::Premium,
        60,
        Some("DISTRIBUTOR"),
    ),
    (
        "HORECA",
        "Hotels, restaurants, cafes",
        "Daily fresh deliveries",
        ServiceLevel::Priority,
        30,
        Some("HORECA"),
    ),
    (
        "CORPORATE-GIFTING",
        "Corporate gifting",
        "Festival hampers for companies",
        ServiceLevel::Premium,
        50,
        Some("GIFTING"),
    ),
    (
        "FESTIVAL-BULK",
        "Festival bulk orders",
        "Seasonal buyers around Diwali and Holi",
        ServiceLevel::Standard,
        20,
        None,
    ),
];

/// (customer, segment, primary, from, to)
const ASSIGNMENTS: &[(&str, &str, bool, &str, Option<&str>)] = &[
    ("CUST-0001", "RETAIL", true, "2025-04-01", None),
    (
        "CUST-0001",
        "FESTIVAL-BULK",
        false,
        "2026-10-01",
        Some("2026-11-16"),
    ),
    ("CUST-0002", "RETAIL", true, "2024-04-01", None),
    ("CUST-0002", "WHOLESALE", true, "2025-07-01", None),
    ("CUST-0003", "HORECA", true, "2025-01-15", None),
    ("CUST-0004", "CORPORATE-GIFTING", true, "2025-09-01", None),
    (
        "CUST-0004",
        "FESTIVAL-BULK",
        false,
        "2026-09-15",
        Some("2026-11-30"),
    ),
    ("CUST-0005", "WHOLESALE", true, "2024-01-01", None),
    ("CUST-0005", "DISTRIBUTOR", true, "2026-01-01", None),
    ("CUST-0006", "RETAIL", true, "2025-06-01", None),
];

const MAPPINGS: &[DemoMapping] = &[
    (
        "CUST-0001",
        "Bengaluru Urban",
        CoverageType::Primary,
        "2025-04-01",
        Some("METRO"),
        None,
    ),
    (
        "CUST-0002",
        "Hyderabad",
        CoverageType::Primary,
        "2024-04-01",
        None,
        None,
    ),
    (
        "CUST-0003",
        "Mumbai",
        CoverageType::Primary,
        "2025-01-15",
        Some("METRO"),
        Some(ServiceLevel::Premium),
    ),
    (
        "CUST-0004",
        "Pune",
        CoverageType::Primary,
        "2025-09-01",
        None,
        None,
    ),
    (
        "CUST-0004",
        "Mumbai",
        CoverageType::Delivery,
        "2025-09-01",
        None,
        None,
    ),
    (
        "CUST-0005",
        "Telangana",
        CoverageType::Primary,
        "2024-01-01",
        None,
        None,
    ),
    (
        "CUST-0005",
        "Karnataka",
        CoverageType::Secondary,
        "2026-01-01",
        None,
        None,
    ),
    (
        "CUST-0006",
        "Mysuru",
        CoverageType::Primary,
        "2025-06-01",
        None,
        None,
    ),
];

fn date(value: &str) -> anyhow::Result<NaiveDate> {
    value.parse().with_context(|| format!("demo date {value}"))
}

/// Loads whatever part of the demo data is missing, so an interrupted load
/// completes on the next `harsha up --demo` and a complete one is left
/// alone. Returns whether anything was added.
pub async fn load(pool: ErpPool) -> anyhow::Result<bool> {
    let store = SqlCustomerStore::new(pool.clone());
    let actor = Actor::named("demo@harshadelights.in");
    let mut added = false;
    for (name, parent, is_group) in TERRITORIES {
        added |= inserted(erpnext::insert_territory(&pool, name, parent, *is_group).await)?;
    }
    for (name, customer_name, group, territory, disabled) in CUSTOMERS {
        let customer = StandInCustomer {
            name,
            customer_name,
            customer_group: group,
            territory,
            disabled: *disabled,
        };
        added |= inserted(erpnext::insert_customer(&pool, customer).await)?;
    }
    for (code, name, description, level, priority, tier) in SEGMENTS {
        let segment = NewSegment {
            code: SegmentCode::parse(code)?,
            segment_name: SegmentName::parse(name)?,
            description: Description::parse(description)?,
            service_level: *level,
            priority: Priority::new(*priority)?,
            price_tier: tier.map(SegmentCode::parse).transpose()?,
        };
        match store.create_segment(segment, &actor).await {
            Ok(_) => added = true,
            Err(CustomerError::SegmentExists(_)) => {}
            Err(other) => return Err(other.into()),
        }
    }
    // A customer's demo assignments go in only while it has none at all.
    let mut with_history = Vec::new();
    for (customer, ..) in ASSIGNMENTS {
        let customer = DocName::parse(customer)?;
        if !store
            .assignment_history(&customer, 1, "")
            .await?
            .items
            .is_empty()
        {
            with_history.push(customer);
        }
    }
    for (customer, segment, primary, from, to) in ASSIGNMENTS {
        let customer = DocName::parse(customer)?;
        if with_history.contains(&customer) {
            continue;
        }
        let assignment = NewAssignment {
            customer,
            segment: SegmentCode::parse(segment)?,
            is_primary: *primary,
            range: EffectiveRange::new(date(from)?, to.map(date).transpose()?)?,
        };
        store.assign_segment(assignment, &actor).await?;
        added = true;
    }
    for (customer, territory, coverage, from, tier, level) in MAPPINGS {
        let customer = DocName::parse(customer)?;
        let territory = DocName::parse(territory)?;
        let from = date(from)?;
        let mapped = store.customer_territories(&customer, from).await?;
        if mapped.iter().any(|m| m.territory == territory) {
            continue;
        }
        let mapping = NewTerritoryMapping {
            customer,
            territory,
            coverage: *coverage,
            range: EffectiveRange::new(from, None)?,
            price_tier: tier.map(SegmentCode::parse).transpose()?,
            service_level: *level,
        };
        store.map_territory(mapping, &actor).await?;
        added = true;
    }
    Ok(added)
}

/// Loads the missing part of the inventory demo: items, warehouses,
/// batches (expiry counted from `today`, so every alert level shows) and
/// reorder parameters. Returns whether anything was added.
pub async fn load_inventory(pool: ErpPool, today: NaiveDate) -> anyhow::Result<bool> {
    let store = SqlInventoryStore::new(pool.clone());
    let actor = harsha_inventory::domain::Actor::named("demo@harshadelights.in");
    let mut added = false;
    for (code, name, group, uom) in ITEMS {
        added |= inserted(erpnext::insert_item(&pool, code, name, group, uom, false).await)?;
    }
    for warehouse in WAREHOUSES {
        added |= inserted(erpnext::insert_warehouse(&pool, warehouse, false).await)?;
    }
    let dec = |value: &str| -> anyhow::Result<Decimal> { Ok(value.parse()?) };
    for (item, warehouse, batch_no, made_ago, expires_in, qty, grade) in BATCHES {
        let mithai = *item != "DARK-CHOC-70" && *item != "SOAN-PAPDI";
        let batch = NewBatch {
            item_code: DocName::parse(item)?,
            warehouse: DocName::parse(warehouse)?,
            batch_no: BatchNo::parse(batch_no)?,
            supplier: None,
            manufacturing_date: today - chrono::Days::new(*made_ago),
            expiry_date: today + chrono::Days::new(*expires_in),
            qty: Quantity::parse(qty)?,
            stock_uom: None,
            grade: *grade,
            storage: StorageConditions {
                temperature_c: Some(if mithai {
                    Bounds::new(dec("2")?, dec("8")?, temperature_limits())?
                } else {
                    Bounds::new(dec("15")?, dec("25")?, temperature_limits())?
                }),
                humidity_pct: Some(Bounds::new(dec("30")?, dec("65")?, humidity_limits())?),
            },
            nutrition: Some(Nutrition {
                energy_kcal: dec("452")?,
                protein_g: dec("9.2")?,
                carbohydrate_g: dec("56.4")?,
                sugars_g: dec("48.1")?,
                fat_g: dec("21.5")?,
                saturated_fat_g: dec("4.3")?,
                sodium_mg: dec("12")?,
            }),
            allergens: Allergens::new(if mithai {
                vec![Allergen::Milk, Allergen::TreeNuts]
            } else {
                vec![Allergen::Milk, Allergen::Soy, Allergen::Gluten]
            }),
            reference: Reference {
                doctype: Some("Stock Entry".into()),
                name: Some(format!("MAT-STE-{batch_no}")),
            },
        };
        match store.receive_batch(batch, &actor).await {
            Ok(_) => added = true,
            Err(InventoryError::BatchExists { .. }) => {}
            Err(other) => return Err(other.into()),
        }
    }
    let params = ReorderParams {
        reorder_level: dec("10")?,
        reorder_qty: dec("25")?,
        safety_stock: dec("5")?,
        lead_time_days: 3,
        min_qty: dec("5")?,
        max_qty: dec("80")?,
        consumption_window_days: 30,
    };
    // Reorder parameters go in with the first load of the batches.
    let pairs: &[(&str, &str)] = if added {
        &[
            ("KAJU-KATLI", "Stores - HD"),
            ("MOTICHOOR-LADDU", "Stores - HD"),
        ]
    } else {
        &[]
    };
    for (item, warehouse) in pairs {
        store
            .set_optimization(
                &DocName::parse(item)?,
                &DocName::parse(warehouse)?,
                params.clone(),
                &actor,
            )
            .await?;
    }
    Ok(added)
}

/// Whether an insert of an ERPNext row added it (`false`: it was there).
pub(crate) fn inserted(result: Result<(), harsha_store::sqlx::Error>) -> anyhow::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(harsha_store::sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(other) => Err(other.into()),
    }
}

/// (group, parent, is a group)
const ITEM_GROUPS: &[(&str, &str, bool)] = &[
    ("All Item Groups", "", true),
    ("Sweets", "All Item Groups", true),
    ("Mithai", "Sweets", false),
    ("Packaged Sweets", "Sweets", false),
    ("Chocolate", "All Item Groups", false),
];

/// (item, price list, rate)
const PRICES: &[(&str, &str, &str)] = &[
    ("KAJU-KATLI", "Standard Selling", "1200"),
    ("KAJU-KATLI", "WHOLESALE", "1020"),
    ("KAJU-KATLI", "DISTRIBUTOR", "960"),
    ("KAJU-KATLI", "METRO", "1280"),
    ("MYSORE-PAK", "Standard Selling", "800"),
    ("MYSORE-PAK", "WHOLESALE", "690"),
    ("SOAN-PAPDI", "Standard Selling", "180"),
    ("SOAN-PAPDI", "WHOLESALE", "150"),
    ("MOTICHOOR-LADDU", "Standard Selling", "600"),
    ("MOTICHOOR-LADDU", "WHOLESALE", "520"),
    ("DARK-CHOC-70", "Standard Selling", "150"),
    ("DARK-CHOC-70", "METRO", "165"),
];

/// (festival, first day, last day)
const FESTIVALS: &[(&str, &str, &str)] = &[
    ("DIWALI", "2026-11-05", "2026-11-11"),
    ("CHRISTMAS", "2026-12-20", "2026-12-26"),
    ("EID-UL-FITR", "2027-03-09", "2027-03-11"),
    ("HOLI", "2027-03-20", "2027-03-23"),
    ("RAKSHA-BANDHAN", "2027-08-15", "2027-08-18"),
    ("DIWALI", "2027-10-26", "2027-11-01"),
];

/// The demo's pricing rules.
fn demo_rules() -> anyhow::Result<Vec<harsha_pricing::domain::RuleSpec>> {
    use harsha_pricing::domain::{
        Code, Conditions, Discount, DiscountKind, RuleDiscount, RuleSpec, Schedule, Target, Tier,
        TierBasis, Tiers, TimeWindow,
    };
    let dec = |value: &str| -> anyhow::Result<Decimal> { Ok(value.parse()?) };
    let pct = |value: &str| -> anyhow::Result<Discount> {
        Ok(Discount::new(DiscountKind::Percentage, dec(value)?)?)
    };
    let codes = |values: &[&str]| -> anyhow::Result<Vec<Code>> {
        values.iter().map(|v| Ok(Code::parse(v)?)).collect()
    };
    let group =
        |name: &str| -> anyhow::Result<Target> { Ok(Target::ItemGroup(DocName::parse(name)?)) };
    let kolkata = Schedule::always(chrono_tz::Asia::Kolkata);
    let base = |code: &str,
                name: &str,
                priority: i32,
                discount: RuleDiscount|
     -> anyhow::Result<RuleSpec> {
        Ok(RuleSpec {
            code: Code::parse(code)?,
            rule_name: name.into(),
            description: String::new(),
            priority,
            active: true,
            schedule: kolkata.clone(),
            conditions: Conditions::default(),
            targets: Vec::new(),
            discount,
            max_discount_per_line: None,
            exclusive: false,
            currency: "INR".into(),
        })
    };
    let time = |h: u32, m: u32| chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default();
    Ok(vec![
        RuleSpec {
            description: "Fresh mithai sells off in the evening rather than going stale".into(),
            schedule: Schedule {
                time_window: Some(TimeWindow::new(time(20, 30), time(23, 0))?),
                ..kolkata.clone()
            },
            targets: vec![group("Mithai")?],
            ..base(
                "EVENING-FRESH",
                "Evening fresh-sweets discount",
                20,
                RuleDiscount::Flat(pct("20")?),
            )?
        },
        RuleSpec {
            description: "Festival of lights: 10 % off everything".into(),
            schedule: Schedule {
                festivals: codes(&["DIWALI"])?,
                ..kolkata.clone()
            },
            ..base(
                "DIWALI-GIFTING",
                "Diwali gifting",
                50,
                RuleDiscount::Flat(pct("10")?),
            )?
        },
        RuleSpec {
            conditions: Conditions {
                segments: codes(&["WHOLESALE", "DISTRIBUTOR"])?,
                ..Conditions::default()
            },
            ..base(
                "TRADE-BULK",
                "Trade bulk tiers",
                30,
                RuleDiscount::Tiered(
                    Tiers::new(
                        TierBasis::Quantity,
                        vec![
                            Tier {
                                min: dec("10")?,
                                max: Some(dec("50")?),
                                discount: pct("5")?,
                            },
                            Tier {
                                min: dec("50")?,
                                max: None,
                                discount: pct("8")?,
                            },
                        ],
                    )
                    .map_err(|(_, e)| e)?,
                ),
            )?
        },
        RuleSpec {
            schedule: Schedule {
                festivals: codes(&["CHRISTMAS"])?,
                ..kolkata.clone()
            },
            targets: vec![group("Chocolate")?],
            ..base(
                "CHRISTMAS-CHOC",
                "Christmas chocolate",
                40,
                RuleDiscount::Flat(pct("15")?),
            )?
        },
        base(
            "CART-5000",
            "Big basket bonus",
            10,
            RuleDiscount::Tiered(
                Tiers::new(
                    TierBasis::CartAmount,
                    vec![Tier {
                        min: dec("5000")?,
                        max: None,
                        discount: pct("2")?,
                    }],
                )
                .map_err(|(_, e)| e)?,
            ),
        )?,
        RuleSpec {
            conditions: Conditions {
                channels: codes(&["MOBILE-APP"])?,
                ..Conditions::default()
            },
            max_discount_per_line: Some(dec("100")?),
            ..base(
                "APP-LAUNCH",
                "Mobile app launch",
                15,
                RuleDiscount::Flat(pct("5")?),
            )?
        },
        RuleSpec {
            conditions: Conditions {
                segments: codes(&["CORPORATE-GIFTING"])?,
                ..Conditions::default()
            },
            targets: vec![group("Mithai")?],
            exclusive: true,
            ..base(
                "CORPORATE-MITHAI",
                "Corporate gifting mithai",
                60,
                RuleDiscount::Flat(pct("12")?),
            )?
        },
    ])
}

/// Loads the missing part of the pricing demo: item groups, base prices,
/// festival windows and rules. Returns whether anything was added.
pub async fn load_pricing(pool: ErpPool) -> anyhow::Result<bool> {
    use harsha_pricing::{PricingError, PricingStore, SqlPricingStore};
    let store = SqlPricingStore::new(pool.clone());
    let actor = harsha_pricing::domain::Actor::named("demo@harshadelights.in");
    let mut added = false;
    for (group, parent, is_group) in ITEM_GROUPS {
        added |= inserted(erpnext::insert_item_group(&pool, group, parent, *is_group).await)?;
    }
    let existing = store.festivals().await?;
    for (festival, start, end) in FESTIVALS {
        let code = harsha_pricing::domain::Code::parse(festival)?;
        let (start, end) = (date(start)?, date(end)?);
        let known = existing
            .iter()
            .any(|f| f.code == code && f.windows.iter().any(|w| w.start == start));
        if !known {
            store.add_festival_window(&code, start, end, &actor).await?;
            added = true;
        }
    }
    for (item, list, rate) in PRICES {
        let item = DocName::parse(item)?;
        let known = store
            .item_prices(&item)
            .await?
            .iter()
            .any(|p| p.price_list == *list);
        if !known {
            store
                .set_item_price(&item, list, rate.parse()?, "INR", None, &actor)
                .await?;
            added = true;
        }
    }
    for rule in demo_rules()? {
        match store.create_rule(rule, &actor).await {
            Ok(_) => added = true,
            Err(PricingError::RuleExists(_)) => {}
            Err(other) => return Err(other.into()),
        }
    }
    Ok(added)
}
