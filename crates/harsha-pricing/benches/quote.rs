//! The Pricing service's hot path: `QuotePrice`.
//!
//! `cargo bench -p harsha-pricing --bench quote`:
//!
//! 1. **In process** (criterion): a 50-line cart priced against 1,000
//!    active rules — 900 naming one of 500 items, 80 naming one of 20 item
//!    groups (two levels deep), 20 for all items — with time windows,
//!    segments, channels, quantity tiers and a cart-amount tier, so every
//!    kind of check runs and most candidates are skipped with a reason.
//! 2. **Through gRPC**: the same rules in an embedded (SQLite) database, a
//!    tonic server with the rule cache, and 5-line `QuotePrice` calls from
//!    concurrent clients over loopback for 10 s (each quote is kept in the
//!    database, as in production); prints quotes/s and latency
//!    percentiles. Customer profiles come from a fixed source standing in
//!    for the warm profile cache.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

/// The allocator the `harsha` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use harsha_pricing::{
    PricingConfig, PricingError, PricingGrpc, PricingStore, SqlPricingStore,
    cache::RuleCache,
    domain::{
        BasePrice, CartRequest, Catalogue, Code, Conditions, CustomerFacts, Discount, DiscountKind,
        DocName, FestivalCalendar, LineRequest, Quantity, RuleBook, RuleDiscount, RuleSpec,
        Schedule, Stacking, Target, Tier, TierBasis, Tiers, TimeWindow,
    },
    grpc::{Ready, ReadySlot},
    profiles::CustomerProfiles,
};
use harsha_proto::harsha::{
    pricing::v1::{
        QuoteLineRequest, QuotePriceRequest, pricing_service_client::PricingServiceClient,
    },
    r#type::v1::Decimal as WireDecimal,
};
use harsha_store::{Database, PoolSettings, Role, erpnext};
use harsha_testkit::bench::report_percentiles;
use rust_decimal::Decimal;

const ITEMS: usize = 500;
const GROUPS: usize = 20;

fn item(i: usize) -> String {
    format!("ITEM-{i:03}")
}

fn group(g: usize) -> String {
    format!("Group {g:02}")
}

fn pct(value: i64) -> Discount {
    Discount::new(DiscountKind::Percentage, Decimal::from(value)).unwrap()
}

/// The i-th of 1,000 rules.
fn rule(i: usize) -> RuleSpec {
    let code = Code::parse(&format!("RULE-{i:04}")).unwrap();
    let targets = match i {
        0..900 => vec![Target::Item(DocName::parse(&item(i % ITEMS)).unwrap())],
        900..980 => vec![Target::ItemGroup(
            DocName::parse(&group(i % GROUPS)).unwrap(),
        )],
        _ => Vec::new(),
    };
    let time = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap();
    // Conditions cycle, so a given sale meets some rules and not others:
    // one segment in five, one channel in four, evening or lunch windows,
    // and a quarter of the rules only in a festival window.
    let segments = ["WHOLESALE", "RETAIL", "HORECA", "DISTRIBUTOR", "CORPORATE"];
    let channels = ["MOBILE-APP", "ECOMMERCE", "COUNTER", "FIELD-SALES"];
    let schedule = Schedule {
        time_window: match i % 6 {
            0 => Some(TimeWindow::new(time(18), time(2)).unwrap()),
            1 => Some(TimeWindow::new(time(12), time(15)).unwrap()),
            _ => None,
        },
        festivals: if i % 4 == 3 {
            vec![Code::parse("DIWALI").unwrap()]
        } else {
            Vec::new()
        },
        ..Schedule::always(chrono_tz::Asia::Kolkata)
    };
    let conditions = Conditions {
        segments: if i.is_multiple_of(3) {
            vec![Code::parse(segments[i / 3 % 5]).unwrap()]
        } else {
            Vec::new()
        },
        channels: if i.is_multiple_of(5) {
            vec![Code::parse(channels[i / 5 % 4]).unwrap()]
        } else {
            Vec::new()
        },
        min_qty: i.is_multiple_of(7).then(|| Decimal::from(5)),
        ..Conditions::default()
    };
    let discount = match i % 10 {
        0 => RuleDiscount::Tiered(
            Tiers::new(
                TierBasis::Quantity,
                vec![
                    Tier {
                        min: Decimal::from(2),
                        max: Some(Decimal::from(10)),
                        discount: pct(3),
                    },
                    Tier {
                        min: Decimal::from(10),
                        max: None,
                        discount: pct(6),
                    },
                ],
            )
            .unwrap(),
        ),
        1 => RuleDiscount::Tiered(
            Tiers::new(
                TierBasis::CartAmount,
                vec![Tier {
                    min: Decimal::from(5000),
                    max: None,
                    discount: pct(2),
                }],
            )
            .unwrap(),
        ),
        _ => RuleDiscount::Flat(pct(i64::try_from(1 + i % 9).unwrap())),
    };
    RuleSpec {
        code,
        rule_name: format!("Rule {i}"),
        description: String::new(),
        priority: i32::try_from(i % 50).unwrap(),
        active: true,
        schedule,
        conditions,
        targets,
        discount,
        max_discount_per_line: None,
        // A third of the promotions are "best price wins" (exclusive);
        // HARSHA_BENCH_PRICING_STACK_ALL=1 makes every rule stackable, the
        // worst case for explanations and kept quotes.
        exclusive: i % 3 == 1 && std::env::var("HARSHA_BENCH_PRICING_STACK_ALL").is_err(),
        currency: "INR".into(),
    }
}

fn catalogue() -> Catalogue {
    let mut catalogue = Catalogue::default();
    catalogue.add_group("All Item Groups", "");
    for g in 0..GROUPS {
        let parent = if g < 4 {
            "All Item Groups".to_owned()
        } else {
            group(g % 4)
        };
        catalogue.add_group(&group(g), &parent);
    }
    for i in 0..ITEMS {
        catalogue.add_item(&item(i), &group(4 + i % (GROUPS - 4)));
        catalogue.set_price(
            &item(i),
            BasePrice {
                price_list: "Standard Selling".into(),
                rate: Decimal::new(10_000 + i64::try_from(i).unwrap() * 7, 2),
                currency: "INR".into(),
                uom: "Kg".into(),
            },
        );
    }
    catalogue
}

/// Diwali 2026, which the benchmark's instant is not in.
fn festivals() -> FestivalCalendar {
    let mut calendar = FestivalCalendar::default();
    let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    calendar.add(Code::parse("DIWALI").unwrap(), day(5), day(11));
    calendar
}

fn facts() -> CustomerFacts {
    CustomerFacts {
        customer: "CUST-0001".into(),
        segments: vec![Code::parse("WHOLESALE").unwrap()],
        territories: vec!["Karnataka".into()],
        price_tier: None,
    }
}

fn cart(lines: usize, offset: usize) -> CartRequest {
    CartRequest {
        customer: facts(),
        channel: Some(Code::parse("MOBILE-APP").unwrap()),
        at: chrono_tz::Asia::Kolkata
            .with_ymd_and_hms(2026, 11, 27, 19, 30, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc),
        lines: (0..lines)
            .map(|l| LineRequest {
                item_code: item((offset + l * 37) % ITEMS),
                qty: Quantity::new(Decimal::from(1 + (l % 12))).unwrap(),
                uom: None,
            })
            .collect(),
    }
}

struct FixedProfiles;

#[async_trait::async_trait]
impl CustomerProfiles for FixedProfiles {
    async fn facts(&self, _: &DocName, _: NaiveDate) -> Result<CustomerFacts, PricingError> {
        Ok(facts())
    }
}

/// The benchmark's database: embedded SQLite in `dir`, or MariaDB when
/// `HARSHA_BENCH_PRICING_ENGINE=mysql`.
async fn bench_database(dir: &std::path::Path) -> Database {
    if std::env::var("HARSHA_BENCH_PRICING_ENGINE").is_ok_and(|e| e == "mysql") {
        eprintln!("database: MariaDB");
        return harsha_testkit::bench::fresh_database("harsha_bench_pricing").await;
    }
    eprintln!("database: SQLite");
    let url = format!("sqlite://{}/erp.sqlite", dir.display());
    let db = Database::connect(Role::Erp, &url, &PoolSettings::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    db
}

async fn grpc_server(dir: &std::path::Path) -> (String, Database) {
    let db = bench_database(dir).await;
    let pool = db.erp_pool().unwrap();
    let store: Arc<dyn PricingStore> = Arc::new(SqlPricingStore::new(pool.clone()));
    let actor = harsha_pricing::domain::Actor::system();
    erpnext::insert_item_group(&pool, "All Item Groups", "", true)
        .await
        .unwrap();
    let catalogue = catalogue();
    for g in 0..GROUPS {
        let parent = if g < 4 {
            "All Item Groups".to_owned()
        } else {
            group(g % 4)
        };
        erpnext::insert_item_group(&pool, &group(g), &parent, true)
            .await
            .unwrap();
    }
    for i in 0..ITEMS {
        erpnext::insert_item(
            &pool,
            &item(i),
            &item(i),
            &group(4 + i % (GROUPS - 4)),
            "Kg",
            false,
        )
        .await
        .unwrap();
        let price = catalogue.price_of(&item(i), None).unwrap().rate;
        store
            .set_item_price(
                &DocName::parse(&item(i)).unwrap(),
                "Standard Selling",
                price,
                "INR",
                None,
                &actor,
            )
            .await
            .unwrap();
    }
    store
        .add_festival_window(
            &Code::parse("DIWALI").unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 5).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 11).unwrap(),
            &actor,
        )
        .await
        .unwrap();
    for i in 0..1000 {
        store.create_rule(rule(i), &actor).await.unwrap();
    }
    let cache = RuleCache::load(Arc::clone(&store), Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(cache.current().len(), 1000);
    let slot = ReadySlot::default();
    let _ = slot.set(Ready { store, cache });
    let config = PricingConfig {
        time_zone: chrono_tz::Asia::Kolkata,
        stacking: Stacking::Compound,
        quote_validity: Duration::from_secs(1800),
    };
    let service = PricingGrpc::new(slot, Arc::new(FixedProfiles), config).into_server();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
    (format!("http://{address}"), db)
}

fn quote_request(offset: usize) -> QuotePriceRequest {
    QuotePriceRequest {
        customer: "CUST-0001".into(),
        lines: (0..5)
            .map(|l| QuoteLineRequest {
                item_code: item((offset + l * 37) % ITEMS),
                qty: Some(WireDecimal {
                    value: (1 + l).to_string(),
                }),
                uom: String::new(),
            })
            .collect(),
        price_time: None,
        channel: "MOBILE-APP".into(),
    }
}

async fn load(endpoint: &str, clients: usize, connections: usize, window: Duration) {
    let mut channels = Vec::new();
    for _ in 0..connections {
        let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
            .unwrap()
            .tcp_nodelay(true)
            .connect()
            .await
            .unwrap();
        channels.push(PricingServiceClient::new(channel));
    }
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + window;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let mut client = channels[c % connections].clone();
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut timings = Vec::new();
                while Instant::now() < deadline {
                    let request = quote_request(next.fetch_add(1, Ordering::Relaxed));
                    let started = Instant::now();
                    client.quote_price(request).await.unwrap();
                    timings.push(started.elapsed());
                }
                timings
            })
        })
        .collect();
    let mut timings = Vec::new();
    for task in tasks {
        timings.extend(task.await.unwrap());
    }
    let rate = timings.len() as f64 / window.as_secs_f64();
    eprintln!("{clients} clients over {connections} connections: {rate:.0} quotes/s");
    report_percentiles(
        &format!("  gRPC QuotePrice, 5 lines, {clients} clients"),
        timings,
    );
}

/// The parts of one 5-line quote, one at a time: pricing, the kept
/// payload's JSON, the response's protobuf, and the insert.
async fn where_the_time_goes(db: &Database, book: &RuleBook) {
    use prost::Message;
    let store = SqlPricingStore::new(db.erp_pool().unwrap());
    let actor = harsha_pricing::domain::Actor::system();
    let (mut price, mut json, mut insert) = (Vec::new(), Vec::new(), Vec::new());
    let mut sizes = (0, 0);
    for i in 0..2_000 {
        let cart = cart(5, i);
        let started = Instant::now();
        let priced = book.quote(&cart, Stacking::Compound).unwrap();
        price.push(started.elapsed());
        let now = Utc::now().naive_utc();
        let quote = harsha_pricing::store::StoredQuote {
            id: uuid::Uuid::now_v7().to_string(),
            customer: "CUST-0001".into(),
            channel: None,
            price_tier: None,
            price_time: now,
            expires_at: now,
            cart: priced,
            status: harsha_pricing::store::QuoteStatus::Quoted,
            applied_at: None,
            order_reference: None,
            created: now,
        };
        let started = Instant::now();
        let encoded = serde_json::to_string(&quote).unwrap();
        json.push(started.elapsed());
        sizes.0 = encoded.len();
        let started = Instant::now();
        store.save_quote(&quote, &actor).await.unwrap();
        insert.push(started.elapsed());
        let lines = quote.cart.lines.len();
        sizes.1 = lines;
    }
    eprintln!("a 5-line quote keeps {} bytes of JSON", sizes.0);
    report_percentiles("  price 5 lines", price);
    report_percentiles("  JSON of the kept quote", json);
    report_percentiles(
        &format!("  insert of the kept quote ({})", db.engine()),
        insert,
    );
    let _ = sizes.1;
    let _ = QuotePriceRequest::default().encoded_len();
}

fn quote(c: &mut Criterion) {
    let book = RuleBook::new((0..1000).map(rule), festivals(), catalogue());
    assert_eq!(book.len(), 1000);
    let fifty = cart(50, 0);
    let priced = book.quote(&fifty, Stacking::Compound).unwrap();
    let applied: usize = priced.lines.iter().map(|l| l.applied.len()).sum();
    let skipped: usize = priced.lines.iter().map(|l| l.skipped.len()).sum();
    let candidates = applied + skipped;
    eprintln!(
        "50-line cart: {candidates} candidate rules checked, {applied} applied, {skipped} skipped with a reason"
    );
    let mut timings = Vec::with_capacity(5_000);
    for i in 0..5_000 {
        let cart = cart(50, i);
        let started = Instant::now();
        std::hint::black_box(book.quote(&cart, Stacking::Compound).unwrap());
        timings.push(started.elapsed());
    }
    report_percentiles("in process: 50-line cart, 1,000 rules", timings);

    let mut group = c.benchmark_group("pricing_1000_rules");
    group.bench_function("quote_50_lines_in_process", |b| {
        b.iter(|| {
            book.quote(std::hint::black_box(&fifty), Stacking::Compound)
                .unwrap()
        });
    });
    let five = cart(5, 3);
    group.bench_function("quote_5_lines_in_process", |b| {
        b.iter(|| {
            book.quote(std::hint::black_box(&five), Stacking::Compound)
                .unwrap()
        });
    });
    group.finish();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    runtime.block_on(async {
        let (endpoint, db) = grpc_server(dir.path()).await;
        where_the_time_goes(&db, &book).await;
        load(&endpoint, 8, 2, Duration::from_secs(2)).await;
        for (clients, connections) in [(16, 4), (32, 4)] {
            load(&endpoint, clients, connections, Duration::from_secs(10)).await;
        }
        db.close().await;
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(5));
    targets = quote
}
criterion_main!(benches);
