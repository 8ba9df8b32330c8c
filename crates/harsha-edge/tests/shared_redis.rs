//! Edge state shared through the real Redis on this machine: two replicas
//! (two `Shared` handles under one prefix) counting the same principal
//! concurrently admit exactly the plan's limit; every tier holds across
//! them; kept answers written by one are read by the other; and an
//! unreachable Redis fails fast so the edge can decide alone. Each test
//! uses its own key prefix, and every key it writes expires.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use harsha_edge::{cache::CacheKey, shared::Shared};
use harsha_mesh::ratelimit::{Decision, Limits, Window};
use http::{HeaderMap, HeaderValue};

const REDIS: &str = "redis://127.0.0.1:6379/0";

fn prefix() -> String {
    format!("harsha-test-{}", uuid::Uuid::now_v7().simple())
}

/// Deletes every key a test wrote.
async fn forget(prefix: &str) {
    let client = redis::Client::open(REDIS).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .query_async::<()>(&mut connection)
            .await
            .unwrap();
    }
}

/// A minute well inside its hour and day: 2026-11-26 10:07:00 UTC.
const NOW: i64 = 1_795_687_620;

async fn admitted(shared: &Shared, principal: &str, limits: Limits, now: i64) -> Decision {
    let before = shared.count(principal, limits, now).await.unwrap();
    Decision::of_counts(limits, now, before)
}

#[tokio::test]
async fn two_replicas_admit_exactly_the_minute_limit_between_them() {
    let prefix = prefix();
    let first = Shared::new(REDIS, &prefix).unwrap();
    let second = Shared::new(REDIS, &prefix).unwrap();
    let limits = Limits {
        per_minute: 25,
        per_hour: 1_000,
        per_day: 10_000,
    };
    let mut calls = Vec::new();
    for n in 0..80 {
        let replica = Arc::clone(if n % 2 == 0 { &first } else { &second });
        calls.push(tokio::spawn(async move {
            admitted(&replica, "user:u1", limits, NOW).await.allowed
        }));
    }
    let mut passed = 0;
    for call in calls {
        if call.await.unwrap() {
            passed += 1;
        }
    }
    assert_eq!(passed, 25, "the minute limit holds across both replicas");
    let refused = admitted(&first, "user:u1", limits, NOW + 5).await;
    assert!(!refused.allowed);
    assert_eq!(refused.window, Window::Minute);
    assert_eq!(refused.retry_after, Some(55));
    // Another principal has its own counters; the next minute has room.
    assert!(admitted(&second, "user:u2", limits, NOW).await.allowed);
    let next = admitted(&second, "user:u1", limits, NOW + 60).await;
    assert!(next.allowed);
    assert_eq!(next.remaining, 24);
    assert_eq!(first.fallbacks_total() + second.fallbacks_total(), 0);
    forget(&prefix).await;
}

#[tokio::test]
async fn the_hour_limit_holds_across_replicas_though_each_minute_has_room() {
    let prefix = prefix();
    let replicas = [
        Shared::new(REDIS, &prefix).unwrap(),
        Shared::new(REDIS, &prefix).unwrap(),
    ];
    let limits = Limits {
        per_minute: 3,
        per_hour: 5,
        per_day: 100,
    };
    let mut outcomes = Vec::new();
    for minute in 0..3 {
        for n in 0..3 {
            let replica = &replicas[n % 2];
            let decision = admitted(replica, "key:k1", limits, NOW + minute * 60 + 1).await;
            outcomes.push(decision.allowed);
        }
    }
    // 3 in the first minute, 2 in the second, none in the third.
    assert_eq!(
        outcomes,
        [true, true, true, true, true, false, false, false, false]
    );
    let refused = admitted(&replicas[0], "key:k1", limits, NOW + 181).await;
    assert_eq!(refused.window, Window::Hour);
    // A refused request does not use up room: the hour's count stays 5.
    assert_eq!(refused.remaining, 0);
    forget(&prefix).await;
}

#[tokio::test]
async fn an_answer_kept_by_one_replica_is_served_by_the_other_until_it_expires() {
    let prefix = prefix();
    let first = Shared::new(REDIS, &prefix).unwrap();
    let second = Shared::new(REDIS, &prefix).unwrap();
    let key = |scopes: &str| CacheKey {
        route: "/v1/segments/{code}".into(),
        target: "/v1/segments/RETAIL".into(),
        scopes: scopes.into(),
    };
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let body = Bytes::from_static(br#"{"code":"RETAIL","name":"Retail"}"#);
    first
        .keep(
            &key("customer:read"),
            &body,
            &headers,
            Duration::from_millis(1_500),
        )
        .await
        .unwrap();
    let (found, found_headers, age) = second
        .cached(&key("customer:read"))
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(found, body);
    assert_eq!(
        found_headers.get("content-type").unwrap(),
        "application/json"
    );
    assert!(age < Duration::from_secs(1));
    assert!(
        second
            .cached(&key("customer:read customer:write"))
            .await
            .unwrap()
            .is_none(),
        "never served to another scope set"
    );
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    assert!(
        second
            .cached(&key("customer:read"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn an_unreachable_redis_fails_fast_and_stops_being_asked() {
    // Nothing listens on port 1.
    let shared = Shared::new("redis://127.0.0.1:1/0", &prefix()).unwrap();
    let limits = Limits {
        per_minute: 1,
        per_hour: 1,
        per_day: 1,
    };
    let started = Instant::now();
    for _ in 0..20 {
        assert!(shared.count("user:u1", limits, NOW).await.is_err());
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "twenty refusals took {:?}",
        started.elapsed()
    );
    assert!(Shared::new("not a url", "x").is_err());
}
