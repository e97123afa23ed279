//! `pull`: the cron job. Fetch what is new or changed on every endpoint, write
//! it as JSON lines, make the output durable, then move the state — in that
//! order, once, so a failure at any point leaves the position where it was.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant as StdInstant;

use chrono::Utc;

use crate::api::{DefenderClient, Endpoint, Limits};
use crate::auth::Session;
use crate::cli::PullArgs;
use crate::exit::UsageError;
use crate::progress::Progress;
use crate::pull::early::Early;
use crate::pull::sink::{Recovery, Sink};
use crate::pull::writer::Writer;
use crate::pull::{self, EndpointOutcome, Options};
use crate::state::{LockMode, Snapshot, StateError};
use crate::{Context, Exit, net, time};

/// Where a first pull starts when `--since` is not given.
pub const DEFAULT_SINCE: &str = "7d";

/// The parsed, checked command line of a pull.
struct Plan {
    opts: Options,
    output: Option<PathBuf>,
}

fn plan(args: &PullArgs) -> Result<Plan, UsageError> {
    let now = Utc::now();
    let since = time::parse_since(args.since.as_deref().unwrap_or(DEFAULT_SINCE), now)
        .map_err(|e| UsageError::new(format!("--since: {e}")))?;
    let duration = |flag: &str, v: &str| {
        time::parse_duration(v).map_err(|e| UsageError::new(format!("{flag}: {e}")))
    };
    let mut opts = Options::new(since);
    opts.lookback = duration("--lookback", &args.lookback)?;
    opts.investigation_window = duration("--investigation-window", &args.investigation_window)?;
    let deadline = duration("--deadline", &args.deadline)?;
    if deadline <= chrono::Duration::zero() {
        return Err(UsageError::new("--deadline must be longer than zero"));
    }
    opts.deadline = Some(tokio::time::Instant::now() + deadline.to_std().unwrap_or_default());
    let output = match args.output.as_str() {
        "-" => None,
        "" => return Err(UsageError::new("--output needs a path, or `-` for stdout")),
        p => Some(
            std::path::absolute(p).map_err(|e| UsageError::new(format!("--output {p}: {e}")))?,
        ),
    };
    Ok(Plan { opts, output })
}

pub async fn run(ctx: &Context, args: &PullArgs) -> anyhow::Result<Exit> {
    let started = StdInstant::now();
    let plan = plan(args)?;
    let mut snapshot =
        ctx.store
            .load_snapshot(&ctx.profile)?
            .ok_or_else(|| StateError::NoProfile {
                profile: ctx.profile.clone(),
                dir: ctx.store.dir().to_path_buf(),
            })?;
    if !snapshot.profile.enabled {
        return Ok(disabled(ctx));
    }
    let _lock = ctx.store.lock(&ctx.profile, LockMode::Pull)?;
    // Read again under the lock: a pull that just finished may have moved it
    // (parsed again only if the file changed).
    ctx.store.refresh(&ctx.profile, &mut snapshot)?;
    if !snapshot.profile.enabled {
        return Ok(disabled(ctx));
    }
    let profile = snapshot.profile.clone();

    let api_base = net::parse_base_url("the profile's api_url", &profile.connection.api_url)?;
    let login_base = net::parse_base_url("the profile's login_url", &profile.connection.login_url)?;
    let mut http_opts = ctx.http.clone();
    // nextLinks are followed to the API's own scheme only, and redirects never.
    http_opts.plain_http_only = api_base.scheme() == "http" && login_base.scheme() == "http";
    let http = net::client(&http_opts)?;
    let session = Session::for_profile(&profile, ctx.secrets.clone(), http.clone()).await?;
    let client = Arc::new(DefenderClient::new(
        http,
        api_base,
        Arc::new(session),
        Limits::default()
            .with_retries(ctx.http.max_retries)
            .with_calls_per_minute(ctx.http.calls_per_minute),
    ));
    if let Some(d) = plan.opts.deadline {
        client.set_deadline(d);
    }

    if args.since.is_some() && profile.endpoints.values().any(|e| e.floor.is_some()) {
        tracing::info!(
            "--since applies to a profile's first pull only; this one continues from its position"
        );
    }
    let (sink, output_key) = open_sink(&snapshot, plan.output.as_deref())?;
    let store = &ctx.store;
    let name = ctx.profile.as_str();
    let mut writer = Writer::new(sink);
    if let Some(key) = output_key.clone() {
        // Before the first line, record where this pull starts appending, so a
        // crash's lines are cut off next time. A pull that writes nothing
        // leaves the state file alone until its commit.
        let snapshot = &mut snapshot;
        writer = writer.with_first_write(move |sink| {
            if let Some(mark) = sink.mark()? {
                store.update_from(name, snapshot, |p| {
                    p.outputs.insert(key, mark);
                    Ok(())
                })?;
            }
            Ok(())
        });
    }
    let mut outcomes: Vec<EndpointOutcome> = Vec::new();
    let fresh = crate::state::EndpointState::default();
    let prior = |e: Endpoint| profile.endpoint(e.name()).unwrap_or(&fresh);
    let later = Endpoint::ALL[1..]
        .iter()
        .map(|e| pull::first_request(*e, prior(*e), &plan.opts))
        .collect();
    let source = Early::new(Arc::clone(&client), later);
    for endpoint in Endpoint::ALL {
        let prior = prior(endpoint);
        let progress = Progress::counter(ctx.verbosity, format!("pulling {}", endpoint.name()));
        let outcome = pull::pull_endpoint(
            &source,
            endpoint,
            prior,
            &plan.opts,
            &profile.connection.tenant_id,
            &mut writer,
            |n| progress.inc(n),
        )
        .await;
        progress.finish();
        outcomes.push(outcome?);
    }

    // The output first, durable; then the state, atomically.
    let mark = writer.finish().await?.commit()?;
    let finished = time::rfc3339(Utc::now());
    ctx.store.update_from(&ctx.profile, &mut snapshot, |p| {
        for o in &outcomes {
            let st = p.endpoint_mut(o.endpoint.name());
            *st = o.state.clone();
            if o.complete {
                st.last_pull = Some(finished.clone());
            }
        }
        if let (Some(key), Some(mark)) = (&output_key, &mark) {
            p.outputs.insert(key.clone(), mark.clone());
        }
        Ok(())
    })?;

    report(ctx, &outcomes, client.calls(), started);
    Ok(Exit::Ok)
}

fn disabled(ctx: &Context) -> Exit {
    if ctx.verbosity >= 0 {
        eprintln!(
            "profile `{}` is disabled: nothing pulled. Run `defender-ingest{} enable` to start ingesting.",
            ctx.profile,
            super::toggle::profile_flag(&ctx.profile)
        );
    }
    Exit::Ok
}

/// Open the output and undo what an interrupted pull left in it.
fn open_sink(snapshot: &Snapshot, output: Option<&Path>) -> anyhow::Result<(Sink, Option<String>)> {
    let Some(path) = output else {
        return Ok((Sink::stdout(), None));
    };
    let key = path.display().to_string();
    let (sink, recovery) = Sink::open_file(path, snapshot.profile.outputs.get(&key))?;
    match recovery {
        Recovery::Truncated { from, to } => tracing::warn!(
            "{key}: removed {} bytes written by a pull that did not finish; they are fetched again now",
            from - to
        ),
        Recovery::Replaced => tracing::info!(
            "{key} was rotated or replaced since the last pull; appending to the new file"
        ),
        Recovery::Clean => {}
    }
    Ok((sink, Some(key)))
}

fn report(ctx: &Context, outcomes: &[EndpointOutcome], calls: u64, started: StdInstant) {
    let incomplete: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.complete)
        .map(|o| o.endpoint.name())
        .collect();
    if !incomplete.is_empty() {
        tracing::warn!(
            "the --deadline stopped the pull before it finished {}; what was written is kept and the rest comes next pull",
            incomplete.join(", ")
        );
    }
    if ctx.verbosity >= 1 {
        let parts: Vec<String> = outcomes
            .iter()
            .map(|o| {
                format!(
                    "{} {} written ({} read)",
                    o.endpoint.name(),
                    o.written,
                    o.read
                )
            })
            .collect();
        eprintln!(
            "pulled {}; {calls} API calls; {:.2}s",
            parts.join(", "),
            started.elapsed().as_secs_f64()
        );
    }
}
