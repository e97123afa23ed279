//! [`DefenderClient`]: one logical page per call, with the budget, retries,
//! `Retry-After`, one token refresh on 401 and typed errors inside.
//!
//! [`DefenderClient::fetch`] returns a page's body as soon as its last byte is
//! in, unchecked ([`Fetched`]), so a caller can ask for the next page before
//! checking this one; [`DefenderClient::fetch_as`] can instead sift a large
//! body as it arrives (see [`sift`](super::sift)); [`DefenderClient::page`]
//! fetches and checks.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_ENCODING, CONTENT_LENGTH, RETRY_AFTER};
use tokio::time::Instant;
use url::Url;

use super::page::{self, PageError};
use super::sift::{Known, SIFT_FROM, Sifter};
use super::stream::{BodyStream, StreamWhen};
use super::transport::{self, Transport};
use super::{ApiError, BodyPool, Budget, Endpoint, Fetched, Page, PageRequest, odata, retry};
use crate::auth::{AuthError, Session};

/// The most a declared Content-Length makes us reserve up front (a lying
/// server cannot make us allocate more than this before sending it).
const MAX_PREALLOC: u64 = 256 << 20;

/// How often [`DefenderClient::page`] fetches a body again that ended early in
/// a way only the full check could see.
const CUT_OFF_REFETCHES: u32 = 2;

/// Microsoft's limits and how patient to be with failures.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Calls per minute per app and tenant (Microsoft: 100).
    pub per_minute: u32,
    /// Calls per hour per app and tenant (Microsoft: 1,500).
    pub per_hour: u32,
    /// Requests one page may take, first try included.
    pub max_attempts: u32,
    /// Time one page may spend waiting between failed attempts (backoff and
    /// `Retry-After` together). A `Retry-After` longer than what is left ends the
    /// page with [`ApiError::Unavailable`] at once.
    pub max_retry_time: Duration,
    /// First backoff ceiling; doubles per retry.
    pub backoff_base: Duration,
    /// Largest backoff ceiling.
    pub backoff_cap: Duration,
}

impl Limits {
    /// The same limits with `retries` retries after the first attempt.
    pub fn with_retries(mut self, retries: u32) -> Limits {
        self.max_attempts = retries.saturating_add(1);
        self
    }

    /// The same limits with `n` calls per minute and an hourly budget of 15
    /// minutes' worth (never below Microsoft's 1,500).
    pub fn with_calls_per_minute(mut self, n: u32) -> Limits {
        self.per_minute = n.max(1);
        self.per_hour = n.saturating_mul(15).max(1500);
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_minute: 100,
            per_hour: 1500,
            max_attempts: 6,
            max_retry_time: Duration::from_secs(300),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
        }
    }
}

/// The Defender for Endpoint API, for one profile.
pub struct DefenderClient {
    http: reqwest::Client,
    base: Url,
    session: Arc<Session>,
    limits: Limits,
    budget: Mutex<Budget>,
    calls: AtomicU64,
    deadline: Mutex<Option<Instant>>,
    bodies: BodyPool,
}

impl std::fmt::Debug for DefenderClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefenderClient")
            .field("base", &self.base.as_str())
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

/// What one HTTP exchange came to.
enum Outcome<'k> {
    Body(Fetched),
    /// A large body, to be received a part at a time.
    Stream(Box<BodyStream<'k>>),
    Retry {
        detail: String,
        retry_after: Option<Duration>,
    },
    Unauthorized,
    Fail(ApiError),
}

impl DefenderClient {
    pub fn new(
        http: reqwest::Client,
        api_base: Url,
        session: Arc<Session>,
        limits: Limits,
    ) -> Self {
        DefenderClient {
            http,
            base: api_base,
            bodies: BodyPool::default(),
            session,
            budget: Mutex::new(Budget::new(limits.per_minute, limits.per_hour)),
            limits,
            calls: AtomicU64::new(0),
            deadline: Mutex::new(None),
        }
    }

    pub fn api_base(&self) -> &Url {
        &self.base
    }

    /// HTTP requests actually sent (retries included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// No request is sent, and no wait started, that would end past `at`.
    pub fn set_deadline(&self, at: Instant) {
        *self.deadline.lock().unwrap() = Some(at);
    }

    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap()
    }

    /// Fetch and check one page, retrying inside as the limits allow.
    pub async fn page(&self, req: &PageRequest) -> Result<Page, ApiError> {
        let mut refetches = 0;
        loop {
            let fetched = self.fetch(req).await?;
            let endpoint = fetched.endpoint();
            match fetched.check() {
                Ok(p) => return Ok(p),
                Err(PageError::CutOff(d)) if refetches < CUT_OFF_REFETCHES => {
                    refetches += 1;
                    tracing::info!("{endpoint}: {d}; fetching it again");
                }
                Err(e) => return Err(check_failed(endpoint, e)),
            }
        }
    }

    /// Fetch one page's complete body, unchecked, retrying inside as the
    /// limits allow. A body that is cut off or is not a page at its ends is
    /// refused (and retried, when cut off) here; the rest of the check is
    /// [`Fetched::check`]'s.
    pub async fn fetch(&self, req: &PageRequest) -> Result<Fetched, ApiError> {
        self.fetch_as(req, Receive::Whole).await
    }

    /// [`fetch`](DefenderClient::fetch), receiving the body as `how` says.
    pub async fn fetch_as(&self, req: &PageRequest, how: Receive<'_>) -> Result<Fetched, ApiError> {
        match self.send(req, how, None).await? {
            Opened::Whole(f) => Ok(f),
            Opened::Stream(_) => unreachable!("a body is streamed only when asked to"),
        }
    }

    /// Fetch `req`; a body `when` picks is handed over as it arrives, sifted
    /// against `known` (see [`stream`](super::stream)), any other whole (and
    /// sifted, when `known` is not empty). Retries happen here until the body
    /// starts arriving; what goes wrong after, the stream reports.
    pub async fn open<'k>(
        &self,
        req: &PageRequest,
        known: &'k Known,
        when: StreamWhen,
    ) -> Result<Opened<'k>, ApiError> {
        self.send(req, Receive::Sifting(known), Some(when)).await
    }

    async fn send<'k>(
        &self,
        req: &PageRequest,
        how: Receive<'k>,
        stream: Option<StreamWhen>,
    ) -> Result<Opened<'k>, ApiError> {
        let (endpoint, url) = match req {
            PageRequest::Query(q) => (q.endpoint, odata::url(&self.base, q)),
            PageRequest::Next { endpoint, url } => {
                page::check_next_link(url.as_str(), &self.base).map_err(|e| {
                    ApiError::BadResponse {
                        endpoint: *endpoint,
                        detail: e.detail().to_string(),
                    }
                })?;
                (*endpoint, url.clone())
            }
        };
        let started = Instant::now();
        let mut token = self.session.access_token().await?;
        let mut refreshed = false;
        let mut attempts = 0u32;
        loop {
            self.acquire(endpoint, attempts).await?;
            attempts += 1;
            self.calls.fetch_add(1, Ordering::Relaxed);
            match self.exchange(endpoint, &url, &token, how, stream).await {
                Outcome::Body(b) => return Ok(Opened::Whole(b)),
                Outcome::Stream(s) => return Ok(Opened::Stream(s)),
                Outcome::Fail(e) => return Err(e),
                Outcome::Unauthorized if !refreshed => {
                    tracing::info!("{endpoint}: 401, refreshing the access token once");
                    token = self.session.refresh_after_rejection(&token).await?;
                    refreshed = true;
                }
                Outcome::Unauthorized => {
                    return Err(ApiError::Auth(AuthError::Other(format!(
                        "the API rejected a freshly obtained access token for {endpoint} (401 Unauthorized); \
                         the credentials or the consent are no longer valid: run `defender-ingest authorize` again"
                    ))));
                }
                Outcome::Retry {
                    detail,
                    retry_after,
                } => {
                    let wait =
                        self.plan_retry(endpoint, attempts, started, &detail, retry_after)?;
                    tracing::info!(
                        "{endpoint}: {detail}; retrying in {:.1}s (attempt {} of {})",
                        wait.as_secs_f64(),
                        attempts + 1,
                        self.limits.max_attempts
                    );
                    let until = Instant::now() + wait;
                    if retry_after.is_some() {
                        // Throttling is per app and tenant: hold every endpoint back.
                        self.budget.lock().unwrap().throttle_until(until);
                    } else {
                        tokio::time::sleep_until(until).await;
                    }
                }
            }
        }
    }

    /// Decide the wait before the next attempt, or give up.
    fn plan_retry(
        &self,
        endpoint: Endpoint,
        attempts: u32,
        started: Instant,
        detail: &str,
        retry_after: Option<Duration>,
    ) -> Result<Duration, ApiError> {
        let unavailable = |detail: String| ApiError::Unavailable {
            endpoint,
            attempts,
            detail,
        };
        if attempts >= self.limits.max_attempts {
            return Err(unavailable(detail.to_string()));
        }
        let wait = match retry_after {
            Some(w) => w,
            None => retry::backoff(attempts, self.limits.backoff_base, self.limits.backoff_cap),
        };
        let now = Instant::now();
        let left = self
            .limits
            .max_retry_time
            .saturating_sub(now.saturating_duration_since(started));
        let to_deadline = self
            .deadline()
            .map(|d| d.saturating_duration_since(now))
            .unwrap_or(Duration::MAX);
        if wait > left.min(to_deadline) {
            let (limit, what) = if to_deadline < left {
                (to_deadline, "the run's deadline")
            } else {
                (left, "the retry time limit")
            };
            let asked = if retry_after.is_some() {
                "the API asked to wait"
            } else {
                "the next retry would wait"
            };
            let shown = match retry_after {
                Some(w) => w.saturating_sub(retry::RETRY_AFTER_MARGIN),
                None => wait,
            };
            return Err(unavailable(format!(
                "{detail}; {asked} {}s, more than the {}s left before {what}",
                shown.as_secs_f64().ceil() as u64,
                limit.as_secs()
            )));
        }
        Ok(wait)
    }

    /// Wait for a slot in the budget (and for any `Retry-After`), within the deadline.
    async fn acquire(&self, endpoint: Endpoint, attempts: u32) -> Result<(), ApiError> {
        loop {
            let now = Instant::now();
            let free_at = match self.budget.lock().unwrap().try_acquire(now) {
                Ok(()) => {
                    if self.deadline().is_some_and(|d| now >= d) {
                        return Err(ApiError::Unavailable {
                            endpoint,
                            attempts,
                            detail: "deadline: the run's time is up".into(),
                        });
                    }
                    return Ok(());
                }
                Err(at) => at,
            };
            if let Some(d) = self.deadline()
                && free_at > d
            {
                return Err(ApiError::Unavailable {
                    endpoint,
                    attempts,
                    detail: format!(
                        "deadline: the call budget ({}/min, {}/h) or a Retry-After has no free slot for {}s, past the run's deadline",
                        self.limits.per_minute,
                        self.limits.per_hour,
                        free_at.saturating_duration_since(now).as_secs()
                    ),
                });
            }
            tracing::debug!(
                "{endpoint}: waiting {:.1}s for the call budget",
                free_at.saturating_duration_since(now).as_secs_f64()
            );
            tokio::time::sleep_until(free_at).await;
        }
    }

    /// Send one request and read what came back.
    async fn exchange<'k>(
        &self,
        endpoint: Endpoint,
        url: &Url,
        token: &str,
        how: Receive<'k>,
        stream: Option<StreamWhen>,
    ) -> Outcome<'k> {
        tracing::debug!("GET {url}");
        let sent = self
            .http
            .get(url.clone())
            .bearer_auth(token)
            .header(ACCEPT, "application/json")
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return self.transport_failure(endpoint, url, &e),
        };
        let status = resp.status();
        tracing::debug!("{endpoint}: {status}");
        match status {
            StatusCode::OK => match how {
                Receive::Sifting(known) if let Some(when) = stream => {
                    match (declared_length(&resp), when) {
                        (None, _) => Outcome::Stream(Box::new(BodyStream::http(
                            endpoint,
                            resp,
                            known,
                            None,
                            self.base.clone(),
                        ))),
                        (Some(d), StreamWhen::Large) if d >= SIFT_FROM as u64 => {
                            Outcome::Stream(Box::new(BodyStream::http(
                                endpoint,
                                resp,
                                known,
                                Some(d),
                                self.base.clone(),
                            )))
                        }
                        (Some(_), StreamWhen::Unsized) if !known.is_empty() => {
                            self.sift_page(endpoint, url, resp, known).await
                        }
                        _ => self.read_page(endpoint, url, resp).await,
                    }
                }
                Receive::Sifting(known) => self.sift_page(endpoint, url, resp, known).await,
                Receive::Whole => self.read_page(endpoint, url, resp).await,
            },
            StatusCode::UNAUTHORIZED => Outcome::Unauthorized,
            StatusCode::FORBIDDEN => Outcome::Fail(ApiError::Forbidden {
                endpoint,
                permission: endpoint.permission(),
            }),
            StatusCode::NOT_FOUND => Outcome::Fail(ApiError::NotFound {
                endpoint,
                url: format!("{}{}", url.origin().ascii_serialization(), url.path()),
            }),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                let retry_after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry::retry_after_wait(v, SystemTime::now()));
                let detail = if status == StatusCode::TOO_MANY_REQUESTS {
                    "throttled (429 Too Many Requests)".to_string()
                } else {
                    "503 Service Unavailable".to_string()
                };
                Outcome::Retry {
                    detail,
                    retry_after,
                }
            }
            s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => Outcome::Retry {
                detail: format!("the API answered {s}"),
                retry_after: None,
            },
            s if s.is_redirection() => Outcome::Fail(ApiError::BadResponse {
                endpoint,
                detail: format!(
                    "a redirect ({s}) to {}; redirects are not followed (check the API URL and any proxy)",
                    resp.headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("nowhere")
                ),
            }),
            s if s.is_client_error() => {
                let body = resp.bytes().await.unwrap_or_default();
                Outcome::Fail(ApiError::Rejected {
                    endpoint,
                    status: s.as_u16(),
                    message: error_message(&body),
                })
            }
            s => Outcome::Fail(ApiError::BadResponse {
                endpoint,
                detail: format!("unexpected status {s}"),
            }),
        }
    }

    async fn read_page(
        &self,
        endpoint: Endpoint,
        url: &Url,
        resp: reqwest::Response,
    ) -> Outcome<'static> {
        let declared = declared_length(&resp);
        // Read the body chunk by chunk into one buffer sized from Content-Length
        // (`bytes()` would hold every chunk and then a contiguous copy: twice
        // the page), reusing the buffer of a page already written. Nothing is
        // checked while it arrives: the sooner the last byte is in, the sooner
        // `pull` can ask for the next page (checking on the receiving task
        // slows the transfer; on a thread of its own, it costs more CPU than
        // it saves time).
        let mut resp = resp;
        let capacity = declared.unwrap_or(1 << 16).min(MAX_PREALLOC) as usize;
        let mut body = self.bodies.take(capacity);
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    self.bodies.give(body);
                    return self.transport_failure(endpoint, url, &e);
                }
            }
        }
        if let Some(len) = declared
            && len != body.len() as u64
        {
            let arrived = body.len();
            self.bodies.give(body);
            return cut_off(arrived, len);
        }
        tracing::debug!("{endpoint}: a body of {} bytes", body.len());
        let fetched = Fetched::new(endpoint, body, self.base.clone()).recycle_into(&self.bodies);
        if page::looks_whole(fetched.bytes()) {
            return Outcome::Body(fetched);
        }
        // Not a page at its ends: the full check says why (and whether to retry).
        match fetched.check() {
            // A page ends with `}`, so the check cannot pass; were it to, the
            // body is still not taken.
            Ok(_) => Outcome::Fail(ApiError::BadResponse {
                endpoint,
                detail: "the body does not end with `}`".into(),
            }),
            Err(PageError::CutOff(d)) => Outcome::Retry {
                detail: d,
                retry_after: None,
            },
            Err(e) => Outcome::Fail(check_failed(endpoint, e)),
        }
    }

    /// Read a body, sifting it (see [`sift`]) unless it is declared small.
    async fn sift_page(
        &self,
        endpoint: Endpoint,
        url: &Url,
        resp: reqwest::Response,
        known: &Known,
    ) -> Outcome<'static> {
        let declared = declared_length(&resp);
        if declared.is_some_and(|d| d < SIFT_FROM as u64) {
            return self.read_page(endpoint, url, resp).await;
        }
        let mut resp = resp;
        let capacity = declared.unwrap_or(SIFT_FROM as u64).min(MAX_PREALLOC) as usize;
        let mut sifter = Sifter::new(endpoint, known, capacity);
        let refused = loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if let Err(e) = sifter.push(&chunk) {
                        break e;
                    }
                }
                Ok(None) => {
                    if let Some(declared) = declared
                        && declared != sifter.len() as u64
                    {
                        return cut_off(sifter.len(), declared);
                    }
                    let arrived = sifter.len();
                    match sifter.finish(&self.base) {
                        Ok((page, records)) => {
                            tracing::debug!(
                                "{endpoint}: a body of {arrived} bytes, {} of its {} records kept",
                                page.len(),
                                records.len()
                            );
                            return Outcome::Body(Fetched::sifted(
                                endpoint,
                                page,
                                records,
                                self.base.clone(),
                            ));
                        }
                        Err(e) => break e,
                    }
                }
                Err(e) => return self.transport_failure(endpoint, url, &e),
            }
        };
        match refused {
            PageError::CutOff(d) => Outcome::Retry {
                detail: d,
                retry_after: None,
            },
            e => Outcome::Fail(check_failed(endpoint, e)),
        }
    }

    fn transport_failure(
        &self,
        endpoint: Endpoint,
        url: &Url,
        e: &reqwest::Error,
    ) -> Outcome<'static> {
        match transport::classify(e) {
            Transport::Certificate { reason } => Outcome::Fail(ApiError::Tls {
                host: url.host_str().unwrap_or("?").to_string(),
                detail: reason,
            }),
            Transport::Transient(detail) => {
                if let Some(refusal) = crate::net::proxy_refusal(e) {
                    let proxy = crate::net::proxy_for(url).unwrap_or_else(|| "in use".into());
                    if refusal == crate::net::ProxyRefusal::AuthRequired {
                        return Outcome::Fail(ApiError::Proxy {
                            endpoint,
                            proxy,
                            detail: "407 Proxy Authentication Required: give its credentials \
                                     as http://USER:PASSWORD@HOST:PORT"
                                .into(),
                        });
                    }
                    return Outcome::Retry {
                        detail: format!("the proxy {proxy} would not connect us: {detail}"),
                        retry_after: None,
                    };
                }
                Outcome::Retry {
                    detail,
                    retry_after: None,
                }
            }
        }
    }
}

/// What [`DefenderClient::open`] got: a body, or a large one arriving.
pub enum Opened<'k> {
    Whole(Fetched),
    Stream(Box<BodyStream<'k>>),
}

/// How to receive a page's body.
#[derive(Debug, Clone, Copy)]
pub enum Receive<'k> {
    /// Whole, to be checked by [`Fetched::check`].
    Whole,
    /// Sifted as it arrives when large, dropping the records whose
    /// fingerprints are known (see [`sift`](super::sift)).
    Sifting(&'k Known),
}

/// A body shorter than declared: retried.
fn cut_off(arrived: usize, declared: u64) -> Outcome<'static> {
    Outcome::Retry {
        detail: format!("the body was cut off: {arrived} of {declared} bytes arrived"),
        retry_after: None,
    }
}

/// The body's declared length, when it is the length of the body as read
/// (not of an encoded one).
fn declared_length(resp: &reqwest::Response) -> Option<u64> {
    if resp.headers().contains_key(CONTENT_ENCODING) {
        return None;
    }
    resp.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// A body that is not a page, as an API error.
pub fn check_failed(endpoint: Endpoint, e: PageError) -> ApiError {
    ApiError::BadResponse {
        endpoint,
        detail: e.detail().to_string(),
    }
}

/// Microsoft's `error.message` from an error body, or a preview of the body.
fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Outer {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        code: Option<String>,
        message: String,
    }
    match serde_json::from_slice::<Outer>(body) {
        Ok(o) => match o.error.code {
            Some(code) => format!("{} ({code})", o.error.message),
            None => o.error.message,
        },
        Err(_) => page::preview(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_prefers_microsofts_text() {
        let body = br#"{"error":{"code":"InvalidRequest","message":"Invalid filter clause","target":"x"}}"#;
        assert_eq!(
            error_message(body),
            "Invalid filter clause (InvalidRequest)"
        );
        assert_eq!(error_message(b"Bad Request"), "`Bad Request`");
    }
}
