//! Dropping records already written as a body arrives.
//!
//! A pull that resumes starts by reading its lookback window again: on a busy
//! tenant that is thousands of alerts and megabytes of body, nearly all of it
//! written before. Received whole, such a body first costs its size in fresh
//! memory, which the kernel zeroes and maps page by page, before a record is
//! looked at. A [`Sifter`] takes the body a chunk at a time into a small
//! window, checks it as a page exactly as a whole body is checked (UTF-8
//! included), and keeps only the records whose fingerprint is not [`Known`];
//! of the others it keeps what `pull` needs (fingerprint, raw id and time).
//! The memory a sifted body costs is what is new in it.
//!
//! `pull` decides, as always, which records are new versions; a record dropped
//! here that it finds is not one it has (its memory moved since it asked), it
//! fetches the page again without sifting.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

use url::Url;

use super::Members;
use super::page::{self, PageError, PageScan};
use super::{BodyPool, Endpoint, Page};

/// Fingerprints (xxh3-128 of a record's bytes) of records already written.
#[derive(Debug, Default)]
pub struct Known(HashSet<u128, BuildHasherDefault<Folded>>);

/// Hashes a fingerprint by folding its halves: it is already a uniform hash
/// of the record's bytes, so hashing it again (SipHash, the default) is work
/// for nothing, once per record of every page sifted.
#[derive(Debug, Default)]
pub struct Folded(u64);

impl Hasher for Folded {
    fn write(&mut self, bytes: &[u8]) {
        // Only fingerprints are hashed with this (`write_u128`); anything
        // else still hashes, a byte at a time.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u128(&mut self, fingerprint: u128) {
        self.0 ^= (fingerprint as u64) ^ ((fingerprint >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Known {
    pub fn new(fingerprints: impl IntoIterator<Item = u128>) -> Known {
        Known(fingerprints.into_iter().collect())
    }

    pub fn contains(&self, fingerprint: u128) -> bool {
        self.0.contains(&fingerprint)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A body declared at least this large is sifted (smaller ones are held
/// whole: they cost little, and a thread is not worth it).
pub const SIFT_FROM: usize = 1 << 20;

/// What the window holds at the most before it is sifted (more only while
/// one record is larger).
const SIFT_EVERY: usize = 256 << 10;

/// Streaming, a window is sifted (and becomes a part) once it holds this much.
const STREAM_EVERY: usize = 1 << 20;

/// A sifted page's records, in the order the API sent them: the kept ones
/// (in the page) and the known ones (dropped).
#[derive(Debug, Default)]
pub struct KnownRecords {
    slots: Vec<Slot>,
    /// The raw ids and times of the known records.
    text: String,
}

#[derive(Debug)]
enum Slot {
    Kept,
    Known {
        fingerprint: u128,
        id: Option<Range<usize>>,
        time: Option<Range<usize>>,
    },
}

/// One record of a sifted page.
pub enum Entry<'a> {
    /// Record `i` of the page.
    Kept(usize),
    /// A record dropped as known: its fingerprint, and the raw values of its
    /// `id` and time field, as [`Page::members`] gives them.
    Known {
        fingerprint: u128,
        members: [Option<&'a str>; 2],
    },
}

impl KnownRecords {
    /// Every record, kept or known, in order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'_>> + '_ {
        let mut kept = 0;
        self.slots.iter().map(move |slot| match slot {
            Slot::Kept => {
                kept += 1;
                Entry::Kept(kept - 1)
            }
            Slot::Known {
                fingerprint,
                id,
                time,
            } => Entry::Known {
                fingerprint: *fingerprint,
                members: [id, time].map(|r| r.clone().map(|r| &self.text[r])),
            },
        })
    }

    /// How many records the page had.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// A body being sifted as it arrives.
pub struct Sifter<'k> {
    known: &'k Known,
    scan: PageScan,
    window: Vec<u8>,
    /// Bytes of the body before the window.
    dropped: usize,
    /// Room for what may yet be kept: the declared length less what is in.
    declared: usize,
    /// The body's first bytes, for messages.
    start: Vec<u8>,
    kept: Vec<u8>,
    spans: Vec<Range<usize>>,
    members: Vec<Members>,
    records: KnownRecords,
    next_link: Option<Vec<u8>>,
    /// Streaming: each window sifted becomes a part, handed on with
    /// [`drain`](Sifter::drain), instead of the kept records being gathered
    /// until the end.
    streaming: bool,
    /// Streaming: the part of the window sifted last.
    ready: Option<(Page, KnownRecords)>,
    /// Streaming: where the windows handed on come back, for the next ones.
    buffers: BodyPool,
}

impl<'k> Sifter<'k> {
    /// Sift an `endpoint` body of about `declared` bytes against `known`.
    pub fn new(endpoint: Endpoint, known: &'k Known, declared: usize) -> Sifter<'k> {
        Sifter {
            known,
            scan: PageScan::new(endpoint),
            window: Vec::with_capacity(SIFT_EVERY * 2),
            dropped: 0,
            declared,
            start: Vec::new(),
            kept: Vec::new(),
            spans: Vec::new(),
            members: Vec::new(),
            records: KnownRecords::default(),
            next_link: None,
            streaming: false,
            ready: None,
            buffers: BodyPool::default(),
        }
    }

    /// A sifter whose records are taken a window at a time with
    /// [`drain`](Sifter::drain) while the body arrives, so what it holds is
    /// a window or two however large the body. A window of the part is
    /// handed on as it is, so the kept records are not copied.
    pub fn streaming(endpoint: Endpoint, known: &'k Known) -> Sifter<'k> {
        let buffers = BodyPool::default();
        Sifter {
            streaming: true,
            window: buffers.take(STREAM_EVERY * 2),
            buffers,
            ..Sifter::new(endpoint, known, 0)
        }
    }

    /// Streaming: the records of the window sifted last, if not taken yet —
    /// a page of the kept ones (no `nextLink`: that comes with
    /// [`finish`](Sifter::finish), which hands over the last part), and the
    /// account of all of them, in order.
    pub fn drain(&mut self) -> Option<(Page, KnownRecords)> {
        self.ready.take()
    }

    /// Bytes taken in so far.
    pub fn len(&self) -> usize {
        self.dropped + self.window.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take in the next chunk. A body that cannot be a page is refused at once.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), PageError> {
        if self.start.len() < 80 {
            let n = chunk.len().min(80 - self.start.len());
            self.start.extend_from_slice(&chunk[..n]);
        }
        self.window.extend_from_slice(chunk);
        let every = if self.streaming {
            STREAM_EVERY
        } else {
            SIFT_EVERY
        };
        if self.window.len() >= every {
            self.sift()?;
        }
        Ok(())
    }

    /// Check what the window holds, keep the new records, and drop the rest.
    fn sift(&mut self) -> Result<(), PageError> {
        self.scan.feed(&self.window)?;
        let done = self.scan.checked_to();
        // Outside strings the scan allows only ASCII; this settles the
        // strings. `done` follows a structural byte, so it is a character
        // boundary.
        std::str::from_utf8(&self.window[..done]).map_err(|e| {
            PageError::NotAPage(format!(
                "the body is not UTF-8 after {} bytes; it starts with {}",
                self.dropped + e.valid_up_to(),
                page::preview(&self.start)
            ))
        })?;
        let (spans, members) = self.scan.take_records();
        if self.streaming {
            return self.hand_on(done, spans, members);
        }
        for (span, found) in spans.into_iter().zip(members) {
            let raw = &self.window[span.clone()];
            let fingerprint = xxhash_rust::xxh3::xxh3_128(raw);
            if self.known.contains(fingerprint) {
                self.records.slots.push(known_slot(
                    &mut self.records.text,
                    &self.window,
                    fingerprint,
                    found,
                ));
            } else {
                if self.kept.capacity() == 0 {
                    // Room for the rest of the body, at the most.
                    self.kept
                        .reserve_exact(self.declared.saturating_sub(self.dropped + span.start));
                }
                let base = self.kept.len();
                self.kept.extend_from_slice(raw);
                let moved =
                    |r: Range<usize>| r.start - span.start + base..r.end - span.start + base;
                self.spans.push(moved(span.clone()));
                self.members.push(found.map(|r| r.map(moved)));
                self.records.slots.push(Slot::Kept);
            }
        }
        if let Some(r) = self.scan.take_next_link() {
            self.next_link = Some(self.window[r].to_vec());
        }
        self.window.drain(..done);
        self.dropped += done;
        self.scan.rebase(done);
        Ok(())
    }

    /// Streaming: make the checked stretch of the window, `done` bytes, the
    /// body of a part whose records are the kept ones of `spans`, and go on
    /// with the rest in a window of its own.
    fn hand_on(
        &mut self,
        done: usize,
        spans: Vec<Range<usize>>,
        members: Vec<Members>,
    ) -> Result<(), PageError> {
        let mut records = KnownRecords::default();
        let (mut kept, mut kept_members) = (Vec::new(), Vec::new());
        for (span, found) in spans.into_iter().zip(members) {
            // With nothing known, every record is kept, unhashed (`pull`
            // hashes what it keeps).
            let fingerprint = (!self.known.is_empty())
                .then(|| xxhash_rust::xxh3::xxh3_128(&self.window[span.clone()]));
            match fingerprint {
                Some(f) if self.known.contains(f) => {
                    records
                        .slots
                        .push(known_slot(&mut records.text, &self.window, f, found))
                }
                _ => {
                    kept.push(span);
                    kept_members.push(found);
                    records.slots.push(Slot::Kept);
                }
            }
        }
        if let Some(r) = self.scan.take_next_link() {
            self.next_link = Some(self.window[r].to_vec());
        }
        let mut rest = self.buffers.take(STREAM_EVERY * 2);
        rest.extend_from_slice(&self.window[done..]);
        let mut body = std::mem::replace(&mut self.window, rest);
        body.truncate(done);
        // SAFETY: `sift` checked exactly these bytes as UTF-8 just before.
        let body = unsafe { String::from_utf8_unchecked(body) };
        let page = Page::from_spans(body, kept, kept_members, None).recycle_into(&self.buffers);
        self.ready = Some(match self.ready.take() {
            // Not drained since (only `finish` sifts twice in a row).
            Some(_) => unreachable!("a part is drained before the next window is sifted"),
            None => (page, records),
        });
        self.dropped += done;
        self.scan.rebase(done);
        Ok(())
    }

    /// The body is complete: check the rest and make the page of the kept
    /// records, with the account of every record. `api_base` decides which
    /// `nextLink`s may be followed.
    pub fn finish(mut self, api_base: &Url) -> Result<(Page, KnownRecords), PageError> {
        self.sift()?;
        self.scan.settle(self.len(), &self.start)?;
        let next_link = match &self.next_link {
            Some(raw) => page::next_link(raw, api_base)?,
            None => None,
        };
        if self.streaming {
            let (mut page, records) = self.ready.take().expect("the last window was handed on");
            page.next_link = next_link;
            return Ok((page, records));
        }
        let body = String::from_utf8(self.kept)
            .map_err(|_| PageError::NotAPage("the body is not UTF-8".into()))?;
        Ok((
            Page::from_spans(body, self.spans, self.members, next_link),
            self.records,
        ))
    }
}

/// The account of a record dropped as known: its fingerprint, and its raw
/// `id` and time (the `found` ranges of `window`) copied into `text`.
fn known_slot(text: &mut String, window: &[u8], fingerprint: u128, found: Members) -> Slot {
    let mut copy = |r: Option<Range<usize>>| {
        r.map(|r| {
            let at = text.len();
            // Inside the checked stretch, on token boundaries.
            text.push_str(std::str::from_utf8(&window[r]).unwrap_or_default());
            at..text.len()
        })
    };
    let [id, time] = found;
    let (id, time) = (copy(id), copy(time));
    Slot::Known {
        fingerprint,
        id,
        time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("http://localhost").unwrap()
    }

    #[test]
    fn known_tells_apart_fingerprints_that_fold_alike() {
        // Halves swapped, or both halves equal, fold to the same hash.
        let (a, b) = (0x1234_u128 << 64 | 0xabcd, 0xabcd_u128 << 64 | 0x1234);
        let (c, d) = (7_u128 << 64 | 7, 9_u128 << 64 | 9);
        let known = Known::new([a, c]);
        assert!(known.contains(a) && known.contains(c));
        assert!(!known.contains(b) && !known.contains(d));
        assert!(!known.contains(0) && !Known::default().contains(a));
    }

    fn record(i: usize) -> String {
        format!(
            r#"{{"id":"da{i}","lastUpdateTime":"2026-12-01T00:{:02}:{:02}Z","title":"é \" {}","evidence":[{{"n":{i}}}]}}"#,
            i / 60 % 60,
            i % 60,
            "x".repeat(i % 700)
        )
    }

    fn body(n: usize, link: bool) -> Vec<u8> {
        let records: Vec<String> = (0..n).map(record).collect();
        let link = if link {
            r#","@odata.nextLink":"http://localhost/api/alerts?$skip=10""#
        } else {
            ""
        };
        format!(
            "{{\"@odata.context\":\"x\",\"value\":[{}]{link}}}\n",
            records.join(",\n ")
        )
        .into_bytes()
    }

    fn sift(body: &[u8], known: &Known, chunk: usize) -> Result<(Page, KnownRecords), PageError> {
        let mut s = Sifter::new(Endpoint::Alerts, known, body.len());
        for c in body.chunks(chunk) {
            s.push(c)?;
        }
        assert_eq!(s.len(), body.len());
        s.finish(&base())
    }

    /// Every record of `whole` known but every third (the 0th, 3rd, …).
    fn known_but_every_third(whole: &Page) -> Known {
        Known::new(
            whole
                .records()
                .enumerate()
                .filter(|(i, _)| i % 3 != 0)
                .map(|(_, r)| xxhash_rust::xxh3::xxh3_128(r.as_bytes())),
        )
    }

    /// `entry` accounts for record `i` of `whole`: kept in `page` as it is
    /// there, or known with its fingerprint and members; kept only if it is
    /// one of every third, unless `all_kept`.
    fn accounts_for(entry: Entry<'_>, i: usize, page: &Page, whole: &Page, all_kept: bool) {
        match entry {
            Entry::Kept(k) => {
                assert!(all_kept || i.is_multiple_of(3), "record {i}");
                assert_eq!(page.record(k), whole.record(i));
                assert_eq!(page.members(k), whole.members(i));
            }
            Entry::Known {
                fingerprint,
                members,
            } => {
                assert_ne!(i % 3, 0, "record {i}");
                assert_eq!(
                    fingerprint,
                    xxhash_rust::xxh3::xxh3_128(whole.record(i).as_bytes())
                );
                assert_eq!(members, whole.members(i));
            }
        }
    }

    #[test]
    fn only_unknown_records_are_kept_and_every_record_is_accounted_for() {
        let body = body(3_000, true);
        let whole = page::parse(body.clone(), Endpoint::Alerts, &base()).unwrap();
        let known = known_but_every_third(&whole);
        for chunk in [1_000, 65_536, 300_001, body.len()] {
            let (page, records) = sift(&body, &known, chunk).unwrap();
            assert_eq!(records.len(), whole.len(), "chunks of {chunk}");
            assert_eq!(page.len(), 1_000);
            assert_eq!(page.next_link, whole.next_link);
            for (i, entry) in records.entries().enumerate() {
                accounts_for(entry, i, &page, &whole, false);
            }
        }
        // Nothing known: the page is the whole page.
        let (page, _) = sift(&body, &Known::default(), 65_536).unwrap();
        assert!(page.records().eq(whole.records()));
    }

    /// `body` cut off, broken mid-way, and with bad UTF-8 deep inside a
    /// string, each with whether a whole body's check refuses it as cut off
    /// (else as not a page).
    fn spoiled(body: &[u8]) -> [(Vec<u8>, bool); 3] {
        let cut = body[..body.len() - 3_000].to_vec();
        let mut broken = body.to_vec();
        let at = broken.len() / 2;
        let at = at + broken[at..].windows(2).position(|w| w == b",\n").unwrap();
        broken[at] = b';';
        let mut bad = body.to_vec();
        let at = bad.len() * 3 / 4;
        let at = at + bad[at..].iter().position(|&c| c == b'x').unwrap();
        bad[at] = 0xff;
        [(cut, true), (broken, false), (bad, false)]
    }

    fn refused_as(e: &PageError, cut_off: bool) -> bool {
        match e {
            PageError::CutOff(_) => cut_off,
            PageError::NotAPage(_) => !cut_off,
            PageError::ForeignNextLink(_) => false,
        }
    }

    #[test]
    fn a_sifted_body_is_refused_as_a_whole_one_would_be() {
        let known = Known::default();
        for (body, cut_off) in spoiled(&body(2_000, false)) {
            let e = sift(&body, &known, 65_536).unwrap_err();
            assert!(refused_as(&e, cut_off), "{e:?}");
        }
        assert!(matches!(
            sift(b"<html>Proxy error</html>", &known, 10),
            Err(PageError::NotAPage(_))
        ));
    }

    /// Streams `body` in chunks of `chunk`: every part, the last one last.
    fn stream(
        body: &[u8],
        known: &Known,
        chunk: usize,
    ) -> Result<Vec<(Page, KnownRecords)>, PageError> {
        let mut s = Sifter::streaming(Endpoint::Alerts, known);
        let mut parts = Vec::new();
        for c in body.chunks(chunk) {
            s.push(c)?;
            parts.extend(s.drain());
        }
        parts.push(s.finish(&base())?);
        Ok(parts)
    }

    #[test]
    fn streamed_parts_account_for_every_record_in_order() {
        let body = body(12_000, true);
        let whole = page::parse(body.clone(), Endpoint::Alerts, &base()).unwrap();
        let known = known_but_every_third(&whole);
        for (known, chunk) in [
            (&known, 1_000),
            (&known, 300_001),
            (&Known::default(), 65_536),
        ] {
            let parts = stream(&body, known, chunk).unwrap();
            assert!(parts.len() >= 3, "{} parts", parts.len());
            let (last, before) = parts.split_last().unwrap();
            assert!(before.iter().all(|(p, _)| p.next_link.is_none()));
            assert_eq!(last.0.next_link, whole.next_link);
            let mut i = 0;
            for (page, records) in &parts {
                for entry in records.entries() {
                    accounts_for(entry, i, page, &whole, known.is_empty());
                    i += 1;
                }
            }
            assert_eq!(i, whole.len(), "chunks of {chunk}");
        }
    }

    #[test]
    fn a_streamed_body_is_refused_as_a_whole_one_would_be() {
        let known = Known::default();
        for (body, cut_off) in spoiled(&body(8_000, false)) {
            let e = stream(&body, &known, 65_536).unwrap_err();
            assert!(refused_as(&e, cut_off), "{e:?}");
        }
    }
}
