//! Compact records → the JSON the Defender API documents, with every field of
//! the alert, investigation and recommendation resources, and the filterable
//! fields read straight off the compact records (so filtering a million alerts
//! renders nothing).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::data::{AlertRec, InvestigationRec, RecommendationRec, Store, mix};
use super::odata::{FieldValue, from_ticks};

pub(crate) const ALERT_STATUS: [&str; 4] = ["Unknown", "New", "InProgress", "Resolved"];
pub(super) const SEVERITY: [&str; 4] = ["Informational", "Low", "Medium", "High"];
pub(super) const CLASSIFICATION: [&str; 4] = [
    "",
    "TruePositive",
    "InformationalExpectedActivity",
    "FalsePositive",
];
pub(super) const DETERMINATION: [[&str; 4]; 4] = [
    ["", "", "", ""],
    [
        "MultiStagedAttack",
        "Malware",
        "MaliciousUserActivity",
        "Other",
    ],
    [
        "SecurityTesting",
        "LineOfBusinessApplication",
        "ConfirmedUserActivity",
        "Other",
    ],
    ["Clean", "InsufficientData", "Other", "Other"],
];
pub(super) const ANALYSTS: [&str; 5] = [
    "",
    "secop1@sandbox.onmicrosoft.com",
    "secop2@sandbox.onmicrosoft.com",
    "Automation",
    "soc-lead@sandbox.onmicrosoft.com",
];
pub(super) const ALERT_INV_STATE: [&str; 6] = [
    "Queued",
    "Running",
    "SuccessfullyRemediated",
    "PendingApproval",
    "Benign",
    "UnsupportedAlertType",
];
pub(crate) const INVESTIGATION_STATES: [&str; 8] = [
    "Running",
    "SuccessfullyRemediated",
    "Benign",
    "TerminatedByUser",
    "PendingApproval",
    "PartiallyRemediated",
    "Queued",
    "Failed",
];
const RBAC_GROUPS: [&str; 3] = ["Workstations", "Servers", "Finance"];
pub(super) const USERS: [(&str, &str); 6] = [
    ("alice", "SANDBOX"),
    ("bob", "SANDBOX"),
    ("carol", "SANDBOX"),
    ("svc-backup", "SANDBOX"),
    ("dave", "SANDBOX"),
    ("administrator", "SRV"),
];

/// (title, category, detectionSource, mitre, threatFamilyName, threatName, file, process)
pub(super) type Kind = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
    &'static str,
);
pub(super) const KINDS: [Kind; 12] = [
    (
        "Low-reputation arbitrary code executed by signed executable",
        "Execution",
        "WindowsDefenderAtp",
        &["T1218", "T1218.011"],
        None,
        None,
        "suspicious.dll",
        "rundll32.exe",
    ),
    (
        "Suspicious PowerShell command line",
        "Execution",
        "WindowsDefenderAtp",
        &["T1059.001"],
        None,
        None,
        "payload.ps1",
        "powershell.exe",
    ),
    (
        "'Mimikatz' credential theft tool",
        "CredentialAccess",
        "WindowsDefenderAv",
        &["T1003", "T1003.001"],
        Some("Mimikatz"),
        Some("HackTool:Win32/Mimikatz.D"),
        "mimi.exe",
        "cmd.exe",
    ),
    (
        "Ransomware behavior detected in the file system",
        "Ransomware",
        "WindowsDefenderAtp",
        &["T1486"],
        None,
        None,
        "locker.exe",
        "explorer.exe",
    ),
    (
        "Suspicious process injection observed",
        "DefenseEvasion",
        "WindowsDefenderAtp",
        &["T1055"],
        None,
        None,
        "inject.dll",
        "svchost.exe",
    ),
    (
        "An active 'Emotet' malware was detected",
        "Malware",
        "WindowsDefenderAv",
        &["T1204.002"],
        Some("Emotet"),
        Some("Trojan:Win32/Emotet.ARJ!MTB"),
        "invoice.doc",
        "winword.exe",
    ),
    (
        "Suspicious scheduled task",
        "Persistence",
        "WindowsDefenderAtp",
        &["T1053.005"],
        None,
        None,
        "updater.exe",
        "schtasks.exe",
    ),
    (
        "Anomalous account lookups",
        "Discovery",
        "WindowsDefenderAtp",
        &["T1087", "T1087.002"],
        None,
        None,
        "net.exe",
        "net.exe",
    ),
    (
        "Connection to a known malicious IP address",
        "CommandAndControl",
        "CustomTi",
        &["T1071.001"],
        None,
        None,
        "beacon.exe",
        "beacon.exe",
    ),
    (
        "Possible lateral movement via WMI",
        "LateralMovement",
        "WindowsDefenderAtp",
        &["T1047"],
        None,
        None,
        "wmic.exe",
        "wmiprvse.exe",
    ),
    (
        "Suspicious file dropped by an Office application",
        "InitialAccess",
        "WindowsDefenderAtp",
        &["T1566.001"],
        None,
        None,
        "report.js",
        "excel.exe",
    ),
    (
        "'Presenoker' potentially unwanted application was detected",
        "SuspiciousActivity",
        "WindowsDefenderAv",
        &[],
        Some("Presenoker"),
        Some("PUA:Win32/Presenoker"),
        "setup_free.exe",
        "msiexec.exe",
    ),
];

/// Write a timestamp losslessly with the precision it was truncated to: 7 digits, 2, or none.
pub(crate) fn time_mixed(t: i64) -> String {
    let d = from_ticks(t);
    if t.rem_euclid(10_000_000) == 0 {
        d.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else if t.rem_euclid(100_000) == 0 {
        format!(
            "{}.{:02}Z",
            d.format("%Y-%m-%dT%H:%M:%S"),
            t.rem_euclid(10_000_000) / 100_000
        )
    } else {
        time7(d)
    }
}

pub(crate) fn time7(d: DateTime<Utc>) -> String {
    use chrono::Timelike;
    format!(
        "{}.{:07}Z",
        d.format("%Y-%m-%dT%H:%M:%S"),
        d.nanosecond() % 1_000_000_000 / 100
    )
}

fn opt_time(t: i64) -> Value {
    if t == 0 {
        Value::Null
    } else {
        json!(time_mixed(t))
    }
}

pub(super) fn hex(seed: u64, len: usize) -> String {
    let mut s = String::with_capacity(len + 16);
    let mut x = seed;
    while s.len() < len {
        x = mix(x);
        s.push_str(&format!("{x:016x}"));
    }
    s.truncate(len);
    s
}

pub(super) fn guid(seed: u64) -> String {
    let h = hex(seed, 32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub(super) struct Machine {
    pub(super) id: String,
    pub(super) dns: String,
    pub(super) rbac: &'static str,
}

pub(super) fn machine(seed: u64, m: u64) -> Machine {
    let h = mix(seed ^ 0xABCD ^ (m << 20));
    let (dns, rbac) = if m.is_multiple_of(4) {
        (format!("srv-app-{m:02}.sandbox.local"), RBAC_GROUPS[1])
    } else {
        (
            format!("desktop-{}.sandbox.local", &hex(h, 7)),
            RBAC_GROUPS[(m % 3 == 1) as usize * 2],
        )
    };
    Machine {
        id: hex(h, 40),
        dns,
        rbac,
    }
}

fn alert_hash(s: &Store, n: u32) -> u64 {
    hash_of(s.seed, n)
}

/// The per-alert hash everything derived from `n` comes from.
pub(super) fn hash_of(seed: u64, n: u32) -> u64 {
    mix(seed ^ u64::from(n).wrapping_mul(0x1000_0001))
}

/// `da637472900382838869_1364969609`: .NET ticks of creation and a signed hash.
pub(crate) fn alert_id(s: &Store, a: &AlertRec) -> String {
    let dotnet = a.created + 621_355_968_000_000_000;
    format!("da{dotnet}_{}", alert_hash(s, a.n) as i32)
}

fn kind(s: &Store, a: &AlertRec) -> &'static Kind {
    &KINDS[(alert_hash(s, a.n) >> 8) as usize % KINDS.len()]
}

fn machine_of(s: &Store, n: u32) -> u64 {
    (alert_hash(s, n) >> 24) % 24
}

/// The alert's value for a filterable/orderable field, without rendering it.
pub(crate) fn alert_field<'a>(s: &Store, a: &'a AlertRec, field: &str) -> Option<FieldValue<'a>> {
    let h = alert_hash(s, a.n);
    // `field` is canonical (the API maps `$filter` names onto ALERT_FILTERABLE),
    // so no allocation happens here on the hot path of a million-alert scan.
    Some(match field {
        "id" => FieldValue::Str(Cow::Owned(alert_id(s, a))),
        "alertCreationTime" => FieldValue::Time(a.created),
        "lastUpdateTime" => FieldValue::Time(a.updated),
        "incidentId" => FieldValue::Num(f64::from(a.incident)),
        "investigationId" if a.investigation == 0 => FieldValue::Null,
        "investigationId" => FieldValue::Num(f64::from(a.investigation)),
        "status" => FieldValue::Str(Cow::Borrowed(ALERT_STATUS[a.status as usize])),
        "severity" => FieldValue::Str(Cow::Borrowed(SEVERITY[(h >> 40) as usize % 4])),
        "category" => FieldValue::Str(Cow::Borrowed(kind(s, a).1)),
        _ => return None,
    })
}

pub(crate) const ALERT_FILTERABLE: [&str; 8] = [
    "id",
    "alertCreationTime",
    "lastUpdateTime",
    "incidentId",
    "investigationId",
    "status",
    "severity",
    "category",
];

fn evidence(s: &Store, a: &AlertRec, k: &Kind, m: &Machine) -> Value {
    let h = alert_hash(s, a.n);
    let user = USERS[(h >> 48) as usize % USERS.len()];
    let when = time_mixed(a.created + 9_000_000);
    let base = |entity: &str| {
        json!({
            "entityType": entity, "evidenceCreationTime": when, "sha1": null, "sha256": null,
            "fileName": null, "filePath": null, "processId": null, "processCommandLine": null,
            "processCreationTime": null, "parentProcessId": null, "parentProcessCreationTime": null,
            "parentProcessFileName": null, "parentProcessFilePath": null, "ipAddress": null,
            "url": null, "registryKey": null, "registryHive": null, "registryValueType": null,
            "registryValue": null, "accountName": null, "domainName": null, "userSid": null,
            "aadUserId": null, "userPrincipalName": null, "detectionStatus": null,
        })
    };
    let mut u = base("User");
    u["accountName"] = json!(user.0);
    u["domainName"] = json!(user.1);
    u["userSid"] = json!(format!(
        "S-1-5-21-1111607-1111760036-109187956-{}",
        1000 + (h >> 52) % 900
    ));
    u["aadUserId"] = json!(guid(h ^ 0x55));
    u["userPrincipalName"] = json!(format!("{}@sandbox.onmicrosoft.com", user.0));
    let mut p = base("Process");
    p["sha1"] = json!(hex(h ^ 1, 40));
    p["sha256"] = json!(hex(h ^ 2, 64));
    p["fileName"] = json!(k.7);
    p["filePath"] = json!("C:\\Windows\\System32");
    p["processId"] = json!(1000 + (h >> 20) % 9000);
    p["processCommandLine"] = json!(format!("{} {}", k.7, k.6));
    p["processCreationTime"] = json!(time_mixed(a.created - 20_000_000));
    p["parentProcessId"] = json!(500 + (h >> 30) % 4000);
    p["parentProcessCreationTime"] = json!(time_mixed(a.created - 60_000_000));
    p["parentProcessFileName"] = json!("explorer.exe");
    p["parentProcessFilePath"] = json!("C:\\Windows");
    p["detectionStatus"] = json!("Detected");
    let mut f = base("File");
    f["sha1"] = json!(hex(h ^ 3, 40));
    f["sha256"] = json!(hex(h ^ 4, 64));
    f["fileName"] = json!(k.6);
    f["filePath"] = json!(format!("C:\\Users\\{}\\Downloads", user.0));
    f["detectionStatus"] = json!(if a.status == 3 {
        "Prevented"
    } else {
        "Detected"
    });
    let mut out = vec![u, p, f];
    if k.1 == "CommandAndControl" {
        let mut ip = base("Ip");
        ip["ipAddress"] = json!(format!("203.0.113.{}", (h >> 12) % 250 + 1));
        out.push(ip);
    }
    let _ = m;
    Value::Array(out)
}

pub(crate) fn alert(s: &Store, a: &AlertRec, expand: bool) -> Value {
    let h = alert_hash(s, a.n);
    let k = kind(s, a);
    let m = machine(s.seed, machine_of(s, a.n));
    let user = USERS[(h >> 48) as usize % USERS.len()];
    let comments: Vec<Value> = (0..a.comments)
        .map(|i| {
            let span = (a.updated - a.created).max(0);
            let t = a.created + span * i64::from(i + 1) / i64::from(a.comments);
            const TEXTS: [&str; 5] = [
                "Investigating.",
                "Isolated the device.",
                "Confirmed with the user.",
                "Closing: remediated.",
                "Escalated to tier 2.",
            ];
            json!({
                "comment": TEXTS[i as usize % 5],
                "createdBy": ANALYSTS[1 + (i as usize + a.n as usize) % 4],
                "createdTime": time7(from_ticks(t)),
            })
        })
        .collect();
    let opt = |s: &str| if s.is_empty() { Value::Null } else { json!(s) };
    json!({
        "id": alert_id(s, a),
        "incidentId": a.incident,
        "investigationId": if a.investigation == 0 { Value::Null } else { json!(a.investigation) },
        "assignedTo": opt(ANALYSTS[a.assigned as usize % ANALYSTS.len()]),
        "severity": SEVERITY[(h >> 40) as usize % 4],
        "status": ALERT_STATUS[a.status as usize],
        "classification": opt(CLASSIFICATION[a.classification as usize % 4]),
        "determination": opt(DETERMINATION[a.classification as usize % 4][a.determination as usize % 4]),
        "investigationState": ALERT_INV_STATE[a.inv_state as usize % ALERT_INV_STATE.len()],
        "detectionSource": k.2,
        "detectorId": guid(h ^ 0xDE7),
        "category": k.1,
        "threatFamilyName": k.4,
        "title": k.0,
        "description": format!("{} on {}. Review the process tree and the evidence, then decide whether to isolate the device.", k.0, m.dns),
        "alertCreationTime": time_mixed(a.created),
        "firstEventTime": time_mixed(a.created - 24_000_000 - (h % 600) as i64 * 10_000_000),
        "lastEventTime": time_mixed(a.created - 10_000_000),
        "lastUpdateTime": time_mixed(a.updated),
        "resolvedTime": opt_time(a.resolved),
        "machineId": m.id,
        "computerDnsName": m.dns,
        "rbacGroupName": m.rbac,
        "aadTenantId": s.tenant_id,
        "threatName": k.5,
        "mitreTechniques": k.3,
        "relatedUser": {"userName": user.0, "domainName": user.1},
        "loggedOnUsers": [{"accountName": user.0, "domainName": user.1}],
        "comments": comments,
        "evidence": if expand { evidence(s, a, k, &m) } else { json!([]) },
    })
}

pub(crate) fn investigation(s: &Store, i: &InvestigationRec) -> Value {
    let a = s.alerts.iter().find(|a| a.n == i.alert_n);
    let m = machine(s.seed, machine_of(s, i.alert_n));
    let state = INVESTIGATION_STATES[i.state as usize % INVESTIGATION_STATES.len()];
    json!({
        "id": i.id.to_string(),
        "startTime": time_mixed(i.start),
        "endTime": opt_time(i.end),
        "state": state,
        "cancelledBy": if i.cancelled { json!("secop1@sandbox.onmicrosoft.com") } else { Value::Null },
        "statusDetails": if state == "PendingApproval" { json!("Remediation actions are awaiting approval") } else { Value::Null },
        "machineId": m.id,
        "computerDnsName": m.dns.split('.').next().unwrap_or_default(),
        "triggeringAlertId": a.map(|a| alert_id(s, a)),
    })
}

/// (id, productName, vendor, name, category, subCategory, remediationType, relatedComponent)
type RecKind = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);
const RECS: [RecKind; 20] = [
    (
        "va-_-microsoft-_-windows_10",
        "windows_10",
        "microsoft",
        "Update Windows 10",
        "OS",
        "",
        "Update",
        "OS",
    ),
    (
        "va-_-google-_-chrome",
        "chrome",
        "google",
        "Update Chrome",
        "Application",
        "",
        "Update",
        "Chrome",
    ),
    (
        "va-_-mozilla-_-firefox",
        "firefox",
        "mozilla",
        "Update Firefox",
        "Application",
        "",
        "Update",
        "Firefox",
    ),
    (
        "va-_-microsoft-_-edge_chromium-based",
        "edge_chromium-based",
        "microsoft",
        "Update Microsoft Edge",
        "Application",
        "",
        "Update",
        "Edge",
    ),
    (
        "va-_-microsoft-_-office",
        "office",
        "microsoft",
        "Update Microsoft Office",
        "Application",
        "",
        "Update",
        "Office",
    ),
    (
        "va-_-oracle-_-jre",
        "jre",
        "oracle",
        "Update Oracle Java Runtime Environment",
        "Application",
        "",
        "Update",
        "Java",
    ),
    (
        "va-_-7-zip-_-7-zip",
        "7-zip",
        "7-zip",
        "Update 7-Zip",
        "Application",
        "",
        "Update",
        "7-Zip",
    ),
    (
        "va-_-adobe-_-acrobat_reader_dc",
        "acrobat_reader_dc",
        "adobe",
        "Update Adobe Acrobat Reader DC",
        "Application",
        "",
        "Update",
        "Acrobat Reader",
    ),
    (
        "va-_-openssl-_-openssl",
        "openssl",
        "openssl",
        "Update OpenSSL",
        "Application",
        "",
        "Update",
        "OpenSSL",
    ),
    (
        "va-_-microsoft-_-.net_framework",
        ".net_framework",
        "microsoft",
        "Update Microsoft .NET Framework",
        "Application",
        "",
        "Update",
        ".NET Framework",
    ),
    (
        "va-_-microsoft-_-windows_server_2019",
        "windows_server_2019",
        "microsoft",
        "Update Windows Server 2019",
        "OS",
        "",
        "Update",
        "OS",
    ),
    (
        "va-_-videolan-_-vlc_media_player",
        "vlc_media_player",
        "videolan",
        "Upgrade VLC media player",
        "Application",
        "",
        "Upgrade",
        "VLC",
    ),
    (
        "scid-2010",
        "",
        "",
        "Turn on Microsoft Defender Antivirus PUA protection in block mode",
        "SecurityControls",
        "Antivirus",
        "ConfigurationChange",
        "Security controls (Antivirus)",
    ),
    (
        "scid-91",
        "",
        "",
        "Disable 'Autoplay' for all drives",
        "OS",
        "Group Policy",
        "ConfigurationChange",
        "OS (Group Policy)",
    ),
    (
        "scid-64",
        "",
        "",
        "Set 'Minimum password length' to '14 or more characters'",
        "Accounts",
        "Password Policy",
        "ConfigurationChange",
        "Accounts (Password Policy)",
    ),
    (
        "scid-2012",
        "",
        "",
        "Turn on Microsoft Defender Firewall",
        "Network",
        "Firewall",
        "ConfigurationChange",
        "Network (Firewall)",
    ),
    (
        "scid-96",
        "",
        "",
        "Enable 'Local Security Authority (LSA) protection'",
        "OS",
        "Credential Guard",
        "ConfigurationChange",
        "OS (LSA)",
    ),
    (
        "scid-5001",
        "",
        "",
        "Enable Microsoft Defender Antivirus real-time protection",
        "SecurityControls",
        "Antivirus",
        "ConfigurationChange",
        "Security controls (Antivirus)",
    ),
    (
        "scid-2000",
        "",
        "",
        "Turn on cloud-delivered protection",
        "SecurityControls",
        "Antivirus",
        "ConfigurationChange",
        "Security controls (Antivirus)",
    ),
    (
        "scid-3001",
        "",
        "",
        "Disable SMBv1 client driver",
        "Network",
        "SMB",
        "ConfigurationChange",
        "Network (SMB)",
    ),
];

pub(crate) fn recommendation(s: &Store, r: &RecommendationRec) -> Value {
    let k = &RECS[r.n as usize % RECS.len()];
    let round = r.n as usize / RECS.len();
    let id = if round == 0 {
        k.0.to_string()
    } else {
        format!("{}-{round}", k.0)
    };
    let h = mix(s.seed ^ 0x5EC ^ u64::from(r.n));
    let software = !k.1.is_empty();
    let sev = 1.0 + (h % 90) as f64 / 10.0;
    json!({
        "id": id,
        "productName": opt_str(k.1),
        "recommendationName": k.3,
        "weaknesses": if software { r.weaknesses } else { 0 },
        "vendor": opt_str(k.2),
        "recommendedVersion": if software { json!(format!("{}.{}.{}", 10 + h % 100, (h >> 8) % 10, (h >> 16) % 5000)) } else { json!("") },
        "recommendedProgram": Value::Null,
        "recommendedVendor": Value::Null,
        "recommendationCategory": k.4,
        "subCategory": k.5,
        "severityScore": if software { 0.0 } else { sev },
        "publicExploit": software && h.is_multiple_of(3),
        "activeAlert": r.active_alert,
        "associatedThreats": if h.is_multiple_of(5) { json!(["Emotet"]) } else { json!([]) },
        "remediationType": k.6,
        "status": if r.exception { "Exception" } else { "Active" },
        "configScoreImpact": if software { 0.0 } else { (h >> 4) as f64 % 100.0 / 10.0 },
        "exposureImpact": if software { (h >> 6) as f64 % 80.0 / 10.0 } else { 0.0 },
        "totalMachineCount": r.total,
        "exposedMachinesCount": r.exposed,
        "nonProductivityImpactedAssets": r.total - r.exposed.min(r.total),
        "relatedComponent": k.7,
        "exposedCriticalDevices": r.exposed / 7,
    })
}

fn opt_str(s: &str) -> Value {
    if s.is_empty() { Value::Null } else { json!(s) }
}
