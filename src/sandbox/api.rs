//! The Defender for Endpoint API: `/api/alerts`, `/api/investigations`,
//! `/api/recommendations` with bearer tokens (401), per-endpoint permissions
//! (403), OData `$filter`/`$orderby`/`$top`/`$skip`/`$expand`, Microsoft's
//! error shape and throttling at 100 calls per minute per endpoint per app.
//!
//! Without `$orderby` records come in an order fixed by a hash of their id,
//! never by time, as the API promises no order.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;

use super::alert_json::AlertWriter;
use super::faults::Injected;
use super::http::{self, Body, ConnCtl};
use super::odata::{self, Comparison, FieldValue, OrderBy};
use super::{RequestRecord, Shared, render};

const MAX_TOP: u64 = 10_000;

/// Calls in the last minute, per (app, endpoint).
#[derive(Default)]
pub(crate) struct Throttle {
    calls: Mutex<HashMap<(String, &'static str), VecDeque<Instant>>>,
}

impl Throttle {
    /// `Some(retry_after)` when this call is over the limit.
    fn check(&self, app: &str, endpoint: &'static str, limit: u32) -> Option<u64> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let q = calls.entry((app.to_string(), endpoint)).or_default();
        let now = Instant::now();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            q.pop_front();
        }
        if q.len() >= limit as usize {
            let oldest = *q.front()?;
            let wait = Duration::from_secs(60).saturating_sub(now.duration_since(oldest));
            return Some(wait.as_secs().max(1));
        }
        q.push_back(now);
        None
    }
}

pub(crate) fn error_body(code: &str, message: &str) -> Value {
    serde_json::json!({"error": {"code": code, "message": message, "target": super::jwt::guid()}})
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    http::json(status, &error_body(code, message))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Alerts,
    Investigations,
    Recommendations,
}

impl Kind {
    fn permission(self) -> &'static str {
        match self {
            Kind::Alerts | Kind::Investigations => "Alert.Read.All",
            Kind::Recommendations => "SecurityRecommendation.Read.All",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Alerts => "alerts",
            Kind::Investigations => "investigations",
            Kind::Recommendations => "recommendations",
        }
    }
    fn context(self) -> &'static str {
        match self {
            Kind::Alerts => "Alerts",
            Kind::Investigations => "Investigations",
            Kind::Recommendations => "Recommendations",
        }
    }
    /// Properties `$filter`/`$orderby` accept.
    fn filterable(self) -> &'static [&'static str] {
        match self {
            Kind::Alerts => &render::ALERT_FILTERABLE,
            Kind::Investigations => &[
                "id",
                "startTime",
                "endTime",
                "state",
                "machineId",
                "triggeringAlertId",
            ],
            Kind::Recommendations => &[
                "id",
                "productName",
                "vendor",
                "recommendedVersion",
                "recommendationCategory",
                "subCategory",
                "severityScore",
                "publicExploit",
                "activeAlert",
                "remediationType",
                "status",
                "configScoreImpact",
                "exposureImpact",
                "totalMachineCount",
                "exposedMachinesCount",
                "weaknesses",
                "relatedComponent",
            ],
        }
    }
}

struct Query {
    filter: Vec<Comparison>,
    orderby: Vec<OrderBy>,
    top: u64,
    skip: u64,
    expand: bool,
}

fn parse_query(kind: Kind, pairs: &[(String, String)]) -> Result<Query, String> {
    let mut q = Query {
        filter: Vec::new(),
        orderby: Vec::new(),
        top: MAX_TOP,
        skip: 0,
        expand: false,
    };
    let canonical = |f: &str| {
        kind.filterable()
            .iter()
            .find(|k| k.eq_ignore_ascii_case(f))
            .map(|k| k.to_string())
            .ok_or_else(|| {
                format!(
                    "The property '{f}' is not supported in $filter/$orderby for {}.",
                    kind.name()
                )
            })
    };
    for (k, v) in pairs {
        match k.as_str() {
            "$filter" => {
                q.filter = odata::parse_filter(v).map_err(|e| format!("Invalid $filter: {e}"))?;
                for c in &mut q.filter {
                    c.field = canonical(&c.field)?;
                }
            }
            "$orderby" => {
                q.orderby = odata::parse_orderby(v)?;
                for o in &mut q.orderby {
                    o.field = canonical(&o.field)?;
                }
            }
            "$top" => {
                q.top = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("Invalid $top value '{v}'."))?;
                if q.top > MAX_TOP {
                    return Err(format!(
                        "The limit of '{MAX_TOP}' for Top query has been exceeded. The value from the incoming request is '{v}'."
                    ));
                }
            }
            "$skip" => {
                q.skip = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("Invalid $skip value '{v}'."))?
            }
            "$expand" => {
                if kind == Kind::Alerts && v.trim().eq_ignore_ascii_case("evidence") {
                    q.expand = true;
                } else {
                    return Err(format!("Could not find a property named '{v}' to expand."));
                }
            }
            k if k.starts_with('$') => return Err(format!("Query option '{k}' is not supported.")),
            _ => {}
        }
    }
    Ok(q)
}

/// Sort `items` by the query (or by hash without `$orderby`), keep `[skip, skip+top)`.
fn select<T>(
    mut items: Vec<T>,
    q: &Query,
    field: impl Fn(&T, &str) -> FieldValue<'static>,
    id: impl Fn(&T) -> String,
    hash: impl Fn(&T) -> u64,
    take: u64,
) -> (Vec<T>, bool) {
    let cmp = |a: &T, b: &T| -> Ordering {
        if q.orderby.is_empty() {
            return hash(a).cmp(&hash(b));
        }
        for o in &q.orderby {
            let c = odata::order(&field(a, &o.field), &field(b, &o.field));
            let c = if o.desc { c.reverse() } else { c };
            if c != Ordering::Equal {
                return c;
            }
        }
        id(a).cmp(&id(b))
    };
    let end = (q.skip + take) as usize;
    let more = items.len() > end;
    if end < items.len() {
        items.select_nth_unstable_by(end, cmp);
        items.truncate(end);
    }
    items.sort_by(cmp);
    let skip = (q.skip as usize).min(items.len());
    (items.split_off(skip), more)
}

fn json_field(v: &Value, name: &str) -> FieldValue<'static> {
    match v.get(name) {
        None | Some(Value::Null) => FieldValue::Null,
        Some(Value::Bool(b)) => FieldValue::Bool(*b),
        Some(Value::Number(n)) => FieldValue::Num(n.as_f64().unwrap_or(0.0)),
        Some(Value::String(s)) if name.ends_with("Time") => odata::parse_datetime(s)
            .map(FieldValue::Time)
            .unwrap_or(FieldValue::Str(s.clone().into())),
        Some(Value::String(s)) => FieldValue::Str(s.clone().into()),
        Some(other) => FieldValue::Str(other.to_string().into()),
    }
}

fn matches_all(filter: &[Comparison], field: impl Fn(&str) -> FieldValue<'static>) -> bool {
    filter
        .iter()
        .all(|c| odata::matches(&field(&c.field), c.op, &c.value))
}

/// Render the page: `(the body's rest, more records after it)`. Alerts are
/// chosen under the tenant lock and written after it is released; `flush` is
/// offered the body so far after each record (a streamed body sends it).
fn page(
    shared: &Shared,
    kind: Kind,
    q: &Query,
    take: u64,
    flush: &mut dyn FnMut(&mut Vec<u8>),
) -> (Vec<u8>, bool) {
    let tenant = &shared.tenant;
    let now = tenant.now_ticks();
    let s = tenant.lock();
    let mut out = Vec::with_capacity(1 << 16);
    out.extend_from_slice(b"{\"@odata.context\":");
    serde_json::to_writer(
        &mut out,
        &format!("{}/api/$metadata#{}", shared.base_url, kind.context()),
    )
    .ok();
    out.extend_from_slice(b",\"value\":[");
    let more = match kind {
        Kind::Alerts => {
            let own = |a: &super::data::AlertRec, f: &str| -> FieldValue<'static> {
                match render::alert_field(&s, a, f) {
                    Some(FieldValue::Str(c)) => FieldValue::Str(c.into_owned().into()),
                    Some(FieldValue::Time(t)) => FieldValue::Time(t),
                    Some(FieldValue::Num(n)) => FieldValue::Num(n),
                    Some(FieldValue::Bool(b)) => FieldValue::Bool(b),
                    _ => FieldValue::Null,
                }
            };
            let visible: Vec<&super::data::AlertRec> = s
                .alerts
                .iter()
                .filter(|a| a.visible_at <= now && matches_all(&q.filter, |f| own(a, f)))
                .collect();
            let (chosen, more) = select(
                visible,
                q,
                |a, f| own(a, f),
                |a| render::alert_id(&s, a),
                |a| super::data::mix(s.seed ^ 0xC0FFEE ^ u64::from(a.n)),
                take,
            );
            let chosen: Vec<super::data::AlertRec> = chosen.into_iter().copied().collect();
            let writer = AlertWriter::new(s.seed, &s.tenant_id);
            drop(s);
            out.reserve(chosen.len() * if q.expand { 6 << 10 } else { 2 << 10 });
            for (i, a) in chosen.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                writer.write(&mut out, a, q.expand);
                flush(&mut out);
            }
            more
        }
        Kind::Investigations | Kind::Recommendations => {
            let all: Vec<Value> = if kind == Kind::Investigations {
                s.investigations
                    .iter()
                    .map(|i| render::investigation(&s, i))
                    .collect()
            } else {
                s.recommendations
                    .iter()
                    .map(|r| render::recommendation(&s, r))
                    .collect()
            };
            let seed = s.seed;
            drop(s);
            let kept: Vec<Value> = all
                .into_iter()
                .filter(|v| matches_all(&q.filter, |f| json_field(v, f)))
                .collect();
            let idstr = |v: &Value| v["id"].as_str().unwrap_or("").to_string();
            let (records, more) = select(
                kept,
                q,
                json_field,
                idstr,
                |v| {
                    super::data::mix(
                        seed ^ xxhash_rust::xxh3::xxh3_64(
                            v["id"].as_str().unwrap_or("").as_bytes(),
                        ),
                    )
                },
                take,
            );
            for (i, r) in records.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut out, r).ok();
            }
            more
        }
    };
    out.push(b']');
    (out, more)
}

fn bearer(req: &Request<Incoming>) -> Option<String> {
    let v = req
        .headers()
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

pub(crate) async fn handle(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    ctl: &ConnCtl,
) -> Response<Body> {
    let arrived = Instant::now();
    let path = req.uri().path().to_string();
    let query = http::query_pairs(&req);
    let method = req.method().to_string();
    let record = |status: u16| {
        shared.record(RequestRecord {
            at: arrived,
            answered: Instant::now(),
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            status,
            grant_type: None,
        })
    };
    let kind = match path.trim_end_matches('/') {
        "/api/alerts" => Kind::Alerts,
        "/api/investigations" => Kind::Investigations,
        "/api/recommendations" => Kind::Recommendations,
        _ => {
            record(404);
            return error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                &format!("Resource {path} wasn't found."),
            );
        }
    };
    if let Some(d) = shared.faults.take_delay() {
        tokio::time::sleep(d).await;
    }
    let mut truncate = false;
    match shared.faults.take_api() {
        Some(Injected::Reset) => {
            record(0);
            return ctl.reset().await;
        }
        Some(Injected::Throttle { retry_after }) => {
            record(429);
            return throttled(retry_after);
        }
        Some(Injected::Fail(status)) => {
            record(status);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let code = if status == StatusCode::SERVICE_UNAVAILABLE {
                "ServiceUnavailable"
            } else {
                "InternalServerError"
            };
            return error(status, code, "");
        }
        Some(Injected::Down) => {
            record(503);
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The service is unavailable.",
            );
        }
        Some(Injected::Truncate) => truncate = true,
        None => {}
    }
    if req.method() != hyper::Method::GET {
        record(405);
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "BadRequest",
            "Only GET is supported here.",
        );
    }
    let claims = match bearer(&req).and_then(|t| super::jwt::verify(shared.identity.key(), &t)) {
        Some(c) => c,
        None => {
            record(401);
            return unauthorized("Authorization header is missing or is not a valid bearer token.");
        }
    };
    let epoch = shared.faults.lock().access_epoch;
    if claims["exp"].as_i64().unwrap_or(0) <= chrono::Utc::now().timestamp()
        || claims["sbx_epoch"].as_u64() != Some(epoch)
    {
        record(401);
        return unauthorized("Unauthorized (invalid or expired authorization header).");
    }
    let perm = kind.permission();
    let delegated = perm.trim_end_matches(".All");
    let held = claims["roles"]
        .as_array()
        .is_some_and(|r| r.iter().any(|v| v == perm))
        || claims["scp"]
            .as_str()
            .is_some_and(|s| s.split(' ').any(|p| p == perm || p == delegated));
    if !held || shared.faults.permission_removed(perm) {
        record(403);
        return error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "The application does not have any of the required application permissions ({perm}) to access the resource."
            ),
        );
    }
    if let Some(limit) = shared.cfg.rate_limit_per_minute {
        let app = claims["appid"].as_str().unwrap_or("");
        if let Some(wait) = shared.throttle.check(app, kind.name(), limit) {
            record(429);
            return throttled(wait);
        }
    }
    let q = match parse_query(kind, &query) {
        Ok(q) => q,
        Err(e) => {
            record(400);
            return error(StatusCode::BAD_REQUEST, "ODataError", &e);
        }
    };
    let (cap, next_link) = {
        let f = shared.faults.lock();
        (f.page_cap, f.next_link)
    };
    let take = cap.map_or(q.top, |c| q.top.min(u64::from(c)));
    record(200);
    let ct = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8";
    let finish = {
        let base = format!("{}{}", shared.base_url, path);
        let skip_next = q.skip + take;
        let query = query.clone();
        move |body: &mut Vec<u8>, more: bool| {
            if next_link && cap.is_none() && more {
                let mut u = url::Url::parse(&base).expect("base URL parses");
                {
                    let mut qp = u.query_pairs_mut();
                    for (k, v) in query.iter().filter(|(k, _)| k != "$skip") {
                        qp.append_pair(k, v);
                    }
                    qp.append_pair("$skip", &skip_next.to_string());
                }
                body.extend_from_slice(b",\"@odata.nextLink\":");
                serde_json::to_writer(&mut *body, u.as_str()).ok();
            }
            body.push(b'}');
        }
    };
    if shared.cfg.chunked_bodies && !truncate {
        // Sent as it is rendered, in parts of about a megabyte, without a
        // Content-Length (chunked), as a streaming OData service sends it.
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
        let shared = Arc::clone(shared);
        tokio::task::spawn_blocking(move || {
            let mut flush = |out: &mut Vec<u8>| {
                if out.len() >= CHUNK {
                    let full = std::mem::replace(out, Vec::with_capacity(CHUNK + (16 << 10)));
                    // The client went away: the rest is not rendered.
                    let _ = tx.blocking_send(full);
                }
            };
            let (mut body, more) = page(&shared, kind, &q, take, &mut flush);
            finish(&mut body, more);
            let _ = tx.blocking_send(body);
        });
        return http::streamed(StatusCode::OK, ct, rx);
    }
    let (mut body, more) = page(shared, kind, &q, take, &mut |_| {});
    finish(&mut body, more);
    if truncate {
        http::truncated(
            StatusCode::OK,
            ct,
            Bytes::from(body),
            shared.cfg.chunked_bodies,
        )
    } else {
        http::response(StatusCode::OK, ct, body)
    }
}

/// The size of a streamed body's parts.
const CHUNK: usize = 1 << 20;

fn throttled(retry_after: u64) -> Response<Body> {
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        "Rate limit is exceeded. Try again later.",
    );
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after));
    r
}

fn unauthorized(message: &str) -> Response<Body> {
    let mut r = error(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    r.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    r
}
