//! `pull` under faults: the binary against the sandbox tenant over loopback
//! while the network, the service, the sign-in and the host misbehave. One test
//! per fault class; each checks the output file (every current record version
//! exactly once, every line JSON) and the state (`status --json` and the
//! endpoints' position in the state file), not just the exit code.
//!
//! Two pulls at once and the API down for good live in `tests/pull.rs`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use defender_ingest::sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;

use crate::common::Env;
use crate::common::connected::{Connected, assert_exactly_once, lines};

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    stderr
}

fn code(out: &Output) -> (Option<i32>, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The endpoints' position as the state file holds it (cursor, floor, page
/// cap, and the `[seen]` table).
fn position(env: &Env) -> Value {
    let text = std::fs::read_to_string(env.profile_file("default")).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    serde_json::to_value([table.get("endpoints"), table.get("seen")]).unwrap()
}

/// The whole tenant is in the file exactly once and the state says so: every
/// endpoint has a last pull and the alert cursor is the newest `lastUpdateTime`.
fn assert_complete(c: &Connected, file: &Path) {
    assert_exactly_once(&lines(file), &c.truth());
    let status = c.status();
    for e in ["alerts", "investigations", "recommendations"] {
        assert!(status["endpoints"][e]["last_pull"].is_string(), "{status}");
    }
    let newest =
        c.sb.tenant()
            .alerts()
            .iter()
            .filter_map(|a| defender_ingest::time::parse(a["lastUpdateTime"].as_str()?))
            .max();
    let cursor = status["endpoints"]["alerts"]["cursor"]
        .as_str()
        .and_then(defender_ingest::time::parse);
    assert_eq!(
        cursor, newest,
        "the alert cursor is the newest record's time"
    );
}

/// Run `pull` while a watcher thread does `action` once the sandbox has
/// answered `n` API requests; returns what `pull` returned and whether the
/// action ran.
fn during<T>(
    sb: &Sandbox,
    n: usize,
    action: impl FnOnce() + Send,
    pull: impl FnOnce() -> T,
) -> (T, bool) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let seen = sb
                    .requests()
                    .iter()
                    .filter(|r| r.path.starts_with("/api/"))
                    .count();
                if seen >= n {
                    action();
                    return true;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            false
        });
        let out = pull();
        stop.store(true, Ordering::Relaxed);
        (out, watcher.join().unwrap())
    })
}

/// A tenant whose alerts come in several pages, each answered slowly, so a
/// fault can land in the middle of a pull.
fn paged(alerts: usize, cap: u32) -> Connected {
    let c = Connected::new(SandboxConfig {
        alerts,
        ..SandboxConfig::default()
    });
    c.sb.faults().page_cap(Some(cap));
    c
}

#[test]
fn throttled_mid_pull_waits_out_retry_after_and_completes() {
    let c = paged(200, 50);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    c.sb.faults().slow_next(3, Duration::from_millis(150));
    let (out, fired) = during(
        &c.sb,
        2,
        || c.sb.faults().throttle_next(1, 2),
        || c.pull_to(&file, &[]),
    );
    ok(&out);
    assert!(fired, "the 429 landed mid-pull");
    assert_complete(&c, &file);

    let api: Vec<_> =
        c.sb.requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/api/"))
            .collect();
    let i = api.iter().position(|r| r.status == 429).expect("a 429");
    assert!(i >= 1, "not the first request");
    // Requests sent after the 429 was: none before Retry-After passed. (One
    // already on its way when the 429 was sent may arrive after it.)
    let throttled_at = api[i].answered;
    let later: Vec<_> = api.iter().filter(|r| r.at > throttled_at).collect();
    assert!(!later.is_empty(), "the pull went on after the 429");
    for r in later {
        let gap = r.at.duration_since(throttled_at);
        assert!(
            gap >= Duration::from_secs(2),
            "a request {gap:?} after a 429 with Retry-After: 2"
        );
    }
}

#[test]
fn bursts_of_500_and_503_are_retried() {
    let c = paged(120, 40);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    c.sb.faults().fail_next(2, 500);
    let out = c.pull_to(&file, &["-v"]);
    let stderr = ok(&out);
    assert!(stderr.contains("500"), "{stderr}");
    assert_complete(&c, &file);

    let t = c.sb.tenant();
    t.add_alerts(5);
    t.update_alerts(3);
    t.change_recommendations(2);
    c.sb.faults().slow_next(2, Duration::from_millis(100));
    let (out, fired) = during(
        &c.sb,
        c.api_calls() + 1,
        || c.sb.faults().fail_next(2, 503),
        || c.pull_to(&file, &["-v"]),
    );
    let stderr = ok(&out);
    assert!(fired);
    assert!(stderr.contains("503"), "{stderr}");
    assert_complete(&c, &file);
    let statuses: Vec<u16> = c.sb.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 500).count(), 2);
    assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 2);
}

#[test]
fn a_reset_connection_is_retried() {
    let c = paged(120, 40);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    c.sb.faults().slow_next(2, Duration::from_millis(100));
    let (out, fired) = during(
        &c.sb,
        1,
        || c.sb.faults().reset_next(2),
        || c.pull_to(&file, &[]),
    );
    ok(&out);
    assert!(fired);
    assert_eq!(
        c.sb.requests().iter().filter(|r| r.status == 0).count(),
        2,
        "two connections were reset"
    );
    assert_complete(&c, &file);
}

#[test]
fn a_body_cut_off_mid_way_is_never_half_written() {
    let c = paged(120, 40);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    c.sb.faults().truncate_next(1);
    let stderr = ok(&c.pull_to(&file, &["-v"]));
    assert!(stderr.contains("cut off"), "{stderr}");
    assert_complete(&c, &file);
    // Mid-pull too, on a later page.
    c.sb.tenant().add_alerts(50);
    c.sb.faults().slow_next(2, Duration::from_millis(100));
    let (out, fired) = during(
        &c.sb,
        c.api_calls() + 1,
        || c.sb.faults().truncate_next(2),
        || c.pull_to(&file, &[]),
    );
    ok(&out);
    assert!(fired);
    assert_complete(&c, &file);
}

#[test]
fn a_large_first_page_cut_off_while_written_as_it_arrives_keeps_what_it_wrote() {
    // A first page of several megabytes, streamed: its records are written
    // as they arrive. Cut off after half, hundreds of them are in the file
    // already; they stay (the file never shrinks under a shipper tailing
    // it), and the page fetched again writes only the rest.
    let c = Connected::new(SandboxConfig {
        alerts: 1_500,
        ..SandboxConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    c.sb.faults().truncate_next(1);
    let stderr = ok(&c.pull_to(&file, &["-vv"]));
    let kept: u64 = stderr
        .lines()
        .find_map(|l| {
            let (before, _) =
                l.split_once(" records written of the page as it arrived are kept")?;
            before.rsplit(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("how many were kept: {stderr}"));
    assert!(kept >= 250, "{kept} records were written before the cut");
    assert_complete(&c, &file);
}

#[test]
fn a_large_first_page_cut_off_while_streamed_to_stdout_is_written_once() {
    // The same on stdout: what was written of the page as it arrived went
    // down the pipe and cannot be taken back; it is remembered as written,
    // so the page fetched again adds only the rest.
    let c = Connected::new(SandboxConfig {
        alerts: 1_500,
        ..SandboxConfig::default()
    });
    c.sb.faults().truncate_next(1);
    let out = c
        .cmd()
        .args(["pull", "--since", "60d", "-vv"])
        .output()
        .unwrap();
    let stderr = ok(&out);
    assert!(
        stderr.contains("records written of the page as it arrived are kept"),
        "{stderr}"
    );
    let lines: Vec<Value> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("a JSON line"))
        .collect();
    assert_exactly_once(&lines, &c.truth());
}

/// A tenant whose API sends pages chunked as it renders them (no
/// Content-Length), capped at `cap` alerts each.
fn chunked(alerts: usize, cap: u32) -> Connected {
    let c = Connected::new(SandboxConfig {
        alerts,
        chunked_bodies: true,
        ..SandboxConfig::default()
    });
    c.sb.faults().page_cap(Some(cap));
    c
}

fn count(stderr: &str, needle: &str) -> usize {
    stderr.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn pages_sent_chunked_are_each_taken_in_as_they_arrive_with_no_call_wasted() {
    // Every page comes without a declared length: each is streamed, and the
    // next is asked for from the end of the one before while it is checked.
    let c = chunked(2_500, 500);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    let stderr = ok(&c.pull_to(&file, &["-vv"]));
    assert_complete(&c, &file);
    let bodies: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("alerts: a body of"))
        .collect();
    assert_eq!(bodies.len(), 6, "{stderr}");
    assert!(
        bodies.iter().all(|l| l.contains("streamed")),
        "every alerts page streamed: {stderr}"
    );
    assert!(
        count(&stderr, "alerts: the page's last byte is in") >= 4,
        "the next page asked for from each full page's end: {stderr}"
    );
    // Five pages of 500 and the empty one after; two each for the others:
    // every page asked for ahead was the one needed.
    assert_eq!(c.api_calls(), 6 + 2 + 2, "{stderr}");
    assert!(
        !stderr.contains("the request made ahead is dropped"),
        "{stderr}"
    );
}

#[test]
fn a_chunked_page_cut_off_mid_way_keeps_what_it_wrote_and_the_rest_is_fetched_again() {
    // The connection drops before a chunked body's last chunk: what was
    // written of it stays, once, and the page fetched again adds the rest;
    // on the first page, and on one in the middle of the pull.
    let c = chunked(3_000, 1_000);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    c.sb.faults().truncate_next(1);
    let stderr = ok(&c.pull_to(&file, &["-v"]));
    assert!(
        stderr.contains("records written of the page as it arrived are kept"),
        "{stderr}"
    );
    assert_complete(&c, &file);
    c.sb.tenant().add_alerts(2_000);
    let (out, fired) = during(
        &c.sb,
        c.api_calls() + 1,
        || c.sb.faults().truncate_next(1),
        || c.pull_to(&file, &["-v"]),
    );
    ok(&out);
    assert!(fired);
    assert_complete(&c, &file);
}

#[test]
fn a_server_slower_than_the_request_timeout_is_retried() {
    let c = paged(60, 30);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    c.sb.faults().slow_next(1, Duration::from_secs(3));
    let stderr = ok(&c.pull_to(&file, &["-v", "--request-timeout", "1"]));
    assert!(stderr.contains("timed out"), "{stderr}");
    assert_complete(&c, &file);

    // Slow for good: exit 5 with the position where it was.
    c.sb.tenant().add_alerts(3);
    let before = position(&c.env);
    let status = c.status();
    c.sb.faults().slow_next(10, Duration::from_secs(3));
    let written = std::fs::read(&file).unwrap();
    let out = c.pull_to(&file, &["--request-timeout", "1", "--max-retries", "1"]);
    let (code, stderr) = code(&out);
    assert_eq!(code, Some(5), "{stderr}");
    assert_eq!(position(&c.env), before);
    assert_eq!(c.status(), status);
    assert_eq!(std::fs::read(&file).unwrap(), written);
    c.sb.faults().slow_next(0, Duration::ZERO);
    ok(&c.pull_to(&file, &[]));
    assert_complete(&c, &file);
}

#[test]
fn an_access_token_expiring_mid_pull_is_renewed() {
    let c = paged(200, 50);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    c.sb.faults().slow_next(4, Duration::from_millis(100));
    let (out, fired) = during(
        &c.sb,
        2,
        || c.sb.faults().expire_access_tokens(),
        || c.pull_to(&file, &[]),
    );
    ok(&out);
    assert!(fired);
    assert_complete(&c, &file);
    let log = c.sb.requests();
    let first_401 = log
        .iter()
        .filter(|r| r.status == 401)
        .map(|r| r.answered)
        .min()
        .expect("a request with the expired token");
    let renewals: Vec<_> = log
        .iter()
        .filter(|r| r.grant_type.as_deref() == Some("client_credentials") && r.at > first_401)
        .collect();
    // Requests in flight together may each meet the expired token; one new
    // token is fetched for all of them, and it works.
    assert_eq!(renewals.len(), 1, "one new token after the 401s: {log:?}");
    assert!(
        log.iter()
            .filter(|r| r.at > renewals[0].answered)
            .all(|r| r.status != 401),
        "a request with the renewed token was rejected: {log:?}"
    );
}

// ---- revoked refresh token on a browser-flow profile (needs the keyring) ----

fn keyring_tests() -> bool {
    std::env::var("DEFENDER_INGEST_KEYRING_TESTS").as_deref() == Ok("1")
}

/// `authorize` with the browser flow, the sandbox playing the browser, then `enable`.
fn authorize_in_browser(sb: &Sandbox, env: &Env) {
    let cfg = sb.config();
    let mut cmd = env.std_cmd();
    cmd.args(["authorize", "--no-browser", "--timeout", "60", "--tenant"])
        .arg(&cfg.tenant_id)
        .arg("--client-id")
        .arg(&cfg.client_id)
        .arg("--login-url")
        .arg(sb.url())
        .arg("--api-url")
        .arg(sb.url())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("http") {
                let _ = tx.send(line.clone());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("authorize prints the sign-in URL");
    let outcome = sb.browser_blocking(&url).expect("the browser signs in");
    assert_eq!(outcome.status, 200, "{}", outcome.body);
    let status = child.wait().unwrap();
    let all = reader.join().unwrap();
    assert!(status.success(), "authorize: {all}");
    env.cmd().arg("enable").assert().success();
}

#[test]
fn a_revoked_refresh_token_exits_3_and_nothing_is_lost_after_authorize() {
    if !keyring_tests() {
        eprintln!("skipped: needs DEFENDER_INGEST_KEYRING_TESTS=1 and a Secret Service");
        return;
    }
    let sb = Sandbox::spawn(SandboxConfig {
        alerts: 80,
        ..SandboxConfig::default()
    })
    .unwrap();
    let env = Env::new();
    authorize_in_browser(&sb, &env);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    let pull = || env.pull_to(&file);
    ok(&pull());
    let t = sb.tenant();
    t.add_alerts(6);
    t.update_alerts(4);
    t.progress_investigations(2);
    let before = position(&env);
    let written = std::fs::read(&file).unwrap();
    sb.faults().expire_access_tokens();
    sb.faults().revoke_refresh_tokens();
    let (code, stderr) = code(&pull());
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("authorize"), "{stderr}");
    assert_eq!(position(&env), before, "the position did not move");
    assert_eq!(std::fs::read(&file).unwrap(), written);

    authorize_in_browser(&sb, &env);
    ok(&pull());
    let c_truth = truth_of(&sb);
    assert_exactly_once(&lines(&file), &c_truth);
}

fn truth_of(sb: &Sandbox) -> std::collections::HashMap<(String, String), Value> {
    let t = sb.tenant();
    let mut all = std::collections::HashMap::new();
    for (kind, records) in [
        ("alert", t.alerts()),
        ("investigation", t.investigations()),
        ("recommendation", t.recommendations()),
    ] {
        for r in records {
            all.insert((kind.to_string(), r["id"].as_str().unwrap().to_string()), r);
        }
    }
    all
}

// ---- the host misbehaves ----

fn spawn_pull(c: &Connected, file: &Path) -> std::process::Child {
    let mut cmd = c.env.std_cmd();
    cmd.env(
        "DEFENDER_INGEST_CLIENT_SECRET",
        &c.sb.config().client_secret,
    )
    .args(["pull", "--since", "60d", "--output"])
    .arg(file)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    cmd.spawn().unwrap()
}

#[test]
fn sigkill_at_random_points_loses_nothing_and_duplicates_nothing() {
    // Paged small and served slowly, so that a pull makes about ten API
    // requests; each round kills it once the sandbox has logged a random number
    // of them (from none to about all), plus a random few milliseconds: before
    // its first request, between pages, while it writes, or as it commits. A
    // random delay on the clock alone would depend on how fast the pull is.
    let c = paged(3000, 200);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    ok(&c.pull_to(&file, &[]));
    let mut killed_mid_pull = 0;
    for round in 0..6 {
        // New work: at least four pages of new alerts, and more after a kill
        // (what a killed pull did not commit is pulled again).
        let t = c.sb.tenant();
        t.add_alerts(700 + 50 * round);
        t.update_alerts(3);
        if round % 2 == 0 {
            t.progress_investigations(1);
            t.change_recommendations(1);
        }
        c.sb.faults().slow_next(1000, Duration::from_millis(40));
        let (before, after) = (c.api_calls(), rand::random_range(0..=9));
        let mut child = spawn_pull(&c, &file);
        let give_up = Instant::now() + Duration::from_secs(60);
        while c.api_calls() < before + after
            && child.try_wait().unwrap().is_none()
            && Instant::now() < give_up
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(rand::random_range(0..50)));
        // SAFETY: a plain kill(2) on our own child's pid, which it still is
        // (not yet reaped, so at worst a zombie).
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        assert_eq!(rc, 0);
        let status = child.wait().unwrap();
        if status.code().is_none() {
            killed_mid_pull += 1;
        }
        // The file may end mid-line now; the state must still be readable.
        c.status();
    }
    assert!(killed_mid_pull >= 3, "most kills landed mid-pull");
    c.sb.faults().slow_next(0, Duration::ZERO);
    ok(&c.pull_to(&file, &[]));
    assert_complete(&c, &file);
}

/// Bytes from which a pull appends to a file around the page cache (O_DIRECT).
const DIRECT_AFTER: u64 = 16 << 20;

#[test]
fn sigkill_while_a_backfill_is_written_around_the_page_cache_loses_nothing() {
    // A backfill of ~28 MB to a file that ends inside a disk block: past 16 MiB
    // the pull writes whole blocks with O_DIRECT, and is killed there.
    let c = Connected::new(SandboxConfig {
        alerts: 100,
        ..SandboxConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    ok(&c.pull_to(&file, &[]));
    let committed = std::fs::metadata(&file).unwrap().len();
    c.sb.tenant().add_alerts(8_000);
    let mut child = spawn_pull(&c, &file);
    let give_up = Instant::now() + Duration::from_secs(120);
    let mut killed_at = None;
    while Instant::now() < give_up && child.try_wait().unwrap().is_none() {
        let len = std::fs::metadata(&file).unwrap().len();
        if len > committed + DIRECT_AFTER + (2 << 20) {
            // SAFETY: kill(2) on our own child, not yet reaped.
            assert_eq!(
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) },
                0
            );
            killed_at = Some(len);
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = child.wait().unwrap();
    assert!(
        killed_at.is_some() && status.code().is_none(),
        "killed while writing directly: {status:?}"
    );
    let stderr = ok(&c.pull_to(&file, &["-vv"]));
    assert!(
        stderr.contains("with O_DIRECT from here on"),
        "the pull after the kill wrote directly too: {stderr}"
    );
    assert_complete(&c, &file);
}

/// A tmpfs of `size` mounted at a fresh dir, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs { dir })
    }

    /// `None` (the test skipped, saying why) where mounting is not allowed.
    fn mount_or_skip(size: &str) -> Option<Tmpfs> {
        Tmpfs::mount(size)
            .inspect_err(|why| eprintln!("skipped: cannot mount a small tmpfs here ({why})"))
            .ok()
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).output();
    }
}

#[test]
fn a_full_disk_exits_7_and_the_next_pull_is_exactly_once() {
    let Some(disk) = Tmpfs::mount_or_skip("64k") else {
        return;
    };
    let c = Connected::new(SandboxConfig {
        alerts: 5,
        investigations: 3,
        recommendations: 5,
        ..SandboxConfig::default()
    });
    let file = disk.path().join("out.jsonl");
    ok(&c.pull_to(&file, &[]));
    assert_complete(&c, &file);
    let committed = std::fs::read(&file).unwrap();

    // Far more than 64 KiB of new alerts.
    c.sb.tenant().add_alerts(100);
    let before = position(&c.env);
    let status = c.status();
    let (code, stderr) = code(&c.pull_to(&file, &[]));
    assert_eq!(code, Some(7), "{stderr}");
    assert!(stderr.contains(&*file.to_string_lossy()), "{stderr}");
    assert_eq!(position(&c.env), before, "the position did not move");
    assert_eq!(c.status(), status);
    let after = std::fs::read(&file).unwrap();
    assert!(after.starts_with(&committed), "committed lines are intact");

    // Space freed: the next pull cuts off the partial lines and writes each version once.
    disk.resize("16m");
    ok(&c.pull_to(&file, &[]));
    assert_complete(&c, &file);
}

#[test]
fn a_disk_full_while_a_backfill_is_written_around_the_page_cache_exits_7_and_loses_nothing() {
    // Room for the first 16 MiB (through the page cache) and a few direct
    // writes after them, not for the ~28 MB backfill.
    let Some(disk) = Tmpfs::mount_or_skip("20m") else {
        return;
    };
    let c = Connected::new(SandboxConfig {
        alerts: 8_000,
        ..SandboxConfig::default()
    });
    let file = disk.path().join("out.jsonl");
    let before = position(&c.env);
    let (code, stderr) = code(&c.pull_to(&file, &["-vv"]));
    assert_eq!(code, Some(7), "{stderr}");
    assert!(stderr.contains(&*file.to_string_lossy()), "{stderr}");
    assert!(
        stderr.contains("with O_DIRECT from here on"),
        "the disk filled while writing directly: {stderr}"
    );
    assert_eq!(position(&c.env), before, "the position did not move");

    disk.resize("64m");
    ok(&c.pull_to(&file, &[]));
    assert_complete(&c, &file);
}

#[test]
fn a_closed_stdout_pipe_exits_7_and_moves_nothing() {
    let c = Connected::new(SandboxConfig {
        alerts: 50,
        ..SandboxConfig::default()
    });
    let state_before = std::fs::read(c.env.profile_file("default")).unwrap();
    let mut cmd = c.env.std_cmd();
    cmd.env(
        "DEFENDER_INGEST_CLIENT_SECRET",
        &c.sb.config().client_secret,
    )
    .args(["pull", "--since", "60d"])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take()); // the reader goes away before anything is written
    let out = child.wait_with_output().unwrap();
    let (code, stderr) = code(&out);
    assert_eq!(code, Some(7), "{stderr}");
    assert!(stderr.contains("stdout"), "{stderr}");
    assert_eq!(
        std::fs::read(c.env.profile_file("default")).unwrap(),
        state_before,
        "the state file is byte for byte what it was"
    );
    // The next pull, to a reader that stays, writes everything.
    let out = c.cmd().args(["pull", "--since", "60d"]).output().unwrap();
    ok(&out);
    let got: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_exactly_once(&got, &c.truth());
}

#[test]
fn a_corrupt_or_truncated_state_file_exits_1_untouched_without_calling_the_api() {
    let c = Connected::new(SandboxConfig {
        alerts: 30,
        ..SandboxConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    ok(&c.pull_to(&file, &[]));
    let path = c.env.profile_file("default");
    let good = std::fs::read(&path).unwrap();
    let written = std::fs::read(&file).unwrap();

    // Cut inside a string value (the last endpoint's `seen` lines), as a
    // write torn mid-way would leave it.
    let opener = good
        .windows(7)
        .rposition(|w| w == b" = '''\n")
        .expect("the state remembers records")
        + 7;
    let truncated = good[..opener + 10].to_vec();
    let mut corrupt = good.clone();
    corrupt.splice(0..0, b"[[[ not toml\n".iter().copied());

    for (what, bytes) in [("truncated", truncated), ("corrupt", corrupt)] {
        std::fs::write(&path, &bytes).unwrap();
        let calls = c.sb.requests().len();
        let (code, stderr) = code(&c.pull_to(&file, &[]));
        assert_eq!(code, Some(1), "{what}: {stderr}");
        assert!(
            stderr.contains(&*path.to_string_lossy()),
            "{what}: names the file: {stderr}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{what}: untouched");
        assert_eq!(c.sb.requests().len(), calls, "{what}: no API or token call");
        assert_eq!(std::fs::read(&file).unwrap(), written);
    }
    std::fs::write(&path, &good).unwrap();
    ok(&c.pull_to(&file, &[]));
    assert_complete(&c, &file);
}
