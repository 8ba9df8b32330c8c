//! The Pricing store's behaviour, run on SQLite and on MariaDB from one
//! suite: rules with their items and tiers round-trip, references are
//! checked, every change moves the cache version, quotes are kept whole and
//! applied exactly once (also under concurrent calls), and the
//! effectiveness report sums what was applied.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{sync::Arc, time::Duration};

use chrono::{NaiveDate, Utc};
use harsha_pricing::{
    PricingError, PricingStore, SqlPricingStore,
    cache::RuleCache,
    domain::{
        Actor, CartRequest, Code, Conditions, CustomerFacts, Discount, DiscountKind, DocName,
        LineRequest, Quantity, RuleDiscount, RuleSpec, Schedule, Stacking, Target, Tier, TierBasis,
        Tiers,
    },
    store::{QuoteStatus, StoredQuote},
};
use harsha_store::Engine;
use harsha_testkit::{TestDatabase, fixtures};
use rust_decimal::Decimal;

harsha_testkit::on_every_engine!(
    rules_round_trip_with_items_and_tiers,
    rules_must_name_things_that_exist,
    every_change_moves_the_cache_version_and_the_cache_follows,
    rules_list_by_priority_with_filters,
    a_quote_is_applied_once_at_its_quoted_prices,
    concurrent_applications_of_one_quote_record_once,
    an_expired_quote_cannot_be_applied,
    effectiveness_sums_usage_and_discount_per_rule,
    festival_windows_and_prices_are_managed,
);

struct Fixture {
    database: TestDatabase,
    store: Arc<dyn PricingStore>,
    actor: Actor,
}

async fn fixture(engine: Engine) -> Fixture {
    let database = TestDatabase::erp(engine).await;
    fixtures::item_group(&database.db, "All Item Groups", "").await;
    fixtures::item_group(&database.db, "Sweets", "All Item Groups").await;
    fixtures::item(&database.db, "KAJU-KATLI").await;
    fixtures::item(&database.db, "RASGULLA").await;
    fixtures::territory(&database.db, "Karnataka", "India").await;
    let store: Arc<dyn PricingStore> =
        Arc::new(SqlPricingStore::new(database.db.erp_pool().unwrap()));
    let f = Fixture {
        database,
        store,
        actor: Actor::named("pricing@harshadelights.in"),
    };
    for (item, rate) in [("KAJU-KATLI", "1200"), ("RASGULLA", "250")] {
        f.store
            .set_item_price(
                &name(item),
                "Standard Selling",
                dec(rate),
                "INR",
                None,
                &f.actor,
            )
            .await
            .unwrap();
    }
    f
}

fn dec(value: &str) -> Decimal {
    value.parse().unwrap()
}

fn code(value: &str) -> Code {
    Code::parse(value).unwrap()
}

fn name(value: &str) -> DocName {
    DocName::parse(value).unwrap()
}

fn day(value: &str) -> NaiveDate {
    value.parse().unwrap()
}

fn pct(value: &str) -> Discount {
    Discount::new(DiscountKind::Percentage, dec(value)).unwrap()
}

fn rule(code_: &str, priority: i32) -> RuleSpec {
    RuleSpec {
        code: code(code_),
        rule_name: format!("{code_} rule"),
        description: "test".into(),
        priority,
        active: true,
        schedule: Schedule::always(chrono_tz::Asia::Kolkata),
        conditions: Conditions::default(),
        targets: Vec::new(),
        discount: RuleDiscount::Flat(pct("10")),
        max_discount_per_line: None,
        exclusive: false,
        currency: "INR".into(),
    }
}

impl Fixture {
    async fn quote(&self, lines: &[(&str, &str)]) -> StoredQuote {
        let cache = RuleCache::load(Arc::clone(&self.store), Duration::from_secs(60))
            .await
            .unwrap();
        let book = cache.current();
        let cart = CartRequest {
            customer: CustomerFacts {
                customer: "CUST-0001".into(),
                ..CustomerFacts::default()
            },
            channel: None,
            at: Utc::now(),
            lines: lines
                .iter()
                .map(|(item, qty)| LineRequest {
                    item_code: (*item).into(),
                    qty: Quantity::parse(qty).unwrap(),
                    uom: None,
                })
                .collect(),
        };
        let priced = book.quote(&cart, Stacking::Compound).unwrap();
        let now = Utc::now().naive_utc();
        let quote = StoredQuote {
            id: uuid::Uuid::now_v7().to_string(),
            customer: "CUST-0001".into(),
            channel: None,
            price_tier: None,
            price_time: now,
            expires_at: now + Duration::from_secs(600),
            cart: priced,
            status: QuoteStatus::Quoted,
            applied_at: None,
            order_reference: None,
            created: now,
        };
        self.store.save_quote(&quote, &self.actor).await.unwrap();
        quote
    }

    async fn count(&self, table: &str) -> i64 {
        fixtures::row_count(&self.database.db, table).await
    }
}

async fn rules_round_trip_with_items_and_tiers(engine: Engine) {
    let f = fixture(engine).await;
    let spec = RuleSpec {
        schedule: Schedule {
            valid_from: Some(day("2026-11-01")),
            valid_to: Some(day("2026-12-31")),
            days: harsha_pricing::domain::DaySet::of([chrono::Weekday::Fri, chrono::Weekday::Sat]),
            time_window: harsha_pricing::domain::TimeWindow::new(
                chrono::NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
                chrono::NaiveTime::from_hms_opt(2, 0, 0).unwrap(),
            )
            .ok(),
            time_zone: chrono_tz::Europe::London,
            festivals: Vec::new(),
        },
        conditions: Conditions {
            segments: vec![code("WHOLESALE")],
            territories: vec![name("Karnataka")],
            channels: vec![code("MOBILE-APP")],
            min_qty: Some(dec("1.5")),
            max_qty: None,
            min_amount: None,
            max_amount: Some(dec("100000")),
        },
        targets: vec![
            Target::Item(name("KAJU-KATLI")),
            Target::ItemGroup(name("Sweets")),
        ],
        discount: RuleDiscount::Tiered(
            Tiers::new(
                TierBasis::Quantity,
                vec![
                    Tier {
                        min: dec("10"),
                        max: Some(dec("50")),
                        discount: pct("5"),
                    },
                    Tier {
                        min: dec("50"),
                        max: None,
                        discount: Discount::new(DiscountKind::FixedPrice, dec("999.5")).unwrap(),
                    },
                ],
            )
            .unwrap(),
        ),
        max_discount_per_line: Some(dec("2500.25")),
        exclusive: true,
        ..rule("NIGHT-TRADE", 70)
    };
    let created = f.store.create_rule(spec.clone(), &f.actor).await.unwrap();
    assert_eq!(created.spec, spec);
    let read = f.store.rule(&code("NIGHT-TRADE")).await.unwrap();
    assert_eq!(read, created);
    assert!(matches!(
        f.store.create_rule(spec.clone(), &f.actor).await,
        Err(PricingError::RuleExists(_))
    ));
    // An update replaces the definition and keeps the active flag.
    f.store
        .set_rule_active(&code("NIGHT-TRADE"), false, &f.actor)
        .await
        .unwrap();
    let changed = RuleSpec {
        targets: Vec::new(),
        discount: RuleDiscount::Flat(pct("7.25")),
        ..spec
    };
    let updated = f
        .store
        .update_rule(changed.clone(), &Actor::named("manager@harshadelights.in"))
        .await
        .unwrap();
    let pool = f.database.db.erp_pool().unwrap();
    let (owner, modified_by): (String, String) = harsha_store::erp_dispatch!(&pool, pool => {
        sqlx::query_as("SELECT `owner`, `modified_by` FROM `tabHD Dynamic Pricing Rule` WHERE `name` = 'NIGHT-TRADE'")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(
        (owner.as_str(), modified_by.as_str()),
        ("pricing@harshadelights.in", "manager@harshadelights.in"),
        "an update keeps who created the rule"
    );
    assert!(!updated.spec.active);
    assert_eq!(updated.created, created.created);
    assert_eq!(
        f.store
            .rule(&code("NIGHT-TRADE"))
            .await
            .unwrap()
            .spec
            .discount,
        changed.discount
    );
    assert_eq!(f.count("tabHD Pricing Rule Item").await, 0);
    assert_eq!(f.count("tabHD Pricing Rule Tier").await, 0);
    assert_eq!(
        fixtures::outbox_events(&f.database.db, "NIGHT-TRADE").await,
        [
            "pricing.rule.created",
            "pricing.rule.deactivated",
            "pricing.rule.updated"
        ]
    );
}

async fn rules_must_name_things_that_exist(engine: Engine) {
    let f = fixture(engine).await;
    let cases = [
        (
            RuleSpec {
                targets: vec![Target::Item(name("GULAB-JAMUN"))],
                ..rule("A", 1)
            },
            "targets[0].item_code",
        ),
        (
            RuleSpec {
                targets: vec![Target::ItemGroup(name("Savouries"))],
                ..rule("B", 1)
            },
            "targets[0].item_group",
        ),
        (
            RuleSpec {
                conditions: Conditions {
                    territories: vec![name("Atlantis")],
                    ..Conditions::default()
                },
                ..rule("C", 1)
            },
            "territories[0]",
        ),
        (
            RuleSpec {
                schedule: Schedule {
                    festivals: vec![code("ONAM")],
                    ..Schedule::always(chrono_tz::Asia::Kolkata)
                },
                ..rule("D", 1)
            },
            "festivals[0]",
        ),
    ];
    for (spec, field) in cases {
        match f.store.create_rule(spec, &f.actor).await {
            Err(PricingError::InvalidArgument { field: found, .. }) => assert_eq!(found, field),
            other => panic!("expected {field} to be refused, got {other:?}"),
        }
    }
    assert_eq!(f.count("tabHD Dynamic Pricing Rule").await, 0);
    assert!(matches!(
        f.store.update_rule(rule("NOPE", 1), &f.actor).await,
        Err(PricingError::RuleNotFound(_))
    ));
}

async fn every_change_moves_the_cache_version_and_the_cache_follows(engine: Engine) {
    let f = fixture(engine).await;
    let cache = RuleCache::load(Arc::clone(&f.store), Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(cache.current().is_empty());
    assert!(!cache.refresh().await.unwrap(), "nothing changed");
    let v0 = f.store.cache_version().await.unwrap();
    f.store
        .create_rule(rule("TEN", 10), &f.actor)
        .await
        .unwrap();
    let v1 = f.store.cache_version().await.unwrap();
    assert!(v1 > v0);
    assert!(cache.refresh().await.unwrap());
    assert_eq!(cache.current().len(), 1);
    f.store
        .set_rule_active(&code("TEN"), false, &f.actor)
        .await
        .unwrap();
    f.store
        .add_festival_window(
            &code("DIWALI"),
            day("2026-11-05"),
            day("2026-11-11"),
            &f.actor,
        )
        .await
        .unwrap();
    f.store
        .set_item_price(
            &name("RASGULLA"),
            "WHOLESALE",
            dec("200"),
            "INR",
            None,
            &f.actor,
        )
        .await
        .unwrap();
    assert!(f.store.cache_version().await.unwrap() >= v1 + 3);
    cache.refresh().await.unwrap();
    let book = cache.current();
    assert!(book.is_empty(), "the deactivated rule is gone");
    assert!(book.festivals().knows(&code("DIWALI")));
    assert_eq!(
        book.catalogue()
            .price_of("RASGULLA", Some("WHOLESALE"))
            .map(|p| p.rate),
        Some(dec("200"))
    );
    assert_eq!(
        book.catalogue().groups_of("KAJU-KATLI"),
        ["Sweets", "All Item Groups"]
    );
}

async fn rules_list_by_priority_with_filters(engine: Engine) {
    let f = fixture(engine).await;
    for (code_, priority) in [("B", 10), ("A", 10), ("HIGH", 90), ("LOW", 1)] {
        f.store
            .create_rule(rule(code_, priority), &f.actor)
            .await
            .unwrap();
    }
    let expired = RuleSpec {
        schedule: Schedule {
            valid_to: Some(day("2026-01-31")),
            ..Schedule::always(chrono_tz::Asia::Kolkata)
        },
        ..rule("OLD", 50)
    };
    f.store.create_rule(expired, &f.actor).await.unwrap();
    f.store
        .set_rule_active(&code("LOW"), false, &f.actor)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = f.store.list_rules(false, None, 2, &token).await.unwrap();
        seen.extend(page.items.iter().map(|r| r.spec.code.to_string()));
        match page.next_token {
            Some(next) => token = next,
            None => break,
        }
    }
    assert_eq!(seen, ["HIGH", "OLD", "A", "B", "LOW"]);
    let active_now: Vec<String> = f
        .store
        .list_rules(true, Some(day("2026-11-26")), 50, "")
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.spec.code.to_string())
        .collect();
    assert_eq!(active_now, ["HIGH", "A", "B"]);
}

async fn a_quote_is_applied_once_at_its_quoted_prices(engine: Engine) {
    let f = fixture(engine).await;
    f.store
        .create_rule(rule("TEN", 10), &f.actor)
        .await
        .unwrap();
    f.store
        .create_rule(
            RuleSpec {
                discount: RuleDiscount::Flat(pct("5")),
                ..rule("FIVE", 5)
            },
            &f.actor,
        )
        .await
        .unwrap();
    let quote = f.quote(&[("KAJU-KATLI", "2"), ("RASGULLA", "1")]).await;
    assert_eq!(f.store.quote(&quote.id).await.unwrap(), quote);
    assert_eq!(
        quote.cart.total,
        dec("2265.75"),
        "(2400 + 250) × 0.9 × 0.95"
    );

    // Rules change after the quote: applying still charges the quoted prices.
    f.store
        .set_rule_active(&code("TEN"), false, &f.actor)
        .await
        .unwrap();
    let (applied, applications) = f
        .store
        .apply_quote(&quote.id, Some("SO-0042"), day("2026-11-26"), &f.actor)
        .await
        .unwrap();
    assert_eq!(applied.status, QuoteStatus::Applied);
    assert_eq!(applied.cart, quote.cart);
    assert_eq!(applied.order_reference.as_deref(), Some("SO-0042"));
    let rules: Vec<(u32, &str, Decimal)> = applications
        .iter()
        .map(|a| (a.line_index, a.rule.as_str(), a.discount_amount))
        .collect();
    assert_eq!(
        rules,
        [
            (0, "TEN", dec("240")),
            (0, "FIVE", dec("108")),
            (1, "TEN", dec("25")),
            (1, "FIVE", dec("11.25"))
        ]
    );

    // Again: the same applications, nothing new recorded.
    let (_, again) = f
        .store
        .apply_quote(&quote.id, Some("SO-0042"), day("2026-11-27"), &f.actor)
        .await
        .unwrap();
    assert_eq!(again, applications);
    assert_eq!(f.count("tabHD Pricing Rule Application").await, 4);
    assert!(matches!(
        f.store
            .apply_quote(&quote.id, Some("SO-0043"), day("2026-11-27"), &f.actor)
            .await,
        Err(PricingError::FailedPrecondition(_))
    ));
    assert!(matches!(
        f.store.quote("nope").await,
        Err(PricingError::QuoteNotFound(_))
    ));
}

async fn concurrent_applications_of_one_quote_record_once(engine: Engine) {
    let f = fixture(engine).await;
    f.store
        .create_rule(rule("TEN", 10), &f.actor)
        .await
        .unwrap();
    let quote = f.quote(&[("KAJU-KATLI", "3")]).await;
    let results = futures::future::join_all((0..8).map(|_| {
        let store = Arc::clone(&f.store);
        let actor = f.actor.clone();
        let id = quote.id.clone();
        tokio::spawn(async move {
            store
                .apply_quote(&id, Some("SO-7"), day("2026-11-26"), &actor)
                .await
        })
    }))
    .await;
    let mut ids = std::collections::BTreeSet::new();
    for result in results {
        let (_, applications) = result.unwrap().unwrap();
        ids.extend(applications.into_iter().map(|a| a.id));
    }
    assert_eq!(ids.len(), 1, "every caller sees the one application");
    assert_eq!(f.count("tabHD Pricing Rule Application").await, 1);
    assert_eq!(
        fixtures::outbox_events(&f.database.db, &quote.id).await,
        ["pricing.quote.applied"]
    );
}

async fn an_expired_quote_cannot_be_applied(engine: Engine) {
    let f = fixture(engine).await;
    let mut quote = f.quote(&[("RASGULLA", "1")]).await;
    quote.id = uuid::Uuid::now_v7().to_string();
    quote.expires_at = Utc::now().naive_utc() - Duration::from_secs(1);
    f.store.save_quote(&quote, &f.actor).await.unwrap();
    assert!(matches!(
        f.store.apply_quote(&quote.id, None, day("2026-11-26"), &f.actor).await,
        Err(PricingError::FailedPrecondition(reason)) if reason.contains("expired")
    ));
    assert_eq!(f.count("tabHD Pricing Rule Application").await, 0);
}

async fn effectiveness_sums_usage_and_discount_per_rule(engine: Engine) {
    let f = fixture(engine).await;
    f.store
        .create_rule(rule("TEN", 10), &f.actor)
        .await
        .unwrap();
    let mut item_only = rule("KAJU-ONLY", 5);
    item_only.targets = vec![Target::Item(name("KAJU-KATLI"))];
    f.store.create_rule(item_only, &f.actor).await.unwrap();
    for (date, lines) in [
        ("2026-11-25", vec![("KAJU-KATLI", "1")]),
        ("2026-11-26", vec![("KAJU-KATLI", "1"), ("RASGULLA", "2")]),
    ] {
        let quote = f.quote(&lines).await;
        f.store
            .apply_quote(&quote.id, None, day(date), &f.actor)
            .await
            .unwrap();
    }
    let all = f
        .store
        .effectiveness(day("2026-11-01"), day("2026-11-30"), None)
        .await
        .unwrap();
    let summary: Vec<(&str, i64, Decimal)> = all
        .iter()
        .map(|e| (e.rule.as_str(), e.usage_count, e.total_discount))
        .collect();
    // TEN: 120 + 120 + 50; KAJU-ONLY: 108 + 108 (10 % of 1,080, compounded).
    assert_eq!(
        summary,
        [("TEN", 3, dec("290")), ("KAJU-ONLY", 2, dec("216"))]
    );
    let one_day = f
        .store
        .effectiveness(day("2026-11-26"), day("2026-11-26"), Some(&code("TEN")))
        .await
        .unwrap();
    assert_eq!(
        (one_day[0].usage_count, one_day[0].total_discount),
        (2, dec("170"))
    );
    assert_eq!(
        f.store
            .ensure_application_partitions(day("2027-01-10"))
            .await
            .unwrap()
            .len(),
        if engine == Engine::MySql { 3 } else { 0 }
    );
}

async fn festival_windows_and_prices_are_managed(engine: Engine) {
    let f = fixture(engine).await;
    let diwali = code("DIWALI");
    f.store
        .add_festival_window(&diwali, day("2027-10-26"), day("2027-11-01"), &f.actor)
        .await
        .unwrap();
    let festival = f
        .store
        .add_festival_window(&diwali, day("2026-11-05"), day("2026-11-11"), &f.actor)
        .await
        .unwrap();
    let starts: Vec<NaiveDate> = festival.windows.iter().map(|w| w.start).collect();
    assert_eq!(starts, [day("2026-11-05"), day("2027-10-26")]);
    let after = f
        .store
        .remove_festival_window(&diwali, &festival.windows[1].id, &f.actor)
        .await
        .unwrap();
    assert_eq!(after.windows.len(), 1);
    assert!(matches!(
        f.store
            .remove_festival_window(&diwali, "nope", &f.actor)
            .await,
        Err(PricingError::WindowNotFound(_))
    ));
    let price = f
        .store
        .set_item_price(
            &name("KAJU-KATLI"),
            "Standard Selling",
            dec("1250.5"),
            "INR",
            None,
            &f.actor,
        )
        .await
        .unwrap();
    assert_eq!((price.rate, price.uom.as_str()), (dec("1250.5"), "Kg"));
    let prices = f.store.item_prices(&name("KAJU-KATLI")).await.unwrap();
    assert_eq!(prices.len(), 1, "setting a price again replaces it");
    assert!(matches!(
        f.store.set_item_price(&name("GHOST"), "Standard Selling", dec("1"), "INR", None, &f.actor).await,
        Err(PricingError::InvalidArgument { field, .. }) if field == "item_code"
    ));
}
