//! The command line, exactly as `CONTRACT.md` fixes it, defined once with clap.
//!
//! Everything else (completions, the man page, `--help`) is generated from these
//! types, so the contract lives in one place.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
The journey: authorize → test → enable → pull (from cron).

  defender-ingest authorize --tenant contoso.onmicrosoft.com --client-id <APP-ID>
  defender-ingest test
  defender-ingest enable
  defender-ingest pull --output /var/log/defender/defender.jsonl

Try it without a tenant: `defender-ingest demo`.
Exit codes: 0 ok, 1 error, 2 usage, 3 not authorized, 4 permission denied,
5 service unavailable, 6 another pull running, 7 output not writable.";

/// Pull Microsoft Defender for Endpoint alerts, investigations and
/// recommendations into your log pipeline as JSON lines.
#[derive(Debug, Parser)]
#[command(name = "defender-ingest", version = crate::VERSION, about, long_about = None, after_help = AFTER_HELP)]
#[command(propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted before or after the subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Which connection (tenant + app registration) to use.
    #[arg(
        short,
        long,
        global = true,
        env = "DEFENDER_INGEST_PROFILE",
        default_value = "default",
        value_name = "NAME"
    )]
    pub profile: String,

    /// Where the TOML state and lock files live [default: the platform's state dir].
    #[arg(
        long,
        global = true,
        env = "DEFENDER_INGEST_STATE_DIR",
        value_name = "DIR"
    )]
    pub state_dir: Option<PathBuf>,

    /// More logging on stderr (-v: info, -vv: debug, -vvv: trace).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// Less logging on stderr: errors only.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(flatten)]
    pub net: NetArgs,
}

impl GlobalArgs {
    /// -1 for `-q`, 0 by default, 1..=3 for `-v`, `-vv`, `-vvv`.
    pub fn verbosity(&self) -> i8 {
        if self.quiet {
            -1
        } else {
            self.verbose.min(3) as i8
        }
    }
}

/// How to reach Microsoft (or the sandbox).
#[derive(Debug, Clone, Args, Default)]
pub struct NetArgs {
    /// Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy's CA).
    /// `SSL_CERT_FILE` does the same.
    #[arg(long, global = true, value_name = "PATH", help_heading = "Network")]
    pub ca_bundle: Option<PathBuf>,

    /// Send every request through this proxy, e.g. http://user:pass@proxy:3128
    /// (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without
    /// it the environment's proxies are used, never for loopback hosts.
    #[arg(long, global = true, value_name = "URL", help_heading = "Network")]
    pub proxy: Option<String>,

    /// Seconds to wait for a connection (TCP, the proxy's CONNECT, TLS).
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = 10,
        help_heading = "Network"
    )]
    pub connect_timeout: u64,

    /// Seconds one HTTP request may take, body included; a request that takes
    /// longer counts as failed and is retried.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = 120,
        help_heading = "Network"
    )]
    pub request_timeout: u64,

    /// How often to retry an API request that failed in a way that may pass
    /// (429, 5xx, reset, cut-off body, timeout), with exponential backoff.
    #[arg(
        long,
        global = true,
        value_name = "N",
        default_value_t = 5,
        help_heading = "Network"
    )]
    pub max_retries: u32,

    /// API calls per minute this tool allows itself (and 15× that per hour,
    /// at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant:
    /// raise it only if Microsoft raised your limits, or against the sandbox
    /// (the benchmark does).
    #[arg(
        long,
        global = true,
        value_name = "N",
        default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..),
        help_heading = "Network"
    )]
    pub calls_per_minute: u32,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Authorize(AuthorizeArgs),
    Test(TestArgs),
    Enable(EnableArgs),
    Disable(DisableArgs),
    Status(StatusArgs),
    Pull(PullArgs),
    Logout(LogoutArgs),
    Sandbox(SandboxArgs),
    Demo(DemoArgs),
    /// Write shell completions and the man page (used to refresh `completions/`).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    /// Authorization code + PKCE; the browser redirects to a listener on 127.0.0.1.
    #[default]
    Browser,
    /// Device code: sign in on any other device; for hosts without a browser.
    DeviceCode,
    /// App-only client credentials with a client secret; for unattended hosts.
    ClientSecret,
}

/// Connect a profile to a Defender for Endpoint tenant and store its credentials in the OS keyring.
///
/// Signing in needs an Entra ID account that can grant admin consent (Global
/// Administrator, Privileged Role Administrator or Cloud Application Administrator)
/// for the app registration's Defender (WindowsDefenderATP) permissions:
/// Alert.Read.All (alerts and investigations) and SecurityRecommendation.Read.All.
/// A newly authorized profile starts disabled: run `test`, then `enable`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  defender-ingest authorize --tenant contoso.onmicrosoft.com --client-id 11111111-2222-3333-4444-555555555555
  defender-ingest authorize --flow device-code            # on a host without a browser
  printf %s \"$SECRET\" | defender-ingest -p prod authorize --flow client-secret --client-secret-stdin \\
      --tenant contoso.onmicrosoft.com --client-id 11111111-2222-3333-4444-555555555555")]
pub struct AuthorizeArgs {
    /// Entra tenant id (GUID) or domain; required the first time.
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,

    /// Application (client) id of the app registration; required the first time.
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,

    /// How to sign in.
    #[arg(long, value_enum, default_value_t = Flow::Browser)]
    pub flow: Flow,

    /// Presets for the sign-in authority, the API host and the scope.
    #[arg(long, value_enum)]
    pub cloud: Option<crate::cloud::Cloud>,

    /// Override the sign-in authority, e.g. http://127.0.0.1:8400.
    #[arg(long, env = "DEFENDER_INGEST_LOGIN_URL", value_name = "URL")]
    pub login_url: Option<String>,

    /// Override the API base URL.
    #[arg(long, env = "DEFENDER_INGEST_API_URL", value_name = "URL")]
    pub api_url: Option<String>,

    /// Do not launch a browser; print the sign-in URL on stderr and wait.
    #[arg(long)]
    pub no_browser: bool,

    /// With --flow client-secret: read the client secret from stdin.
    #[arg(long)]
    pub client_secret_stdin: bool,

    /// Loopback port for the browser redirect [default: any free port].
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,

    /// Seconds to wait for the browser or the device-code sign-in.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
}

/// Check that the credentials work and each endpoint returns data that parses; moves no cursor.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  defender-ingest test
  defender-ingest -p prod test --json | jq .ok")]
pub struct TestArgs {
    /// Print one JSON object on stdout instead of a table on stderr.
    #[arg(long)]
    pub json: bool,
}

/// Switch ingestion on: `pull` fetches data for this profile from now on.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  defender-ingest -p prod enable")]
pub struct EnableArgs {}

/// Switch ingestion off; configuration, credentials and cursors are kept.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  defender-ingest -p prod disable")]
pub struct DisableArgs {}

/// Show a profile: tenant, enabled, authorized, and each endpoint's position. Never prints a secret.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  defender-ingest status\n  defender-ingest -p prod status --json"
)]
pub struct StatusArgs {
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Fetch every record new or changed since the last pull and write it as one JSON line.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  defender-ingest pull > batch.jsonl
  defender-ingest pull --output /var/log/defender/defender.jsonl
  defender-ingest pull --since 30d          # first run only: backfill 30 days

crontab:
  */5 * * * * defender-ingest -p prod pull --output /var/log/defender/defender.jsonl 2>>/var/log/defender/pull.log")]
pub struct PullArgs {
    /// Append JSONL to PATH ('-' is stdout).
    #[arg(long, value_name = "PATH", default_value = "-")]
    pub output: String,

    /// First run only: how far back to start, a duration (7d, 12h) or an RFC 3339 time [default: 7d].
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,

    /// Re-read alerts updated this long before the cursor, for records that become visible late.
    #[arg(long, value_name = "DURATION", default_value = "15m")]
    pub lookback: String,

    /// Re-read investigations started within this window; they change without a timestamp.
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    pub investigation_window: String,

    /// Stop starting new requests after this long (keep it under the cron
    /// interval); what was written is kept and the rest comes next pull.
    #[arg(long, value_name = "DURATION", default_value = "4m")]
    pub deadline: String,
}

/// Remove a profile's credentials from the OS keyring (keeps configuration and cursors).
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  defender-ingest -p old-tenant logout")]
pub struct LogoutArgs {}

/// Serve the built-in sandbox tenant (a local Entra ID + Defender API) in the foreground.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  defender-ingest sandbox --port 8400")]
pub struct SandboxArgs {
    /// Port on 127.0.0.1 [default: any free port].
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,

    /// How many alerts the tenant starts with.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub alerts: usize,

    /// Seed for the synthetic data.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// Serve HTTPS with a freshly generated CA; its PEM is written to this path.
    #[arg(long, value_name = "PATH")]
    pub tls_ca_out: Option<PathBuf>,

    /// Send API pages chunked as they are rendered, without a Content-Length
    /// (as a streaming OData service may), instead of each rendered whole first.
    #[arg(long)]
    pub chunked: bool,
}

/// Run the whole journey against a throwaway sandbox: authorize, test, enable, pull to stdout.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  cargo run --release -- demo | jq -c '{kind, id: .data.id}'")]
pub struct DemoArgs {
    /// How many alerts the sandbox tenant starts with.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub alerts: usize,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Directory to write completions (bash, zsh, fish, PowerShell, elvish) and the man page to.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}
