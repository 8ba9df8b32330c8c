//! The Inventory store's behaviour, run on SQLite and on MariaDB from one
//! suite: every scenario is a function taking the engine, and
//! `on_every_engine!` makes one test per engine of each. After every
//! scenario, each batch's quantities are checked against the sum of its
//! movements.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use chrono::{Duration, NaiveDate, Utc};
use harsha_inventory::{
    InventoryError, InventoryStore, SqlInventoryStore,
    domain::{
        Actor, Allergen, Allergens, AllocationRequest, AllocationStatus, BatchNo, BatchStatus,
        Bounds, ConditionReading, DocName, ExpiryLevel, ExpiryThresholds, MovementType, NewBatch,
        Nutrition, QualityGrade, Quantity, Reference, ReorderDecision, ReorderParams,
        StorageConditions, Strategy, WriteOffCause, humidity_limits, temperature_limits,
    },
    store::{BatchFilter, ExpiringQuery, MovementNote, TriggerFilter},
};
use harsha_store::{DbDecimal, Engine, erp_dispatch};
use harsha_testkit::{TestDatabase, fixtures};
use rust_decimal::Decimal;

harsha_testkit::on_every_engine!(
    a_receipt_keeps_every_attribute_and_records_a_movement,
    refused_receipts_write_nothing,
    issues_transfers_adjustments_and_write_offs_move_stock,
    refused_movements_write_nothing,
    fefo_takes_the_earliest_expiry_with_ties_by_manufacture_then_batch_number,
    fifo_takes_the_earliest_receipt,
    allocation_splits_across_batches_and_skips_ineligible_ones,
    a_short_allocation_reserves_nothing,
    reservations_are_confirmed_released_or_expire,
    confirming_refuses_stock_gone_bad_and_lapsed_holds,
    a_repeated_request_id_returns_the_first_allocation,
    expiry_levels_switch_at_exactly_seven_and_thirty_days,
    the_expiry_scan_marks_expired_batches_and_alerts_once_per_level,
    storage_breaches_are_flagged_and_optionally_quarantined,
    a_procurement_trigger_opens_once_and_resolves_when_stock_recovers,
    the_stock_position_buckets_each_warehouse_by_expiry,
    concurrent_allocations_never_oversell,
    several_requests_are_reserved_together_or_not_at_all,
    movements_are_append_only_and_partitioned_ahead,
);

const STORES: &str = "Stores - HD";
const MUMBAI: &str = "Mumbai Depot - HD";
const DELHI: &str = "Delhi Depot - HD";

struct Fixture {
    database: TestDatabase,
    store: Arc<dyn InventoryStore>,
    actor: Actor,
}

async fn fixture(engine: Engine) -> Fixture {
    let database = TestDatabase::erp(engine).await;
    for item in ["KAJU-KATLI", "SOAN-PAPDI", "MOTICHOOR-LADDU"] {
        fixtures::item(&database.db, item).await;
    }
    for warehouse in [STORES, MUMBAI, DELHI] {
        fixtures::warehouse(&database.db, warehouse).await;
    }
    let store: Arc<dyn InventoryStore> =
        Arc::new(SqlInventoryStore::new(database.db.erp_pool().unwrap()));
    Fixture {
        database,
        store,
        actor: Actor::named("warehouse@harshadelights.in"),
    }
}

impl Fixture {
    /// Checks that every batch's quantities equal the sums of its movements
    /// and that no quantity is negative.
    async fn assert_movements_add_up(&self) {
        let pool = self.database.db.erp_pool().unwrap();
        let rows: Vec<(
            String,
            DbDecimal,
            DbDecimal,
            DbDecimal,
            DbDecimal,
            DbDecimal,
            DbDecimal,
        )> = erp_dispatch!(&pool, pool => {
            sqlx::query_as(
                "SELECT b.`name`, b.`available_qty`, b.`reserved_qty`, b.`received_qty`, \
                 COALESCE(SUM(m.`available_change`), 0), COALESCE(SUM(m.`reserved_change`), 0), \
                 COALESCE(SUM(CASE WHEN m.`movement_type` IN ('Receipt', 'Transfer In') \
                   THEN m.`available_change` ELSE 0 END), 0) \
                 FROM `tabHD Batch Master` b LEFT JOIN `tabHD Batch Movement` m ON m.`batch` = b.`name` \
                 GROUP BY b.`name`, b.`available_qty`, b.`reserved_qty`, b.`received_qty`",
            )
            .fetch_all(pool)
            .await
            .unwrap()
        });
        for (batch, available, reserved, received, sum_available, sum_reserved, sum_received) in
            rows
        {
            assert_eq!(available.get(), sum_available.get(), "available of {batch}");
            assert_eq!(reserved.get(), sum_reserved.get(), "reserved of {batch}");
            assert_eq!(received.get(), sum_received.get(), "received of {batch}");
            assert!(available.get() >= Decimal::ZERO && reserved.get() >= Decimal::ZERO);
        }
    }

    /// The kinds of a batch's movements, oldest first.
    async fn movement_kinds(&self, batch: &str) -> Vec<MovementType> {
        let page = self.store.movements(batch, 100, "").await.unwrap();
        page.items.iter().map(|m| m.kind).collect()
    }

    async fn count(&self, table: &str) -> i64 {
        fixtures::row_count(&self.database.db, table).await
    }

    async fn receive(&self, spec: BatchSpec<'_>) -> String {
        self.store
            .receive_batch(spec.build(), &self.actor)
            .await
            .unwrap()
            .batch
            .id
    }

    async fn allocate(
        &self,
        request: AllocationRequest,
    ) -> Result<harsha_inventory::domain::Allocation, InventoryError> {
        self.store.allocate(request, as_of(), &self.actor).await
    }
}

/// The date the scenarios are seen from.
fn as_of() -> NaiveDate {
    day("2026-12-01")
}

fn day(value: &str) -> NaiveDate {
    value.parse().unwrap()
}

fn plus(days: u64) -> NaiveDate {
    as_of() + chrono::Days::new(days)
}

fn dec(value: &str) -> Decimal {
    value.parse().unwrap()
}

fn qty(value: &str) -> Quantity {
    Quantity::parse(value).unwrap()
}

fn name(value: &str) -> DocName {
    DocName::parse(value).unwrap()
}

#[derive(Clone, Copy)]
struct BatchSpec<'a> {
    item: &'a str,
    warehouse: &'a str,
    batch_no: &'a str,
    made: NaiveDate,
    expires: NaiveDate,
    qty: &'a str,
    grade: QualityGrade,
}

fn spec<'a>(batch_no: &'a str, expires: NaiveDate, qty: &'a str) -> BatchSpec<'a> {
    BatchSpec {
        item: "KAJU-KATLI",
        warehouse: STORES,
        batch_no,
        made: day("2026-11-01"),
        expires,
        qty,
        grade: QualityGrade::A,
    }
}

impl BatchSpec<'_> {
    fn build(self) -> NewBatch {
        NewBatch {
            item_code: name(self.item),
            warehouse: name(self.warehouse),
            batch_no: BatchNo::parse(self.batch_no).unwrap(),
            supplier: None,
            manufacturing_date: self.made,
            expiry_date: self.expires,
            qty: qty(self.qty),
            stock_uom: None,
            grade: self.grade,
            storage: StorageConditions::default(),
            nutrition: None,
            allergens: Allergens::default(),
            reference: Reference::default(),
        }
    }
}

fn request(item: &str, amount: &str) -> AllocationRequest {
    AllocationRequest {
        request_id: None,
        item_code: name(item),
        qty: qty(amount),
        warehouse: None,
        strategy: Strategy::Fefo,
        min_shelf_life_days: 0,
        min_grade: QualityGrade::C,
        hold_seconds: 900,
        reference: Reference {
            doctype: Some("Sales Order".into()),
            name: Some("SO-0001".into()),
        },
    }
}

fn note(reason: &str) -> MovementNote {
    MovementNote {
        reason: Some(reason.into()),
        reference: Reference::default(),
    }
}

async fn a_receipt_keeps_every_attribute_and_records_a_movement(engine: Engine) {
    let f = fixture(engine).await;
    let nutrition = Nutrition {
        energy_kcal: dec("452"),
        protein_g: dec("9.2"),
        carbohydrate_g: dec("56.4"),
        sugars_g: dec("48.1"),
        fat_g: dec("21.5"),
        saturated_fat_g: dec("4.3"),
        sodium_mg: dec("12.125"),
    };
    let storage = StorageConditions {
        temperature_c: Some(Bounds::new(dec("2"), dec("8.5"), temperature_limits()).unwrap()),
        humidity_pct: Some(Bounds::new(dec("30"), dec("60"), humidity_limits()).unwrap()),
    };
    let new_batch = NewBatch {
        supplier: Some(name("Cashew Traders")),
        storage,
        nutrition: Some(nutrition.clone()),
        allergens: Allergens::new([Allergen::TreeNuts, Allergen::Milk]),
        reference: Reference {
            doctype: Some("Purchase Receipt".into()),
            name: Some("PR-0042".into()),
        },
        ..spec("KK-2611-01", plus(60), "125.125000001").build()
    };
    let received = f.store.receive_batch(new_batch, &f.actor).await.unwrap();
    let batch = f.store.batch(&received.batch.id).await.unwrap();
    assert_eq!(batch, received.batch);
    assert_eq!(batch.available_qty, dec("125.125000001"));
    assert_eq!(batch.received_qty, dec("125.125000001"));
    assert_eq!(batch.reserved_qty, Decimal::ZERO);
    assert_eq!(batch.stock_uom, "Kg");
    assert_eq!(batch.nutrition, Some(nutrition));
    assert_eq!(batch.storage, storage);
    assert_eq!(batch.allergens.to_stored(), "milk,tree_nuts");
    assert_eq!(batch.status, BatchStatus::Active);
    assert_eq!(batch.supplier.as_deref(), Some("Cashew Traders"));

    let movements = f.store.movements(&batch.id, 10, "").await.unwrap().items;
    assert_eq!(movements.len(), 1);
    assert_eq!(movements[0], received.movement);
    assert_eq!(movements[0].kind, MovementType::Receipt);
    assert_eq!(movements[0].reference.name.as_deref(), Some("PR-0042"));
    assert_eq!(movements[0].actor, "warehouse@harshadelights.in");
    assert_eq!(
        fixtures::outbox_events(&f.database.db, &batch.id).await,
        ["inventory.batch.received"]
    );
    f.assert_movements_add_up().await;
}

async fn refused_receipts_write_nothing(engine: Engine) {
    let f = fixture(engine).await;
    f.receive(spec("KK-1", plus(60), "10")).await;
    let unknown_item = BatchSpec {
        item: "GULAB-JAMUN",
        ..spec("GJ-1", plus(60), "1")
    };
    assert!(matches!(
        f.store.receive_batch(unknown_item.build(), &f.actor).await,
        Err(InventoryError::ItemNotFound(item)) if item == "GULAB-JAMUN"
    ));
    let unknown_warehouse = BatchSpec {
        warehouse: "Nowhere",
        ..spec("KK-2", plus(60), "1")
    };
    assert!(matches!(
        f.store
            .receive_batch(unknown_warehouse.build(), &f.actor)
            .await,
        Err(InventoryError::WarehouseNotFound(_))
    ));
    let wrong_unit = NewBatch {
        stock_uom: Some("Box".into()),
        ..spec("KK-3", plus(60), "1").build()
    };
    assert!(matches!(
        f.store.receive_batch(wrong_unit, &f.actor).await,
        Err(InventoryError::InvalidArgument { field, .. }) if field == "stock_uom"
    ));
    assert!(matches!(
        f.store
            .receive_batch(spec("KK-1", plus(90), "5").build(), &f.actor)
            .await,
        Err(InventoryError::BatchExists { .. })
    ));
    assert_eq!(f.count("tabHD Batch Master").await, 1);
    assert_eq!(f.count("tabHD Batch Movement").await, 1);
    assert_eq!(f.count("tabHD Sync Outbox").await, 1);
}

async fn issues_transfers_adjustments_and_write_offs_move_stock(engine: Engine) {
    let f = fixture(engine).await;
    let id = f.receive(spec("KK-1", plus(60), "100")).await;

    let issued = f
        .store
        .issue(&id, qty("12.5"), note("counter sale"), &f.actor)
        .await
        .unwrap();
    assert_eq!(issued.batch.available_qty, dec("87.5"));
    assert_eq!(issued.movement.change.available, dec("-12.5"));
    assert_eq!(issued.movement.balance_after.available, dec("87.5"));

    let transfer = f
        .store
        .transfer(&id, qty("30"), &name(MUMBAI), note("restock"), &f.actor)
        .await
        .unwrap();
    assert_eq!(transfer.source.batch.available_qty, dec("57.5"));
    let target = &transfer.target.batch;
    assert_eq!(target.warehouse, MUMBAI);
    assert_eq!(target.batch_no, "KK-1");
    assert_eq!(target.expiry_date, plus(60));
    assert_eq!(target.received_at, transfer.source.batch.received_at);
    assert_eq!(target.available_qty, dec("30"));
    assert_eq!(target.status, BatchStatus::Active);
    assert_eq!(
        transfer.source.movement.transfer,
        transfer.target.movement.transfer
    );
    // A second transfer adds to the same target row.
    let again = f
        .store
        .transfer(&id, qty("7.5"), &name(MUMBAI), note("restock"), &f.actor)
        .await
        .unwrap();
    assert_eq!(again.target.batch.id, target.id);
    assert_eq!(again.target.batch.available_qty, dec("37.5"));
    assert_eq!(again.target.batch.received_qty, dec("37.5"));

    let counted = f
        .store
        .adjust(&id, dec("-0.25"), note("stock count"), &f.actor)
        .await
        .unwrap();
    assert_eq!(counted.batch.available_qty, dec("49.75"));

    let written = f
        .store
        .write_off(
            &target.id,
            None,
            WriteOffCause::Quality,
            note("crushed in transit"),
            &f.actor,
        )
        .await
        .unwrap();
    assert_eq!(written.batch.available_qty, Decimal::ZERO);
    assert_eq!(written.batch.status, BatchStatus::Consumed);
    assert_eq!(written.movement.kind, MovementType::WriteOff);
    assert_eq!(
        written.movement.reason.as_deref(),
        Some("write-off (quality): crushed in transit")
    );
    // A consumed batch comes back to life when stock is found.
    let found = f
        .store
        .adjust(&target.id, dec("1"), note("found a carton"), &f.actor)
        .await
        .unwrap();
    assert_eq!(found.batch.status, BatchStatus::Active);

    let kinds = f.movement_kinds(&id).await;
    assert_eq!(
        kinds,
        [
            MovementType::Receipt,
            MovementType::Issue,
            MovementType::TransferOut,
            MovementType::TransferOut,
            MovementType::Adjustment
        ]
    );
    // Movements page in order.
    let first = f.store.movements(&id, 2, "").await.unwrap();
    let token = first.next_token.clone().unwrap();
    let second = f.store.movements(&id, 2, &token).await.unwrap();
    assert_eq!(second.items[0].kind, MovementType::TransferOut);
    assert_eq!(
        fixtures::outbox_events(&f.database.db, &id).await,
        [
            "inventory.batch.received",
            "inventory.batch.issued",
            "inventory.batch.transferred",
            "inventory.batch.transferred",
            "inventory.batch.adjusted"
        ]
    );
    f.assert_movements_add_up().await;
}

async fn refused_movements_write_nothing(engine: Engine) {
    let f = fixture(engine).await;
    let id = f.receive(spec("KK-1", plus(60), "10")).await;
    let before = (
        f.count("tabHD Batch Movement").await,
        f.count("tabHD Sync Outbox").await,
    );

    assert!(matches!(
        f.store.issue(&id, qty("10.001"), note(""), &f.actor).await,
        Err(InventoryError::BatchShort {
            what: "available",
            field: "qty",
            ..
        })
    ));
    assert!(matches!(
        f.store
            .issue("no-such-batch", qty("1"), note(""), &f.actor)
            .await,
        Err(InventoryError::BatchNotFound(_))
    ));
    assert!(matches!(
        f.store.transfer(&id, qty("1"), &name(STORES), note(""), &f.actor).await,
        Err(InventoryError::InvalidArgument { field, .. }) if field == "to_warehouse"
    ));
    assert!(matches!(
        f.store
            .transfer(&id, qty("1"), &name("Nowhere"), note(""), &f.actor)
            .await,
        Err(InventoryError::WarehouseNotFound(_))
    ));
    assert!(matches!(
        f.store
            .transfer(&id, qty("11"), &name(MUMBAI), note(""), &f.actor)
            .await,
        Err(InventoryError::BatchShort { .. })
    ));
    assert!(matches!(
        f.store.adjust(&id, dec("-10.5"), note(""), &f.actor).await,
        Err(InventoryError::BatchShort { field: "delta", .. })
    ));
    f.store
        .set_quarantine(&id, true, "mould spotted", &f.actor)
        .await
        .unwrap();
    assert!(matches!(
        f.store.issue(&id, qty("1"), note(""), &f.actor).await,
        Err(InventoryError::FailedPrecondition(_))
    ));
    assert_eq!(f.count("tabHD Batch Master").await, 1);
    assert_eq!(f.count("tabHD Batch Movement").await, before.0);
    assert_eq!(f.count("tabHD Sync Outbox").await, before.1 + 1);
    // A quarantined batch may still be written off, and the quarantine lifted.
    let lifted = f
        .store
        .set_quarantine(&id, false, "", &f.actor)
        .await
        .unwrap();
    assert_eq!(lifted.status, BatchStatus::Active);
    f.store
        .issue(&id, qty("10"), note(""), &f.actor)
        .await
        .unwrap();
    assert_eq!(
        f.store.batch(&id).await.unwrap().status,
        BatchStatus::Consumed
    );
    f.assert_movements_add_up().await;
}

async fn fefo_takes_the_earliest_expiry_with_ties_by_manufacture_then_batch_number(engine: Engine) {
    let f = fixture(engine).await;
    let late = f.receive(spec("Z-LATE", plus(90), "5")).await;
    let tie_b = f
        .receive(BatchSpec {
            made: day("2026-11-10"),
            ..spec("B-TIE", plus(40), "5")
        })
        .await;
    let tie_a = f
        .receive(BatchSpec {
            made: day("2026-11-10"),
            ..spec("A-TIE", plus(40), "5")
        })
        .await;
    let older = f
        .receive(BatchSpec {
            made: day("2026-11-05"),
            ..spec("C-OLDER", plus(40), "5")
        })
        .await;
    let soonest = f.receive(spec("D-SOON", plus(20), "5")).await;

    let allocation = f.allocate(request("KAJU-KATLI", "22")).await.unwrap();
    let order: Vec<&str> = allocation.lines.iter().map(|l| l.batch.as_str()).collect();
    assert_eq!(
        order,
        [
            soonest.as_str(),
            older.as_str(),
            tie_a.as_str(),
            tie_b.as_str(),
            late.as_str()
        ]
    );
    let taken: Vec<Decimal> = allocation.lines.iter().map(|l| l.qty).collect();
    assert_eq!(taken, [dec("5"), dec("5"), dec("5"), dec("5"), dec("2")]);
    assert_eq!(allocation.status, AllocationStatus::Reserved);
    let late_batch = f.store.batch(&late).await.unwrap();
    assert_eq!(
        (late_batch.available_qty, late_batch.reserved_qty),
        (dec("3"), dec("2"))
    );
    assert_eq!(
        f.store.allocation(&allocation.id).await.unwrap(),
        allocation
    );
    f.assert_movements_add_up().await;
}

async fn fifo_takes_the_earliest_receipt(engine: Engine) {
    let f = fixture(engine).await;
    let first = f.receive(spec("R-1", plus(90), "4")).await;
    let second = f.receive(spec("R-2", plus(30), "4")).await;
    let allocation = f
        .allocate(AllocationRequest {
            strategy: Strategy::Fifo,
            ..request("KAJU-KATLI", "6")
        })
        .await
        .unwrap();
    let order: Vec<(&str, Decimal)> = allocation
        .lines
        .iter()
        .map(|l| (l.batch.as_str(), l.qty))
        .collect();
    assert_eq!(
        order,
        [(first.as_str(), dec("4")), (second.as_str(), dec("2"))]
    );
    f.assert_movements_add_up().await;
}

async fn allocation_splits_across_batches_and_skips_ineligible_ones(engine: Engine) {
    let f = fixture(engine).await;
    // Ineligible: expires today, quarantined, grade C, too little shelf life,
    // another item, consumed.
    f.receive(spec("EXPIRES-TODAY", as_of(), "100")).await;
    let quarantined = f.receive(spec("HELD", plus(50), "100")).await;
    f.store
        .set_quarantine(&quarantined, true, "lab test pending", &f.actor)
        .await
        .unwrap();
    f.receive(BatchSpec {
        grade: QualityGrade::C,
        ..spec("SECONDS", plus(50), "100")
    })
    .await;
    f.receive(spec("SHORT-LIFE", plus(9), "100")).await;
    f.receive(BatchSpec {
        item: "SOAN-PAPDI",
        ..spec("OTHER-ITEM", plus(50), "100")
    })
    .await;
    // Eligible: grade B with 10 days left, grade A in Mumbai and in Stores.
    let b_grade = f
        .receive(BatchSpec {
            grade: QualityGrade::B,
            ..spec("B-GRADE", plus(10), "3")
        })
        .await;
    let mumbai = f
        .receive(BatchSpec {
            warehouse: MUMBAI,
            ..spec("MUMBAI", plus(12), "4")
        })
        .await;
    let stores = f.receive(spec("STORES", plus(70), "50")).await;

    let picky = AllocationRequest {
        min_shelf_life_days: 10,
        min_grade: QualityGrade::B,
        ..request("KAJU-KATLI", "10")
    };
    let allocation = f.allocate(picky.clone()).await.unwrap();
    let lines: Vec<(&str, Decimal)> = allocation
        .lines
        .iter()
        .map(|l| (l.batch.as_str(), l.qty))
        .collect();
    assert_eq!(
        lines,
        [
            (b_grade.as_str(), dec("3")),
            (mumbai.as_str(), dec("4")),
            (stores.as_str(), dec("3"))
        ]
    );

    // Limited to one warehouse.
    let in_mumbai = AllocationRequest {
        warehouse: Some(name(MUMBAI)),
        ..picky.clone()
    };
    assert!(matches!(
        f.allocate(in_mumbai).await,
        Err(InventoryError::InsufficientStock { available, shortfall, .. })
            if available.is_zero() && shortfall == dec("10")
    ));
    let in_stores = AllocationRequest {
        warehouse: Some(name(STORES)),
        ..picky
    };
    let allocation = f.allocate(in_stores).await.unwrap();
    assert!(allocation.lines.iter().all(|l| l.warehouse == STORES));
    f.assert_movements_add_up().await;
}

async fn a_short_allocation_reserves_nothing(engine: Engine) {
    let f = fixture(engine).await;
    f.receive(spec("A", plus(30), "4")).await;
    f.receive(spec("B", plus(40), "2.5")).await;
    let before = f.count("tabHD Batch Movement").await;
    match f.allocate(request("KAJU-KATLI", "7")).await {
        Err(InventoryError::InsufficientStock {
            requested,
            available,
            shortfall,
            ..
        }) => {
            assert_eq!(
                (requested, available, shortfall),
                (dec("7"), dec("6.5"), dec("0.5"))
            );
        }
        other => panic!("expected a shortfall, got {other:?}"),
    }
    assert!(matches!(
        f.allocate(request("GULAB-JAMUN", "1")).await,
        Err(InventoryError::ItemNotFound(_))
    ));
    assert_eq!(f.count("tabHD Batch Movement").await, before);
    assert_eq!(f.count("tabHD Stock Allocation").await, 0);
    assert_eq!(f.count("tabHD Stock Allocation Line").await, 0);
    let batches = f
        .store
        .list_batches(BatchFilter::default(), 10, "")
        .await
        .unwrap()
        .items;
    assert!(batches.iter().all(|b| b.reserved_qty.is_zero()));
    f.assert_movements_add_up().await;
}

async fn reservations_are_confirmed_released_or_expire(engine: Engine) {
    let f = fixture(engine).await;
    let id = f.receive(spec("A", plus(30), "10")).await;
    let confirmed = f.allocate(request("KAJU-KATLI", "3")).await.unwrap();
    let released = f.allocate(request("KAJU-KATLI", "2")).await.unwrap();
    let lapsing = f
        .allocate(AllocationRequest {
            hold_seconds: 60,
            ..request("KAJU-KATLI", "4")
        })
        .await
        .unwrap();
    let batch = f.store.batch(&id).await.unwrap();
    assert_eq!(
        (batch.available_qty, batch.reserved_qty),
        (dec("1"), dec("9"))
    );

    let done = f
        .store
        .confirm_allocation(&confirmed.id, as_of(), &f.actor)
        .await
        .unwrap();
    assert_eq!(done.status, AllocationStatus::Confirmed);
    // Confirming again changes nothing.
    assert_eq!(
        f.store
            .confirm_allocation(&confirmed.id, as_of(), &f.actor)
            .await
            .unwrap()
            .status,
        AllocationStatus::Confirmed
    );
    f.store
        .release_allocation(&released.id, &f.actor)
        .await
        .unwrap();
    assert!(matches!(
        f.store
            .confirm_allocation(&released.id, as_of(), &f.actor)
            .await,
        Err(InventoryError::FailedPrecondition(_))
    ));
    assert!(matches!(
        f.store.release_allocation("nope", &f.actor).await,
        Err(InventoryError::AllocationNotFound(_))
    ));

    // Nothing is due yet; two minutes on, the one-minute hold has lapsed.
    let now = Utc::now().naive_utc();
    assert!(
        f.store
            .expire_allocations(now, &f.actor)
            .await
            .unwrap()
            .is_empty()
    );
    let expired = f
        .store
        .expire_allocations(now + Duration::minutes(2), &f.actor)
        .await
        .unwrap();
    assert_eq!(
        expired.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        [lapsing.id.as_str()]
    );
    assert_eq!(expired[0].status, AllocationStatus::Expired);
    assert_eq!(
        f.store.allocation(&lapsing.id).await.unwrap().status,
        AllocationStatus::Expired
    );

    let batch = f.store.batch(&id).await.unwrap();
    assert_eq!(
        (batch.available_qty, batch.reserved_qty),
        (dec("7"), dec("0"))
    );
    let kinds = f.movement_kinds(&id).await;
    assert_eq!(
        kinds,
        [
            MovementType::Receipt,
            MovementType::Reservation,
            MovementType::Reservation,
            MovementType::Reservation,
            MovementType::Issue,
            MovementType::Release,
            MovementType::Release
        ]
    );
    assert_eq!(
        fixtures::outbox_events(&f.database.db, &lapsing.id).await,
        [
            "inventory.allocation.reserved",
            "inventory.allocation.expired"
        ]
    );
    f.assert_movements_add_up().await;
}

async fn confirming_refuses_stock_gone_bad_and_lapsed_holds(engine: Engine) {
    let f = fixture(engine).await;
    let id = f.receive(spec("A", plus(30), "10")).await;
    let held = f.allocate(request("KAJU-KATLI", "3")).await.unwrap();
    f.store
        .set_quarantine(&id, true, "metal fragment found", &f.actor)
        .await
        .unwrap();
    let movements = f.count("tabHD Batch Movement").await;
    assert!(matches!(
        f.store.confirm_allocation(&held.id, as_of(), &f.actor).await,
        Err(InventoryError::FailedPrecondition(reason)) if reason.contains("Quarantined")
    ));
    assert_eq!(f.count("tabHD Batch Movement").await, movements);
    // The reservation can still be given back.
    f.store
        .release_allocation(&held.id, &f.actor)
        .await
        .unwrap();
    f.store
        .set_quarantine(&id, false, "", &f.actor)
        .await
        .unwrap();

    // Stock that expires before it is confirmed is not shipped.
    let soon = f.receive(spec("SOON", plus(2), "5")).await;
    let short_lived = AllocationRequest {
        warehouse: Some(name(STORES)),
        ..request("KAJU-KATLI", "12")
    };
    let both = f.allocate(short_lived).await.unwrap();
    assert_eq!(both.lines[0].batch, soon);
    assert!(matches!(
        f.store.confirm_allocation(&both.id, plus(2), &f.actor).await,
        Err(InventoryError::FailedPrecondition(reason)) if reason.contains("expired")
    ));
    f.store
        .release_allocation(&both.id, &f.actor)
        .await
        .unwrap();

    // A hold that has lapsed cannot be confirmed; releasing it after the
    // sweep is a no-op.
    let brief = f
        .allocate(AllocationRequest {
            hold_seconds: 1,
            ..request("KAJU-KATLI", "1")
        })
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert!(matches!(
        f.store.confirm_allocation(&brief.id, as_of(), &f.actor).await,
        Err(InventoryError::FailedPrecondition(reason)) if reason.contains("hold ended")
    ));
    let swept = f
        .store
        .expire_allocations(Utc::now().naive_utc(), &f.actor)
        .await
        .unwrap();
    assert_eq!(swept.len(), 1);
    let released = f
        .store
        .release_allocation(&brief.id, &f.actor)
        .await
        .unwrap();
    assert_eq!(released.status, AllocationStatus::Expired);
    let batch = f.store.batch(&id).await.unwrap();
    assert_eq!(
        (batch.available_qty, batch.reserved_qty),
        (dec("10"), dec("0"))
    );
    f.assert_movements_add_up().await;
}

async fn a_repeated_request_id_returns_the_first_allocation(engine: Engine) {
    let f = fixture(engine).await;
    f.receive(spec("A", plus(30), "10")).await;
    let with_id = AllocationRequest {
        request_id: Some("order-17/line-1".into()),
        ..request("KAJU-KATLI", "4")
    };
    let first = f.allocate(with_id.clone()).await.unwrap();
    let again = f.allocate(with_id.clone()).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(f.count("tabHD Stock Allocation").await, 1);
    // Racing retries of one request reserve once.
    let racing = AllocationRequest {
        request_id: Some("order-18/line-1".into()),
        ..request("KAJU-KATLI", "1")
    };
    let ids = futures::future::join_all((0..6).map(|_| {
        let store = f.store.clone();
        let actor = f.actor.clone();
        let racing = racing.clone();
        tokio::spawn(async move { store.allocate(racing, as_of(), &actor).await.unwrap().id })
    }))
    .await;
    let ids: std::collections::BTreeSet<String> = ids.into_iter().map(Result::unwrap).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(f.count("tabHD Stock Allocation").await, 2);
    let changed = AllocationRequest {
        qty: qty("5"),
        ..with_id
    };
    assert!(matches!(
        f.allocate(changed).await,
        Err(InventoryError::FailedPrecondition(_))
    ));
    f.assert_movements_add_up().await;
}

async fn expiry_levels_switch_at_exactly_seven_and_thirty_days(engine: Engine) {
    let f = fixture(engine).await;
    for days in [0u64, 1, 7, 8, 30, 31] {
        f.receive(spec(&format!("D{days:02}"), plus(days), "1"))
            .await;
    }
    let page = |level| {
        let store = f.store.clone();
        async move {
            let query = ExpiringQuery {
                as_of: as_of(),
                level,
                warehouse: None,
            };
            store
                .list_expiring(query, ExpiryThresholds::default(), 50, "")
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|e| (e.batch.batch_no, e.level, e.days_to_expiry))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        page(None).await,
        [
            ("D00".to_owned(), ExpiryLevel::Expired, 0),
            ("D01".to_owned(), ExpiryLevel::Critical, 1),
            ("D07".to_owned(), ExpiryLevel::Critical, 7),
            ("D08".to_owned(), ExpiryLevel::Warning, 8),
            ("D30".to_owned(), ExpiryLevel::Warning, 30),
        ]
    );
    assert_eq!(page(Some(ExpiryLevel::Critical)).await.len(), 2);
    // Batches further off are not "expiring".
    assert!(page(Some(ExpiryLevel::Ok)).await.is_empty());
    // Paging keeps the order.
    let query = ExpiringQuery {
        as_of: as_of(),
        level: None,
        warehouse: None,
    };
    let first = f
        .store
        .list_expiring(query.clone(), ExpiryThresholds::default(), 3, "")
        .await
        .unwrap();
    assert_eq!(first.items.len(), 3);
    let rest = f
        .store
        .list_expiring(
            query,
            ExpiryThresholds::default(),
            3,
            first.next_token.as_deref().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        rest.items
            .iter()
            .map(|e| e.batch.batch_no.as_str())
            .collect::<Vec<_>>(),
        ["D08", "D30"]
    );
    assert!(rest.next_token.is_none());

    // An item's own thresholds move the boundaries.
    f.store
        .set_expiry_policy(
            &name("KAJU-KATLI"),
            ExpiryThresholds::new(1, 7).unwrap(),
            &f.actor,
        )
        .await
        .unwrap();
    let levels: Vec<_> = page(None)
        .await
        .into_iter()
        .map(|(no, level, _)| (no, level))
        .collect();
    assert_eq!(
        levels,
        [
            ("D00".to_owned(), ExpiryLevel::Expired),
            ("D01".to_owned(), ExpiryLevel::Critical),
            ("D07".to_owned(), ExpiryLevel::Warning),
        ]
    );
}

async fn the_expiry_scan_marks_expired_batches_and_alerts_once_per_level(engine: Engine) {
    let f = fixture(engine).await;
    let gone = f.receive(spec("GONE", day("2026-11-30"), "2")).await;
    let critical = f.receive(spec("CRIT", plus(5), "3")).await;
    let warning = f.receive(spec("WARN", plus(20), "4")).await;
    f.receive(spec("FINE", plus(200), "5")).await;

    let scan = f
        .store
        .expiry_scan(as_of(), ExpiryThresholds::default(), &f.actor)
        .await
        .unwrap();
    assert_eq!(scan.scanned, 3);
    assert_eq!(scan.marked_expired, std::slice::from_ref(&gone));
    let mut alerts: Vec<_> = scan
        .alerts
        .iter()
        .map(|a| (a.batch.clone(), a.level))
        .collect();
    alerts.sort();
    let mut expected = vec![
        (gone.clone(), ExpiryLevel::Expired),
        (critical.clone(), ExpiryLevel::Critical),
        (warning.clone(), ExpiryLevel::Warning),
    ];
    expected.sort();
    assert_eq!(alerts, expected);
    assert_eq!(
        f.store.batch(&gone).await.unwrap().status,
        BatchStatus::Expired
    );

    // Running it again adds nothing.
    let again = f
        .store
        .expiry_scan(as_of(), ExpiryThresholds::default(), &f.actor)
        .await
        .unwrap();
    assert!(again.alerts.is_empty() && again.marked_expired.is_empty());
    assert_eq!(f.count("tabHD Batch Expiry Alert").await, 3);

    // A week later the warning batch is critical, and the critical one,
    // quarantined meanwhile, has expired: it is marked too.
    f.store
        .set_quarantine(&critical, true, "pest inspection", &f.actor)
        .await
        .unwrap();
    let later = f
        .store
        .expiry_scan(plus(13), ExpiryThresholds::default(), &f.actor)
        .await
        .unwrap();
    let raised: Vec<_> = later
        .alerts
        .iter()
        .map(|a| (a.batch.as_str(), a.level))
        .collect();
    assert!(raised.contains(&(warning.as_str(), ExpiryLevel::Critical)));
    assert_eq!(later.marked_expired, std::slice::from_ref(&critical));
    assert_eq!(
        f.store.batch(&critical).await.unwrap().status,
        BatchStatus::Expired
    );
    assert_eq!(
        fixtures::outbox_events(&f.database.db, &gone).await,
        [
            "inventory.batch.received",
            "inventory.batch.expiry_alert",
            "inventory.batch.expired"
        ]
    );
    // An expired batch can only be written off.
    assert!(matches!(
        f.store.issue(&gone, qty("1"), note(""), &f.actor).await,
        Err(InventoryError::FailedPrecondition(_))
    ));
    f.store
        .write_off(&gone, None, WriteOffCause::Expiry, note(""), &f.actor)
        .await
        .unwrap();
    f.assert_movements_add_up().await;
}

async fn storage_breaches_are_flagged_and_optionally_quarantined(engine: Engine) {
    let f = fixture(engine).await;
    let chilled = NewBatch {
        storage: StorageConditions {
            temperature_c: Some(Bounds::new(dec("2"), dec("8"), temperature_limits()).unwrap()),
            humidity_pct: None,
        },
        ..spec("CHILLED", plus(30), "5").build()
    };
    let chilled = f
        .store
        .receive_batch(chilled, &f.actor)
        .await
        .unwrap()
        .batch
        .id;
    let ambient = f.receive(spec("AMBIENT", plus(30), "5")).await;
    let reading = |t: &str| ConditionReading {
        temperature_c: Some(dec(t)),
        humidity_pct: Some(dec("55")),
    };
    let at = Utc::now().naive_utc();

    let fine = f
        .store
        .record_reading(&name(STORES), reading("8"), at, true, &f.actor)
        .await
        .unwrap();
    assert!(fine.breaches.is_empty());
    let warm = f
        .store
        .record_reading(&name(STORES), reading("11.5"), at, false, &f.actor)
        .await
        .unwrap();
    assert_eq!(warm.breaches.len(), 1);
    assert_eq!(warm.breaches[0].batch.id, chilled);
    assert!(warm.breaches[0].breach.temperature && !warm.breaches[0].breach.humidity);
    assert_eq!(
        f.store.batch(&chilled).await.unwrap().status,
        BatchStatus::Active
    );

    let hot = f
        .store
        .record_reading(&name(STORES), reading("14"), at, true, &f.actor)
        .await
        .unwrap();
    assert_eq!(hot.breaches[0].batch.status, BatchStatus::Quarantined);
    assert_eq!(
        f.store.batch(&chilled).await.unwrap().status,
        BatchStatus::Quarantined
    );
    assert_eq!(
        f.store.batch(&ambient).await.unwrap().status,
        BatchStatus::Active
    );
    assert!(matches!(
        f.store
            .record_reading(&name("Nowhere"), reading("5"), at, true, &f.actor)
            .await,
        Err(InventoryError::WarehouseNotFound(_))
    ));
    assert_eq!(f.count("tabHD Storage Condition Reading").await, 3);
    // A quarantined batch is not allocated.
    assert!(matches!(
        f.allocate(AllocationRequest {
            warehouse: Some(name(STORES)),
            ..request("KAJU-KATLI", "6")
        })
        .await,
        Err(InventoryError::InsufficientStock { .. })
    ));
}

async fn a_procurement_trigger_opens_once_and_resolves_when_stock_recovers(engine: Engine) {
    let f = fixture(engine).await;
    let params = ReorderParams {
        reorder_level: dec("5"),
        reorder_qty: dec("20"),
        safety_stock: dec("10"),
        lead_time_days: 5,
        min_qty: dec("0"),
        max_qty: dec("100"),
        consumption_window_days: 30,
    };
    let item = name("KAJU-KATLI");
    let stores = name(STORES);
    f.store
        .set_optimization(&item, &stores, params, &f.actor)
        .await
        .unwrap();
    let id = f.receive(spec("A", plus(60), "100")).await;
    // Soon-expiring stock does not count as usable.
    f.receive(spec("SOON", plus(3), "500")).await;
    // 60 issued over the 30-day window: 2 a day; reorder point 2 × 5 + 10 = 20.
    f.store
        .issue(&id, qty("60"), note(""), &f.actor)
        .await
        .unwrap();
    let evaluate = || {
        f.store
            .evaluate_reorder(Some(&item), Some(&stores), as_of(), &f.actor)
    };

    let healthy = evaluate().await.unwrap();
    assert_eq!(healthy.len(), 1);
    assert_eq!(healthy[0].decision, ReorderDecision::Healthy);
    assert_eq!(healthy[0].optimization.reorder_point, Some(dec("20")));
    assert_eq!(healthy[0].optimization.usable_qty, Some(dec("40")));
    assert_eq!(healthy[0].optimization.avg_daily_issue, Some(dec("2")));

    f.store
        .issue(&id, qty("25"), note(""), &f.actor)
        .await
        .unwrap();
    let opened = evaluate().await.unwrap();
    assert_eq!(opened[0].decision, ReorderDecision::Open);
    let trigger = opened[0].trigger.clone().unwrap();
    assert!(trigger.open);
    assert_eq!(trigger.usable_qty, dec("15"));
    // 85 issued: 2.833333333 a day; point 24.166666665; order up to the maximum.
    assert_eq!(trigger.reorder_point, dec("24.166666665"));
    assert_eq!(trigger.suggested_qty, dec("85"));

    let still = evaluate().await.unwrap();
    assert_eq!(still[0].decision, ReorderDecision::StillOpen);
    assert_eq!(
        still[0].trigger.as_ref().map(|t| t.id.clone()),
        Some(trigger.id.clone())
    );
    assert_eq!(f.count("tabHD Procurement Trigger").await, 1);

    f.receive(spec("RESTOCK", plus(90), "50")).await;
    let resolved = evaluate().await.unwrap();
    assert_eq!(resolved[0].decision, ReorderDecision::Resolve);
    assert!(!resolved[0].trigger.as_ref().unwrap().open);
    assert_eq!(
        fixtures::outbox_events(&f.database.db, &trigger.id).await,
        [
            "inventory.procurement.triggered",
            "inventory.procurement.resolved"
        ]
    );
    let listed = f
        .store
        .procurement_triggers(TriggerFilter::default(), 10, "")
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].open);
    let open = TriggerFilter {
        open_only: true,
        ..TriggerFilter::default()
    };
    assert!(
        f.store
            .procurement_triggers(open, 10, "")
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let stored = f.store.optimization(&item, &stores).await.unwrap();
    assert_eq!(stored.reorder_point, resolved[0].optimization.reorder_point);
    assert!(matches!(
        f.store.optimization(&item, &name(MUMBAI)).await,
        Err(InventoryError::OptimizationNotFound { .. })
    ));
    // With no maximum, the minimum stock still floors the reorder point.
    let floor_only = ReorderParams {
        reorder_level: dec("0"),
        reorder_qty: dec("10"),
        safety_stock: dec("0"),
        lead_time_days: 2,
        min_qty: dec("25"),
        max_qty: dec("0"),
        consumption_window_days: 30,
    };
    f.store
        .set_optimization(&item, &name(MUMBAI), floor_only, &f.actor)
        .await
        .unwrap();
    let mumbai = f
        .store
        .evaluate_reorder(Some(&item), Some(&name(MUMBAI)), as_of(), &f.actor)
        .await
        .unwrap();
    assert_eq!(mumbai[0].optimization.reorder_point, Some(dec("25")));
    assert_eq!(mumbai[0].decision, ReorderDecision::Open);
    assert_eq!(mumbai[0].trigger.as_ref().unwrap().suggested_qty, dec("25"));
    // Every configured pair is evaluated when none is named.
    assert_eq!(
        f.store
            .evaluate_reorder(None, None, as_of(), &f.actor)
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn the_stock_position_buckets_each_warehouse_by_expiry(engine: Engine) {
    let f = fixture(engine).await;
    f.receive(spec("S-CRIT", plus(3), "2")).await;
    f.receive(spec("S-OK", plus(100), "10")).await;
    f.receive(BatchSpec {
        warehouse: MUMBAI,
        ..spec("M-WARN", plus(15), "4")
    })
    .await;
    let held = f
        .receive(BatchSpec {
            warehouse: DELHI,
            ..spec("D-HELD", plus(100), "6")
        })
        .await;
    f.store
        .set_quarantine(&held, true, "pest control", &f.actor)
        .await
        .unwrap();
    f.allocate(AllocationRequest {
        warehouse: Some(name(STORES)),
        ..request("KAJU-KATLI", "3")
    })
    .await
    .unwrap();

    let position = f
        .store
        .stock_position(&name("KAJU-KATLI"), as_of(), ExpiryThresholds::default())
        .await
        .unwrap();
    let by_name = |w: &str| {
        position
            .warehouses
            .iter()
            .find(|p| p.warehouse == w)
            .cloned()
            .unwrap()
    };
    let stores = by_name(STORES);
    assert_eq!((stores.available, stores.reserved), (dec("9"), dec("3")));
    assert_eq!(
        (stores.buckets.critical, stores.buckets.ok),
        (dec("2"), dec("10"))
    );
    assert_eq!(by_name(MUMBAI).buckets.warning, dec("4"));
    assert_eq!(by_name(DELHI).quarantined, dec("6"));
    assert_eq!(by_name(DELHI).available, Decimal::ZERO);
    assert_eq!(position.total.available, dec("13"));
    assert!(matches!(
        f.store
            .stock_position(&name("GULAB-JAMUN"), as_of(), ExpiryThresholds::default())
            .await,
        Err(InventoryError::ItemNotFound(_))
    ));
}

async fn concurrent_allocations_never_oversell(engine: Engine) {
    let f = fixture(engine).await;
    for (i, warehouse) in [STORES, MUMBAI, DELHI, STORES, MUMBAI].iter().enumerate() {
        f.receive(BatchSpec {
            warehouse,
            ..spec(&format!("C-{i}"), plus(20 + i as u64), "10")
        })
        .await;
    }
    let clients = 24;
    let results = futures::future::join_all((0..clients).map(|i| {
        let store = f.store.clone();
        let actor = f.actor.clone();
        let strategy = if i % 3 == 0 {
            Strategy::Fifo
        } else {
            Strategy::Fefo
        };
        tokio::spawn(async move {
            store
                .allocate(
                    AllocationRequest {
                        strategy,
                        ..request("KAJU-KATLI", "3")
                    },
                    as_of(),
                    &actor,
                )
                .await
        })
    }))
    .await;
    let mut reserved = Decimal::ZERO;
    let mut refused = 0;
    for result in results {
        match result.unwrap() {
            Ok(allocation) => {
                let lines: Decimal = allocation.lines.iter().map(|l| l.qty).sum();
                assert_eq!(lines, dec("3"));
                let stored = f.store.allocation(&allocation.id).await.unwrap();
                assert_eq!(stored.lines, allocation.lines);
                reserved += lines;
            }
            Err(InventoryError::InsufficientStock { .. }) => refused += 1,
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    // 50 in stock, 3 per request: 16 fit, the other 8 are refused whole.
    assert_eq!(reserved, dec("48"));
    assert_eq!(refused, 8);
    let batches = f
        .store
        .list_batches(BatchFilter::default(), 10, "")
        .await
        .unwrap()
        .items;
    let held: Decimal = batches.iter().map(|b| b.reserved_qty).sum();
    let free: Decimal = batches.iter().map(|b| b.available_qty).sum();
    assert_eq!((held, free), (dec("48"), dec("2")));
    assert_eq!(f.count("tabHD Stock Allocation").await, 16);
    f.assert_movements_add_up().await;
}

async fn movements_are_append_only_and_partitioned_ahead(engine: Engine) {
    let f = fixture(engine).await;
    f.receive(spec("A", plus(30), "1")).await;
    let pool = f.database.db.erp_pool().unwrap();
    let update = erp_dispatch!(&pool, pool => {
        sqlx::query("UPDATE `tabHD Batch Movement` SET `reason` = 'edited'").execute(pool).await.map(|_| ())
    });
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = erp_dispatch!(&pool, pool => {
        sqlx::query("DELETE FROM `tabHD Batch Movement`").execute(pool).await.map(|_| ())
    });
    assert!(delete.unwrap_err().to_string().contains("append-only"));

    let added = f
        .store
        .ensure_movement_partitions(day("2027-02-15"))
        .await
        .unwrap();
    match engine {
        Engine::MySql => {
            assert_eq!(added, ["p202611", "p202612", "p202701", "p202702"]);
            // Running it again adds nothing; a later horizon adds the gap.
            assert!(
                f.store
                    .ensure_movement_partitions(day("2027-01-01"))
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(
                f.store
                    .ensure_movement_partitions(day("2027-03-01"))
                    .await
                    .unwrap(),
                ["p202703"]
            );
            // The existing row moved into its month's partition and is still there.
            assert_eq!(f.count("tabHD Batch Movement").await, 1);
        }
        _ => assert!(added.is_empty()),
    }
}

async fn several_requests_are_reserved_together_or_not_at_all(engine: Engine) {
    let f = fixture(engine).await;
    let kaju = f.receive(spec("KK-1", plus(40), "10")).await;
    let soan = f
        .receive(BatchSpec {
            item: "SOAN-PAPDI",
            ..spec("SP-1", plus(40), "3")
        })
        .await;
    let with_id = |item: &str, amount: &str, id: &str| AllocationRequest {
        request_id: Some(id.into()),
        ..request(item, amount)
    };
    // The second line cannot be had: nothing is reserved, and the error
    // names it.
    let error = f
        .store
        .allocate_all(
            vec![
                with_id("SOAN-PAPDI", "2", "o/0"),
                with_id("KAJU-KATLI", "11", "o/1"),
            ],
            as_of(),
            &f.actor,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, InventoryError::AtLine { index: 1, error } if matches!(**error, InventoryError::InsufficientStock { .. })),
        "{error:?}"
    );
    assert_eq!(
        f.store.batch(&soan).await.unwrap().reserved_qty,
        Decimal::ZERO
    );
    assert_eq!(f.count("tabHD Stock Allocation").await, 0);

    // Both can be had: both reserved in one transaction, in the asked order.
    let lines = vec![
        with_id("SOAN-PAPDI", "2", "p/0"),
        with_id("KAJU-KATLI", "4", "p/1"),
    ];
    let made = f
        .store
        .allocate_all(lines.clone(), as_of(), &f.actor)
        .await
        .unwrap();
    assert_eq!(
        made.iter()
            .map(|a| a.item_code.as_str())
            .collect::<Vec<_>>(),
        vec!["SOAN-PAPDI", "KAJU-KATLI"]
    );
    assert!(made.iter().all(|a| a.status == AllocationStatus::Reserved));
    assert_eq!(
        f.store.batch(&kaju).await.unwrap().reserved_qty,
        Decimal::from(4)
    );
    // Asked again: the same allocations, nothing more reserved.
    let again = f
        .store
        .allocate_all(lines, as_of(), &f.actor)
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        made.iter().map(|a| a.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(
        f.store.batch(&kaju).await.unwrap().reserved_qty,
        Decimal::from(4)
    );
    f.assert_movements_add_up().await;
}
