//! `authorize` usage errors exit 2: no tenant, a plain-http sign-in URL that
//! is not loopback, `--flow client-secret` with no source for the secret.

use crate::common::Env;

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    env.cmd()
        .args(["authorize", "--client-id", "x"])
        .assert()
        .code(2);
    env.cmd()
        .args([
            "authorize",
            "--tenant",
            "t",
            "--client-id",
            "x",
            "--login-url",
            "http://login.example.com",
        ])
        .assert()
        .code(2);
    env.cmd()
        .args([
            "authorize",
            "--tenant",
            "t",
            "--client-id",
            "x",
            "--flow",
            "client-secret",
        ])
        .assert()
        .code(2);
}
