//! Asking for the next page before this one is checked.
//!
//! The API takes its time to prepare a page (Microsoft's, seconds for 10,000
//! alerts with evidence; the sandbox's, about 0.1 s), and checking, hashing
//! and writing a page takes `pull` tens of milliseconds. Done one after the
//! other, the two add up on every page. A keyset walk's next request depends
//! only on the page's last time and how many records share it, which the
//! page's tail tells ([`Fetched::tail`]); so `pull` guesses the next request
//! from the tail, sends it, and checks this page while the API works on it.
//!
//! A page taken in as it arrives (see [`super::streamed`]) is guessed from
//! the same way, from its ends ([`guess_from_ends`]), as soon as its last
//! byte is in: the body is read up to a few megabytes ahead of the check,
//! so the next request goes out while those are still being checked.
//!
//! The guess is only used when the checked page leads to exactly the same
//! request ([`Walk::advance`] decides, as always); otherwise it is dropped, at
//! the cost of one API call. [`guess`] is asked only where a page is likely
//! to be followed by another, so a pull with nothing new makes no extra call.

use super::record;
use super::walk::Walk;
use crate::api::stream::Ends;
use crate::api::{Endpoint, Fetched, PageRequest, tail};
use crate::time::Timestamp;

/// Records read back from a page's end at the most: enough for the ties at
/// its last time in all but odd cases (many records on one timestamp), for
/// which no guess is made.
pub const TAIL_RECORDS: usize = 64;

/// The request `walk` will make after `fetched`, if the tail tells it.
pub fn guess(walk: &Walk, fetched: &Fetched) -> Option<PageRequest> {
    let tail = fetched.tail(TAIL_RECORDS)?;
    let (last, ties) = last_and_ties(
        tail.times
            .iter()
            .map(|raw| record::read_time(fetched.endpoint(), *raw)),
        tail.whole,
    )?;
    walk.after(last, ties)
}

/// The request `walk` will make after a streamed page of `endpoint` whose
/// body ended in `ends`, if they tell it: asked for while the rest of the
/// page is still being checked.
pub fn guess_from_ends(walk: &Walk, endpoint: Endpoint, ends: &Ends) -> Option<PageRequest> {
    let field = endpoint.time_field()?;
    let tail = tail::read_ends(&ends.head, &ends.end, field, TAIL_RECORDS)?;
    let (last, ties) = last_and_ties(
        tail.times.iter().map(|r| {
            let raw = match r {
                Some(r) => {
                    Some(std::str::from_utf8(&ends.end[r.clone()]).map_err(|e| e.to_string())?)
                }
                None => None,
            };
            record::read_time(endpoint, raw)
        }),
        tail.whole,
    )?;
    walk.after(last, ties)
}

/// From times read backward (last record first): the page's last time and
/// how many records have it, if a sorted page would show them; `None` when
/// the times are out of order, unreadable, absent, or the run of ties goes on
/// past what was read.
fn last_and_ties(
    backward: impl Iterator<Item = Result<Option<Timestamp>, String>>,
    whole: bool,
) -> Option<(Timestamp, u64)> {
    let mut last: Option<Timestamp> = None;
    let mut ties = 0u64;
    for t in backward {
        match (t.ok()?, last) {
            (None, _) => {}
            (Some(t), None) => (last, ties) = (Some(t), 1),
            (Some(t), Some(l)) if t == l => ties += 1,
            (Some(t), Some(l)) if t < l => return Some((l, ties)),
            _ => return None,
        }
    }
    // Every record was read: the ties are all there.
    if whole { last.map(|l| (l, ties)) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Endpoint;
    use crate::time;

    fn t(s: &str) -> Option<Timestamp> {
        time::parse(s)
    }

    fn run(times: &[Option<&str>], whole: bool) -> Option<(Timestamp, u64)> {
        last_and_ties(times.iter().map(|s| Ok(s.and_then(t))), whole)
    }

    #[test]
    fn the_last_time_and_its_ties() {
        let (a, b) = (Some("2026-12-02T00:00:00Z"), Some("2026-12-02T00:00:01Z"));
        let b_time = t(b.unwrap()).unwrap();
        assert_eq!(run(&[b, b, a, a], false), Some((b_time, 2)));
        // Records without a time are passed over, as the walk passes them.
        assert_eq!(run(&[None, b, None, b, a], false), Some((b_time, 2)));
        // The whole page at one time: known only when every record was read.
        assert_eq!(run(&[b, b, b], true), Some((b_time, 3)));
        assert_eq!(run(&[b, b, b], false), None);
        // Out of order, no times at all, an empty page, a bad time.
        assert_eq!(run(&[a, b], false), None);
        assert_eq!(run(&[None, None], true), None);
        assert_eq!(run(&[], true), None);
        assert_eq!(
            last_and_ties(
                [Ok(t(b.unwrap())), Err("not a string".into())].into_iter(),
                true
            ),
            None
        );
    }

    #[test]
    fn a_guess_is_what_the_walk_asks_for_after_the_checked_page() {
        use super::super::walk::PageFacts;
        let records: Vec<String> = [
            "2026-12-02T00:00:00Z",
            "2026-12-02T00:00:01Z",
            "2026-12-02T00:00:01.0000000Z",
        ]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                r#"{{"id":"a{i}","lastUpdateTime":"{t}","evidence":[{{"lastUpdateTime":"x"}}]}}"#
            )
        })
        .collect();
        let fetched = Fetched::from_records(Endpoint::Alerts, &records);
        let mut walk = Walk::keyset(
            Endpoint::Alerts,
            t("2026-12-01T00:00:00Z").unwrap(),
            3,
            None,
        );
        let guessed = guess(&walk, &fetched).expect("a guess");
        let page = fetched.check().unwrap();
        let times: Vec<_> = (0..page.len())
            .map(|i| record::read_time(Endpoint::Alerts, page.members(i)[1]).unwrap())
            .collect();
        walk.advance(PageFacts {
            times: &times,
            had_new: true,
            next_link: None,
            signature: 1,
        });
        assert_eq!(walk.request(), Some(&guessed));
        // Investigations page by $skip: no guess.
        let inv = Fetched::from_records(Endpoint::Investigations, &records);
        let skip = Walk::skip(Endpoint::Investigations, None, 3, None);
        assert_eq!(guess(&skip, &inv), None);
    }
}
