//! `harsha seed`: the demo data set scaled up for load tests, written into
//! the configured `erp` database (MariaDB or SQLite) through the same
//! stores the services use: the demo's territories, segments, rules and
//! prices, then `BENCH-C…` customers (each with a primary segment),
//! `BENCH-I…` items with a base price, and batches spread over the items
//! and warehouses with expiries from one to twelve months out. Running it
//! again adds only what is missing.

use crate::demo::inserted;
use anyhow::Context;
use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt, stream};
use harsha_customer::{
    CustomerStore, SqlCustomerStore,
    domain::{DocName, EffectiveRange, NewAssignment, SegmentCode},
};
use harsha_inventory::{
    InventoryError, InventoryStore, SqlInventoryStore,
    domain::{BatchNo, NewBatch, QualityGrade, Quantity, Reference, StorageConditions},
};
use harsha_pricing::{PricingStore, SqlPricingStore};
use harsha_store::{
    ErpPool,
    erpnext::{self, StandInCustomer},
};

/// How much to make.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Scale {
    /// Customers.
    #[arg(long, default_value_t = 100_000)]
    pub customers: usize,
    /// Items.
    #[arg(long, default_value_t = 1_000)]
    pub items: usize,
    /// Batches (spread evenly over the items).
    #[arg(long, default_value_t = 10_000)]
    pub batches: usize,
}

/// Writes in parallel on this many connections.
const PARALLEL: usize = 16;
const SEGMENTS: [&str; 5] = [
    "RETAIL",
    "HORECA",
    "CORPORATE-GIFTING",
    "WHOLESALE",
    "DISTRIBUTOR",
];
const TERRITORIES: [&str; 5] = ["Bengaluru Urban", "Mysuru", "Hyderabad", "Mumbai", "Pune"];
const WAREHOUSES: [&str; 4] = [
    "Stores - HD",
    "Bengaluru DC - HD",
    "Hyderabad DC - HD",
    "Mumbai DC - HD",
];

/// Seeds `pool` to `scale`, printing progress.
pub async fn run(pool: ErpPool, scale: Scale, today: NaiveDate) -> anyhow::Result<()> {
    crate::demo::load(pool.clone())
        .await
        .context("demo customers and segments")?;
    crate::demo::load_inventory(pool.clone(), today)
        .await
        .context("demo inventory")?;
    crate::demo::load_pricing(pool.clone())
        .await
        .context("demo pricing")?;
    eprintln!("seed: demo data in place");

    let customers = SqlCustomerStore::new(pool.clone());
    let actor = harsha_customer::domain::Actor::named("seed@harshadelights.in");
    let since = today - chrono::Days::new(400);
    stream::iter(0..scale.customers)
        .map(|i| {
            let (pool, customers, actor) = (&pool, &customers, &actor);
            async move {
                let name = format!("BENCH-C{i:06}");
                let new = inserted(
                    erpnext::insert_customer(
                        pool,
                        StandInCustomer {
                            name: &name,
                            customer_name: &format!("Bench customer {i}"),
                            customer_group: "Retail",
                            territory: TERRITORIES[i % TERRITORIES.len()],
                            disabled: false,
                        },
                    )
                    .await,
                )?;
                if !new {
                    return Ok(());
                }
                let assignment = NewAssignment {
                    customer: DocName::parse(&name)?,
                    segment: SegmentCode::parse(SEGMENTS[i % SEGMENTS.len()])?,
                    is_primary: true,
                    range: EffectiveRange::new(since, None)?,
                };
                customers.assign_segment(assignment, actor).await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(PARALLEL)
        .try_collect::<()>()
        .await
        .context("customers")?;
    eprintln!("seed: {} customers", scale.customers);

    let pricing = SqlPricingStore::new(pool.clone());
    let price_actor = harsha_pricing::domain::Actor::named("seed@harshadelights.in");
    stream::iter(0..scale.items)
        .map(|i| {
            let (pool, pricing, actor) = (&pool, &pricing, &price_actor);
            async move {
                let code = format!("BENCH-I{i:04}");
                let _ = inserted(
                    erpnext::insert_item(
                        pool,
                        &code,
                        &format!("Bench sweet {i}"),
                        "Mithai",
                        "Kg",
                        false,
                    )
                    .await,
                )?;
                let item = DocName::parse(&code)?;
                if pricing.item_prices(&item).await?.is_empty() {
                    let rate = rust_decimal::Decimal::from(200 + (i % 40) * 25);
                    pricing
                        .set_item_price(&item, "Standard Selling", rate, "INR", None, actor)
                        .await?;
                }
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(PARALLEL)
        .try_collect::<()>()
        .await
        .context("items")?;
    eprintln!("seed: {} items", scale.items);

    let inventory = SqlInventoryStore::new(pool.clone());
    let stock_actor = harsha_inventory::domain::Actor::named("seed@harshadelights.in");
    let items = scale.items.max(1);
    stream::iter(0..scale.batches)
        .map(|i| {
            let (inventory, actor) = (&inventory, &stock_actor);
            async move {
                let item = i % items;
                let nth = i / items;
                let batch = NewBatch {
                    item_code: DocName::parse(&format!("BENCH-I{item:04}"))?,
                    warehouse: DocName::parse(WAREHOUSES[nth % WAREHOUSES.len()])?,
                    batch_no: BatchNo::parse(&format!("BB-{item:04}-{nth:03}"))?,
                    supplier: None,
                    manufacturing_date: today - chrono::Days::new(2),
                    expiry_date: today + chrono::Days::new(30 + ((i * 37) % 335) as u64),
                    qty: Quantity::parse("100000")?,
                    stock_uom: None,
                    grade: QualityGrade::A,
                    storage: StorageConditions::default(),
                    nutrition: None,
                    allergens: harsha_inventory::domain::Allergens::new(Vec::new()),
                    reference: Reference {
                        doctype: Some("Stock Entry".into()),
                        name: Some(format!("MAT-STE-BENCH-{i}")),
                    },
                };
                match inventory.receive_batch(batch, actor).await {
                    Ok(_) | Err(InventoryError::BatchExists { .. }) => Ok(()),
                    Err(other) => Err(anyhow::Error::from(other)),
                }
            }
        })
        .buffer_unordered(PARALLEL)
        .try_collect::<()>()
        .await
        .context("batches")?;
    eprintln!("seed: {} batches", scale.batches);
    Ok(())
}
