//! Alerts written straight into a page body, for serving a million of them
//! without the sandbox being what a benchmark measures.
//!
//! [`super::render::alert`] builds a `serde_json::Value` (a map per object, a
//! `String` per field): clear, and the tenant's ground truth for tests, but far
//! slower than a client reads. This writes the same content (same fields,
//! same values; a unit test holds the two equal) as bytes, from a copy of the
//! compact record, with no tenant lock held.

use std::io::Write;

use super::data::AlertRec;
use super::odata::from_ticks;
use super::render::{
    self, ALERT_INV_STATE, ALERT_STATUS, ANALYSTS, CLASSIFICATION, DETERMINATION, KINDS, Machine,
    SEVERITY, USERS,
};

/// What every alert of one tenant shares: the seed, the tenant id and its 24 machines.
pub(crate) struct AlertWriter {
    seed: u64,
    tenant_json: String,
    machines: Vec<Machine>,
}

const EVIDENCE_FIELDS: [&str; 24] = [
    "sha1",
    "sha256",
    "fileName",
    "filePath",
    "processId",
    "processCommandLine",
    "processCreationTime",
    "parentProcessId",
    "parentProcessCreationTime",
    "parentProcessFileName",
    "parentProcessFilePath",
    "ipAddress",
    "url",
    "registryKey",
    "registryHive",
    "registryValueType",
    "registryValue",
    "accountName",
    "domainName",
    "userSid",
    "aadUserId",
    "userPrincipalName",
    "detectionStatus",
    "entityType",
];

enum V<'a> {
    Str(&'a str),
    Num(u64),
}

impl AlertWriter {
    pub(crate) fn new(seed: u64, tenant_id: &str) -> AlertWriter {
        AlertWriter {
            seed,
            tenant_json: serde_json::to_string(tenant_id).unwrap_or_default(),
            machines: (0..24).map(|m| render::machine(seed, m)).collect(),
        }
    }

    /// Append one alert's JSON object to `out`.
    pub(crate) fn write(&self, out: &mut Vec<u8>, a: &AlertRec, expand: bool) {
        let h = render::hash_of(self.seed, a.n);
        let k = &KINDS[(h >> 8) as usize % KINDS.len()];
        let m = &self.machines[((h >> 24) % 24) as usize];
        let user = USERS[(h >> 48) as usize % USERS.len()];
        let dotnet = a.created + 621_355_968_000_000_000;
        let _ = write!(out, "{{\"id\":\"da{dotnet}_{}\"", h as i32);
        let _ = write!(out, ",\"incidentId\":{}", a.incident);
        out.extend_from_slice(b",\"investigationId\":");
        if a.investigation == 0 {
            out.extend_from_slice(b"null");
        } else {
            let _ = write!(out, "{}", a.investigation);
        }
        key(out, "assignedTo");
        opt_str(out, ANALYSTS[a.assigned as usize % ANALYSTS.len()]);
        key(out, "severity");
        string(out, SEVERITY[(h >> 40) as usize % 4]);
        key(out, "status");
        string(out, ALERT_STATUS[a.status as usize]);
        key(out, "classification");
        opt_str(out, CLASSIFICATION[a.classification as usize % 4]);
        key(out, "determination");
        opt_str(
            out,
            DETERMINATION[a.classification as usize % 4][a.determination as usize % 4],
        );
        key(out, "investigationState");
        string(
            out,
            ALERT_INV_STATE[a.inv_state as usize % ALERT_INV_STATE.len()],
        );
        key(out, "detectionSource");
        string(out, k.2);
        key(out, "detectorId");
        string(out, &render::guid(h ^ 0xDE7));
        key(out, "category");
        string(out, k.1);
        key(out, "threatFamilyName");
        opt_str(out, k.4.unwrap_or(""));
        key(out, "title");
        string(out, k.0);
        key(out, "description");
        string(
            out,
            &format!(
                "{} on {}. Review the process tree and the evidence, then decide whether to isolate the device.",
                k.0, m.dns
            ),
        );
        key(out, "alertCreationTime");
        time_mixed(out, a.created);
        key(out, "firstEventTime");
        time_mixed(out, a.created - 24_000_000 - (h % 600) as i64 * 10_000_000);
        key(out, "lastEventTime");
        time_mixed(out, a.created - 10_000_000);
        key(out, "lastUpdateTime");
        time_mixed(out, a.updated);
        key(out, "resolvedTime");
        if a.resolved == 0 {
            out.extend_from_slice(b"null");
        } else {
            time_mixed(out, a.resolved);
        }
        key(out, "machineId");
        string(out, &m.id);
        key(out, "computerDnsName");
        string(out, &m.dns);
        key(out, "rbacGroupName");
        string(out, m.rbac);
        key(out, "aadTenantId");
        out.extend_from_slice(self.tenant_json.as_bytes());
        key(out, "threatName");
        opt_str(out, k.5.unwrap_or(""));
        key(out, "mitreTechniques");
        out.push(b'[');
        for (i, t) in k.3.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, t);
        }
        out.push(b']');
        key(out, "relatedUser");
        out.extend_from_slice(b"{\"userName\":");
        string(out, user.0);
        out.extend_from_slice(b",\"domainName\":");
        string(out, user.1);
        out.extend_from_slice(b"},\"loggedOnUsers\":[{\"accountName\":");
        string(out, user.0);
        out.extend_from_slice(b",\"domainName\":");
        string(out, user.1);
        out.extend_from_slice(b"}],\"comments\":[");
        const TEXTS: [&str; 5] = [
            "Investigating.",
            "Isolated the device.",
            "Confirmed with the user.",
            "Closing: remediated.",
            "Escalated to tier 2.",
        ];
        for i in 0..a.comments {
            if i > 0 {
                out.push(b',');
            }
            let span = (a.updated - a.created).max(0);
            let t = a.created + span * i64::from(i + 1) / i64::from(a.comments);
            out.extend_from_slice(b"{\"comment\":");
            string(out, TEXTS[i as usize % 5]);
            out.extend_from_slice(b",\"createdBy\":");
            string(out, ANALYSTS[1 + (i as usize + a.n as usize) % 4]);
            out.extend_from_slice(b",\"createdTime\":");
            time7(out, t);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"evidence\":[");
        if expand {
            self.evidence(out, a, h, k, user);
        }
        out.extend_from_slice(b"]}");
    }

    fn evidence(
        &self,
        out: &mut Vec<u8>,
        a: &AlertRec,
        h: u64,
        k: &render::Kind,
        user: (&str, &str),
    ) {
        let when = a.created + 9_000_000;
        let sid = format!(
            "S-1-5-21-1111607-1111760036-109187956-{}",
            1000 + (h >> 52) % 900
        );
        let aad = render::guid(h ^ 0x55);
        let upn = format!("{}@sandbox.onmicrosoft.com", user.0);
        entity(
            out,
            "User",
            when,
            &[
                ("accountName", V::Str(user.0)),
                ("domainName", V::Str(user.1)),
                ("userSid", V::Str(&sid)),
                ("aadUserId", V::Str(&aad)),
                ("userPrincipalName", V::Str(&upn)),
            ],
        );
        out.push(b',');
        let (sha1, sha256) = (render::hex(h ^ 1, 40), render::hex(h ^ 2, 64));
        let cmdline = format!("{} {}", k.7, k.6);
        let mut t1 = Vec::with_capacity(28);
        time_mixed(&mut t1, a.created - 20_000_000);
        let mut t2 = Vec::with_capacity(28);
        time_mixed(&mut t2, a.created - 60_000_000);
        let (t1, t2) = (unquote(&t1), unquote(&t2));
        entity(
            out,
            "Process",
            when,
            &[
                ("sha1", V::Str(&sha1)),
                ("sha256", V::Str(&sha256)),
                ("fileName", V::Str(k.7)),
                ("filePath", V::Str("C:\\Windows\\System32")),
                ("processId", V::Num(1000 + (h >> 20) % 9000)),
                ("processCommandLine", V::Str(&cmdline)),
                ("processCreationTime", V::Str(t1)),
                ("parentProcessId", V::Num(500 + (h >> 30) % 4000)),
                ("parentProcessCreationTime", V::Str(t2)),
                ("parentProcessFileName", V::Str("explorer.exe")),
                ("parentProcessFilePath", V::Str("C:\\Windows")),
                ("detectionStatus", V::Str("Detected")),
            ],
        );
        out.push(b',');
        let (sha1, sha256) = (render::hex(h ^ 3, 40), render::hex(h ^ 4, 64));
        let path = format!("C:\\Users\\{}\\Downloads", user.0);
        let status = if a.status == 3 {
            "Prevented"
        } else {
            "Detected"
        };
        entity(
            out,
            "File",
            when,
            &[
                ("sha1", V::Str(&sha1)),
                ("sha256", V::Str(&sha256)),
                ("fileName", V::Str(k.6)),
                ("filePath", V::Str(&path)),
                ("detectionStatus", V::Str(status)),
            ],
        );
        if k.1 == "CommandAndControl" {
            out.push(b',');
            let ip = format!("203.0.113.{}", (h >> 12) % 250 + 1);
            entity(out, "Ip", when, &[("ipAddress", V::Str(&ip))]);
        }
    }
}

fn entity(out: &mut Vec<u8>, kind: &str, when: i64, set: &[(&str, V<'_>)]) {
    out.extend_from_slice(b"{\"evidenceCreationTime\":");
    time_mixed(out, when);
    for f in EVIDENCE_FIELDS {
        key(out, f);
        if f == "entityType" {
            string(out, kind);
            continue;
        }
        match set.iter().find(|(k, _)| *k == f).map(|(_, v)| v) {
            None => out.extend_from_slice(b"null"),
            Some(V::Str(s)) => string(out, s),
            Some(V::Num(n)) => {
                let _ = write!(out, "{n}");
            }
        }
    }
    out.push(b'}');
}

fn unquote(b: &[u8]) -> &str {
    std::str::from_utf8(&b[1..b.len() - 1]).unwrap_or_default()
}

fn key(out: &mut Vec<u8>, k: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

fn opt_str(out: &mut Vec<u8>, s: &str) {
    if s.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        string(out, s);
    }
}

/// `"2026-12-03T10:00:00Z"`, `"….12Z"` or `"….1234567Z"`, as [`render::time_mixed`] writes it.
fn time_mixed(out: &mut Vec<u8>, t: i64) {
    let frac = t.rem_euclid(10_000_000);
    datetime(out, t);
    if frac == 0 {
    } else if frac % 100_000 == 0 {
        let _ = write!(out, ".{:02}", frac / 100_000);
    } else {
        let _ = write!(out, ".{frac:07}");
    }
    out.extend_from_slice(b"Z\"");
}

/// Always 7 fractional digits, as [`render::time7`].
fn time7(out: &mut Vec<u8>, t: i64) {
    datetime(out, t);
    let _ = write!(out, ".{:07}Z\"", t.rem_euclid(10_000_000));
}

/// `"YYYY-MM-DDTHH:MM:SS` (opening quote, no fraction, no zone).
fn datetime(out: &mut Vec<u8>, t: i64) {
    use chrono::{Datelike, Timelike};
    let d = from_ticks(t);
    let _ = write!(
        out,
        "\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{SandboxConfig, Tenant};

    #[test]
    fn bytes_equal_the_rendered_values() {
        let cfg = SandboxConfig {
            alerts: 400,
            ..SandboxConfig::default()
        };
        let t = Tenant::generate(&cfg);
        t.update_alerts(100);
        t.update_alerts(100);
        let s = t.lock();
        let w = AlertWriter::new(s.seed, &s.tenant_id);
        for a in s.alerts.iter() {
            for expand in [true, false] {
                let mut out = Vec::new();
                w.write(&mut out, a, expand);
                let fast: serde_json::Value = serde_json::from_slice(&out)
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
                assert_eq!(fast, render::alert(&s, a, expand));
            }
        }
    }
}
