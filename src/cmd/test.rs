//! `test`: check that a profile's credentials work and that every endpoint
//! returns records that parse, without moving any cursor (the state file is
//! only read). Works on a disabled profile: authorize → test → enable.

use std::sync::Arc;

use crate::api::DefenderClient;
use crate::auth::Session;
use crate::cli::TestArgs;
use crate::progress::Progress;
use crate::{Context, Exit, net, probe};

/// The whole test may take this long (retries and `Retry-After` included).
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(180);

pub async fn run(ctx: &Context, args: &TestArgs) -> anyhow::Result<Exit> {
    let profile = ctx.store.load_existing(&ctx.profile)?;
    let api_base = net::parse_base_url("the profile's api_url", &profile.connection.api_url)?;
    net::parse_base_url("the profile's login_url", &profile.connection.login_url)?;
    let http = net::client(&ctx.http)?;
    let progress = Progress::spinner(ctx.verbosity, "signing in");
    let report = match Session::for_profile(&profile, ctx.secrets.clone(), http.clone()).await {
        Ok(session) => {
            let client = DefenderClient::new(
                http,
                api_base,
                Arc::new(session),
                probe::limits().with_retries(ctx.http.max_retries.min(3)),
            );
            client.set_deadline(tokio::time::Instant::now() + DEADLINE);
            let report = probe::run(&client, &profile, chrono::Utc::now(), &progress).await;
            tracing::info!("test made {} API calls", client.calls());
            report
        }
        Err(e) => probe::Report::not_authorized(&profile, &e),
    };
    progress.finish();
    if args.json {
        println!("{}", serde_json::to_string(&report.to_json())?);
        // Scripts read stdout; a person running it in a terminal still learns why it failed.
        if !report.ok() && ctx.verbosity >= 0 {
            for c in report.checks.iter().filter(|c| c.exit != Exit::Ok) {
                eprintln!("defender-ingest: {}: {}", c.endpoint.name(), c.detail);
            }
        }
    } else {
        eprint!("{}", report.table());
    }
    Ok(report.exit())
}
