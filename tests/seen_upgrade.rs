//! State files written before `seen` became strings of lines (schema 1, one
//! `"id" = "fingerprint@time"` pair per record under `[endpoints.NAME.seen]`)
//! keep working: the next pull writes nothing it had written, and leaves the
//! file in the current form (a `[seen]` table of strings, last).

use std::fs;

use defender_ingest::sandbox::SandboxConfig;

use crate::common::connected::{Connected, lines};

/// The state file as a schema 1 build wrote it, made from the current one.
fn as_schema_1(text: &str) -> String {
    let mut doc: toml::Table = text.parse().unwrap();
    doc.insert("schema_version".into(), toml::Value::Integer(1));
    let seen = doc.remove("seen").expect("a [seen] table");
    let endpoints = doc.get_mut("endpoints").unwrap().as_table_mut().unwrap();
    let mut converted = 0;
    for (name, lines) in seen.as_table().unwrap() {
        let mut table = toml::Table::new();
        for line in lines.as_str().unwrap().lines() {
            let mut words = line.splitn(3, ' ');
            let (fp, time, id) = (
                words.next().unwrap(),
                words.next().unwrap(),
                words.next().unwrap(),
            );
            assert!(!id.contains('\\'), "sandbox ids need no escapes: {id}");
            let value = if time == "-" {
                fp.to_string()
            } else {
                format!("{fp}@{time}")
            };
            table.insert(id.to_string(), toml::Value::String(value));
            converted += 1;
        }
        let state = endpoints.get_mut(name).unwrap().as_table_mut().unwrap();
        state.insert("seen".into(), toml::Value::Table(table));
    }
    assert!(converted > 0, "the pull remembered something");
    toml::to_string_pretty(&doc).unwrap()
}

#[test]
fn a_state_file_with_seen_tables_is_read_and_nothing_is_written_twice() {
    let c = Connected::new(SandboxConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("defender.jsonl");
    let out = c.pull_to(&file, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = lines(&file).len();
    let remembered = c.status()["endpoints"].clone();

    let path = c.env.profile_file("default");
    let old = as_schema_1(&fs::read_to_string(&path).unwrap());
    assert!(old.contains("[endpoints.alerts.seen]"), "{old}");
    fs::write(&path, &old).unwrap();
    assert_eq!(c.status()["endpoints"], remembered, "read the same");

    // The sandbox does not change by itself: nothing is new.
    let out = c.pull_to(&file, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&file).len(), written, "nothing was written again");
    let now = fs::read_to_string(&path).unwrap();
    assert!(
        now.contains("schema_version = 2")
            && now.contains("\n[seen]\nalerts = '''\n")
            && !now.contains(".seen]"),
        "{now}"
    );
    let after = c.status()["endpoints"].clone();
    for e in ["alerts", "investigations", "recommendations"] {
        assert_eq!(after[e]["remembered"], remembered[e]["remembered"], "{e}");
        assert_eq!(after[e]["cursor"], remembered[e]["cursor"], "{e}");
    }

    // Changes after the upgrade are still told apart.
    c.sb.tenant().update_alerts(3);
    let out = c.pull_to(&file, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&file).len(), written + 3);
}
