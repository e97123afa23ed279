//! Proxies and timeouts: the binary through a real CONNECT proxy on loopback
//! that alone can resolve `defender.proxy.test` (so success proves the path),
//! from `HTTPS_PROXY` / `https_proxy` or `--proxy`, with and without proxy
//! credentials, and with `NO_PROXY`; and a server slower than
//! `--request-timeout` giving exit 5 in bounded time.

use std::net::IpAddr;
use std::process::Output;
use std::time::{Duration, Instant};

use defender_ingest::sandbox::SandboxConfig;

use crate::common::connected::{Connected, assert_exactly_once, lines};
use crate::common::proxy::ConnectProxy;
use crate::tls::{authorize, ca_file, fresh, https, stderr};

const HOST: &str = "defender.proxy.test";
const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// A TLS sandbox that calls itself `defender.proxy.test`, and its CA file.
fn behind_proxy() -> (Connected, String) {
    let c = fresh(https(SandboxConfig {
        hostname: Some(HOST.into()),
        alerts: 30,
        ..SandboxConfig::default()
    }));
    let ca = ca_file(&c.sb, &c.env).to_str().unwrap().to_string();
    (c, ca)
}

fn pull(c: &Connected, args: &[&str], env: &[(&str, &str)]) -> (Output, std::path::PathBuf) {
    let file = c.env.home().join("out.jsonl");
    let mut cmd = c.cmd();
    cmd.args(["pull", "--since", "60d", "--output"])
        .arg(&file)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    (cmd.output().unwrap(), file)
}

/// An address nothing listens on (a proxy that is down).
fn dead_proxy() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

#[test]
fn pull_goes_through_https_proxy_from_the_environment_in_either_case() {
    let (c, ca) = behind_proxy();
    let proxy = ConnectProxy::start(&[(HOST, LOOPBACK)], None);
    let out = authorize(&c, &["--ca-bundle", &ca], &[("HTTPS_PROXY", &proxy.url())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (out, file) = pull(&c, &["--ca-bundle", &ca], &[("https_proxy", &proxy.url())]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_exactly_once(&lines(&file), &c.truth());
    let connects = proxy.connects();
    assert!(connects.len() >= 2, "{connects:?}");
    let port = c.sb.url().rsplit(':').next().unwrap().to_string();
    for k in &connects {
        assert_eq!(k.target, format!("{HOST}:{port}"));
        assert_eq!(k.status, 200);
    }
}

#[test]
fn dash_dash_proxy_overrides_the_environment() {
    let (c, ca) = behind_proxy();
    let proxy = ConnectProxy::start(&[(HOST, LOOPBACK)], None);
    let dead = dead_proxy();
    let env = [("HTTPS_PROXY", dead.as_str()), ("NO_PROXY", HOST)];
    let out = authorize(&c, &["--ca-bundle", &ca, "--proxy", &proxy.url()], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let (out, file) = pull(&c, &["--ca-bundle", &ca, "--proxy", &proxy.url()], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_exactly_once(&lines(&file), &c.truth());
    assert!(!proxy.connects().is_empty());
}

#[test]
fn proxy_credentials_in_the_url_work_and_are_never_shown() {
    let (c, ca) = behind_proxy();
    let secret = "s3cr3t-proxy-pass";
    let proxy = ConnectProxy::start(&[(HOST, LOOPBACK)], Some(&format!("svc-ingest:{secret}")));
    let with = proxy.url_with(&format!("svc-ingest:{secret}"));
    let out = authorize(&c, &["--ca-bundle", &ca, "--proxy", &with], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (out, file) = pull(&c, &["--ca-bundle", &ca, "-vv"], &[("HTTPS_PROXY", &with)]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        !err.contains(secret),
        "the -vv log shows the proxy password"
    );
    assert!(
        err.contains("svc-ingest"),
        "the -vv log names the proxy: {err}"
    );
    assert_exactly_once(&lines(&file), &c.truth());
    let expected = format!("svc-ingest:{secret}");
    assert!(
        proxy
            .connects()
            .iter()
            .all(|k| k.credentials.as_deref() == Some(expected.as_str()))
    );

    // Without credentials (or with wrong ones): 407, said clearly, not retried, exit 5.
    for url in [proxy.url(), proxy.url_with("svc-ingest:wrong-pass")] {
        let before = proxy.connects().len();
        let (out, _) = pull(
            &c,
            &["--ca-bundle", &ca, "--proxy", &url, "-vv"],
            &[("DEFENDER_INGEST_CLIENT_SECRET", "x")],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(5), "{err}");
        assert!(err.contains("407"), "{err}");
        assert!(err.contains("USER:PASSWORD"), "{err}");
        assert!(
            !err.contains("wrong-pass") && !err.contains(secret),
            "{err}"
        );
        assert_eq!(proxy.connects().len(), before + 1, "a 407 is not retried");
    }
}

#[test]
fn no_proxy_hosts_and_loopback_go_direct() {
    // NO_PROXY names the host: the client goes direct, where the name does not
    // resolve, and the proxy sees nothing.
    let (c, ca) = behind_proxy();
    let proxy = ConnectProxy::start(&[(HOST, LOOPBACK)], None);
    for (var, list) in [
        ("NO_PROXY", "example.org, proxy.test"),
        ("no_proxy", ".proxy.test"),
        ("NO_PROXY", "*"),
    ] {
        let out = authorize(
            &c,
            &["--ca-bundle", &ca],
            &[("HTTPS_PROXY", &proxy.url()), (var, list)],
        );
        assert_eq!(out.status.code(), Some(5), "{var}={list}: {}", stderr(&out));
        assert!(proxy.connects().is_empty(), "{var}={list}");
    }
    // A host not in the list goes through it.
    let out = authorize(
        &c,
        &["--ca-bundle", &ca],
        &[("HTTPS_PROXY", &proxy.url()), ("NO_PROXY", "example.org")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!proxy.connects().is_empty());

    // Loopback never goes to an environment proxy, even one that is down.
    let local = Connected::new(SandboxConfig {
        alerts: 5,
        ..SandboxConfig::default()
    });
    let dead = dead_proxy();
    let (out, file) = pull(
        &local,
        &[],
        &[
            ("HTTPS_PROXY", dead.as_str()),
            ("HTTP_PROXY", dead.as_str()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_exactly_once(&lines(&file), &local.truth());
}

#[test]
fn a_server_slower_than_request_timeout_is_retried_then_exit_5() {
    let c = Connected::new(SandboxConfig {
        alerts: 5,
        ..SandboxConfig::default()
    });
    c.sb.faults().slow_next(10, Duration::from_secs(4));
    let started = Instant::now();
    let file = c.env.home().join("out.jsonl");
    let out = c.pull_to(&file, &["--request-timeout", "1", "--max-retries", "1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(err.contains("2 attempts"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let alerts =
        c.sb.requests()
            .iter()
            .filter(|r| r.path == "/api/alerts")
            .count();
    assert!(alerts <= 2, "{alerts} alert requests");
}
