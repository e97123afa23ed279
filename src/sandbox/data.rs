//! The tenant's ground truth and how it moves: alerts, investigations and
//! recommendations held as compact records (JSON is rendered on the fly, so a
//! million alerts stay cheap), evolved deterministically from the seed.
//!
//! Timestamps are 100 ns ticks on the server's clock (host clock + offset).
//! Each timestamp is truncated, per record version, to 7 digits, 2 digits or
//! whole seconds, so the API shows Microsoft's mixed precision while filters
//! compare exactly what clients see.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::SandboxConfig;
use super::odata::{from_ticks, ticks};
use super::render;

const TICKS_PER_SEC: i64 = 10_000_000;
const DAY: i64 = 86_400 * TICKS_PER_SEC;

/// One alert, compact; everything not stored here is derived from `n`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AlertRec {
    pub n: u32,
    pub created: i64,
    pub updated: i64,
    pub visible_at: i64,
    /// 0 = null.
    pub resolved: i64,
    pub incident: u32,
    /// 0 = null.
    pub investigation: u32,
    pub version: u16,
    pub status: u8,
    pub classification: u8,
    pub determination: u8,
    pub assigned: u8,
    pub comments: u8,
    pub inv_state: u8,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct InvestigationRec {
    pub id: u32,
    pub start: i64,
    /// 0 = null.
    pub end: i64,
    pub state: u8,
    pub alert_n: u32,
    pub cancelled: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RecommendationRec {
    pub n: u32,
    pub total: u32,
    pub exposed: u32,
    pub weaknesses: u32,
    pub exception: bool,
    pub active_alert: bool,
}

pub(crate) struct Store {
    pub seed: u64,
    pub tenant_id: String,
    pub alerts: Vec<AlertRec>,
    pub investigations: Vec<InvestigationRec>,
    pub recommendations: Vec<RecommendationRec>,
    rng: u64,
    next_alert: u32,
    next_incident: u32,
    next_investigation: u32,
    ticks_done: u64,
}

/// A cheap handle on the tenant's data and clock.
#[derive(Clone)]
pub struct Tenant {
    inner: Arc<Mutex<Store>>,
    offset: chrono::Duration,
}

/// splitmix64: the one source of pseudo-randomness, so a seed fixes the data.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Truncate a timestamp to the precision this record version shows.
pub(crate) fn with_precision(t: i64, salt: u64) -> i64 {
    match mix(salt) % 3 {
        0 => t,
        1 => t - t.rem_euclid(100_000),
        _ => t - t.rem_euclid(TICKS_PER_SEC),
    }
}

impl Store {
    fn rand(&mut self) -> u64 {
        self.rng = mix(self.rng);
        self.rng
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.rand() % n }
    }

    /// `n` distinct indices below `len` (fewer when `len < n`), deterministic from the seed.
    fn distinct(&mut self, len: usize, n: usize) -> Vec<usize> {
        let start = self.below(len as u64) as usize;
        // A stride coprime with len visits every index once.
        let mut stride = 1 + self.below(len.max(1) as u64) as usize;
        while gcd(stride, len.max(1)) != 1 {
            stride += 1;
        }
        (0..n.min(len))
            .map(|k| (start + k * stride) % len)
            .collect()
    }

    fn new_alert(&mut self, created: i64, updated: i64) -> AlertRec {
        let n = self.next_alert;
        self.next_alert += 1;
        let h = mix(self.seed ^ u64::from(n));
        if self.below(3) == 0 || self.next_incident == 0 {
            self.next_incident += 1;
        }
        let salt = h ^ 0x5151;
        let created = with_precision(created, salt);
        let updated = with_precision(updated.max(created), salt.rotate_left(7));
        AlertRec {
            n,
            created,
            updated,
            visible_at: updated,
            resolved: 0,
            incident: 1_126_000 + self.next_incident,
            investigation: 0,
            version: 0,
            status: 1,
            classification: 0,
            determination: 0,
            assigned: 0,
            comments: 0,
            inv_state: (h % 4) as u8,
        }
    }

    fn push_alert(&mut self, created: i64, updated: i64) -> usize {
        let a = self.new_alert(created, updated);
        self.alerts.push(a);
        self.alerts.len() - 1
    }

    /// Move an alert on: status, classification, owner, a comment, lastUpdateTime = now.
    fn update_alert(&mut self, i: usize, now: i64) {
        let r = self.rand();
        let a = &mut self.alerts[i];
        a.version = a.version.wrapping_add(1);
        let salt = mix(u64::from(a.n) << 16 | u64::from(a.version));
        let t = with_precision(now, salt).max(a.updated);
        match a.status {
            1 => a.status = 2,
            2 if r.is_multiple_of(2) => {
                a.status = 3;
                a.resolved = t;
                a.classification = 1 + (r >> 8) as u8 % 3;
                a.determination = 1 + (r >> 16) as u8 % 4;
            }
            _ => {}
        }
        if a.assigned == 0 {
            a.assigned = 1 + (r >> 24) as u8 % 4;
        }
        a.comments = a.comments.saturating_add(1).min(5);
        a.updated = t;
        a.visible_at = a.visible_at.max(t.min(now));
    }

    fn new_investigation(&mut self, start: i64, alert_n: u32) -> InvestigationRec {
        self.next_investigation += 1;
        let state = self.below(4) as u8;
        InvestigationRec {
            id: 63_000 + self.next_investigation,
            start: start - start.rem_euclid(TICKS_PER_SEC),
            end: 0,
            state,
            alert_n,
            cancelled: false,
        }
    }
}

impl Tenant {
    pub(crate) fn generate(cfg: &SandboxConfig) -> Tenant {
        let t = Tenant {
            inner: Arc::new(Mutex::new(Store {
                seed: cfg.seed,
                tenant_id: cfg.tenant_id.clone(),
                alerts: Vec::new(),
                investigations: Vec::new(),
                recommendations: Vec::new(),
                rng: mix(cfg.seed.wrapping_add(0xD1CE)),
                next_alert: 0,
                next_incident: 0,
                next_investigation: 0,
                ticks_done: 0,
            })),
            offset: cfg.clock_offset,
        };
        t.bulk_alerts(cfg.alerts);
        let now = t.now_ticks();
        {
            let mut s = t.lock();
            // Some alerts have been worked on since they were raised.
            let len = s.alerts.len();
            for _ in 0..len / 3 {
                let i = s.below(len as u64) as usize;
                let when = {
                    let a = s.alerts[i];
                    a.updated + s.below((now - a.updated).max(1) as u64) as i64
                };
                s.update_alert(i, when);
            }
            for _ in 0..cfg.investigations {
                add_investigation(&mut s, now, true);
            }
            for n in 0..cfg.recommendations as u32 {
                let total = 5 + s.below(400) as u32;
                let exposed = 1 + s.below(u64::from(total)) as u32;
                let weaknesses = s.below(60) as u32;
                let r = s.rand();
                s.recommendations.push(RecommendationRec {
                    n,
                    total,
                    exposed,
                    weaknesses,
                    exception: r.is_multiple_of(10),
                    active_alert: r.is_multiple_of(7),
                });
            }
        }
        t
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Store> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The server's clock: host clock + the configured offset.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }

    pub(crate) fn now_ticks(&self) -> i64 {
        ticks(self.now())
    }

    /// Add `n` alerts spread over the past 30 days, cheaply (a million is fine).
    pub fn bulk_alerts(&self, n: usize) {
        let now = self.now_ticks();
        let mut s = self.lock();
        s.alerts.reserve(n);
        for _ in 0..n {
            let created = now - 1 - s.below(30 * DAY as u64) as i64;
            let age = now - created;
            let updated = created + s.below((age.min(DAY / 4)) as u64) as i64;
            s.push_alert(created, updated);
        }
    }

    /// `n` new alerts raised just now.
    pub fn add_alerts(&self, n: usize) {
        let now = self.now_ticks();
        let mut s = self.lock();
        for _ in 0..n {
            let created = now - s.below(5 * 60 * TICKS_PER_SEC as u64) as i64;
            s.push_alert(created, now);
        }
    }

    /// `n` alerts that all share exactly this `lastUpdateTime`.
    pub fn add_alerts_at(&self, n: usize, t: DateTime<Utc>) {
        let at = ticks(t);
        let mut s = self.lock();
        for _ in 0..n {
            let i = s.push_alert(at - 60 * TICKS_PER_SEC, at);
            s.alerts[i].updated = at;
            s.alerts[i].visible_at = at;
        }
    }

    /// An alert updated now that the API shows only after `visible_after`.
    pub fn add_late_alert(&self, visible_after: Duration) {
        let now = self.now_ticks();
        let mut s = self.lock();
        let i = s.push_alert(now - 90 * TICKS_PER_SEC, now);
        let delay = chrono::Duration::from_std(visible_after).unwrap_or_default();
        s.alerts[i].visible_at = now + delay.num_microseconds().unwrap_or(0) * 10;
    }

    /// Work on `n` existing alerts: status, classification, comments, owner; lastUpdateTime = now.
    pub fn update_alerts(&self, n: usize) {
        let now = self.now_ticks();
        let mut s = self.lock();
        let len = s.alerts.len();
        for i in s.distinct(len, n) {
            if s.alerts[i].visible_at > now {
                continue;
            }
            s.update_alert(i, now);
        }
    }

    /// Move `n` investigations to another state, without any timestamp changing.
    pub fn progress_investigations(&self, n: usize) {
        let mut s = self.lock();
        let len = s.investigations.len();
        let states = render::INVESTIGATION_STATES.len() as u8;
        for i in s.distinct(len, n) {
            // A step of 1..states-1 never lands on the current state.
            let step = 1 + s.below(u64::from(states - 1)) as u8;
            s.investigations[i].state = (s.investigations[i].state + step) % states;
        }
    }

    /// `n` investigations started now.
    pub fn add_investigations(&self, n: usize) {
        let now = self.now_ticks();
        let mut s = self.lock();
        for _ in 0..n {
            add_investigation(&mut s, now, false);
        }
    }

    /// Change the counts of `n` recommendations.
    pub fn change_recommendations(&self, n: usize) {
        let mut s = self.lock();
        let len = s.recommendations.len();
        for i in s.distinct(len, n) {
            let r = s.rand();
            let rec = &mut s.recommendations[i];
            // The total always grows, so every chosen recommendation changes.
            rec.total = rec.total + 1 + (r % 7) as u32;
            rec.exposed = ((r >> 8) % u64::from(rec.total + 1)) as u32;
            rec.weaknesses = rec.weaknesses.saturating_add(((r >> 20) % 3) as u32);
            rec.active_alert = (r >> 30).is_multiple_of(4);
        }
    }

    /// One round of evolution: some new alerts, some updated, now and then a late one.
    pub fn tick(&self) {
        let round = {
            let mut s = self.lock();
            s.ticks_done += 1;
            s.ticks_done
        };
        let r = mix(round ^ self.lock().seed);
        self.add_alerts(1 + (r % 3) as usize);
        self.update_alerts(1 + ((r >> 8) % 3) as usize);
        if round % 4 == 0 {
            self.add_late_alert(Duration::from_secs(60 + (r >> 16) % 240));
        }
        if round % 3 == 0 {
            self.progress_investigations(1);
        }
        if round % 6 == 0 {
            self.add_investigations(1);
        }
        if round % 5 == 0 {
            self.change_recommendations(2);
        }
    }

    /// What `GET /api/alerts?$expand=evidence` would return now (visible alerts, unordered).
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        let now = self.now_ticks();
        let s = self.lock();
        s.alerts
            .iter()
            .filter(|a| a.visible_at <= now)
            .map(|a| render::alert(&s, a, true))
            .collect()
    }

    pub fn investigations(&self) -> Vec<serde_json::Value> {
        let s = self.lock();
        s.investigations
            .iter()
            .map(|i| render::investigation(&s, i))
            .collect()
    }

    pub fn recommendations(&self) -> Vec<serde_json::Value> {
        let s = self.lock();
        s.recommendations
            .iter()
            .map(|r| render::recommendation(&s, r))
            .collect()
    }

    /// How many alerts exist, visible or not.
    pub fn alert_count(&self) -> usize {
        self.lock().alerts.len()
    }

    /// The server time as the API writes it (7 fractional digits).
    pub fn now_string(&self) -> String {
        render::time7(from_ticks(self.now_ticks()))
    }
}

fn add_investigation(s: &mut Store, now: i64, historic: bool) {
    if s.alerts.is_empty() {
        return;
    }
    let i = s.below(s.alerts.len() as u64) as usize;
    let a = s.alerts[i];
    let start = if historic {
        a.created + s.below((now - a.created).clamp(1, DAY) as u64) as i64
    } else {
        now
    };
    let mut inv = s.new_investigation(start.min(now), a.n);
    if historic {
        if inv.state >= 1 {
            inv.end = (inv.start + s.below(DAY as u64 / 6) as i64).min(now);
            inv.end -= inv.end.rem_euclid(TICKS_PER_SEC);
            inv.cancelled = inv.state == 3;
        }
        // Linking an existing alert would change it without a new lastUpdateTime.
        s.alerts[i].investigation = inv.id;
    } else {
        inv.state = 0;
    }
    s.investigations.push(inv);
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}
