use super::*;

fn t(s: &str) -> Timestamp {
    time::parse(s).unwrap()
}

fn facts(times: &[Option<Timestamp>], had_new: bool, sig: u128) -> PageFacts<'_> {
    PageFacts {
        times,
        had_new,
        next_link: None,
        signature: sig,
    }
}

fn query(w: &Walk) -> Query {
    match w.request() {
        Some(PageRequest::Query(q)) => q.clone(),
        other => panic!("expected a query, got {other:?}"),
    }
}

#[test]
fn keyset_continues_from_the_last_time_and_skips_ties() {
    let mut w = Walk::keyset(Endpoint::Alerts, t("2026-12-01T00:00:00Z"), 3, None);
    let q = query(&w);
    assert_eq!(
        q.filter.as_deref(),
        Some("lastUpdateTime ge 2026-12-01T00:00:00.0000000Z")
    );
    assert_eq!(q.orderby.as_deref(), Some("lastUpdateTime asc"));
    assert_eq!(q.skip, 0);
    let a = Some(t("2026-12-02T00:00:00.1234567Z"));
    let b = Some(t("2026-12-02T00:00:01Z"));
    w.advance(facts(&[a, b, b], true, 1));
    let q = query(&w);
    assert_eq!(
        q.filter.as_deref(),
        Some("lastUpdateTime ge 2026-12-02T00:00:01.0000000Z")
    );
    assert_eq!(q.skip, 2);
    // A whole page at the same time: the skip grows within the tie.
    w.advance(facts(&[b, b, b], true, 2));
    assert_eq!(query(&w).skip, 5);
    // A short page with nothing new is the end.
    w.advance(facts(&[b], false, 3));
    assert!(w.request().is_none());
}

#[test]
fn a_capped_server_is_walked_to_the_end_and_its_cap_learned() {
    let mut w = Walk::keyset(Endpoint::Alerts, t("2026-12-01T00:00:00Z"), 10_000, None);
    let x = Some(t("2026-12-02T00:00:00Z"));
    let page = vec![x; 10];
    w.advance(facts(&page, true, 1));
    assert_eq!(query(&w).skip, 10);
    w.advance(facts(&page, true, 2));
    assert_eq!(w.learned_cap(), Some(10));
    assert_eq!(query(&w).skip, 20);
    // With the cap known, a full capped page continues even with nothing new.
    w.advance(facts(&page, false, 3));
    assert_eq!(query(&w).skip, 30);
    w.advance(facts(&[], false, 0));
    assert!(w.request().is_none());
}

#[test]
fn a_known_cap_makes_a_page_of_that_size_full() {
    let mut w = Walk::skip(Endpoint::Recommendations, None, 10_000, Some(5));
    let page = vec![None; 5];
    w.advance(facts(&page, false, 1));
    assert_eq!(query(&w).skip, 5);
    w.advance(facts(&page[..2], false, 2));
    assert!(w.request().is_none());
}

#[test]
fn unsorted_pages_fall_back_to_skip() {
    let mut w = Walk::keyset(Endpoint::Alerts, t("2026-12-01T00:00:00Z"), 2, None);
    let a = Some(t("2026-12-03T00:00:00Z"));
    let b = Some(t("2026-12-02T00:00:00Z"));
    w.advance(facts(&[a, b], true, 1));
    let q = query(&w);
    assert_eq!(
        q.filter.as_deref(),
        Some("lastUpdateTime ge 2026-12-01T00:00:00.0000000Z")
    );
    assert_eq!(q.skip, 2);
}

#[test]
fn next_link_is_followed_and_a_repeated_page_stops_the_walk() {
    let mut w = Walk::skip(
        Endpoint::Investigations,
        Some("startTime ge 2026-11-01T00:00:00Z".into()),
        2,
        None,
    );
    let url = Url::parse("http://127.0.0.1:1/api/investigations?$skip=2").unwrap();
    w.advance(PageFacts {
        times: &[None, None],
        had_new: true,
        next_link: Some(url.clone()),
        signature: 7,
    });
    assert_eq!(
        w.request(),
        Some(&PageRequest::Next {
            endpoint: Endpoint::Investigations,
            url
        })
    );
    w.advance(facts(&[None, None], true, 8));
    assert_eq!(query(&w).skip, 2);
    w.advance(facts(&[None, None], true, 8));
    assert!(
        w.request().is_none(),
        "the same page twice means $skip is ignored"
    );
}
