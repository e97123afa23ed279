//! The connection test behind `test`: fetch a small, recent sample from each
//! endpoint, check that the records carry what ingestion relies on, and tell
//! every kind of failure apart (not authorized, permission missing, service
//! unavailable, our bug), without touching any cursor.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::{ApiError, DefenderClient, Endpoint, Limits, PageRequest, Query, odata};
use crate::auth::AuthError;
use crate::exit::Exit;
use crate::progress::Progress;
use crate::state::Profile;
use crate::time::{self, Timestamp};

/// Records fetched per endpoint.
pub const SAMPLE: u32 = 10;

/// How long Microsoft may take to provision a newly connected tenant.
const SETUP_TIME: chrono::Duration = chrono::Duration::hours(24);

/// `test` is interactive: fail sooner than `pull` would.
pub fn limits() -> Limits {
    Limits {
        max_retry_time: Duration::from_secs(60),
        max_attempts: 4,
        backoff_cap: Duration::from_secs(8),
        ..Limits::default()
    }
}

/// What one endpoint came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Empty,
    Denied,
    Error,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Empty => "empty",
            Status::Denied => "denied",
            Status::Error => "error",
        }
    }
}

/// One endpoint's line in the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub endpoint: Endpoint,
    pub status: Status,
    pub sampled: usize,
    pub detail: String,
    /// The exit code this endpoint alone would give.
    pub exit: Exit,
}

/// The whole test.
#[derive(Debug, Clone)]
pub struct Report {
    pub profile: String,
    pub checks: Vec<Check>,
}

impl Report {
    /// No endpoint denied or failed.
    pub fn ok(&self) -> bool {
        self.checks
            .iter()
            .all(|c| matches!(c.status, Status::Ok | Status::Empty))
    }

    /// Not authorized (3) before denied (4) before unavailable (5) before other (1).
    pub fn exit(&self) -> Exit {
        for want in [
            Exit::NotAuthorized,
            Exit::PermissionDenied,
            Exit::Unavailable,
            Exit::Error,
        ] {
            if self.checks.iter().any(|c| c.exit == want) {
                return want;
            }
        }
        if self.checks.iter().any(|c| c.exit != Exit::Ok) {
            return Exit::Error;
        }
        Exit::Ok
    }

    /// The contract's `--json` object.
    pub fn to_json(&self) -> Value {
        let mut endpoints = Map::new();
        for c in &self.checks {
            endpoints.insert(
                c.endpoint.name().to_string(),
                json!({"status": c.status.name(), "sampled": c.sampled, "detail": c.detail}),
            );
        }
        json!({"profile": self.profile, "ok": self.ok(), "endpoints": endpoints})
    }

    /// The table for people.
    pub fn table(&self) -> String {
        let mut out = format!("profile `{}`\n", self.profile);
        for c in &self.checks {
            let _ = writeln!(
                out,
                "  {:<16} {:<7} {:>3} sampled  {}",
                c.endpoint.name(),
                c.status.name(),
                c.sampled,
                c.detail
            );
        }
        out.push_str(if self.ok() {
            "All endpoints answered. Next: `defender-ingest enable`, then run `pull` from cron.\n"
        } else {
            "Some endpoints failed; see above.\n"
        });
        out
    }

    /// Every endpoint failed the same way before any call (no session).
    pub fn not_authorized(profile: &Profile, err: &AuthError) -> Report {
        let detail = err.to_string();
        Report {
            profile: profile.name.clone(),
            checks: Endpoint::ALL
                .into_iter()
                .map(|endpoint| Check {
                    endpoint,
                    status: Status::Error,
                    sampled: 0,
                    detail: detail.clone(),
                    exit: err.exit(),
                })
                .collect(),
        }
    }
}

/// The sample query: the newest records first where the endpoint has a time field.
pub fn sample_query(endpoint: Endpoint) -> Query {
    Query {
        endpoint,
        filter: None,
        orderby: endpoint.time_field().map(odata::desc),
        top: SAMPLE,
        skip: 0,
    }
}

/// Test every endpoint of `profile` through `client`. `now` decides whether the
/// authorization is recent enough for the "up to 24 h" hint.
pub async fn run(
    client: &DefenderClient,
    profile: &Profile,
    now: Timestamp,
    progress: &Progress,
) -> Report {
    let fresh = profile
        .authorized_at
        .as_deref()
        .and_then(time::parse)
        .is_some_and(|at| now - at < SETUP_TIME);
    let mut checks = Vec::new();
    let mut auth_failure: Option<(String, Exit)> = None;
    for endpoint in Endpoint::ALL {
        progress.set_message(format!("testing {}", endpoint.name()));
        // Without a token every further call fails the same way; do not ask again.
        if let Some((detail, exit)) = &auth_failure {
            checks.push(Check {
                endpoint,
                status: Status::Error,
                sampled: 0,
                detail: detail.clone(),
                exit: *exit,
            });
            continue;
        }
        let req = PageRequest::Query(sample_query(endpoint));
        let mut check = match client.page(&req).await {
            Ok(page) => judge(endpoint, &page.records().collect::<Vec<_>>()),
            Err(e) => failed(endpoint, &e, profile),
        };
        if matches!(check.status, Status::Empty | Status::Denied) && fresh {
            check.detail.push_str(
                " The profile was authorized less than 24 h ago: Microsoft may take up to 24 hours \
                 to set up a newly connected tenant; run `test` again later.",
            );
        }
        if check.exit == Exit::NotAuthorized {
            auth_failure = Some((check.detail.clone(), check.exit));
        }
        checks.push(check);
    }
    Report {
        profile: profile.name.clone(),
        checks,
    }
}

fn failed(endpoint: Endpoint, e: &ApiError, profile: &Profile) -> Check {
    let (status, detail) = match e {
        ApiError::Forbidden { permission, .. } => (
            Status::Denied,
            format!(
                "403 Forbidden: grant the application permission `{permission}` (WindowsDefenderATP) \
                 to client {client} and admin consent: {url}",
                client = profile.connection.client_id,
                url = admin_consent_url(profile)
            ),
        ),
        other => (Status::Error, other.to_string()),
    };
    Check {
        endpoint,
        status,
        sampled: 0,
        detail,
        exit: e.exit(),
    }
}

/// `{login_url}/{tenant}/adminconsent?client_id={client_id}`
pub fn admin_consent_url(profile: &Profile) -> String {
    let c = &profile.connection;
    format!(
        "{}/{}/adminconsent?client_id={}",
        c.login_url.trim_end_matches('/'),
        c.tenant_id,
        c.client_id
    )
}

/// The fields ingestion relies on.
#[derive(Deserialize)]
struct Required {
    #[serde(default)]
    id: Option<Value>,
    #[serde(rename = "lastUpdateTime", default)]
    last_update_time: Option<Value>,
    #[serde(rename = "startTime", default)]
    start_time: Option<Value>,
}

/// Check a sample: every record parses and carries its id (and time field).
pub fn judge(endpoint: Endpoint, records: &[&str]) -> Check {
    let mut newest: Option<Timestamp> = None;
    let mut problem = None;
    for (i, raw) in records.iter().enumerate() {
        match check_record(endpoint, raw) {
            Ok(t) => newest = newest.max(t),
            Err(p) => {
                problem = Some(format!("record {} of {}: {p}", i + 1, records.len()));
                break;
            }
        }
    }
    let sampled = records.len();
    let (status, detail, exit) = match (problem, sampled) {
        (Some(p), _) => (Status::Error, p, Exit::Error),
        (None, 0) => (
            Status::Empty,
            format!("access works; no {} yet.", endpoint.name()),
            Exit::Ok,
        ),
        (None, n) => (
            Status::Ok,
            match (endpoint.time_field(), newest) {
                (Some(field), Some(t)) => {
                    format!("{n} records parse; newest {field} {}", time::rfc3339(t))
                }
                _ => format!("{n} records parse"),
            },
            Exit::Ok,
        ),
    };
    Check {
        endpoint,
        status,
        sampled,
        detail,
        exit,
    }
}

fn check_record(endpoint: Endpoint, raw: &str) -> Result<Option<Timestamp>, String> {
    let r: Required = serde_json::from_str(raw).map_err(|e| format!("does not parse: {e}"))?;
    match &r.id {
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        Some(Value::Number(_)) => {}
        _ => return Err("has no `id`".into()),
    }
    let Some(field) = endpoint.time_field() else {
        return Ok(None);
    };
    let value = match endpoint {
        Endpoint::Alerts => &r.last_update_time,
        _ => &r.start_time,
    };
    match value {
        Some(Value::String(s)) => time::parse(s)
            .map(Some)
            .ok_or_else(|| format!("`{field}` is not a datetime: `{s}`")),
        _ => Err(format!("has no `{field}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raws<'a>(items: &[&'a str]) -> Vec<&'a str> {
        items.to_vec()
    }

    #[test]
    fn records_need_their_fields() {
        let ok = judge(
            Endpoint::Alerts,
            &raws(&[
                r#"{"id":"da1","lastUpdateTime":"2026-12-03T10:00:00.12Z"}"#,
                r#"{"id":"da2","lastUpdateTime":"2026-12-03T11:00:00Z"}"#,
            ]),
        );
        assert_eq!(ok.status, Status::Ok);
        assert_eq!(ok.sampled, 2);
        assert!(ok.detail.contains("2026-12-03T11:00:00Z"), "{}", ok.detail);

        let bad = judge(
            Endpoint::Alerts,
            &raws(&[
                r#"{"id":"da1","lastUpdateTime":"2026-12-03T10:00:00Z"}"#,
                r#"{"id":"da2","lastUpdateTime":"yesterday"}"#,
            ]),
        );
        assert_eq!((bad.status, bad.exit), (Status::Error, Exit::Error));
        assert!(bad.detail.contains("record 2 of 2"), "{}", bad.detail);

        let inv = judge(Endpoint::Investigations, &raws(&[r#"{"id":"7"}"#]));
        assert!(inv.detail.contains("startTime"), "{}", inv.detail);
        let recs = judge(Endpoint::Recommendations, &raws(&[r#"{"id":"va-1"}"#]));
        assert_eq!(recs.status, Status::Ok);
        let noid = judge(Endpoint::Recommendations, &raws(&[r#"{"name":"x"}"#]));
        assert_eq!(noid.status, Status::Error);
        let empty = judge(Endpoint::Recommendations, &[]);
        assert_eq!((empty.status, empty.exit), (Status::Empty, Exit::Ok));
    }

    #[test]
    fn exit_prefers_auth_then_denied() {
        let check = |status, exit| Check {
            endpoint: Endpoint::Alerts,
            status,
            sampled: 0,
            detail: String::new(),
            exit,
        };
        let r = |checks| Report {
            profile: "p".into(),
            checks,
        };
        assert_eq!(
            r(vec![
                check(Status::Ok, Exit::Ok),
                check(Status::Empty, Exit::Ok)
            ])
            .exit(),
            Exit::Ok
        );
        assert_eq!(
            r(vec![
                check(Status::Error, Exit::Unavailable),
                check(Status::Denied, Exit::PermissionDenied)
            ])
            .exit(),
            Exit::PermissionDenied
        );
        let report = r(vec![check(Status::Denied, Exit::PermissionDenied)]);
        assert!(!report.ok());
        assert_eq!(report.to_json()["ok"], false);
        assert_eq!(report.to_json()["endpoints"]["alerts"]["status"], "denied");
    }
}
