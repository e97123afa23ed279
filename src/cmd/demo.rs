//! `demo`: the whole journey in one process, against a throwaway sandbox
//! tenant — so a new user (or CI) sees the tool work end to end with nothing but
//! Rust installed. It runs the same code the subcommands run: `authorize`
//! (browser flow; the demo plays the browser), `test`, `enable`, `pull` to
//! stdout. State lives in a temporary directory and credentials in memory; both
//! are gone when it ends.

use std::path::PathBuf;
use std::sync::Arc;

use crate::cli::{AuthorizeArgs, DemoArgs, Flow, PullArgs, TestArgs};
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::secrets::MemoryStore;
use crate::state::StateStore;
use crate::{Context, Exit};

const PROFILE: &str = "demo";

pub async fn run(ctx: &Context, args: &DemoArgs) -> anyhow::Result<Exit> {
    let sandbox = Arc::new(
        Sandbox::start(SandboxConfig {
            alerts: args.alerts,
            ..SandboxConfig::default()
        })
        .await?,
    );
    let scratch = Scratch::new()?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let demo = Context {
        profile: PROFILE.to_string(),
        store: StateStore::new(scratch.0.join("state")),
        http: ctx.http.clone(),
        secrets: Arc::new(MemoryStore::default()),
        verbosity: ctx.verbosity,
        browser: Some(tx),
    };
    let say = |line: &str| {
        if ctx.verbosity >= 0 {
            eprintln!("\n==> {line}");
        }
    };
    say(&format!(
        "sandbox tenant {} serving at {} (a local Entra ID + Defender API)",
        sandbox.config().tenant_id,
        sandbox.url()
    ));

    // The "browser": wait for the sign-in URL, then consent and follow the redirect.
    let player = {
        let sandbox = sandbox.clone();
        tokio::spawn(async move {
            let url = tokio::task::spawn_blocking(move || rx.recv())
                .await
                .ok()?
                .ok()?;
            Some(sandbox.browser(&url).await)
        })
    };

    say("authorize: browser sign-in with PKCE on a loopback listener (the demo plays the browser)");
    let code = super::authorize::run(
        &demo,
        &AuthorizeArgs {
            tenant: Some(sandbox.config().tenant_id.clone()),
            client_id: Some(sandbox.config().client_id.clone()),
            flow: Flow::Browser,
            cloud: None,
            login_url: Some(sandbox.url()),
            api_url: Some(sandbox.url()),
            no_browser: true,
            client_secret_stdin: false,
            port: None,
            timeout: 60,
        },
    )
    .await?;
    match player.await {
        Ok(Some(Ok(outcome))) if outcome.status == 200 => {}
        Ok(Some(Ok(outcome))) => anyhow::bail!(
            "the sign-in page answered {}: {}",
            outcome.status,
            outcome.body
        ),
        Ok(Some(Err(e))) => anyhow::bail!("the played browser failed: {e}"),
        _ => anyhow::bail!("the played browser never got the sign-in URL"),
    }
    if code != Exit::Ok {
        return Ok(code);
    }

    say("test: sample each endpoint, move nothing");
    let code = super::test::run(&demo, &TestArgs { json: false }).await?;
    if code != Exit::Ok {
        return Ok(code);
    }

    say("enable");
    super::toggle::run(&demo, true)?;

    say("pull: every record as one JSON line on stdout");
    let code = super::pull::run(
        &demo,
        &PullArgs {
            output: "-".into(),
            since: Some("90d".into()),
            lookback: "15m".into(),
            investigation_window: "30d".into(),
            deadline: "4m".into(),
        },
    )
    .await?;
    if code == Exit::Ok && ctx.verbosity >= 0 {
        eprintln!(
            "\n==> done. Against your own tenant: `defender-ingest authorize --tenant <id> --client-id <app id>`, \
             then `test`, `enable`, and `pull` from cron. To wire a pipeline first: `defender-ingest sandbox`."
        );
    }
    Ok(code)
}

/// A private temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!(
            "defender-ingest-demo-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let mut b = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
