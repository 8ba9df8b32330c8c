//! The placement saga and the order lifecycle: [`Saga::place`] runs the
//! steps (customer → price → reserve → apply → placed) writing the order's
//! position before each remote step, undoes reservations when a step
//! fails, and answers a repeated idempotency key with the first result;
//! [`Saga::cancel`] and [`Saga::fulfil`] release or issue the reserved
//! stock; [`Saga::recover`] finishes every order whose process stopped
//! mid-way (placed when its quote was applied, rolled back otherwise).
//!
//! Each order is owned by one process at a time through its lease
//! (`lease_until`) and every save is a compare-and-set, so a recovering
//! process and a slow original never both move an order. Remote steps are
//! idempotent (reservations by a request id derived from the order, quotes
//! applied once), so a step repeated after a crash changes nothing twice.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::NaiveDateTime;
use chrono_tz::Tz;
use futures::future::join_all;
use harsha_mesh::client::CallContext;
use tonic::{Code, Status};
use tracing::Instrument as _;

use crate::{
    OrderError,
    domain::{Failure, Order, OrderRequest, OrderStatus, SagaStep, Step},
    services::{Downstream, Reserve},
    store::{Inserted, OrderEvent, OrderStore, Save, now},
};

/// Who the recovering process acts as.
const RECOVERY_ACTOR: &str = "order-recovery";
/// How many times an idempotent step is tried when the answer is unclear.
const TRIES: u32 = 3;
/// How often a retry of a running placement looks again.
const REPLAY_POLL: Duration = Duration::from_millis(25);
/// The most unfinished orders one recovery pass takes.
const RECOVERY_BATCH: u32 = 50;

/// How orders behave where the contract leaves it to configuration.
#[derive(Debug, Clone)]
pub struct OrderConfig {
    /// The business time zone (a customer is checked on today's date there).
    pub time_zone: Tz,
    /// How long a placed order's reservation holds before it lapses unless
    /// the order is fulfilled or cancelled (at most 7 days).
    pub hold: Duration,
    /// How long a process owns an order it is working on; another process
    /// finishes the order only after this.
    pub lease: Duration,
    /// How long a retry with the key of a placement still running waits.
    pub replay_wait: Duration,
    /// The minimum days to expiry stock must have, per channel.
    pub min_shelf_life_days: BTreeMap<String, i32>,
    /// The minimum for channels not listed.
    pub default_min_shelf_life_days: i32,
    /// Channels whose orders need a customer with a primary segment
    /// (segment-priced trade such as wholesale).
    pub segment_required_channels: Vec<String>,
    /// Fault injection for recovery drills: the process aborts right after
    /// recording this step (never set in production).
    pub abort_after_step: Option<SagaStep>,
}

impl Default for OrderConfig {
    fn default() -> Self {
        Self {
            time_zone: chrono_tz::Asia::Kolkata,
            hold: Duration::from_secs(3 * 24 * 3600),
            lease: Duration::from_secs(30),
            replay_wait: Duration::from_secs(10),
            min_shelf_life_days: BTreeMap::new(),
            default_min_shelf_life_days: 1,
            segment_required_channels: vec!["WHOLESALE".into()],
            abort_after_step: None,
        }
    }
}

/// A placement's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The order.
    pub order: Order,
    /// Whether it repeats an earlier attempt with the same key.
    pub replayed: bool,
}

/// What releasing an order's reservations came to.
enum Released {
    /// Every one is given back (or was already).
    All,
    /// Some answer was unclear; ask again later.
    Unclear,
    /// The Inventory service refused one for good (e.g. it was issued).
    Refused(String),
}

/// Runs orders through their steps.
pub struct Saga {
    store: Arc<dyn OrderStore>,
    services: Arc<dyn Downstream>,
    config: OrderConfig,
}

/// A new order id: sortable by time.
fn new_order_id() -> String {
    format!("HD-ORD-{}", uuid::Uuid::now_v7().simple())
}

/// Whether a remote answer is a definite no (trying again will not help
/// and nothing was done), rather than an unclear outcome.
fn definite(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::OutOfRange
    )
}

/// A failing step's status as the order's failure, naming the cause.
fn failure_of(step: Step, status: &Status) -> Failure {
    let service = match step {
        Step::Customer => "customer",
        Step::Pricing | Step::Apply => "pricing",
        Step::Inventory | Step::Recovery | Step::Request => "inventory",
    };
    let (code, message) = match (step, status.code()) {
        // The Order service's own credential was refused: its
        // configuration, not the caller's request, is at fault.
        (_, Code::PermissionDenied | Code::Unauthenticated) => (
            Code::Internal,
            format!(
                "the {service} service refused the order service's credentials: {}",
                status.message()
            ),
        ),
        // The quote could not be applied (it lapsed): pricing again may pass.
        (Step::Apply, _) => (
            Code::Aborted,
            format!(
                "the order's price could not be confirmed ({}); send it again",
                status.message()
            ),
        ),
        (Step::Customer, Code::NotFound) => (
            Code::InvalidArgument,
            format!("customer: {}", status.message()),
        ),
        // Fields come named as the order names them (`lines[1].qty`).
        (_, Code::InvalidArgument) => (Code::InvalidArgument, status.message().to_owned()),
        (
            _,
            code @ (Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Internal),
        ) => (
            if code == Code::DeadlineExceeded {
                Code::DeadlineExceeded
            } else {
                Code::Unavailable
            },
            format!(
                "the {service} service could not {}: {}",
                step_verb(step),
                status.message()
            ),
        ),
        (_, code) => (code, status.message().to_owned()),
    };
    Failure {
        code: code as i32,
        message,
        step,
    }
}

/// Runs `work` (`what`, for the error) to its end in its own task, so a
/// caller hanging up cannot cut it short between two steps.
pub(crate) async fn detached<T: Send + 'static>(
    what: &str,
    work: impl std::future::Future<Output = Result<T, OrderError>> + Send + 'static,
) -> Result<T, OrderError> {
    tokio::spawn(work.in_current_span())
        .await
        .map_err(|e| OrderError::Unavailable(format!("{what} stopped unexpectedly: {e}")))?
}

/// A failure whose message names a line by position (`lines[2]: …`),
/// naming its item too (`lines[2] (KAJU-KATLI): …`).
fn naming_the_line(mut failure: Failure, order: &Order) -> Failure {
    let named = failure
        .message
        .strip_prefix("lines[")
        .and_then(|rest| rest.split_once("]: "))
        .and_then(|(index, rest)| {
            let line = order.lines.get(index.parse::<usize>().ok()?)?;
            Some(format!("lines[{index}] ({}): {rest}", line.item_code))
        });
    if let Some(named) = named {
        failure.message = named;
    }
    failure
}

fn step_verb(step: Step) -> &'static str {
    match step {
        Step::Customer => "check the customer",
        Step::Pricing => "price the order",
        Step::Inventory | Step::Request => "reserve stock",
        Step::Apply => "apply the quote",
        Step::Recovery => "finish the order",
    }
}

impl Saga {
    /// A saga over `store`, calling `services`.
    pub fn new(
        store: Arc<dyn OrderStore>,
        services: Arc<dyn Downstream>,
        config: OrderConfig,
    ) -> Self {
        Self {
            store,
            services,
            config,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn OrderStore> {
        &self.store
    }

    fn lease_until(&self) -> NaiveDateTime {
        now()
            + chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::seconds(30))
    }

    /// Saves with a fresh lease.
    async fn save(
        &self,
        order: &mut Order,
        actor: &str,
        detail: &str,
        lines: bool,
        event: Option<OrderEvent>,
    ) -> Result<(), OrderError> {
        let save = Save {
            lease_until: self.lease_until(),
            actor,
            detail,
            lines,
            event,
        };
        self.store.save(order, save).await
    }

    /// Aborts the process after `step` was recorded, when a drill asks.
    fn maybe_abort(&self, step: SagaStep) {
        if self.config.abort_after_step == Some(step) {
            tracing::error!(
                step = step.as_str(),
                "aborting after this step, as configured (recovery drill)"
            );
            std::process::abort();
        }
    }

    /// Places an order (see the module docs).
    #[tracing::instrument(name = "saga.place", skip_all, fields(customer = %request.customer, lines = request.lines.len()))]
    pub async fn place(
        self: &Arc<Self>,
        request: OrderRequest,
        owner: &str,
        context: CallContext,
    ) -> Result<Placement, OrderError> {
        let at = now();
        let mut order = Order::new(new_order_id(), &request, owner, at);
        order.min_shelf_life_days = self
            .config
            .min_shelf_life_days
            .get(&order.channel)
            .copied()
            .unwrap_or(self.config.default_min_shelf_life_days)
            .max(1);
        // A retry finds its order at once. A new order is recorded once it
        // is checked and priced (those steps change nothing elsewhere),
        // just before the first step that does.
        if let Some(existing) = self.store.by_key(owner, &request.idempotency_key).await? {
            return self
                .answer_existing(existing, request, owner, context)
                .await;
        }
        let saga = Arc::clone(self);
        // Detached, so a caller hanging up cannot cut a placement short
        // between two steps.
        detached("the placement", async move {
            saga.run_placement(order, &context, Some(request)).await
        })
        .await
    }

    /// The answer for a key already used: another attempt when the last
    /// failed for a reason that may pass, else the first result.
    async fn answer_existing(
        self: &Arc<Self>,
        existing: Order,
        request: OrderRequest,
        owner: &str,
        context: CallContext,
    ) -> Result<Placement, OrderError> {
        if existing.request_hash == request.fingerprint() && existing.may_try_again() {
            return self.try_again(existing, &request, owner, context).await;
        }
        self.replay(existing, &request).await
    }

    /// Another attempt at an order whose last one failed for a reason that
    /// may pass (its key sent again).
    async fn try_again(
        self: &Arc<Self>,
        mut order: Order,
        request: &OrderRequest,
        owner: &str,
        context: CallContext,
    ) -> Result<Placement, OrderError> {
        order.try_again();
        let detail = format!("attempt {} for the same key", order.attempt);
        match self.save(&mut order, owner, &detail, true, None).await {
            Ok(()) => {}
            // Another retry started the attempt first: its answer is ours.
            Err(OrderError::Aborted(_)) => {
                let current = self.store.order(&order.id).await?;
                return self.replay(current, request).await;
            }
            Err(error) => return Err(error),
        }
        let saga = Arc::clone(self);
        detached("the placement", async move {
            saga.run_placement(order, &context, None).await
        })
        .await
    }

    /// The first attempt's answer for a repeated key.
    async fn replay(
        &self,
        existing: Order,
        request: &OrderRequest,
    ) -> Result<Placement, OrderError> {
        if existing.request_hash != request.fingerprint() {
            return Err(OrderError::invalid(
                "idempotency_key",
                format!(
                    "already used for a different order ({}); use a new key for a new order",
                    existing.id
                ),
            ));
        }
        let deadline = tokio::time::Instant::now() + self.config.replay_wait;
        let mut order = existing;
        while order.status == OrderStatus::Pending && order.failure.is_none() {
            if tokio::time::Instant::now() >= deadline {
                return Err(OrderError::Aborted(format!(
                    "order {} with this idempotency key is still being placed; try again shortly",
                    order.id
                )));
            }
            tokio::time::sleep(REPLAY_POLL).await;
            order = self.store.order(&order.id).await?;
        }
        match order.failure {
            Some(failure) => Err(OrderError::Placement(failure)),
            None => Ok(Placement {
                order,
                replayed: true,
            }),
        }
    }

    /// Ends a placement that failed: recorded as failed with its
    /// reservations released, or (not recorded yet: nothing was changed
    /// anywhere) only answered.
    async fn abandon(
        &self,
        mut order: Order,
        failure: Failure,
        recorded: bool,
    ) -> Result<Placement, OrderError> {
        tracing::info!(order = %order.id, step = failure.step.as_str(), reason = %failure.message, "placement failed");
        metrics::counter!("harsha_orders_failed_total", "step" => failure.step.as_str())
            .increment(1);
        if !recorded {
            return Err(OrderError::Placement(failure));
        }
        let owner = order.owner.clone();
        order.fail(failure.clone(), true);
        let detail = format!("failed at {}: {}", failure.step.as_str(), failure.message);
        self.save(&mut order, &owner, &detail, true, None).await?;
        if order.saga_step == SagaStep::Compensating {
            self.compensate(&mut order, &CallContext::default(), &owner)
                .await;
        }
        Err(OrderError::Placement(failure))
    }

    /// Runs a placement; `unrecorded` is the request of an order not yet
    /// in the store (a first attempt), `None` for one that is.
    async fn run_placement(
        self: &Arc<Self>,
        mut order: Order,
        context: &CallContext,
        unrecorded: Option<OrderRequest>,
    ) -> Result<Placement, OrderError> {
        let recorded = unrecorded.is_none();
        let owner = order.owner.clone();
        let today = chrono::Utc::now()
            .with_timezone(&self.config.time_zone)
            .date_naive();
        // 1. The customer.
        let facts = match self
            .services
            .customer(context, &order.customer, today)
            .await
        {
            Ok(facts) => facts,
            Err(status) => {
                return self
                    .abandon(order, failure_of(Step::Customer, &status), recorded)
                    .await;
            }
        };
        if facts.disabled {
            let failure = Failure {
                code: Code::FailedPrecondition as i32,
                message: format!("customer {} is disabled", order.customer),
                step: Step::Customer,
            };
            return self.abandon(order, failure, recorded).await;
        }
        if facts.primary_segment.is_none()
            && self
                .config
                .segment_required_channels
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&order.channel))
        {
            let failure = Failure {
                code: Code::FailedPrecondition as i32,
                message: format!(
                    "customer {} has no primary segment, and {} orders are priced by segment; assign one first",
                    order.customer, order.channel
                ),
                step: Step::Customer,
            };
            return self.abandon(order, failure, recorded).await;
        }
        order.learn_customer(&facts);

        // 2. The price.
        let quoted = match self
            .services
            .quote(context, &order.customer, &order.channel, &order.lines)
            .await
        {
            Ok(quoted) => quoted,
            Err(status) => {
                return self
                    .abandon(order, failure_of(Step::Pricing, &status), recorded)
                    .await;
            }
        };
        for (line, (pricing, uom)) in order.lines.iter_mut().zip(quoted.lines) {
            if line.uom.is_none() && !uom.is_empty() {
                line.uom = Some(uom);
            }
            line.pricing = Some(pricing);
        }
        order.quote_id = Some(quoted.quote_id);
        order.currency = Some(quoted.currency);
        order.subtotal = Some(quoted.subtotal);
        order.total_discount = Some(quoted.total_discount);
        order.total = Some(quoted.total);
        if quoted.price_tier.is_some() {
            order.price_tier = quoted.price_tier;
        }

        // 3. The stock, every line at once.
        order.saga_step = SagaStep::Reserving;
        let detail = format!(
            "customer checked; priced by quote {}; reserving stock",
            order.quote_id.as_deref().unwrap_or("")
        );
        match unrecorded {
            Some(request) => match self.store.insert(&order, self.lease_until()).await? {
                Inserted::New => {}
                // A retry with the same key was recorded first: its
                // answer is this one's.
                Inserted::Existing(existing) => {
                    return self.replay(*existing, &request).await;
                }
            },
            None => self.save(&mut order, &owner, &detail, true, None).await?,
        }
        self.maybe_abort(SagaStep::Reserving);
        // All lines in one call: Inventory reserves them together or not
        // at all.
        let lines = self.reservations_of(&order);
        match self.services.reserve(context, lines.clone()).await {
            Ok(reservations) => {
                for (line, reservation) in order.lines.iter_mut().zip(reservations) {
                    line.allocation_id = Some(reservation.allocation_id);
                    line.batches = reservation.batches;
                }
            }
            // A refusal: nothing was reserved.
            Err(status) if definite(status.code()) => {
                let failure = naming_the_line(failure_of(Step::Inventory, &status), &order);
                return self.abandon(order, failure, true).await;
            }
            Err(status) => {
                let failure = naming_the_line(failure_of(Step::Inventory, &status), &order);
                // The answer was lost; the reservations may have been made:
                // ask again (the same request ids return them), so they are
                // released. Any other answer leaves it to recovery (a "not
                // enough stock" may only mean the first request still holds
                // the batches), which asks again once the lease runs out.
                match self.services.reserve(context, lines).await {
                    Ok(reservations) => {
                        for (line, reservation) in order.lines.iter_mut().zip(reservations) {
                            line.allocation_id = Some(reservation.allocation_id);
                        }
                    }
                    Err(_) => {
                        order.failure = Some(failure.clone());
                        self.save(
                            &mut order,
                            &owner,
                            "failed; the reservations' outcome is unknown",
                            true,
                            None,
                        )
                        .await?;
                        return Err(OrderError::Placement(failure));
                    }
                }
                return self.abandon(order, failure, true).await;
            }
        }

        // 4. The quote, applied: from here the order goes forward.
        order.saga_step = SagaStep::Applying;
        self.save(
            &mut order,
            &owner,
            "stock reserved; applying the quote",
            true,
            None,
        )
        .await?;
        self.maybe_abort(SagaStep::Applying);
        match self.apply(&order, context).await {
            Ok(()) => {}
            Err(status) if definite(status.code()) => {
                return self
                    .abandon(order, failure_of(Step::Apply, &status), true)
                    .await;
            }
            Err(status) => {
                // Unclear: it may have been applied. Recovery asks again
                // once the lease runs out, and places or rolls back.
                return Err(OrderError::Unavailable(format!(
                    "order {} is recorded but not yet confirmed (the pricing service did not answer: {}); \
                     it is finished automatically — send the same idempotency key again to learn the outcome",
                    order.id,
                    status.message()
                )));
            }
        }

        // 5. Placed, with its event.
        order.place(now());
        self.save(
            &mut order,
            &owner,
            "placed",
            false,
            Some(OrderEvent::Placed),
        )
        .await?;
        metrics::counter!("harsha_orders_placed_total", "channel" => order.channel.clone())
            .increment(1);
        tracing::info!(order = %order.id, total = ?order.total, "order placed");
        Ok(Placement {
            order,
            replayed: false,
        })
    }

    /// What to ask Inventory for the order's lines: the same on every
    /// try of an attempt, so a repeat returns the first reservations.
    fn reservations_of(&self, order: &Order) -> Vec<Reserve> {
        let hold = i32::try_from(self.config.hold.as_secs())
            .unwrap_or(604_800)
            .clamp(1, 604_800);
        order
            .lines
            .iter()
            .map(|line| Reserve {
                request_id: order.reservation_request_id(line),
                order_id: order.id.clone(),
                item_code: line.item_code.clone(),
                qty: line.qty,
                warehouse: order.warehouse.clone(),
                min_shelf_life_days: order.min_shelf_life_days,
                hold_seconds: hold,
            })
            .collect()
    }

    /// Applies the order's quote, trying again while the answer is unclear.
    async fn apply(&self, order: &Order, context: &CallContext) -> Result<(), Status> {
        let quote = order.quote_id.as_deref().unwrap_or_default();
        let mut last = Status::unavailable("not tried");
        for attempt in 0..TRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            match self.services.apply_quote(context, quote, &order.id).await {
                Ok(()) => return Ok(()),
                Err(status) if definite(status.code()) => return Err(status),
                Err(status) => last = status,
            }
        }
        Err(last)
    }

    /// Releases every reservation of a failed placement; the order ends
    /// FAILED once all are released, or stays for recovery to go on.
    async fn compensate(&self, order: &mut Order, context: &CallContext, actor: &str) -> bool {
        let detail = match self.release_all(order, context).await {
            Released::All => "rolled back: every reservation released".to_owned(),
            Released::Unclear => return false,
            // Asking again cannot change it; the log says so.
            Released::Refused(why) => {
                format!("rolled back; a reservation could not be released ({why})")
            }
        };
        order.rolled_back();
        match self.save(order, actor, &detail, false, None).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(order = %order.id, %error, "could not record the rollback; recovery will");
                false
            }
        }
    }

    async fn release_all(&self, order: &Order, context: &CallContext) -> Released {
        let results = join_all(
            order
                .allocation_ids()
                .into_iter()
                .map(|id| async move { (self.services.release(context, &id).await, id) }),
        )
        .await;
        let mut outcome = Released::All;
        for (result, id) in results {
            match result {
                Ok(()) => {}
                Err(status) if definite(status.code()) => {
                    tracing::warn!(order = %order.id, allocation = %id, %status, "a reservation cannot be released");
                    outcome = Released::Refused(format!("reservation {id}: {}", status.message()));
                }
                Err(status) => {
                    tracing::warn!(order = %order.id, allocation = %id, %status, "could not release a reservation yet");
                    if matches!(outcome, Released::All) {
                        outcome = Released::Unclear;
                    }
                }
            }
        }
        outcome
    }

    /// Cancels a placed order.
    #[tracing::instrument(name = "saga.cancel", skip(self, context))]
    pub async fn cancel(
        &self,
        id: &str,
        reason: Option<String>,
        actor: &str,
        context: &CallContext,
    ) -> Result<Order, OrderError> {
        let mut order = self.store.order(id).await?;
        match order.start_cancel(reason) {
            Err(message) => return Err(OrderError::FailedPrecondition(message)),
            Ok(false) => return Ok(order),
            Ok(true) => {}
        }
        self.save(
            &mut order,
            actor,
            "cancelling: releasing stock",
            false,
            None,
        )
        .await?;
        self.finish_cancel(order, context, actor).await
    }

    async fn finish_cancel(
        &self,
        mut order: Order,
        context: &CallContext,
        actor: &str,
    ) -> Result<Order, OrderError> {
        match self.release_all(&order, context).await {
            Released::All => {}
            Released::Unclear => {
                return Err(OrderError::Unavailable(format!(
                    "order {} is being cancelled; its stock is released as soon as the inventory service answers",
                    order.id
                )));
            }
            Released::Refused(why) => {
                let message = format!("order {} cannot be cancelled: {why}", order.id);
                order.back_to_placed();
                self.save(&mut order, actor, &message, false, None).await?;
                return Err(OrderError::FailedPrecondition(message));
            }
        }
        order.finish(now());
        self.save(
            &mut order,
            actor,
            "cancelled: stock released",
            false,
            Some(OrderEvent::Cancelled),
        )
        .await?;
        metrics::counter!("harsha_orders_cancelled_total").increment(1);
        Ok(order)
    }

    /// Fulfils a placed order.
    #[tracing::instrument(name = "saga.fulfil", skip(self, context))]
    pub async fn fulfil(
        &self,
        id: &str,
        actor: &str,
        context: &CallContext,
    ) -> Result<Order, OrderError> {
        let mut order = self.store.order(id).await?;
        match order.start_fulfil() {
            Err(message) => return Err(OrderError::FailedPrecondition(message)),
            Ok(false) => return Ok(order),
            Ok(true) => {}
        }
        self.save(&mut order, actor, "fulfilling: issuing stock", false, None)
            .await?;
        self.finish_fulfil(order, context, actor).await
    }

    async fn finish_fulfil(
        &self,
        mut order: Order,
        context: &CallContext,
        actor: &str,
    ) -> Result<Order, OrderError> {
        for id in order.allocation_ids() {
            if let Err(status) = self.services.issue(context, &id).await {
                if definite(status.code()) {
                    let message = format!(
                        "order {} cannot be fulfilled: {}",
                        order.id,
                        status.message()
                    );
                    order.back_to_placed();
                    self.save(&mut order, actor, &message, false, None).await?;
                    return Err(OrderError::FailedPrecondition(message));
                }
                return Err(OrderError::Unavailable(format!(
                    "order {} is being fulfilled; its stock is issued as soon as the inventory service answers ({})",
                    order.id,
                    status.message()
                )));
            }
        }
        order.finish(now());
        self.save(
            &mut order,
            actor,
            "fulfilled: stock issued",
            false,
            Some(OrderEvent::Fulfilled),
        )
        .await?;
        metrics::counter!("harsha_orders_fulfilled_total").increment(1);
        Ok(order)
    }

    /// Finishes every unfinished order whose lease ran out; returns how
    /// many were settled.
    #[tracing::instrument(name = "saga.recover", skip_all)]
    pub async fn recover(&self) -> Result<usize, OrderError> {
        let context = CallContext::default();
        let mut settled = 0;
        for mut order in self.store.unfinished(now(), RECOVERY_BATCH).await? {
            // Claim it: a compare-and-set with a fresh lease.
            let detail = format!(
                "recovery took over ({} at {})",
                order.status.as_str(),
                order.saga_step.as_str()
            );
            match self
                .save(&mut order, RECOVERY_ACTOR, &detail, false, None)
                .await
            {
                Ok(()) => {}
                Err(OrderError::Aborted(_)) => continue,
                Err(error) => return Err(error),
            }
            let id = order.id.clone();
            match self.recover_order(order, &context).await {
                Ok(true) => {
                    settled += 1;
                    metrics::counter!("harsha_orders_recovered_total").increment(1);
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(order = %id, %error, "could not finish the order yet"),
            }
        }
        Ok(settled)
    }

    async fn recover_order(
        &self,
        mut order: Order,
        context: &CallContext,
    ) -> Result<bool, OrderError> {
        tracing::info!(order = %order.id, status = order.status.as_str(), step = order.saga_step.as_str(), "finishing an interrupted order");
        match (order.status, order.saga_step) {
            (OrderStatus::Cancelling, _) => {
                match self.finish_cancel(order, context, RECOVERY_ACTOR).await {
                    Ok(_) | Err(OrderError::FailedPrecondition(_)) => Ok(true),
                    Err(error) => Err(error),
                }
            }
            (OrderStatus::Fulfilling, _) => {
                match self.finish_fulfil(order, context, RECOVERY_ACTOR).await {
                    Ok(_) | Err(OrderError::FailedPrecondition(_)) => Ok(true),
                    Err(error) => Err(error),
                }
            }
            (OrderStatus::Pending, SagaStep::Started) => {
                order.fail(
                    Failure {
                        code: Code::Aborted as i32,
                        message: format!("placing order {} was interrupted before any stock was reserved; nothing was kept — place it again with a new key", order.id),
                        step: Step::Recovery,
                    },
                    false,
                );
                self.save(
                    &mut order,
                    RECOVERY_ACTOR,
                    "rolled back: interrupted before reserving",
                    false,
                    None,
                )
                .await?;
                Ok(true)
            }
            (OrderStatus::Pending, SagaStep::Reserving) => {
                // Whether the reservations were made is known by asking
                // again with the same request ids (a repeat returns the
                // first ones; a refusal means none was made).
                if order.allocation_ids().is_empty() {
                    let lines = self.reservations_of(&order);
                    match self.services.reserve(context, lines).await {
                        Ok(reservations) => {
                            for (line, reservation) in order.lines.iter_mut().zip(reservations) {
                                line.allocation_id = Some(reservation.allocation_id);
                            }
                        }
                        Err(status) if definite(status.code()) => {}
                        Err(status) => {
                            return Err(OrderError::Unavailable(format!(
                                "the inventory service did not answer: {}",
                                status.message()
                            )));
                        }
                    }
                }
                // A placement that failed with a reservation's outcome
                // unknown keeps its own cause.
                let failure = order.failure.clone().unwrap_or_else(|| Failure {
                    code: Code::Aborted as i32,
                    message: format!("placing order {} was interrupted while reserving stock; it was rolled back — place it again with a new key", order.id),
                    step: Step::Recovery,
                });
                order.fail(failure, true);
                self.save(
                    &mut order,
                    RECOVERY_ACTOR,
                    "rolling back: interrupted while reserving",
                    true,
                    None,
                )
                .await?;
                Ok(self.compensate(&mut order, context, RECOVERY_ACTOR).await)
            }
            (OrderStatus::Pending, SagaStep::Applying) => match self.apply(&order, context).await {
                Ok(()) => {
                    order.place(now());
                    self.save(
                        &mut order,
                        RECOVERY_ACTOR,
                        "placed (finished by recovery)",
                        false,
                        Some(OrderEvent::Placed),
                    )
                    .await?;
                    metrics::counter!("harsha_orders_placed_total", "channel" => order.channel.clone()).increment(1);
                    Ok(true)
                }
                Err(status) if definite(status.code()) => {
                    order.fail(failure_of(Step::Apply, &status), true);
                    self.save(
                        &mut order,
                        RECOVERY_ACTOR,
                        "rolling back: the quote could not be applied",
                        false,
                        None,
                    )
                    .await?;
                    Ok(self.compensate(&mut order, context, RECOVERY_ACTOR).await)
                }
                Err(status) => Err(OrderError::Unavailable(status.message().to_owned())),
            },
            (OrderStatus::Pending, SagaStep::Compensating) => {
                Ok(self.compensate(&mut order, context, RECOVERY_ACTOR).await)
            }
            _ => Ok(false),
        }
    }

    /// Runs [`Saga::recover`] every `every` until `shutdown` resolves (and
    /// once at once, for orders a previous process left).
    pub async fn run_recovery(
        self: Arc<Self>,
        every: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            match self.recover().await {
                Ok(0) => {}
                Ok(settled) => tracing::info!(settled, "interrupted orders finished"),
                Err(error) => {
                    tracing::warn!(error = %harsha_store::status::error_chain(&error), "order recovery failed")
                }
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}
