//! Faults on demand: what tests switch on to see how the client copes with a
//! throttled, failing, slow or broken service, an expired token or a revoked
//! consent.
//!
//! Every switch takes effect on the next matching requests and is thread-safe;
//! [`Faults`] is a cheap clone of one shared state. Counted faults apply to
//! API requests (`/api/...`) unless their name says `token_`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A shared handle on the sandbox's fault switches.
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<FaultState>>,
}

#[derive(Default)]
pub(crate) struct FaultState {
    throttle: u32,
    throttle_retry_after: u64,
    fail: u32,
    fail_status: u16,
    reset: u32,
    truncate: u32,
    slow: u32,
    slow_for: Duration,
    token_fail: u32,
    token_fail_status: u16,
    pub(crate) page_cap: Option<u32>,
    pub(crate) next_link: bool,
    pub(crate) access_epoch: u64,
    pub(crate) refresh_epoch: u64,
    pub(crate) device_epoch: u64,
    pub(crate) removed: BTreeSet<String>,
    pub(crate) deny_consent: bool,
    pub(crate) api_down: bool,
}

/// What a fault decides for one API request, before it is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Injected {
    Throttle { retry_after: u64 },
    Fail(u16),
    Reset,
    Truncate,
    Down,
}

impl Faults {
    /// The next `n` API requests answer 429 with `Retry-After: retry_after_secs`.
    pub fn throttle_next(&self, n: u32, retry_after_secs: u64) {
        let mut s = self.lock();
        s.throttle = n;
        s.throttle_retry_after = retry_after_secs;
    }

    /// The next `n` API requests answer `status` (500, 503, ...).
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut s = self.lock();
        s.fail = n;
        s.fail_status = status;
    }

    /// The next `n` API requests are read, then the TCP connection is reset (RST) with no answer.
    pub fn reset_next(&self, n: u32) {
        self.lock().reset = n;
    }

    /// The next `n` API requests get their headers (with the full Content-Length)
    /// and half their body, then the connection closes.
    pub fn truncate_next(&self, n: u32) {
        self.lock().truncate = n;
    }

    /// The next `n` API requests wait `delay` before being answered.
    pub fn slow_next(&self, n: u32, delay: Duration) {
        let mut s = self.lock();
        s.slow = n;
        s.slow_for = delay;
    }

    /// Serve at most `cap` records per page whatever `$top` asks, with no nextLink.
    pub fn page_cap(&self, cap: Option<u32>) {
        self.lock().page_cap = cap;
    }

    /// Add `@odata.nextLink` to pages that have more records after them.
    pub fn next_link(&self, on: bool) {
        self.lock().next_link = on;
    }

    /// Every access token issued so far is rejected with 401 from now on.
    pub fn expire_access_tokens(&self) {
        self.lock().access_epoch += 1;
    }

    /// Every refresh token issued so far fails with `invalid_grant` from now on.
    pub fn revoke_refresh_tokens(&self) {
        self.lock().refresh_epoch += 1;
    }

    /// Every device code issued so far expires (polling answers `expired_token`).
    pub fn expire_device_codes(&self) {
        self.lock().device_epoch += 1;
    }

    /// Withdraw an application permission (e.g. `Alert.Read.All`): its endpoints answer 403.
    pub fn remove_permission(&self, permission: &str) {
        self.lock().removed.insert(permission.to_string());
    }

    pub fn restore_permission(&self, permission: &str) {
        self.lock().removed.remove(permission);
    }

    /// The administrator refuses consent: authorize redirects back with an
    /// error and user-token grants fail with AADSTS65001.
    pub fn deny_consent(&self, deny: bool) {
        self.lock().deny_consent = deny;
    }

    /// Every API call answers 503 until switched back.
    pub fn api_down(&self, down: bool) {
        self.lock().api_down = down;
    }

    /// The next `n` token-endpoint requests answer `status` with Entra's error JSON.
    pub fn token_fail_next(&self, n: u32, status: u16) {
        let mut s = self.lock();
        s.token_fail = n;
        s.token_fail_status = status;
    }

    /// Clear every switch (epochs stay: expired tokens stay expired).
    pub fn clear(&self) {
        let mut s = self.lock();
        let (a, r, d) = (s.access_epoch, s.refresh_epoch, s.device_epoch);
        *s = FaultState::default();
        s.access_epoch = a;
        s.refresh_epoch = r;
        s.device_epoch = d;
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Consume the delay owed to the next API request, if any.
    pub(crate) fn take_delay(&self) -> Option<Duration> {
        let mut s = self.lock();
        if s.slow > 0 {
            s.slow -= 1;
            Some(s.slow_for)
        } else {
            None
        }
    }

    /// Consume the fault owed to the next API request, if any (in a fixed order).
    pub(crate) fn take_api(&self) -> Option<Injected> {
        let mut s = self.lock();
        if s.api_down {
            return Some(Injected::Down);
        }
        if s.reset > 0 {
            s.reset -= 1;
            return Some(Injected::Reset);
        }
        if s.throttle > 0 {
            s.throttle -= 1;
            return Some(Injected::Throttle {
                retry_after: s.throttle_retry_after,
            });
        }
        if s.fail > 0 {
            s.fail -= 1;
            return Some(Injected::Fail(s.fail_status));
        }
        if s.truncate > 0 {
            s.truncate -= 1;
            return Some(Injected::Truncate);
        }
        None
    }

    pub(crate) fn take_token(&self) -> Option<u16> {
        let mut s = self.lock();
        if s.token_fail > 0 {
            s.token_fail -= 1;
            Some(s.token_fail_status)
        } else {
            None
        }
    }

    pub(crate) fn permission_removed(&self, permission: &str) -> bool {
        self.lock().removed.contains(permission)
    }
}
