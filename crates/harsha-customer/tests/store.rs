//! The Customer store's behaviour, run on SQLite and on MariaDB from one
//! suite: every scenario is a function taking the engine, and
//! `on_every_engine!` makes one test per engine of each.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{collections::BTreeSet, sync::Arc};

use chrono::NaiveDate;
use harsha_customer::{
    CustomerError, CustomerStore, SqlCustomerStore,
    domain::{
        Actor, AssignmentStatus, CoverageType, Description, DocName, EffectiveRange, NewAssignment,
        NewSegment, NewTerritoryMapping, Priority, ProfileSource, SegmentCode, SegmentName,
        SegmentPatch, SegmentStatus, ServiceLevel,
    },
};
use harsha_store::Engine;
use harsha_testkit::{TestDatabase, fixtures};

harsha_testkit::on_every_engine!(
    segments_are_created_read_listed_and_updated,
    a_duplicate_segment_code_is_refused,
    assignments_answer_as_of_any_date,
    a_new_primary_ends_the_previous_one_at_its_start,
    a_same_day_primary_supersedes_and_a_future_one_cuts_the_range,
    reassigning_a_held_segment_ends_the_old_membership,
    refused_assignments_write_nothing,
    ending_an_assignment_only_shortens_it,
    segment_members_are_paged_by_customer,
    territories_and_the_profile_resolve_together,
    concurrent_primary_assignments_keep_one_primary_per_day,
    new_records_carry_the_erpnext_spelling_of_names,
);

struct Fixture {
    database: TestDatabase,
    store: Arc<dyn CustomerStore>,
    actor: Actor,
}

async fn fixture(engine: Engine) -> Fixture {
    let database = TestDatabase::erp(engine).await;
    fixtures::customer(
        &database.db,
        "CUST-0001",
        "Sweet Corner Bakers",
        "Retail",
        false,
    )
    .await;
    fixtures::customer(
        &database.db,
        "CUST-0002",
        "Mithai Mahal",
        "Wholesale",
        false,
    )
    .await;
    fixtures::customer(&database.db, "CUST-0003", "Closed Kiosk", "Retail", true).await;
    fixtures::territory(&database.db, "Karnataka", "India").await;
    fixtures::territory(&database.db, "Bengaluru Urban", "Karnataka").await;
    let store: Arc<dyn CustomerStore> =
        Arc::new(SqlCustomerStore::new(database.db.erp_pool().unwrap()));
    Fixture {
        database,
        store,
        actor: Actor::named("ops@harshadelights.in"),
    }
}

fn day(value: &str) -> NaiveDate {
    value.parse().unwrap()
}

fn code(value: &str) -> SegmentCode {
    SegmentCode::parse(value).unwrap()
}

fn customer(value: &str) -> DocName {
    DocName::parse(value).unwrap()
}

fn new_segment(value: &str, level: ServiceLevel, priority: i32, tier: Option<&str>) -> NewSegment {
    NewSegment {
        code: code(value),
        segment_name: SegmentName::parse(&format!("{value} customers")).unwrap(),
        description: Description::parse("").unwrap(),
        service_level: level,
        priority: Priority::new(priority).unwrap(),
        price_tier: tier.map(code),
    }
}

fn assignment(
    who: &str,
    segment: &str,
    primary: bool,
    from: &str,
    to: Option<&str>,
) -> NewAssignment {
    NewAssignment {
        customer: customer(who),
        segment: code(segment),
        is_primary: primary,
        range: EffectiveRange::new(day(from), to.map(day)).unwrap(),
    }
}

async fn with_segments(engine: Engine, codes: &[&str]) -> Fixture {
    let f = fixture(engine).await;
    for (i, value) in codes.iter().enumerate() {
        let priority = i32::try_from(i).unwrap() * 10;
        f.store
            .create_segment(
                new_segment(value, ServiceLevel::Standard, priority, None),
                &f.actor,
            )
            .await
            .unwrap();
    }
    f
}

async fn primary_on(f: &Fixture, who: &str, on: &str) -> Option<String> {
    f.store
        .primary_segment(&customer(who), day(on))
        .await
        .unwrap()
        .map(|p| p.segment.code.to_string())
}

async fn segments_are_created_read_listed_and_updated(engine: Engine) {
    let f = fixture(engine).await;
    let created = f
        .store
        .create_segment(
            new_segment("retail", ServiceLevel::Priority, 20, Some("retail-tier")),
            &f.actor,
        )
        .await
        .unwrap();
    assert_eq!(created.code.as_str(), "RETAIL");
    assert_eq!(created.status, SegmentStatus::Active);
    assert_eq!(f.store.segment(&code("RETAIL")).await.unwrap(), created);

    for value in ["WHOLESALE", "DISTRIBUTOR", "HORECA", "CORPORATE"] {
        f.store
            .create_segment(
                new_segment(value, ServiceLevel::Standard, 1, None),
                &f.actor,
            )
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = f.store.list_segments(None, 2, &token).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|s| s.code.to_string()));
        match page.next_token {
            Some(next) => token = next,
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["CORPORATE", "DISTRIBUTOR", "HORECA", "RETAIL", "WHOLESALE"]
    );

    let updated = f
        .store
        .update_segment(
            &code("RETAIL"),
            SegmentPatch {
                segment_name: Some(SegmentName::parse("Retail shops").unwrap()),
                price_tier: Some(None),
                ..SegmentPatch::default()
            },
            &f.actor,
        )
        .await
        .unwrap();
    assert_eq!(updated.segment_name.as_str(), "Retail shops");
    assert_eq!(updated.price_tier, None);
    assert_eq!(
        updated.service_level,
        ServiceLevel::Priority,
        "fields outside the patch are kept"
    );
    assert_eq!(f.store.segment(&code("RETAIL")).await.unwrap(), updated);

    let inactive = f
        .store
        .set_segment_status(&code("RETAIL"), SegmentStatus::Inactive, &f.actor)
        .await
        .unwrap();
    assert_eq!(inactive.status, SegmentStatus::Inactive);
    let again = f
        .store
        .set_segment_status(&code("RETAIL"), SegmentStatus::Inactive, &f.actor)
        .await
        .unwrap();
    assert_eq!(again, inactive, "deactivating twice changes nothing");
    let active_only = f
        .store
        .list_segments(Some(SegmentStatus::Active), 50, "")
        .await
        .unwrap();
    assert!(
        active_only
            .items
            .iter()
            .all(|s| s.code.as_str() != "RETAIL")
    );

    assert_eq!(
        fixtures::outbox_events(&f.database.db, "RETAIL").await,
        [
            "customer.segment.created",
            "customer.segment.updated",
            "customer.segment.deactivated"
        ]
    );
    assert!(matches!(
        f.store.segment(&code("NOPE")).await,
        Err(CustomerError::SegmentNotFound(c)) if c == "NOPE"
    ));
    assert!(matches!(
        f.store.list_segments(None, 2, "garbage").await,
        Err(CustomerError::InvalidArgument { field, .. }) if field == "page_token"
    ));
}

async fn a_duplicate_segment_code_is_refused(engine: Engine) {
    let f = with_segments(engine, &["RETAIL"]).await;
    let duplicate = f
        .store
        .create_segment(
            new_segment("Retail", ServiceLevel::Premium, 5, None),
            &f.actor,
        )
        .await;
    assert!(matches!(duplicate, Err(CustomerError::SegmentExists(c)) if c == "RETAIL"));
    assert_eq!(
        f.store
            .segment(&code("RETAIL"))
            .await
            .unwrap()
            .service_level,
        ServiceLevel::Standard
    );
    assert_eq!(
        fixtures::outbox_events(&f.database.db, "RETAIL")
            .await
            .len(),
        1
    );
}

async fn assignments_answer_as_of_any_date(engine: Engine) {
    let f = with_segments(engine, &["RETAIL", "FESTIVAL"]).await;
    f.store
        .assign_segment(
            assignment("CUST-0001", "RETAIL", true, "2026-01-01", None),
            &f.actor,
        )
        .await
        .unwrap();
    f.store
        .assign_segment(
            assignment(
                "CUST-0001",
                "FESTIVAL",
                false,
                "2026-10-01",
                Some("2026-11-15"),
            ),
            &f.actor,
        )
        .await
        .unwrap();

    let codes = |list: Vec<harsha_customer::domain::CustomerSegment>| {
        list.into_iter()
            .map(|s| s.segment.code.to_string())
            .collect::<Vec<_>>()
    };
    assert!(
        f.store
            .customer_segments(&customer("CUST-0001"), day("2025-12-31"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        codes(
            f.store
                .customer_segments(&customer("CUST-0001"), day("2026-06-01"))
                .await
                .unwrap()
        ),
        ["RETAIL"]
    );
    assert_eq!(
        codes(
            f.store
                .customer_segments(&customer("CUST-0001"), day("2026-10-01"))
                .await
                .unwrap()
        ),
        ["RETAIL", "FESTIVAL"],
        "primary first"
    );
    assert_eq!(
        codes(
            f.store
                .customer_segments(&customer("CUST-0001"), day("2026-11-15"))
                .await
                .unwrap()
        ),
        ["RETAIL"]
    );
    assert_eq!(
        primary_on(&f, "CUST-0001", "2026-10-05").await.as_deref(),
        Some("RETAIL")
    );
    assert_eq!(primary_on(&f, "CUST-0001", "2025-10-05").await, None);
    assert_eq!(primary_on(&f, "CUST-0002", "2026-10-05").await, None);
    assert!(matches!(
        f.store
            .primary_segment(&customer("CUST-404"), day("2026-10-05"))
            .await,
        Err(CustomerError::CustomerNotFound(_))
    ));

    let history = f
        .store
        .assignment_history(&customer("CUST-0001"), 1, "")
        .await
        .unwrap();
    assert_eq!(
        history.items[0].segment.as_str(),
        "FESTIVAL",
        "newest start first"
    );
    let rest = f
        .store
        .assignment_history(
            &customer("CUST-0001"),
            1,
            history.next_token.as_deref().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(rest.items[0].segment.as_str(), "RETAIL");
    assert_eq!(rest.next_token, None);
}

async fn a_new_primary_ends_the_previous_one_at_its_start(engine: Engine) {
    let f = with_segments(engine, &["RETAIL", "WHOLESALE"]).await;
    let first = f
        .store
        .assign_segment(
            assignment("CUST-0001", "RETAIL", true, "2026-01-01", None),
            &f.actor,
        )
        .await
        .unwrap()
        .created;
    let second = f
        .store
        .assign_segment(
            assignment("CUST-0001", "WHOLESALE", true, "2026-03-01", None),
            &f.actor,
        )
        .await
        .unwrap();
    assert_eq!(second.replaced.len(), 1);
    assert_eq!(second.replaced[0].id, first.id);
    assert_eq!(second.replaced[0].range.to(), Some(day("2026-03-01")));
    assert_eq!(second.replaced[0].status, AssignmentStatus::Active);
    assert_eq!(second.created.range.to(), None);

    assert_eq!(
        primary_on(&f, "CUST-0001", "2026-02-28").await.as_deref(),
        Some("RETAIL")
    );
    assert_eq!(
        primary_on(&f, "CUST-0001", "2026-03-01").await.as_deref(),
        Some("WHOLESALE")
    );
    let history = f
        .store
        .assignment_history(&customer("CUST-0001"), 50, "")
        .await
        .unwrap();
    assert_eq!(history.items.len(), 2, "history keeps the ended assignment");
    assert_eq!(
        fixtures::outbox_events(&f.database.db, &first.id).await,
        [
            "customer.segment_assignment.created",
            "customer.segment_assignment.replaced"
        ]
    );
}

async fn a_same_day_primary_supersedes_and_a_future_one_cuts_the_range(engine: Engine) {
    let f = with_segments(engine, &["RETAIL", "WHOLESALE", "DISTRIBUTOR"]).await;
    let planned = f
        .store
        .assign_segment(
            assignment("CUST-0001", "RETAIL", true, "2026-05-01", None),
            &f.actor,
        )
        .await
        .unwrap()
        .created;
    let same_day = f
        .store
        .assign_segment(
            assignment("CUST-0001", "WHOLESALE", true, "2026-05-01", None),
            &f.actor,
        )
        .await
        .unwrap();
    assert_eq!(same_day.replaced[0].id, planned.id);
    assert_eq!(same_day.replaced[0].status, AssignmentStatus::Superseded);
    assert_eq!(
        primary_on(&f, "CUST-0001", "2026-05-01").await.as_deref(),
        Some("WHOLESALE")
    );

    let earlier = f
        .store
        .assign_segment(
            assignment("CUST-0001", "DISTRIBUTOR", true, "2026-02-01", None),
            &f.actor,
        )
        .await
        .unwrap();
    assert!(earlier.replaced.is_empty(), "a later primary is left alone");
    assert_eq!(
        earlier.created.range.to(),
        Some(day("2026-05-01")),
        "and the new range stops where it starts"
    );
    assert_eq!(
        primary_on(&f, "CUST-0001", "2026-04-30").await.as_deref(),
        Some("DISTRIBUTOR")
    );
    assert_eq!(
        primary_on(&f, "CUST-0001", "2026-05-01").await.as_deref(),
        Some("WHOLESALE")
    );
}

async fn reassigning_a_held_segment_ends_the_old_membership(engine: Engine) {
    let f = with_segments(engine, &["RETAIL", "FESTIVAL"]).await;
    let member = f
        .store
        .assign_segment(
            assignment("CUST-0001", "FESTIVAL", false, "2026-01-01", None),
            &f.actor,
        )
        .await
        .unwrap()
        .created;
    let promoted = f
        .store
        .assign_segment(
            assignment("CUST-0001", "FESTIVAL", true, "2026-06-01", None),
            &f.actor,
        )
        .await
        .unwrap();
    assert_eq!(promoted.replaced[0].id, member.id);
    let segments = f
        .store
        .customer_segments(&customer("CUST-0001"), day("2026-07-01"))
        .await
        .unwrap();
    assert_eq!(segments.len(), 1, "the segment is held once on any day");
    assert!(segments[0].assignment.is_primary);
}

async fn refused_assignments_write_nothing(engine: Engine) {
    let f = with_segments(engine, &["RETAIL", "LEGACY"]).await;
    f.store
        .set_segment_status(&code("LEGACY"), SegmentStatus::Inactive, &f.actor)
        .await
        .unwrap();
    let attempts = [
        (
            assignment("CUST-404", "RETAIL", true, "2026-01-01", None),
            "CustomerNotFound",
        ),
        (
            assignment("CUST-0001", "NOPE", true, "2026-01-01", None),
            "SegmentNotFound",
        ),
        (
            assignment("CUST-0001", "LEGACY", true, "2026-01-01", None),
            "SegmentInactive",
        ),
        (
            assignment("CUST-0003", "RETAIL", true, "2026-01-01", None),
            "CustomerDisabled",
        ),
    ];
    for (attempt, expected) in attempts {
        let who = attempt.customer.to_string();
        let error = f.store.assign_segment(attempt, &f.actor).await.unwrap_err();
        let kind = match error {
            CustomerError::CustomerNotFound(_) => "CustomerNotFound",
            CustomerError::SegmentNotFound(_) => "SegmentNotFound",
            CustomerError::SegmentInactive(_) => "SegmentInactive",
            CustomerError::CustomerDisabled(_) => "CustomerDisabled",
            other => panic!("unexpected error {other:?}"),
        };
        assert_eq!(kind, expected);
        if who != "CUST-404" {
            assert!(
                f.store
                    .assignment_history(&customer(&who), 50, "")
                    .await
                    .unwrap()
                    .items
                    .is_empty()
            );
        }
    }
}

async fn ending_an_assignment_only_shortens_it(engine: Engine) {
    let f = with_segments(engine, &["RETAIL"]).await;
    let created = f
        .store
        .assign_segment(
            assignment("CUST-0001", "RETAIL", true, "2026-01-01", None),
            &f.actor,
        )
        .await
        .unwrap()
        .created;
    let ended = f
        .store
        .end_assignment(&created.id, day("2026-08-01"), &f.actor)
        .await
        .unwrap();
    assert_eq!(ended.range.to(), Some(day("2026-08-01")));
    assert_eq!(primary_on(&f, "CUST-0001", "2026-08-01").await, None);
    assert!(matches!(
        f.store
            .end_assignment(&created.id, day("2026-09-01"), &f.actor)
            .await,
        Err(CustomerError::FailedPrecondition(_))
    ));
    assert!(matches!(
        f.store.end_assignment(&created.id, day("2025-12-01"), &f.actor).await,
        Err(CustomerError::InvalidArgument { field, .. }) if field == "effective_to"
    ));
    let cancelled = f
        .store
        .end_assignment(&created.id, day("2026-01-01"), &f.actor)
        .await
        .unwrap();
    assert_eq!(cancelled.status, AssignmentStatus::Superseded);
    assert!(matches!(
        f.store
            .end_assignment("no-such-id", day("2026-01-01"), &f.actor)
            .await,
        Err(CustomerError::AssignmentNotFound(_))
    ));
    assert_eq!(primary_on(&f, "CUST-0001", "2026-03-01").await, None);
}

async fn segment_members_are_paged_by_customer(engine: Engine) {
    let f = with_segments(engine, &["RETAIL", "FESTIVAL"]).await;
    for i in 10..25 {
        let name = format!("CUST-{i:04}");
        fixtures::customer(&f.database.db, &name, &name, "Retail", false).await;
        f.store
            .assign_segment(
                assignment(&name, "RETAIL", i % 2 == 0, "2026-01-01", None),
                &f.actor,
            )
            .await
            .unwrap();
    }
    f.store
        .assign_segment(
            assignment("CUST-0001", "RETAIL", false, "2027-01-01", None),
            &f.actor,
        )
        .await
        .unwrap();

    let mut members = Vec::new();
    let mut token = String::new();
    loop {
        let page = f
            .store
            .segment_customers(&code("RETAIL"), day("2026-06-01"), false, 4, &token)
            .await
            .unwrap();
        members.extend(page.items.into_iter().map(|a| a.customer.to_string()));
        match page.next_token {
            Some(next) => token = next,
            None => break,
        }
    }
    let expected: Vec<String> = (10..25).map(|i| format!("CUST-{i:04}")).collect();
    assert_eq!(
        members, expected,
        "in customer order, without the customer who joins later"
    );
    let primaries = f
        .store
        .segment_customers(&code("RETAIL"), day("2026-06-01"), true, 50, "")
        .await
        .unwrap();
    assert_eq!(primaries.items.len(), 8);
    assert!(matches!(
        f.store
            .segment_customers(&code("NOPE"), day("2026-06-01"), false, 5, "")
            .await,
        Err(CustomerError::SegmentNotFound(_))
    ));
}

async fn territories_and_the_profile_resolve_together(engine: Engine) {
    let f = fixture(engine).await;
    f.store
        .create_segment(
            new_segment("WHOLESALE", ServiceLevel::Priority, 50, Some("WHOLESALE")),
            &f.actor,
        )
        .await
        .unwrap();
    f.store
        .assign_segment(
            assignment("CUST-0002", "WHOLESALE", true, "2026-01-01", None),
            &f.actor,
        )
        .await
        .unwrap();
    let mapping =
        |territory: &str, coverage, from: &str, tier: Option<&str>, level| NewTerritoryMapping {
            customer: customer("CUST-0002"),
            territory: DocName::parse(territory).unwrap(),
            coverage,
            range: EffectiveRange::new(day(from), None).unwrap(),
            price_tier: tier.map(code),
            service_level: level,
        };
    f.store
        .map_territory(
            mapping("Karnataka", CoverageType::Primary, "2026-01-01", None, None),
            &f.actor,
        )
        .await
        .unwrap();
    let moved = f
        .store
        .map_territory(
            mapping(
                "Bengaluru Urban",
                CoverageType::Primary,
                "2026-07-01",
                Some("METRO"),
                Some(ServiceLevel::Premium),
            ),
            &f.actor,
        )
        .await
        .unwrap();
    assert_eq!(moved.replaced.len(), 1, "one primary territory at a time");
    f.store
        .map_territory(
            mapping(
                "Karnataka",
                CoverageType::Delivery,
                "2026-07-01",
                None,
                None,
            ),
            &f.actor,
        )
        .await
        .unwrap();
    assert!(matches!(
        f.store
            .map_territory(
                mapping(
                    "Atlantis",
                    CoverageType::Secondary,
                    "2026-07-01",
                    None,
                    None
                ),
                &f.actor
            )
            .await,
        Err(CustomerError::TerritoryNotFound(_))
    ));

    let before = f
        .store
        .profile(&customer("CUST-0002"), day("2026-03-01"))
        .await
        .unwrap();
    assert_eq!(before.customer.customer_name, "Mithai Mahal");
    assert_eq!(
        before.primary().map(|p| p.segment.code.as_str()),
        Some("WHOLESALE")
    );
    assert_eq!(before.service_level, ServiceLevel::Priority);
    assert_eq!(before.service_level_source, ProfileSource::PrimarySegment);
    assert_eq!(
        before.price_tier.as_ref().map(SegmentCode::as_str),
        Some("WHOLESALE")
    );
    assert_eq!(before.territories.len(), 1);

    let after = f
        .store
        .profile(&customer("CUST-0002"), day("2026-08-01"))
        .await
        .unwrap();
    let territories: Vec<_> = after
        .territories
        .iter()
        .map(|t| (t.territory.as_str(), t.coverage))
        .collect();
    assert_eq!(
        territories,
        [
            ("Bengaluru Urban", CoverageType::Primary),
            ("Karnataka", CoverageType::Delivery)
        ]
    );
    assert_eq!(after.service_level, ServiceLevel::Premium);
    assert_eq!(after.service_level_source, ProfileSource::PrimaryTerritory);
    assert_eq!(
        after.price_tier.as_ref().map(SegmentCode::as_str),
        Some("METRO")
    );
    assert_eq!(after.price_tier_source, ProfileSource::PrimaryTerritory);

    let disabled = f
        .store
        .profile(&customer("CUST-0003"), day("2026-08-01"))
        .await
        .unwrap();
    assert!(disabled.customer.disabled);
    assert!(matches!(
        f.store
            .profile(&customer("CUST-404"), day("2026-08-01"))
            .await,
        Err(CustomerError::CustomerNotFound(_))
    ));
}

/// Many clients make primary assignments for one customer at once, on
/// overlapping and identical dates. Afterwards, on every day, at most one
/// primary is in force, every call either succeeded or failed cleanly, and
/// the history holds every assignment made.
async fn concurrent_primary_assignments_keep_one_primary_per_day(engine: Engine) {
    let codes = ["A", "B", "C", "D", "E", "F", "G", "H"];
    let f = with_segments(engine, &codes).await;
    let starts = [
        "2026-01-01",
        "2026-01-01",
        "2026-02-01",
        "2026-03-15",
        "2026-02-01",
        "2026-01-10",
    ];
    let mut tasks = Vec::new();
    for round in 0..3 {
        for (i, start) in starts.iter().enumerate() {
            let store = Arc::clone(&f.store);
            let actor = f.actor.clone();
            let segment = codes[(i + round) % codes.len()];
            let start = (*start).to_owned();
            tasks.push(tokio::spawn(async move {
                store
                    .assign_segment(assignment("CUST-0001", segment, true, &start, None), &actor)
                    .await
            }));
        }
    }
    let outcomes = futures::future::join_all(tasks).await;
    let made: Vec<_> = outcomes
        .into_iter()
        .map(|joined| joined.unwrap().unwrap())
        .collect();
    assert_eq!(made.len(), 18, "every concurrent call succeeds");

    let history = f
        .store
        .assignment_history(&customer("CUST-0001"), 500, "")
        .await
        .unwrap()
        .items;
    assert_eq!(history.len(), 18, "every assignment is kept");
    let in_force: Vec<_> = history
        .iter()
        .filter(|a| a.is_primary && a.status == AssignmentStatus::Active && !a.range.is_empty())
        .collect();
    let mut day_cursor = day("2025-12-25");
    while day_cursor <= day("2026-12-31") {
        let holders = in_force
            .iter()
            .filter(|a| a.range.contains(day_cursor))
            .count();
        assert!(holders <= 1, "{holders} primaries in force on {day_cursor}");
        if day_cursor >= day("2026-01-01") {
            assert_eq!(holders, 1, "no primary on {day_cursor}");
        }
        day_cursor = day_cursor.succ_opt().unwrap();
    }
    let open: BTreeSet<_> = in_force
        .iter()
        .filter(|a| a.range.to().is_none())
        .map(|a| &a.id)
        .collect();
    assert_eq!(open.len(), 1, "exactly one open-ended primary");
    for on in ["2026-01-05", "2026-02-10", "2026-04-01"] {
        let primary = primary_on(&f, "CUST-0001", on).await;
        assert!(primary.is_some(), "the store answers a primary on {on}");
    }
}

/// MariaDB (like ERPNext) matches names without regard to case; what is
/// stored is the name as ERPNext spells it, never the caller's spelling.
/// SQLite matches exactly.
async fn new_records_carry_the_erpnext_spelling_of_names(engine: Engine) {
    let f = with_segments(engine, &["RETAIL"]).await;
    let outcome = f
        .store
        .assign_segment(
            assignment("cust-0001", "RETAIL", true, "2026-01-01", None),
            &f.actor,
        )
        .await;
    match engine {
        Engine::MySql => {
            assert_eq!(outcome.unwrap().created.customer.as_str(), "CUST-0001");
            let members = f
                .store
                .segment_customers(&code("RETAIL"), day("2026-02-01"), false, 10, "")
                .await
                .unwrap();
            assert_eq!(members.items[0].customer.as_str(), "CUST-0001");
        }
        _ => assert!(matches!(outcome, Err(CustomerError::CustomerNotFound(_)))),
    }
}
