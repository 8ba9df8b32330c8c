//! `harsha loadgen`: drives a realistic mix of orders, quotes and lookups
//! through the edge at a fixed rate (open loop: requests go out on
//! schedule whether or not earlier ones answered, up to a cap in flight),
//! and reports throughput and latency percentiles per kind of request, and
//! how long each placed order's event took to reach a webhook.
//!
//! Set-up, through the edge like any client: log in as an operator, make
//! a rate-limit plan and a user for the run (so the run measures the mesh,
//! not a plan's limit), find customers (by segment) and items (with stock),
//! and route `Order` events to a receiver this command runs.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, bail};
use axum::{Router, body::Bytes, routing::post};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use rand::{Rng, seq::IndexedRandom};
use serde_json::{Value, json};

/// What `harsha loadgen` was asked for.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The edge's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub edge: String,
    /// An operator's login name (needs auth:admin and sync:admin for set-up).
    #[arg(long, default_value = "admin")]
    pub username: String,
    /// Their password.
    #[arg(long, env = "HARSHA_LOADGEN_PASSWORD")]
    pub password: String,
    /// Requests per second.
    #[arg(long, default_value_t = 100)]
    pub rate: u32,
    /// Seconds measured.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Seconds run first and not measured.
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Shares of orders, quotes and lookups, e.g. `60,25,15`.
    #[arg(long, default_value = "60,25,15")]
    pub mix: String,
    /// Most requests in flight; beyond it a due request is counted as
    /// dropped (the mesh is not keeping up).
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: usize,
    /// Most customers to spread orders over.
    #[arg(long, default_value_t = 2_000)]
    pub customers: usize,
    /// Only stock from this warehouse (any when empty).
    #[arg(long, default_value = "")]
    pub warehouse: String,
    /// Skip measuring order events at a webhook.
    #[arg(long)]
    pub no_events: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Order,
    Quote,
    Lookup,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Order => "POST /v1/orders",
            Self::Quote => "POST /v1/quotes",
            Self::Lookup => "GET lookups",
        }
    }
}

struct Sample {
    kind: Kind,
    status: u16,
    latency: Duration,
}

struct Run {
    client: HttpClient,
    edge: String,
    /// The run's user's token (orders, quotes, lookups).
    token: String,
    /// The operator's token (set-up and the event route).
    admin: String,
    customers: Vec<String>,
    items: Vec<String>,
    warehouse: String,
    /// Placed orders: id → when placed (server clock).
    placed: Mutex<HashMap<String, SystemTime>>,
    recent: Mutex<Vec<String>>,
}

impl Run {
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.edge));
        if let Some(token) = token
            .or(Some(self.token.as_str()))
            .filter(|t| !t.is_empty())
        {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let payload = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(body)?)
            }
            None => Bytes::new(),
        };
        let answer = self
            .client
            .request(request.body(Full::new(payload))?)
            .await?;
        let status = answer.status().as_u16();
        let bytes = answer.into_body().collect().await?.to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Ok((status, value))
    }

    fn cart(&self, rng: &mut impl Rng) -> (String, String, Vec<Value>) {
        let customer = self.customers.choose(rng).cloned().unwrap_or_default();
        let channel = ["ECOMMERCE", "MOBILE-APP", "CRM"]
            .choose(rng)
            .copied()
            .unwrap_or("CRM")
            .to_owned();
        let count = rng.random_range(1..=3).min(self.items.len());
        let lines = self
            .items
            .choose_multiple(rng, count)
            .map(|item| json!({"itemCode": item, "qty": {"value": rng.random_range(1..=2).to_string()}}))
            .collect();
        (customer, channel, lines)
    }

    async fn one(&self, kind: Kind) -> (u16, Option<(String, SystemTime)>) {
        let (customer, channel, lines, pick) = {
            let mut rng = rand::rng();
            let (customer, channel, lines) = self.cart(&mut rng);
            (customer, channel, lines, rng.random_range(0..3u8))
        };
        let answer = match kind {
            Kind::Order => {
                let mut body = json!({
                    "customer": customer, "channel": channel, "lines": lines,
                    "idempotencyKey": format!("loadgen-{}", uuid_like()),
                });
                if !self.warehouse.is_empty() {
                    body["warehouse"] = json!(self.warehouse);
                }
                self.send("POST", "/v1/orders", Some(&body), None).await
            }
            Kind::Quote => {
                let body = json!({"customer": customer, "channel": channel, "lines": lines});
                self.send("POST", "/v1/quotes", Some(&body), None).await
            }
            Kind::Lookup => {
                let recent = self
                    .recent
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .last()
                    .cloned();
                let path = match (pick, recent) {
                    (0, Some(order)) => format!("/v1/orders/{order}"),
                    (1, _) => format!(
                        "/v1/items/{}/stock-position",
                        lines
                            .first()
                            .and_then(|l| l["itemCode"].as_str())
                            .unwrap_or_default()
                    ),
                    _ => format!("/v1/customers/{customer}/profile"),
                };
                self.send("GET", &path, None, None).await
            }
        };
        match answer {
            Ok((status, body)) => {
                let placed = (kind == Kind::Order && status == 200)
                    .then(|| {
                        let order = &body["order"];
                        let id = order["orderId"].as_str()?.to_owned();
                        let at = chrono::DateTime::parse_from_rfc3339(order["placeTime"].as_str()?)
                            .ok()?;
                        Some((id, SystemTime::from(at)))
                    })
                    .flatten();
                (status, placed)
            }
            Err(_) => (0, None),
        }
    }
}

fn uuid_like() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((sorted.len() as f64) * p).ceil().max(1.0) as usize - 1;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Runs the load and prints the report.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let mix: Vec<u32> = args
        .mix
        .split(',')
        .map(|s| s.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .context("--mix is three whole numbers, e.g. 60,25,15")?;
    let [orders, quotes, lookups] = mix[..] else {
        bail!("--mix is three whole numbers, e.g. 60,25,15");
    };
    anyhow::ensure!(
        orders + quotes + lookups > 0 && args.rate > 0,
        "--rate and --mix must not be zero"
    );
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.max_in_flight)
        .build(connector);
    let mut run = Run {
        client,
        edge: args.edge.trim_end_matches('/').to_owned(),
        token: String::new(),
        admin: String::new(),
        customers: Vec::new(),
        items: Vec::new(),
        warehouse: args.warehouse.clone(),
        placed: Mutex::new(HashMap::new()),
        recent: Mutex::new(Vec::new()),
    };
    set_up(&mut run, &args).await?;
    let run = Arc::new(run);
    let events = if args.no_events {
        None
    } else {
        Some(receive_events(&run).await?)
    };

    eprintln!(
        "loadgen: {} req/s for {} s (+{} s warm-up), mix orders/quotes/lookups {orders}/{quotes}/{lookups}, {} customers, {} items",
        args.rate,
        args.duration,
        args.warmup,
        run.customers.len(),
        run.items.len()
    );
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(args.max_in_flight));
    let mut dropped = 0u64;
    let total = orders + quotes + lookups;
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let warmup_end = Instant::now() + Duration::from_secs(args.warmup);
    let end = warmup_end + Duration::from_secs(args.duration);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let mut measured_start = None;
    loop {
        ticker.tick().await;
        let now = Instant::now();
        if now >= end {
            break;
        }
        let measured = now >= warmup_end;
        if measured && measured_start.is_none() {
            measured_start = Some(now);
        }
        let roll = rand::rng().random_range(0..total);
        let kind = if roll < orders {
            Kind::Order
        } else if roll < orders + quotes {
            Kind::Quote
        } else {
            Kind::Lookup
        };
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            if measured {
                dropped += 1;
            }
            continue;
        };
        let run = Arc::clone(&run);
        let samples = Arc::clone(&samples);
        tasks.spawn(async move {
            let started = Instant::now();
            let (status, placed) = run.one(kind).await;
            let latency = started.elapsed();
            drop(permit);
            if let Some((id, at)) = placed {
                run.placed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(id.clone(), at);
                let mut recent = run
                    .recent
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                recent.push(id);
                if recent.len() > 1_000 {
                    recent.drain(..500);
                }
            }
            if measured {
                samples
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(Sample {
                        kind,
                        status,
                        latency,
                    });
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = measured_start.map_or(Duration::ZERO, |s| s.elapsed());

    let samples = std::mem::take(
        &mut *samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let mut report = json!({
        "rate": args.rate, "seconds": elapsed.as_secs_f64(), "dropped": dropped, "kinds": [],
    });
    let mut rows = Vec::new();
    for kind in [Kind::Order, Kind::Quote, Kind::Lookup] {
        let mut latencies: Vec<Duration> = samples
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| s.latency)
            .collect();
        if latencies.is_empty() {
            continue;
        }
        latencies.sort();
        let mut statuses: std::collections::BTreeMap<u16, usize> =
            std::collections::BTreeMap::new();
        for s in samples.iter().filter(|s| s.kind == kind) {
            *statuses.entry(s.status).or_default() += 1;
        }
        let ok = statuses.get(&200).copied().unwrap_or(0);
        #[allow(clippy::cast_precision_loss)]
        let row = json!({
            "kind": kind.name(), "sent": latencies.len(), "ok": ok,
            "ok_per_second": (ok as f64) / elapsed.as_secs_f64().max(0.001),
            "statuses": statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "p50_ms": ms(percentile(&latencies, 0.50)), "p95_ms": ms(percentile(&latencies, 0.95)),
            "p99_ms": ms(percentile(&latencies, 0.99)), "max_ms": ms(percentile(&latencies, 1.0)),
        });
        rows.push(row);
    }
    report["kinds"] = json!(rows);
    if let Some(events) = events {
        report["events"] = events.finish(&run).await;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(report: &Value) {
    println!(
        "{:.1} s measured at {} req/s; {} due requests dropped (more than the in-flight cap)",
        report["seconds"].as_f64().unwrap_or_default(),
        report["rate"],
        report["dropped"]
    );
    println!(
        "{:<18} {:>7} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8}  statuses",
        "request", "sent", "ok", "ok/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for row in report["kinds"].as_array().into_iter().flatten() {
        let number = |key: &str| row[key].as_f64().unwrap_or_default();
        println!(
            "{:<18} {:>7} {:>7} {:>9.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}  {}",
            row["kind"].as_str().unwrap_or_default(),
            number("sent"),
            number("ok"),
            number("ok_per_second"),
            number("p50_ms"),
            number("p95_ms"),
            number("p99_ms"),
            number("max_ms"),
            row["statuses"]
        );
    }
    if let Some(events) = report.get("events") {
        println!(
            "order events at the webhook: {} of {} placed orders; lag p50 {} ms, p95 {} ms, p99 {} ms, max {} ms",
            events["received"],
            events["expected"],
            events["p50_ms"],
            events["p95_ms"],
            events["p99_ms"],
            events["max_ms"]
        );
    }
}

/// Logs in, makes the run's plan and user, and finds customers and items.
async fn set_up(run: &mut Run, args: &LoadArgs) -> anyhow::Result<()> {
    let (status, body) = run
        .send(
            "POST",
            "/v1/auth/login",
            Some(&json!({"username": args.username, "password": args.password})),
            Some(""),
        )
        .await?;
    anyhow::ensure!(
        status == 200,
        "logging in as {} failed ({status}): {body}",
        args.username
    );
    let admin = body["accessToken"].as_str().unwrap_or_default().to_owned();
    let plan = json!({"name": "loadgen", "perMinute": 2_000_000_000, "perHour": 2_000_000_000, "perDay": 2_000_000_000});
    let (status, body) = run
        .send(
            "PUT",
            "/v1/rate-limit-plans/loadgen",
            Some(&plan),
            Some(&admin),
        )
        .await?;
    anyhow::ensure!(
        status == 200,
        "making the loadgen plan failed ({status}): {body}"
    );
    let username = format!("loadgen{}", &uuid_like()[..8]);
    let password = uuid_like();
    let user = json!({
        "username": username, "email": format!("{username}@harshadelights.in"), "password": password,
        "roles": ["sales", "warehouse"], "rateLimitPlan": "loadgen",
    });
    let (status, body) = run
        .send("POST", "/v1/users", Some(&user), Some(&admin))
        .await?;
    anyhow::ensure!(
        status == 200,
        "making the loadgen user failed ({status}): {body}"
    );
    let (status, body) = run
        .send(
            "POST",
            "/v1/auth/login",
            Some(&json!({"username": username, "password": password})),
            Some(""),
        )
        .await?;
    anyhow::ensure!(
        status == 200,
        "logging in as {username} failed ({status}): {body}"
    );
    run.token = body["accessToken"].as_str().unwrap_or_default().to_owned();
    run.admin = admin;

    // Customers, by segment, enabled ones only.
    let (_, segments) = run
        .send("GET", "/v1/segments?pageSize=500", None, None)
        .await?;
    let mut customers = Vec::new();
    for segment in segments["segments"].as_array().into_iter().flatten() {
        let code = segment["code"].as_str().unwrap_or_default();
        let mut token = String::new();
        loop {
            let path = format!("/v1/segments/{code}/customers?pageSize=500&pageToken={token}");
            let (_, page) = run.send("GET", &path, None, None).await?;
            for assignment in page["assignments"].as_array().into_iter().flatten() {
                if let Some(name) = assignment["customer"].as_str() {
                    customers.push(name.to_owned());
                }
            }
            token = page["nextPageToken"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if token.is_empty() || customers.len() >= args.customers * 2 {
                break;
            }
        }
    }
    customers.sort();
    customers.dedup();
    let mut enabled = Vec::new();
    for customer in customers {
        if enabled.len() >= args.customers {
            break;
        }
        let (status, profile) = run
            .send(
                "GET",
                &format!("/v1/customers/{customer}/profile"),
                None,
                None,
            )
            .await?;
        if status == 200 && !profile["disabled"].as_bool().unwrap_or(false) {
            enabled.push(customer);
        }
    }
    anyhow::ensure!(!enabled.is_empty(), "no enabled customer in any segment");
    run.customers = enabled;

    // Items with free stock.
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let mut path =
            format!("/v1/batches?pageSize=500&status=BATCH_STATUS_ACTIVE&pageToken={token}");
        if !args.warehouse.is_empty() {
            path.push_str(&format!(
                "&warehouse={}",
                args.warehouse.replace(' ', "%20")
            ));
        }
        let (status, page) = run.send("GET", &path, None, None).await?;
        anyhow::ensure!(status == 200, "listing batches failed ({status}): {page}");
        for b in page["batches"].as_array().into_iter().flatten() {
            let free: f64 = b["availableQty"]["value"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            if free > 0.0 {
                items.push(b["itemCode"].as_str().unwrap_or_default().to_owned());
            }
        }
        token = page["nextPageToken"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if token.is_empty() || items.len() >= 50_000 {
            break;
        }
    }
    items.sort();
    items.dedup();
    anyhow::ensure!(!items.is_empty(), "no item has free stock");
    run.items = items;
    Ok(())
}

/// A webhook receiver for the run's order events.
struct Events {
    received: Arc<Mutex<HashMap<String, SystemTime>>>,
    route: String,
    target: String,
}

async fn receive_events(run: &Arc<Run>) -> anyhow::Result<Events> {
    let received: Arc<Mutex<HashMap<String, SystemTime>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let address = listener.local_addr()?;
    let sink = Arc::clone(&received);
    let app = Router::new().route(
        "/events",
        post(move |body: Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let at = SystemTime::now();
                if let Ok(event) = serde_json::from_slice::<Value>(&body)
                    && event["event_type"] == "order.placed"
                    && let Some(id) = event["entity_key"].as_str()
                {
                    sink.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .entry(id.to_owned())
                        .or_insert(at);
                }
                http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let name = format!("loadgen-{}", &uuid_like()[..8]);
    let target = json!({
        "name": name, "system": "analytics", "kind": "TARGET_KIND_WEBHOOK",
        "url": format!("http://{address}/events"), "secret": uuid_like(), "timeoutMs": 2000, "maxAttempts": 3,
    });
    let admin = run.admin.clone();
    let (status, body) = run
        .send("POST", "/v1/targets", Some(&target), Some(&admin))
        .await?;
    anyhow::ensure!(
        status == 200,
        "making the event target failed ({status}): {body}"
    );
    let route = json!({"entityType": "Order", "sourceSystem": "erpnext", "target": name});
    let (status, body) = run
        .send("POST", "/v1/configurations", Some(&route), Some(&admin))
        .await?;
    anyhow::ensure!(
        status == 200,
        "routing order events failed ({status}): {body}"
    );
    Ok(Events {
        received,
        route: body["configuration"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        target: name,
    })
}

impl Events {
    /// Waits up to ten seconds for the last events, removes the route,
    /// and reports the lag of each placed order's event.
    async fn finish(self, run: &Run) -> Value {
        let expected: HashMap<String, SystemTime> = run
            .placed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self
                .received
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .keys()
                .filter(|k| expected.contains_key(*k))
                .count();
            if got >= expected.len() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The route and its target go with the run (a target with
        // deliveries still unfinished cannot be deleted: it is disabled).
        let admin = run.admin.clone();
        let _ = run
            .send(
                "DELETE",
                &format!("/v1/configurations/{}", self.route),
                None,
                Some(&admin),
            )
            .await;
        let deleted = run
            .send(
                "DELETE",
                &format!("/v1/targets/{}", self.target),
                None,
                Some(&admin),
            )
            .await;
        if !matches!(deleted, Ok((200, _))) {
            let disable = json!({"name": self.target, "enabled": false});
            let _ = run
                .send(
                    "PATCH",
                    &format!("/v1/targets/{}?updateMask=enabled", self.target),
                    Some(&disable),
                    Some(&admin),
                )
                .await;
        }
        let received = self
            .received
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut lags: Vec<Duration> = expected
            .iter()
            .filter_map(|(id, placed)| {
                received
                    .get(id)
                    .map(|at| at.duration_since(*placed).unwrap_or_default())
            })
            .collect();
        lags.sort();
        json!({
            "expected": expected.len(), "received": lags.len(),
            "p50_ms": ms(percentile(&lags, 0.50)), "p95_ms": ms(percentile(&lags, 0.95)),
            "p99_ms": ms(percentile(&lags, 0.99)), "max_ms": ms(percentile(&lags, 1.0)),
        })
    }
}
