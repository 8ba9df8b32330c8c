//! The placement saga's behaviour, on SQLite and on MariaDB from one
//! suite, against in-memory stand-ins of the Customer, Pricing and
//! Inventory services that keep stock and quotes and can be made to fail:
//! a placed order carries prices, reservations and one event; a failing
//! step leaves every service as it was; a repeated key places one order
//! (also under concurrent retries); an order interrupted at any step is
//! finished or rolled back by recovery; cancel and fulfil move stock.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    collections::HashMap,
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::NaiveDate;
use harsha_mesh::client::CallContext;
use harsha_order::{
    OrderConfig, OrderError, OrderStore, Saga, SqlOrderStore,
    domain::{
        CustomerFacts, Order, OrderLine, OrderRequest, OrderStatus, Pricing, RawLine,
        ReservedBatch, SagaStep,
    },
    services::{Downstream, Quoted, Reservation, Reserve},
    store::{Save, now},
};
use harsha_store::Engine;
use harsha_testkit::{TestDatabase, fixtures};
use rust_decimal::Decimal;
use tonic::{Code, Status};

harsha_testkit::on_every_engine!(
    a_placed_order_carries_prices_reservations_and_one_event,
    a_repeated_key_returns_the_first_result_and_places_one_order,
    a_key_reused_for_another_order_is_refused,
    a_failing_reservation_releases_the_others_and_leaves_stock_as_it_was,
    an_unreachable_service_fails_the_order_before_anything_is_kept,
    refused_customers_reserve_nothing,
    recovery_rolls_back_an_order_interrupted_while_reserving,
    recovery_places_an_order_whose_quote_was_applied,
    recovery_rolls_back_an_order_whose_quote_cannot_be_applied,
    a_rollback_waits_for_inventory_and_recovery_finishes_it,
    a_reservation_whose_answer_was_lost_is_found_and_released,
    a_key_sent_again_after_a_passing_failure_places_the_order,
    a_cancellation_inventory_refuses_leaves_the_order_placed,
    cancel_releases_stock_and_records_a_reversal,
    fulfil_issues_stock_and_only_placed_orders_move,
    orders_list_by_customer_status_and_time,
);

fn d(value: &str) -> Decimal {
    Decimal::from_str(value).unwrap()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    Reserved,
    Released,
    Issued,
}

#[derive(Default)]
struct Services {
    stock: HashMap<String, Decimal>,
    /// request id → (allocation id, item, qty, state)
    reservations: HashMap<String, (String, String, Decimal, Held)>,
    /// quote id → applied to
    quotes: HashMap<String, Option<String>>,
    customers: HashMap<String, CustomerFacts>,
    /// step → the status it fails with
    failing: HashMap<&'static str, Status>,
    /// item → the status its reservation fails with
    failing_items: HashMap<String, Status>,
    /// item → how many more of its reservations are made but answered
    /// with a timeout (the answer lost on the way back)
    losing: HashMap<String, u32>,
}

#[derive(Default)]
struct Fake(Mutex<Services>);

impl Fake {
    fn with_stock(items: &[(&str, &str)]) -> Arc<Self> {
        let fake = Self::default();
        {
            let mut s = fake.0.lock().unwrap();
            for (item, qty) in items {
                s.stock.insert((*item).to_owned(), d(qty));
            }
            s.customers.insert(
                "CUST-1".into(),
                CustomerFacts {
                    primary_segment: Some("RETAIL".into()),
                    territory: Some("Bengaluru".into()),
                    price_tier: None,
                    disabled: false,
                },
            );
            s.customers
                .insert("NO-SEGMENT".into(), CustomerFacts::default());
            s.customers.insert(
                "DISABLED".into(),
                CustomerFacts {
                    disabled: true,
                    ..CustomerFacts::default()
                },
            );
        }
        Arc::new(fake)
    }

    fn fail(&self, step: &'static str, status: Status) {
        self.0.lock().unwrap().failing.insert(step, status);
    }

    fn heal(&self, step: &'static str) {
        self.0.lock().unwrap().failing.remove(step);
    }

    fn stock(&self, item: &str) -> Decimal {
        self.0.lock().unwrap().stock[item]
    }

    fn held(&self) -> Vec<(String, Held)> {
        let mut held: Vec<(String, Held)> = self
            .0
            .lock()
            .unwrap()
            .reservations
            .iter()
            .map(|(k, v)| (k.clone(), v.3.clone()))
            .collect();
        held.sort_by(|a, b| a.0.cmp(&b.0));
        held
    }

    fn reserved_count(&self) -> usize {
        self.held()
            .iter()
            .filter(|(_, h)| *h == Held::Reserved)
            .count()
    }

    fn applied(&self, quote: &str) -> Option<String> {
        self.0.lock().unwrap().quotes.get(quote).cloned().flatten()
    }

    fn check(&self, step: &'static str) -> Result<(), Status> {
        match self.0.lock().unwrap().failing.get(step) {
            Some(status) => Err(status.clone()),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Downstream for Fake {
    async fn customer(
        &self,
        _: &CallContext,
        customer: &str,
        _: NaiveDate,
    ) -> Result<CustomerFacts, Status> {
        self.check("customer")?;
        self.0
            .lock()
            .unwrap()
            .customers
            .get(customer)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("customer {customer:?} not found")))
    }

    async fn quote(
        &self,
        _: &CallContext,
        _: &str,
        _: &str,
        lines: &[OrderLine],
    ) -> Result<Quoted, Status> {
        self.check("pricing")?;
        let mut priced = Vec::new();
        let mut total = Decimal::ZERO;
        for (i, line) in lines.iter().enumerate() {
            if !self.0.lock().unwrap().stock.contains_key(&line.item_code) {
                return Err(Status::invalid_argument(format!(
                    "lines[{i}].item_code: item {:?} not found",
                    line.item_code
                )));
            }
            let net = line.qty * d("100");
            total += net;
            priced.push((
                Pricing {
                    price_list: "Standard Selling".into(),
                    base_rate: d("100"),
                    unit_price: d("100"),
                    gross_amount: net,
                    net_amount: net,
                    discount_amount: Decimal::ZERO,
                    applied_rules: Vec::new(),
                },
                "Kg".into(),
            ));
        }
        let id = uuid::Uuid::now_v7().to_string();
        self.0.lock().unwrap().quotes.insert(id.clone(), None);
        Ok(Quoted {
            quote_id: id,
            currency: "INR".into(),
            subtotal: total,
            total_discount: Decimal::ZERO,
            total,
            price_tier: None,
            lines: priced,
        })
    }

    async fn reserve(
        &self,
        _: &CallContext,
        lines: Vec<Reserve>,
    ) -> Result<Vec<Reservation>, Status> {
        self.check("inventory")?;
        // A little latency, so concurrent placements overlap.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut s = self.0.lock().unwrap();
        let mut lose = false;
        for line in &lines {
            if let Some(left) = s.losing.get_mut(&line.item_code)
                && *left > 0
            {
                *left -= 1;
                lose = true;
            }
        }
        // All or nothing, as the Inventory service does it: check every
        // line before taking anything.
        let mut wanted: HashMap<String, Decimal> = HashMap::new();
        for (i, line) in lines.iter().enumerate() {
            if let Some(status) = s.failing_items.get(&line.item_code) {
                return Err(Status::new(
                    status.code(),
                    format!("lines[{i}]: {}", status.message()),
                ));
            }
            if s.reservations.contains_key(&line.request_id) {
                continue;
            }
            let want = wanted.entry(line.item_code.clone()).or_default();
            *want += line.qty;
            let available = s.stock.get(&line.item_code).copied().unwrap_or_default();
            if available < *want {
                return Err(Status::failed_precondition(format!(
                    "lines[{i}]: not enough stock of {:?}: asked for {}, {} eligible",
                    line.item_code, line.qty, available
                )));
            }
        }
        let mut made = Vec::with_capacity(lines.len());
        for line in lines {
            if let Some((id, item, qty, _)) = s.reservations.get(&line.request_id) {
                made.push(reservation(id, item, *qty));
                continue;
            }
            let available = s.stock[&line.item_code];
            s.stock.insert(line.item_code.clone(), available - line.qty);
            let id = uuid::Uuid::now_v7().to_string();
            s.reservations.insert(
                line.request_id,
                (id.clone(), line.item_code.clone(), line.qty, Held::Reserved),
            );
            made.push(reservation(&id, &line.item_code, line.qty));
        }
        if lose {
            return Err(Status::deadline_exceeded("no answer within 5000 ms"));
        }
        Ok(made)
    }

    async fn release(&self, _: &CallContext, allocation_id: &str) -> Result<(), Status> {
        self.check("release")?;
        let mut s = self.0.lock().unwrap();
        let found = s
            .reservations
            .values_mut()
            .find(|(id, ..)| id == allocation_id)
            .map(|(_, item, qty, held)| {
                let back = *held == Held::Reserved;
                if back {
                    *held = Held::Released;
                }
                (item.clone(), *qty, back)
            });
        match found {
            Some((item, qty, true)) => {
                *s.stock.get_mut(&item).unwrap() += qty;
                Ok(())
            }
            Some(_) => Ok(()),
            None => Err(Status::not_found("no such allocation")),
        }
    }

    async fn issue(&self, _: &CallContext, allocation_id: &str) -> Result<(), Status> {
        self.check("issue")?;
        let mut s = self.0.lock().unwrap();
        match s
            .reservations
            .values_mut()
            .find(|(id, ..)| id == allocation_id)
        {
            Some((.., held)) if *held == Held::Released => {
                Err(Status::failed_precondition("the allocation was released"))
            }
            Some((.., held)) => {
                *held = Held::Issued;
                Ok(())
            }
            None => Err(Status::not_found("no such allocation")),
        }
    }

    async fn apply_quote(&self, _: &CallContext, quote: &str, order: &str) -> Result<(), Status> {
        self.check("apply")?;
        let mut s = self.0.lock().unwrap();
        match s.quotes.get_mut(quote) {
            Some(applied) => {
                applied.get_or_insert_with(|| order.to_owned());
                Ok(())
            }
            None => Err(Status::not_found(format!("quote {quote:?} not found"))),
        }
    }
}

fn reservation(id: &str, item: &str, qty: Decimal) -> Reservation {
    Reservation {
        allocation_id: id.to_owned(),
        batches: vec![ReservedBatch {
            batch_id: format!("batch-of-{item}"),
            batch_no: "B-1".into(),
            warehouse: "Stores - HD".into(),
            expiry_date: NaiveDate::from_ymd_opt(2030, 1, 1).unwrap(),
            quality_grade: 1,
            qty,
        }],
    }
}

struct Fixture {
    database: TestDatabase,
    store: Arc<dyn OrderStore>,
    fake: Arc<Fake>,
    saga: Arc<Saga>,
}

async fn fixture(engine: Engine) -> Fixture {
    let database = TestDatabase::erp(engine).await;
    let store: Arc<dyn OrderStore> = Arc::new(SqlOrderStore::new(database.db.erp_pool().unwrap()));
    let fake = Fake::with_stock(&[("KAJU-KATLI", "10"), ("LADDU", "5")]);
    let saga = Arc::new(Saga::new(
        Arc::clone(&store),
        Arc::clone(&fake) as Arc<dyn Downstream>,
        OrderConfig::default(),
    ));
    Fixture {
        database,
        store,
        fake,
        saga,
    }
}

fn request(customer: &str, key: &str, lines: &[(&str, &str)]) -> OrderRequest {
    let raw: Vec<RawLine<'_>> = lines
        .iter()
        .map(|(item, qty)| RawLine {
            item_code: item,
            qty,
            uom: "",
        })
        .collect();
    OrderRequest::parse(customer, "ecommerce", "", key, &raw).unwrap()
}

async fn place(f: &Fixture, key: &str, lines: &[(&str, &str)]) -> Result<Order, OrderError> {
    f.saga
        .place(
            request("CUST-1", key, lines),
            "sales1",
            CallContext::default(),
        )
        .await
        .map(|p| p.order)
}

async fn a_placed_order_carries_prices_reservations_and_one_event(engine: Engine) {
    let f = fixture(engine).await;
    let order = place(&f, "k-1", &[("KAJU-KATLI", "2.5"), ("LADDU", "1")])
        .await
        .unwrap();
    assert_eq!(order.status, OrderStatus::Placed);
    assert_eq!(order.total, Some(d("350")));
    assert_eq!(order.primary_segment.as_deref(), Some("RETAIL"));
    assert!(
        order
            .lines
            .iter()
            .all(|l| l.allocation_id.is_some() && !l.batches.is_empty())
    );
    assert_eq!(order.lines[0].uom.as_deref(), Some("Kg"));
    assert_eq!(f.fake.stock("KAJU-KATLI"), d("7.5"));
    assert_eq!(f.fake.reserved_count(), 2);
    assert_eq!(
        f.fake
            .applied(order.quote_id.as_deref().unwrap())
            .as_deref(),
        Some(order.id.as_str())
    );
    let stored = f.store.order(&order.id).await.unwrap();
    assert_eq!(stored.lines, order.lines, "lines are kept as placed");
    assert_eq!(stored.total, order.total);
    assert_eq!(
        fixtures::outbox_events(&f.database.db, &order.id).await,
        vec!["order.placed"]
    );
    let log: Vec<String> = f
        .store
        .saga_log(&order.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.saga_step)
        .collect();
    assert_eq!(
        log,
        vec!["reserving", "applying", "done"],
        "recorded once checked and priced"
    );
}

async fn a_repeated_key_returns_the_first_result_and_places_one_order(engine: Engine) {
    let f = fixture(engine).await;
    let tries = (0..8).map(|_| {
        let saga = Arc::clone(&f.saga);
        tokio::spawn(async move {
            saga.place(
                request("CUST-1", "same-key", &[("KAJU-KATLI", "1")]),
                "sales1",
                CallContext::default(),
            )
            .await
        })
    });
    let answers = futures::future::join_all(tries).await;
    let mut ids = Vec::new();
    let mut fresh = 0;
    for answer in answers {
        match answer.unwrap() {
            Ok(placement) => {
                assert_eq!(placement.order.status, OrderStatus::Placed);
                fresh += usize::from(!placement.replayed);
                ids.push(placement.order.id);
            }
            // A retry that loses the race to record the key is told to
            // try again; it never places a second order.
            Err(OrderError::Aborted(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(!ids.is_empty());
    ids.dedup();
    assert_eq!(ids.len(), 1, "one order for one key");
    assert_eq!(fresh, 1);
    assert_eq!(f.fake.stock("KAJU-KATLI"), d("9"), "stock reserved once");
    assert_eq!(fixtures::row_count(&f.database.db, "tabHD Order").await, 1);
    let again = place(&f, "same-key", &[("KAJU-KATLI", "1.0")])
        .await
        .unwrap();
    assert_eq!(again.id, ids[0]);
}

async fn a_key_reused_for_another_order_is_refused(engine: Engine) {
    let f = fixture(engine).await;
    place(&f, "k", &[("KAJU-KATLI", "1")]).await.unwrap();
    let error = place(&f, "k", &[("KAJU-KATLI", "2")]).await.unwrap_err();
    assert!(
        matches!(&error, OrderError::InvalidArgument { field, .. } if field == "idempotency_key"),
        "{error:?}"
    );
    // Another caller may use the same key for its own order.
    let other = f
        .saga
        .place(
            request("CUST-1", "k", &[("KAJU-KATLI", "2")]),
            "crm",
            CallContext::default(),
        )
        .await
        .unwrap();
    assert!(!other.replayed);
}

async fn a_failing_reservation_releases_the_others_and_leaves_stock_as_it_was(engine: Engine) {
    let f = fixture(engine).await;
    let error = place(&f, "k", &[("KAJU-KATLI", "4"), ("LADDU", "50")])
        .await
        .unwrap_err();
    let OrderError::Placement(failure) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(failure.code, Code::FailedPrecondition as i32);
    assert!(
        failure
            .message
            .starts_with("lines[1] (LADDU): not enough stock"),
        "{}",
        failure.message
    );
    assert_eq!(
        f.fake.stock("KAJU-KATLI"),
        d("10"),
        "the first line's stock is back"
    );
    assert_eq!(f.fake.stock("LADDU"), d("5"));
    assert_eq!(f.fake.reserved_count(), 0);
    let orders = f
        .store
        .list(&Default::default(), 10, "")
        .await
        .unwrap()
        .items;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].status, OrderStatus::Failed);
    assert_eq!(orders[0].saga_step, SagaStep::Done);
    assert!(
        fixtures::outbox_events(&f.database.db, &orders[0].id)
            .await
            .is_empty(),
        "no event for a failed order"
    );
    assert!(
        f.fake
            .applied(orders[0].quote_id.as_deref().unwrap())
            .is_none(),
        "nothing applied"
    );
    // The same key gets the same failure, and changes nothing.
    let replay = place(&f, "k", &[("KAJU-KATLI", "4"), ("LADDU", "50")])
        .await
        .unwrap_err();
    assert_eq!(replay.to_string(), error.to_string());
    assert_eq!(f.fake.reserved_count(), 0);
}

async fn an_unreachable_service_fails_the_order_before_anything_is_kept(engine: Engine) {
    let f = fixture(engine).await;
    f.fake.fail(
        "pricing",
        Status::unavailable(
            "harsha.pricing.v1.PricingService at http://x is failing (circuit open)",
        ),
    );
    let error = place(&f, "k", &[("KAJU-KATLI", "1")]).await.unwrap_err();
    let OrderError::Placement(failure) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(failure.code, Code::Unavailable as i32);
    assert!(
        failure
            .message
            .contains("the pricing service could not price the order"),
        "{}",
        failure.message
    );
    assert!(failure.message.contains("circuit open"));
    assert_eq!(f.fake.reserved_count(), 0);
    assert_eq!(f.fake.stock("KAJU-KATLI"), d("10"));

    f.fake.heal("pricing");
    f.fake.fail(
        "inventory",
        Status::deadline_exceeded("no answer within 5000 ms"),
    );
    let error = place(&f, "k2", &[("KAJU-KATLI", "1"), ("LADDU", "1")])
        .await
        .unwrap_err();
    let OrderError::Placement(failure) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(failure.code, Code::DeadlineExceeded as i32);
    assert_eq!(f.fake.reserved_count(), 0);
}

async fn refused_customers_reserve_nothing(engine: Engine) {
    let f = fixture(engine).await;
    let cases = [
        ("NOBODY", Code::InvalidArgument, "customer: "),
        (
            "DISABLED",
            Code::FailedPrecondition,
            "customer DISABLED is disabled",
        ),
    ];
    for (customer, code, message) in cases {
        let error = f
            .saga
            .place(
                request(customer, customer, &[("KAJU-KATLI", "1")]),
                "s",
                CallContext::default(),
            )
            .await
            .unwrap_err();
        let OrderError::Placement(failure) = &error else {
            panic!("{error:?}")
        };
        assert_eq!(failure.code, code as i32, "{customer}");
        assert!(failure.message.starts_with(message), "{}", failure.message);
    }
    // Wholesale is priced by segment: a customer without a primary one is refused.
    let raw = [RawLine {
        item_code: "KAJU-KATLI",
        qty: "1",
        uom: "",
    }];
    let wholesale = OrderRequest::parse("NO-SEGMENT", "wholesale", "", "w", &raw).unwrap();
    let error = f
        .saga
        .place(wholesale, "s", CallContext::default())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("has no primary segment"),
        "{error}"
    );
    let retail = OrderRequest::parse("NO-SEGMENT", "ecommerce", "", "r", &raw).unwrap();
    f.saga
        .place(retail, "s", CallContext::default())
        .await
        .unwrap();
    assert_eq!(f.fake.reserved_count(), 1, "only the retail order reserved");
}

/// Records `order` as a process that died after `step` would have left it:
/// its lease already over.
async fn interrupted(f: &Fixture, order: &mut Order, step: SagaStep) {
    order.saga_step = step;
    f.store
        .save(
            order,
            Save {
                lease_until: now() - chrono::Duration::seconds(1),
                actor: "sales1",
                detail: "test: the process stops here",
                lines: true,
                event: None,
            },
        )
        .await
        .unwrap();
}

async fn pending(f: &Fixture, key: &str, lines: &[(&str, &str)]) -> Order {
    let order = Order::new(
        format!("HD-ORD-{key}"),
        &request("CUST-1", key, lines),
        "sales1",
        now(),
    );
    f.store.insert(&order, now()).await.unwrap();
    f.store.order(&order.id).await.unwrap()
}

async fn recovery_rolls_back_an_order_interrupted_while_reserving(engine: Engine) {
    let f = fixture(engine).await;
    let mut order = pending(&f, "crash-1", &[("KAJU-KATLI", "3"), ("LADDU", "2")]).await;
    // The reservations were made, but the process died before it heard.
    let lines = order
        .lines
        .iter()
        .map(|line| Reserve {
            request_id: order.reservation_request_id(line),
            order_id: order.id.clone(),
            item_code: line.item_code.clone(),
            qty: line.qty,
            warehouse: None,
            min_shelf_life_days: 1,
            hold_seconds: 60,
        })
        .collect();
    f.fake
        .reserve(&CallContext::default(), lines)
        .await
        .unwrap();
    interrupted(&f, &mut order, SagaStep::Reserving).await;
    assert_eq!(f.fake.stock("KAJU-KATLI"), d("7"));
    assert_eq!(f.fake.stock("LADDU"), d("3"));

    assert_eq!(f.saga.recover().await.unwrap(), 1);
    let after = f.store.order(&order.id).await.unwrap();
    assert_eq!(after.status, OrderStatus::Failed);
    assert_eq!(after.failure.as_ref().unwrap().code, Code::Aborted as i32);
    assert_eq!(f.fake.stock("KAJU-KATLI"), d("10"));
    assert_eq!(f.fake.stock("LADDU"), d("5"));
    assert_eq!(f.fake.reserved_count(), 0);
    assert!(
        fixtures::outbox_events(&f.database.db, &order.id)
            .await
            .is_empty()
    );
    assert_eq!(f.saga.recover().await.unwrap(), 0, "nothing left to do");
}

async fn recovery_places_an_order_whose_quote_was_applied(engine: Engine) {
    let f = fixture(engine).await;
    // Run a real placement up to the apply step, then lose the answer: the
    // quote is applied but the process dies before recording it.
    f.fake
        .fail("apply", Status::unavailable("connection reset"));
    let error = place(&f, "crash-2", &[("KAJU-KATLI", "2")])
        .await
        .unwrap_err();
    assert!(matches!(error, OrderError::Unavailable(_)), "{error:?}");
    let order = f
        .store
        .list(&Default::default(), 1, "")
        .await
        .unwrap()
        .items
        .remove(0);
    assert_eq!(
        (order.status, order.saga_step),
        (OrderStatus::Pending, SagaStep::Applying)
    );
    // The retry of the same key while the order is unsettled waits, then
    // says so.
    f.fake.heal("apply");
    f.fake
        .apply_quote(
            &CallContext::default(),
            order.quote_id.as_deref().unwrap(),
            &order.id,
        )
        .await
        .unwrap();
    let mut order = order;
    interrupted(&f, &mut order, SagaStep::Applying).await;

    assert_eq!(f.saga.recover().await.unwrap(), 1);
    let after = f.store.order(&order.id).await.unwrap();
    assert_eq!(after.status, OrderStatus::Placed);
    assert_eq!(f.fake.stock("KAJU-KATLI"), d("8"), "the reservation stands");
    assert_eq!(
        fixtures::outbox_events(&f.database.db, &order.id).await,
        vec!["order.placed"]
    );
    let replay = place(&f, "crash-2", &[("KAJU-KATLI", "2")]).await.unwrap();
    assert_eq!(replay.id, order.id);
}

async fn recovery_rolls_back_an_order_whose_quote_cannot_be_applied(engine: Engine) {
    let f = fixture(engine).await;
    let mut order = pending(&f, "crash-3", &[("LADDU", "2")]).await;
    let line = order.lines[0].clone();
    let reservation = f
        .fake
        .reserve(
            &CallContext::default(),
            vec![Reserve {
                request_id: order.reservation_request_id(&line),
                order_id: order.id.clone(),
                item_code: line.item_code.clone(),
                qty: line.qty,
                warehouse: None,
                min_shelf_life_days: 1,
                hold_seconds: 60,
            }],
        )
        .await
        .unwrap()
        .remove(0);
    order.lines[0].allocation_id = Some(reservation.allocation_id);
    // A quote the pricing service does not know (it expired and was purged).
    order.quote_id = Some("gone".into());
    interrupted(&f, &mut order, SagaStep::Applying).await;

    assert_eq!(f.saga.recover().await.unwrap(), 1);
    let after = f.store.order(&order.id).await.unwrap();
    assert_eq!(after.status, OrderStatus::Failed);
    assert_eq!(f.fake.stock("LADDU"), d("5"));
    assert!(
        fixtures::outbox_events(&f.database.db, &order.id)
            .await
            .is_empty()
    );
}

async fn a_rollback_waits_for_inventory_and_recovery_finishes_it(engine: Engine) {
    let f = fixture(engine).await;
    f.fake
        .fail("release", Status::unavailable("inventory is down"));
    // The stock is reserved, then the price cannot be confirmed.
    f.fake
        .fail("apply", Status::failed_precondition("quote 42 expired"));
    let error = place(&f, "k", &[("KAJU-KATLI", "4"), ("LADDU", "1")])
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("quote 42 expired"),
        "the caller hears the cause: {error}"
    );
    let mut order = f
        .store
        .list(&Default::default(), 1, "")
        .await
        .unwrap()
        .items
        .remove(0);
    assert_eq!(
        (order.status, order.saga_step),
        (OrderStatus::Pending, SagaStep::Compensating)
    );
    assert_eq!(f.fake.stock("KAJU-KATLI"), d("6"), "not released yet");
    // Its retry answers with the failure at once.
    let replay = place(&f, "k", &[("KAJU-KATLI", "4"), ("LADDU", "1")])
        .await
        .unwrap_err();
    assert_eq!(replay.to_string(), error.to_string());

    f.fake.heal("release");
    interrupted(&f, &mut order, SagaStep::Compensating).await;
    assert_eq!(f.saga.recover().await.unwrap(), 1);
    assert_eq!(
        f.store.order(&order.id).await.unwrap().status,
        OrderStatus::Failed
    );
    assert_eq!(f.fake.stock("KAJU-KATLI"), d("10"));
}

async fn cancel_releases_stock_and_records_a_reversal(engine: Engine) {
    let f = fixture(engine).await;
    let order = place(&f, "k", &[("KAJU-KATLI", "3")]).await.unwrap();
    let cx = CallContext::default();
    let cancelled = f
        .saga
        .cancel(
            &order.id,
            Some("customer changed their mind".into()),
            "crm",
            &cx,
        )
        .await
        .unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert!(cancelled.cancelled_at.is_some());
    assert_eq!(f.fake.stock("KAJU-KATLI"), d("10"));
    let again = f.saga.cancel(&order.id, None, "crm", &cx).await.unwrap();
    assert_eq!(again.version, cancelled.version, "a repeat changes nothing");
    assert_eq!(
        fixtures::outbox_events(&f.database.db, &order.id).await,
        vec!["order.placed", "order.cancelled"]
    );
    let error = f.saga.fulfil(&order.id, "wh", &cx).await.unwrap_err();
    assert!(
        matches!(error, OrderError::FailedPrecondition(_)),
        "{error:?}"
    );
    let missing = f
        .saga
        .cancel("HD-ORD-none", None, "crm", &cx)
        .await
        .unwrap_err();
    assert!(matches!(missing, OrderError::NotFound(_)));

    // A cancellation cut short by an unavailable inventory is finished
    // by recovery.
    let second = place(&f, "k2", &[("LADDU", "2")]).await.unwrap();
    f.fake
        .fail("release", Status::unavailable("inventory is down"));
    let error = f
        .saga
        .cancel(&second.id, None, "crm", &cx)
        .await
        .unwrap_err();
    assert!(matches!(error, OrderError::Unavailable(_)), "{error:?}");
    let mut stuck = f.store.order(&second.id).await.unwrap();
    assert_eq!(stuck.status, OrderStatus::Cancelling);
    f.fake.heal("release");
    interrupted(&f, &mut stuck, SagaStep::Done).await;
    assert_eq!(f.saga.recover().await.unwrap(), 1);
    assert_eq!(
        f.store.order(&second.id).await.unwrap().status,
        OrderStatus::Cancelled
    );
    assert_eq!(f.fake.stock("LADDU"), d("5"));
}

async fn fulfil_issues_stock_and_only_placed_orders_move(engine: Engine) {
    let f = fixture(engine).await;
    let cx = CallContext::default();
    let order = place(&f, "k", &[("KAJU-KATLI", "3"), ("LADDU", "1")])
        .await
        .unwrap();
    let fulfilled = f.saga.fulfil(&order.id, "warehouse", &cx).await.unwrap();
    assert_eq!(fulfilled.status, OrderStatus::Fulfilled);
    assert!(f.fake.held().iter().all(|(_, h)| *h == Held::Issued));
    assert_eq!(
        f.fake.stock("KAJU-KATLI"),
        d("7"),
        "issued stock does not come back"
    );
    assert_eq!(
        fixtures::outbox_events(&f.database.db, &order.id).await,
        vec!["order.placed", "order.fulfilled"]
    );
    let error = f
        .saga
        .cancel(&order.id, None, "crm", &cx)
        .await
        .unwrap_err();
    assert!(
        matches!(error, OrderError::FailedPrecondition(_)),
        "{error:?}"
    );

    // An inventory refusal leaves the order placed, with the reason.
    let second = place(&f, "k2", &[("LADDU", "1")]).await.unwrap();
    f.fake.fail(
        "issue",
        Status::failed_precondition("batch B-1 is quarantined since it was reserved"),
    );
    let error = f
        .saga
        .fulfil(&second.id, "warehouse", &cx)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("quarantined"), "{error}");
    assert_eq!(
        f.store.order(&second.id).await.unwrap().status,
        OrderStatus::Placed
    );
}

async fn orders_list_by_customer_status_and_time(engine: Engine) {
    let f = fixture(engine).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            place(&f, &format!("k{i}"), &[("KAJU-KATLI", "1")])
                .await
                .unwrap()
                .id,
        );
    }
    let _ = place(&f, "bad", &[("LADDU", "99")]).await.unwrap_err();
    let filter = harsha_order::store::OrderFilter {
        customer: Some("CUST-1".into()),
        status: Some(OrderStatus::Placed),
        ..Default::default()
    };
    let first = f.store.list(&filter, 3, "").await.unwrap();
    assert_eq!(first.items.len(), 3);
    let second = f
        .store
        .list(&filter, 3, first.next_token.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(second.items.len(), 2);
    assert!(second.next_token.is_none());
    let listed: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|o| o.id.clone())
        .collect();
    ids.reverse();
    assert_eq!(listed, ids, "newest first, each once");
    let failed = harsha_order::store::OrderFilter {
        status: Some(OrderStatus::Failed),
        ..Default::default()
    };
    assert_eq!(f.store.list(&failed, 10, "").await.unwrap().items.len(), 1);
    let later = harsha_order::store::OrderFilter {
        created_after: Some(now() + chrono::Duration::seconds(60)),
        ..Default::default()
    };
    assert!(f.store.list(&later, 10, "").await.unwrap().items.is_empty());
}

async fn a_reservation_whose_answer_was_lost_is_found_and_released(engine: Engine) {
    let f = fixture(engine).await;
    // LADDU's reservation is made but its answer lost once: asking again
    // finds it, and the rollback releases it at once.
    f.fake.0.lock().unwrap().losing.insert("LADDU".into(), 1);
    let error = place(&f, "k1", &[("KAJU-KATLI", "2"), ("LADDU", "1")])
        .await
        .unwrap_err();
    let OrderError::Placement(failure) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(failure.code, Code::DeadlineExceeded as i32);
    assert_eq!(f.fake.stock("LADDU"), d("5"));
    assert_eq!(f.fake.stock("KAJU-KATLI"), d("10"));
    assert_eq!(f.fake.reserved_count(), 0);

    // Lost twice: the order waits for recovery, which finds and releases it.
    f.fake.0.lock().unwrap().losing.insert("LADDU".into(), 2);
    let error = place(&f, "k2", &[("LADDU", "1")]).await.unwrap_err();
    assert!(matches!(error, OrderError::Placement(_)), "{error:?}");
    let mut order = f.store.by_key("sales1", "k2").await.unwrap().unwrap();
    assert_eq!(
        (order.status, order.saga_step),
        (OrderStatus::Pending, SagaStep::Reserving)
    );
    assert_eq!(
        f.fake.stock("LADDU"),
        d("4"),
        "held until recovery finds it"
    );
    interrupted(&f, &mut order, SagaStep::Reserving).await;
    assert_eq!(f.saga.recover().await.unwrap(), 1);
    let after = f.store.order(&order.id).await.unwrap();
    assert_eq!(after.status, OrderStatus::Failed);
    assert_eq!(
        after.failure.unwrap().code,
        Code::DeadlineExceeded as i32,
        "the first cause is kept"
    );
    assert_eq!(f.fake.stock("LADDU"), d("5"));
}

async fn a_key_sent_again_after_a_passing_failure_places_the_order(engine: Engine) {
    let f = fixture(engine).await;
    // Pricing unreachable: nothing was recorded, so the key is free.
    f.fake
        .fail("pricing", Status::unavailable("connection refused"));
    let error = place(&f, "early", &[("KAJU-KATLI", "1")])
        .await
        .unwrap_err();
    assert!(matches!(error, OrderError::Placement(_)), "{error:?}");
    assert!(f.store.by_key("sales1", "early").await.unwrap().is_none());
    f.fake.heal("pricing");
    // Inventory unreachable once stock was being reserved: recorded as
    // failed, and the same key may try again.
    f.fake
        .fail("inventory", Status::unavailable("connection refused"));
    let error = place(&f, "k", &[("KAJU-KATLI", "2")]).await.unwrap_err();
    let OrderError::Placement(failure) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(failure.code, Code::Unavailable as i32);
    f.fake.heal("inventory");
    // No reservation answered, so none is known not to exist: recovery
    // asks again (inventory is back) and ends the order failed.
    let mut first = f.store.by_key("sales1", "k").await.unwrap().unwrap();
    assert_eq!(
        (first.status, first.saga_step),
        (OrderStatus::Pending, SagaStep::Reserving)
    );
    interrupted(&f, &mut first, SagaStep::Reserving).await;
    assert_eq!(f.saga.recover().await.unwrap(), 1);
    assert_eq!(f.fake.stock("KAJU-KATLI"), d("10"));
    // The same key again: another attempt, same order.
    let placed = f
        .saga
        .place(
            request("CUST-1", "k", &[("KAJU-KATLI", "2")]),
            "sales1",
            CallContext::default(),
        )
        .await
        .unwrap();
    assert!(!placed.replayed);
    assert_eq!(placed.order.id, first.id);
    assert_eq!(
        (placed.order.status, placed.order.attempt),
        (OrderStatus::Placed, 2)
    );
    let held = f.fake.held();
    assert!(
        held.iter()
            .all(|(id, h)| (*h == Held::Reserved) == id.ends_with("/2/0")),
        "the first attempt's reservation (found by recovery) released, the second's held: {held:?}"
    );
    assert_eq!(f.fake.stock("KAJU-KATLI"), d("8"));
    let again = place(&f, "k", &[("KAJU-KATLI", "2")]).await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(f.fake.stock("KAJU-KATLI"), d("8"), "placed once");

    // A refusal is final: the same key gets the same answer.
    let error = place(&f, "big", &[("LADDU", "99")]).await.unwrap_err();
    let again = place(&f, "big", &[("LADDU", "99")]).await.unwrap_err();
    assert_eq!(error.to_string(), again.to_string());
    assert_eq!(
        f.store
            .by_key("sales1", "big")
            .await
            .unwrap()
            .unwrap()
            .attempt,
        1
    );

    // The order service's own credential refused: its fault, not the caller's.
    f.fake.fail(
        "customer",
        Status::permission_denied("key lacks customer:read"),
    );
    let error = place(&f, "cred", &[("LADDU", "1")]).await.unwrap_err();
    let OrderError::Placement(failure) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(failure.code, Code::Internal as i32);
    assert!(
        failure
            .message
            .contains("refused the order service's credentials"),
        "{}",
        failure.message
    );
}

async fn a_cancellation_inventory_refuses_leaves_the_order_placed(engine: Engine) {
    let f = fixture(engine).await;
    let cx = CallContext::default();
    let order = place(&f, "k", &[("LADDU", "2")]).await.unwrap();
    f.fake.fail(
        "release",
        Status::failed_precondition(
            "allocation is Confirmed; only a reserved allocation can become Released",
        ),
    );
    let error = f
        .saga
        .cancel(&order.id, None, "crm", &cx)
        .await
        .unwrap_err();
    assert!(
        matches!(error, OrderError::FailedPrecondition(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains("cannot be cancelled"), "{error}");
    assert_eq!(
        f.store.order(&order.id).await.unwrap().status,
        OrderStatus::Placed
    );
    assert_eq!(
        f.saga.recover().await.unwrap(),
        0,
        "nothing left for recovery"
    );
}
