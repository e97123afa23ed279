use super::*;
use crate::cli::Flow;
use crate::cloud::Cloud;

fn connection() -> Connection {
    Connection {
        tenant_id: "contoso.onmicrosoft.com".into(),
        client_id: "11111111-2222-3333-4444-555555555555".into(),
        cloud: Cloud::Global,
        flow: Flow::Browser,
        login_url: "https://login.microsoftonline.com".into(),
        api_url: "https://api.securitycenter.microsoft.com".into(),
        scope: "https://api.securitycenter.microsoft.com/.default".into(),
    }
}

#[test]
fn round_trips_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path().join("state"));
    let mut p = Profile::new("prod", connection());
    p.enabled = true;
    p.authorized_at = Some("2026-12-03T10:00:00Z".into());
    p.credential_key = Some("prod-abc".into());
    let e = p.endpoint_mut("alerts");
    e.cursor = Some("2026-12-03T09:59:59.1234567Z".into());
    e.page_cap = Some(10);
    e.seen
        .push("00ff", Some("2026-12-03T09:59:59.1234567Z"), "da1");
    p.outputs.insert(
        "/tmp/x.jsonl".into(),
        OutputMark {
            dev: 1,
            ino: 2,
            committed_len: 3,
            pending_from: Some(3),
        },
    );
    store.save(&p).unwrap();
    assert_eq!(store.load("prod").unwrap(), Some(p));
    assert_eq!(store.list().unwrap(), vec!["prod".to_string()]);
}

#[cfg(unix)]
#[test]
fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path().join("state"));
    store.save(&Profile::new("p", connection())).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store.profile_path("p").unwrap()), 0o600);
    assert_eq!(mode(store.dir()), 0o700);
}

#[test]
fn corrupt_file_names_line_and_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path());
    store.save(&Profile::new("p", connection())).unwrap();
    let path = store.profile_path("p").unwrap();
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("\nenabled = = true\n");
    fs::write(&path, &text).unwrap();
    let err = store.load("p").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    let line = text.lines().count();
    assert!(msg.contains(&format!("line {line}")), "{msg}");
    assert!(
        store
            .update("p", |p| {
                p.enabled = true;
                Ok(())
            })
            .is_err()
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path());
    let mut p = Profile::new("p", connection());
    p.schema_version = SCHEMA_VERSION + 1;
    store.save(&p).unwrap();
    assert!(matches!(store.load("p"), Err(StateError::TooNew { .. })));
}

#[test]
fn profile_names_are_checked() {
    for bad in ["", "../x", ".hidden", "a/b", "a b"] {
        assert!(validate_name(bad).is_err(), "{bad:?}");
    }
    for good in ["default", "prod-eu", "tenant_2.x"] {
        assert!(validate_name(good).is_ok(), "{good:?}");
    }
}

#[test]
fn pull_lock_is_exclusive_and_released_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::new(dir.path());
    let held = store.lock("p", LockMode::Pull).unwrap();
    assert!(matches!(
        store.lock("p", LockMode::Pull),
        Err(StateError::Locked { .. })
    ));
    // The state lock is a different file: enable/disable are not blocked by a pull.
    drop(store.lock("p", LockMode::State).unwrap());
    drop(held);
    store.lock("p", LockMode::Pull).unwrap();
}

#[test]
fn seen_lines_read_the_same_by_hand_and_by_toml() {
    let mut p = Profile::new("p", connection());
    for (e, id) in [
        ("alerts", "da1 with spaces"),
        ("investigations", "7"),
        ("x y", "q'''"),
    ] {
        p.endpoint_mut(e)
            .seen
            .push("00ff", Some("2026-12-03T09:59:59.1234567Z"), id);
    }
    p.endpoint_mut("recommendations").cursor = Some("c".into());
    let text = p.to_toml();
    assert!(text.contains("\n[seen]\nalerts = '''\n"), "{text}");
    let path = Path::new("p.toml");
    assert_eq!(Profile::parse(&text, path).unwrap(), p);
    // A comment after the table leaves the whole file to `toml`: the same profile.
    let edited = format!("{text}# edited by hand\n");
    assert_eq!(Profile::parse(&edited, path).unwrap(), p);
    // A table that `toml` rejects is still a corrupt file, found by line.
    let broken = text.replace("investigations = '''", "investigations = '''\u{1}");
    match Profile::parse(&broken, path) {
        Err(StateError::Corrupt { line, .. }) => assert!(line > 10, "{line}"),
        other => panic!("{other:?}"),
    }
}
