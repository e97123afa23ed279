//! HTTPS for real: the binary against the sandbox serving TLS with a CA the
//! test generates. Trust comes from `--ca-bundle` or `SSL_CERT_FILE`; without
//! it, or with an expired or wrong-name certificate, the tool says which host,
//! why and what to do, exits 5 and does not retry. Plain `http://` to a host
//! that is not loopback is refused with exit 2, at authorize and when a hand
//! edited state file asks for it at pull/test time.

use std::path::{Path, PathBuf};
use std::process::Output;

use defender_ingest::sandbox::{LeafCertificate, Sandbox, SandboxConfig};

use crate::common::Env;
use crate::common::connected::{Connected, assert_exactly_once, lines};
use crate::common::proxy::ConnectProxy;

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub(crate) fn https(cfg: SandboxConfig) -> SandboxConfig {
    SandboxConfig { tls: true, ..cfg }
}

/// The sandbox's CA, written to a file in `env`'s home.
pub(crate) fn ca_file(sb: &Sandbox, env: &Env) -> PathBuf {
    let path = env.home().join("sandbox-ca.pem");
    std::fs::write(&path, sb.ca_pem().expect("serving TLS")).unwrap();
    path
}

/// `authorize --flow client-secret` against `sb` with `extra` arguments and
/// environment, then `enable`; returns the authorize output (enable only on success).
pub(crate) fn authorize(c: &Connected, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = c.cmd();
    cmd.args(["authorize", "--flow", "client-secret", "--tenant"])
        .arg(&c.sb.config().tenant_id)
        .arg("--client-id")
        .arg(&c.sb.config().client_id)
        .arg("--login-url")
        .arg(c.sb.url())
        .arg("--api-url")
        .arg(c.sb.url())
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    if out.status.success() {
        c.cmd().arg("enable").assert().success();
    }
    out
}

/// A sandbox with `cfg` and an empty environment, not yet authorized.
pub(crate) fn fresh(cfg: SandboxConfig) -> Connected {
    Connected {
        sb: Sandbox::spawn(cfg).expect("sandbox starts"),
        env: Env::new(),
    }
}

fn pull(c: &Connected, file: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = c.cmd();
    cmd.args(["pull", "--since", "60d", "--output"])
        .arg(file)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn authorize_test_and_pull_over_https_with_ca_bundle() {
    let c = fresh(https(SandboxConfig::default()));
    assert!(c.sb.url().starts_with("https://localhost:"));
    let ca = ca_file(&c.sb, &c.env);
    let ca = ca.to_str().unwrap();
    let out = authorize(&c, &["--ca-bundle", ca], &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = c
        .cmd()
        .args(["test", "--json", "--ca-bundle", ca])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");

    let file = c.env.home().join("out.jsonl");
    let out = pull(&c, &file, &["--ca-bundle", ca], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_exactly_once(&lines(&file), &c.truth());
    assert!(c.sb.requests().iter().any(|r| r.path == "/api/alerts"));
}

#[test]
fn ssl_cert_file_is_trusted_alone_and_together_with_ca_bundle() {
    let c = fresh(https(SandboxConfig {
        alerts: 20,
        ..SandboxConfig::default()
    }));
    let ca = ca_file(&c.sb, &c.env);
    let ca = ca.to_str().unwrap();
    let out = authorize(&c, &[], &[("SSL_CERT_FILE", ca)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = c.env.home().join("out.jsonl");
    let out = pull(&c, &file, &[], &[("SSL_CERT_FILE", ca)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_exactly_once(&lines(&file), &c.truth());

    // Another CA in SSL_CERT_FILE does not stop --ca-bundle from being trusted.
    let other = fresh(https(SandboxConfig::default()));
    let other_ca = c.env.home().join("other-ca.pem");
    std::fs::write(&other_ca, other.sb.ca_pem().unwrap()).unwrap();
    c.sb.tenant().add_alerts(2);
    let out = pull(
        &c,
        &file,
        &["--ca-bundle", ca],
        &[("SSL_CERT_FILE", other_ca.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_exactly_once(&lines(&file), &c.truth());
}

#[test]
fn an_untrusted_certificate_names_the_host_and_the_remedy_and_is_tried_once() {
    // Through the test proxy, which counts connections: a retry would be a second CONNECT.
    let c = fresh(https(SandboxConfig {
        hostname: Some("defender.proxy.test".into()),
        ..SandboxConfig::default()
    }));
    let proxy = ConnectProxy::start(&[("defender.proxy.test", [127, 0, 0, 1].into())], None);
    let started = std::time::Instant::now();
    let out = authorize(&c, &["--proxy", &proxy.url()], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("defender.proxy.test"), "{err}");
    assert!(err.contains("unknown issuer"), "{err}");
    assert!(
        err.contains("--ca-bundle") && err.contains("SSL_CERT_FILE"),
        "{err}"
    );
    assert_eq!(proxy.connects().len(), 1, "{:?}", proxy.connects());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(c.sb.requests().is_empty(), "no HTTP request got through");

    // The same at pull time (the profile authorized with the CA, pulled without).
    let ca = ca_file(&c.sb, &c.env);
    let out = authorize(
        &c,
        &["--proxy", &proxy.url(), "--ca-bundle", ca.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let before = proxy.connects().len();
    let file = c.env.home().join("out.jsonl");
    let out = pull(&c, &file, &["--proxy", &proxy.url()], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("unknown issuer") && err.contains("--ca-bundle"),
        "{err}"
    );
    assert_eq!(proxy.connects().len(), before + 1);
    assert_eq!(std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0), 0);
    let status = c.status();
    assert!(
        status["endpoints"]["alerts"]["cursor"].is_null(),
        "{status}"
    );
}

#[test]
fn expired_and_wrong_name_certificates_say_so() {
    for (leaf, reason) in [
        (LeafCertificate::Expired, "expired"),
        (LeafCertificate::WrongName, "name mismatch"),
    ] {
        let c = fresh(https(SandboxConfig {
            certificate: leaf,
            ..SandboxConfig::default()
        }));
        let ca = ca_file(&c.sb, &c.env);
        let out = authorize(&c, &["--ca-bundle", ca.to_str().unwrap()], &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(5), "{leaf:?}: {err}");
        assert!(err.contains(reason), "{leaf:?}: {err}");
        assert!(err.contains("localhost"), "{leaf:?}: {err}");
        assert!(c.sb.requests().is_empty());
    }
}

#[test]
fn a_missing_or_empty_ca_bundle_is_a_usage_error() {
    let c = fresh(https(SandboxConfig::default()));
    let empty = c.env.home().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let missing = c.env.home().join("missing.pem");
    for (args, env, names) in [
        (
            vec!["--ca-bundle", missing.to_str().unwrap()],
            vec![],
            "--ca-bundle",
        ),
        (
            vec![],
            vec![("SSL_CERT_FILE", empty.to_str().unwrap())],
            "SSL_CERT_FILE",
        ),
    ] {
        let out = authorize(&c, &args, &env);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(names) && err.contains(".pem"), "{err}");
    }
}

#[test]
fn plain_http_to_a_remote_host_is_refused_at_authorize_and_at_run_time() {
    let c = Connected::new(SandboxConfig {
        alerts: 5,
        ..SandboxConfig::default()
    });
    for flag in ["--login-url", "--api-url"] {
        let out = c
            .cmd()
            .args(["authorize", flag, "http://defender.example.com"])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(err.contains("https://"), "{err}");
    }
    // A hand-edited state file: refused before any request, cursor untouched.
    let path = c.env.profile_file("default");
    let good = std::fs::read_to_string(&path).unwrap();
    let url = c.sb.url();
    for field in ["api_url", "login_url"] {
        let edited = good.replace(
            &format!("{field} = \"{url}\""),
            &format!("{field} = \"http://defender.example.com\""),
        );
        assert_ne!(edited, good, "{field} is in the state file");
        std::fs::write(&path, &edited).unwrap();
        let file = c.env.home().join("out.jsonl");
        for out in [
            c.pull_to(&file, &[]),
            c.cmd().args(["test", "--json"]).output().unwrap(),
        ] {
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{field}: {err}");
            assert!(err.contains(field) && err.contains("https://"), "{err}");
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
    }
    assert!(c.sb.requests().iter().all(|r| !r.path.starts_with("/api/")));
}
