//! `authorize`: connect a profile to a tenant and keep its credentials in the keyring.
//!
//! Works out the connection (flags over what the profile already has over the
//! cloud preset), runs the chosen flow, stores the refresh token or client
//! secret under a fresh keyring key, then saves the profile: new profiles start
//! disabled, re-authorized ones keep their enabled flag, endpoints and cursors.
//!
//! App registration (paste into the README):
//! 1. Entra admin center → App registrations → New registration; any name,
//!    "Accounts in this organizational directory only".
//! 2. For `--flow browser`: Authentication → Add a platform → "Mobile and desktop
//!    applications" → custom redirect URI `http://localhost` (no port: Entra ID
//!    accepts any loopback port). For `--flow device-code` also set "Allow public
//!    client flows" to Yes.
//! 3. API permissions → Add a permission → "APIs my organization uses" →
//!    WindowsDefenderATP: delegated (browser/device code) or application
//!    (client secret) permissions Alert.Read.All (alerts, investigations) and
//!    SecurityRecommendation.Read.All → "Grant admin consent".
//! 4. For `--flow client-secret`: Certificates & secrets → New client secret;
//!    copy its Value (not the Secret ID).

use std::io::BufRead;
use std::time::Duration;

use anyhow::Context as _;
use url::Url;

use crate::auth::{self, AuthError, Authority, BrowserOptions};
use crate::cli::{AuthorizeArgs, Flow};
use crate::cloud::Cloud;
use crate::exit::UsageError;
use crate::secrets::{CLIENT_SECRET_ENV, Credentials, SecretError};
use crate::state::{Connection, Profile};
use crate::{Context, Exit};

pub async fn run(ctx: &Context, args: &AuthorizeArgs) -> anyhow::Result<Exit> {
    let existing = ctx.store.load(&ctx.profile)?;
    let connection = resolve_connection(args, existing.as_ref())?;
    let authority = Authority::new(
        Url::parse(&connection.login_url)?,
        &connection.tenant_id,
        &connection.client_id,
        &connection.scope,
    );
    // Read the secret before anything touches the network, so usage errors come first.
    let secret = match args.flow {
        Flow::ClientSecret => Some(client_secret(args)?),
        _ => {
            if args.client_secret_stdin {
                return Err(UsageError::new(
                    "--client-secret-stdin goes with --flow client-secret",
                )
                .into());
            }
            None
        }
    };
    let http = crate::net::client(&ctx.http)?;
    let timeout = Duration::from_secs(args.timeout.max(1));

    let credentials = match (args.flow, secret) {
        (Flow::ClientSecret, Some(secret)) => {
            auth::verify_client_secret(&authority, http, &secret.value, &ctx.profile).await?;
            SignInResult::Secret(secret)
        }
        (Flow::DeviceCode, _) => {
            let s = auth::sign_in_with_device_code(&authority, http, timeout, &ctx.profile).await?;
            SignInResult::Refresh(s.refresh_token)
        }
        _ => {
            let opts = BrowserOptions {
                port: args.port.unwrap_or(0),
                open_browser: !args.no_browser && ctx.browser.is_none(),
                timeout,
                profile: ctx.profile.clone(),
                url_sink: ctx.browser.clone(),
            };
            let s = auth::sign_in_with_browser(&authority, http, &opts).await?;
            SignInResult::Refresh(s.refresh_token)
        }
    };

    let key = new_credential_key(&ctx.profile);
    let stored = store_credentials(ctx, &key, credentials).await?;
    let now = crate::time::rfc3339(chrono::Utc::now());
    let (old_key, enabled) = ctx.store.update_or_create(&ctx.profile, |p| {
        let profile = p.get_or_insert_with(|| Profile::new(&ctx.profile, connection.clone()));
        let old = profile.credential_key.take();
        profile.connection = connection.clone();
        profile.credential_key = stored.then(|| key.clone());
        profile.authorized_at = Some(now.clone());
        Ok((old, profile.enabled))
    })?;
    if let Some(old) = old_key.filter(|o| *o != key) {
        let secrets = ctx.secrets.clone();
        let _ = tokio::task::spawn_blocking(move || secrets.delete(&old)).await;
    }

    let p = &ctx.profile;
    eprintln!(
        "Authorized profile `{p}` for tenant {} ({} sign-in).",
        connection.tenant_id,
        flow_name(args.flow)
    );
    if !stored {
        eprintln!(
            "No OS keyring was reachable, so the client secret was not stored: set {CLIENT_SECRET_ENV} \
             wherever `pull` runs."
        );
    }
    if enabled {
        eprintln!("The profile stays enabled. Check it with: defender-ingest --profile {p} test");
    } else {
        eprintln!(
            "It starts disabled. Next:\n  defender-ingest --profile {p} test\n  defender-ingest --profile {p} enable"
        );
    }
    Ok(Exit::Ok)
}

enum SignInResult {
    Refresh(String),
    Secret(Secret),
}

struct Secret {
    value: String,
    from_env: bool,
}

/// Save the credentials; `Ok(false)` when the keyring is unavailable and the
/// secret came from the environment (it must then be set at run time too).
async fn store_credentials(ctx: &Context, key: &str, result: SignInResult) -> anyhow::Result<bool> {
    let (creds, tolerate_no_keyring) = match result {
        SignInResult::Refresh(rt) => (
            Credentials {
                refresh_token: Some(rt),
                client_secret: None,
            },
            false,
        ),
        SignInResult::Secret(s) => (
            Credentials {
                refresh_token: None,
                client_secret: Some(s.value),
            },
            s.from_env,
        ),
    };
    let secrets = ctx.secrets.clone();
    let key = key.to_string();
    let saved = tokio::task::spawn_blocking(move || creds.save(secrets.as_ref(), &key))
        .await
        .context("keyring task failed")?;
    match saved {
        Ok(()) => Ok(true),
        Err(SecretError::Unavailable { .. }) if tolerate_no_keyring => Ok(false),
        Err(e) => Err(AuthError::from(e).into()),
    }
}

/// `--client-secret-stdin` (one line) or `DEFENDER_INGEST_CLIENT_SECRET`; never argv.
fn client_secret(args: &AuthorizeArgs) -> Result<Secret, UsageError> {
    if args.client_secret_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| {
            UsageError::new(format!("cannot read the client secret from stdin: {e}"))
        })?;
        let value = line.trim_end_matches(['\r', '\n']).to_string();
        if value.trim().is_empty() {
            return Err(UsageError::new(
                "--client-secret-stdin: stdin was empty; pipe the secret's Value in",
            ));
        }
        return Ok(Secret {
            value,
            from_env: false,
        });
    }
    match std::env::var(CLIENT_SECRET_ENV) {
        Ok(v) if !v.trim().is_empty() => Ok(Secret {
            value: v,
            from_env: true,
        }),
        _ => Err(UsageError::new(format!(
            "--flow client-secret needs the secret: pipe it in with --client-secret-stdin or set \
             {CLIENT_SECRET_ENV} (never on the command line)"
        ))),
    }
}

/// Flags win; then what the profile already has (unless `--cloud` resets it); then the preset.
fn resolve_connection(
    args: &AuthorizeArgs,
    existing: Option<&Profile>,
) -> Result<Connection, UsageError> {
    let old = existing.map(|p| &p.connection);
    let tenant = args
        .tenant
        .clone()
        .or_else(|| old.map(|c| c.tenant_id.clone()))
        .ok_or_else(|| UsageError::new("--tenant is required the first time (a tenant id GUID or a domain like contoso.onmicrosoft.com)"))?;
    validate_id("--tenant", &tenant)?;
    let client_id = args
        .client_id
        .clone()
        .or_else(|| old.map(|c| c.client_id.clone()))
        .ok_or_else(|| UsageError::new("--client-id is required the first time (the app registration's Application (client) ID)"))?;
    validate_id("--client-id", &client_id)?;
    let cloud = args.cloud.or(old.map(|c| c.cloud)).unwrap_or(Cloud::Global);
    let preset = cloud.endpoints();
    let keep_old = args.cloud.is_none();
    let login_url = match &args.login_url {
        Some(u) => crate::net::parse_base_url("--login-url", u)?.to_string(),
        None => old
            .filter(|_| keep_old)
            .map(|c| c.login_url.clone())
            .unwrap_or_else(|| preset.login_url.to_string()),
    };
    let api_url = match &args.api_url {
        Some(u) => crate::net::parse_base_url("--api-url", u)?.to_string(),
        None => old
            .filter(|_| keep_old)
            .map(|c| c.api_url.clone())
            .unwrap_or_else(|| preset.api_url.to_string()),
    };
    Ok(Connection {
        tenant_id: tenant,
        client_id,
        cloud,
        flow: args.flow,
        login_url: login_url.trim_end_matches('/').to_string(),
        api_url: api_url.trim_end_matches('/').to_string(),
        // The token's audience belongs to the cloud, whatever host serves the API
        // (regional hosts and the sandbox accept the cloud's scope).
        scope: preset.scope.to_string(),
    })
}

/// Tenant and client ids go into URLs: GUIDs or domain names only.
fn validate_id(flag: &str, value: &str) -> Result<(), UsageError> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(UsageError::new(format!(
            "{flag} `{value}` is not a GUID or a domain name"
        )))
    }
}

/// `{profile}-{16 hex}`: fresh per authorize, so state dirs never share a keyring entry.
fn new_credential_key(profile: &str) -> String {
    format!("{profile}-{:016x}", rand::random::<u64>())
}

fn flow_name(flow: Flow) -> &'static str {
    match flow {
        Flow::Browser => "browser",
        Flow::DeviceCode => "device-code",
        Flow::ClientSecret => "client-secret",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> AuthorizeArgs {
        let mut argv = vec!["defender-ingest", "authorize"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Authorize(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn first_time_needs_tenant_and_client() {
        assert!(resolve_connection(&args(&[]), None).is_err());
        assert!(resolve_connection(&args(&["--tenant", "t.onmicrosoft.com"]), None).is_err());
        let c = resolve_connection(
            &args(&["--tenant", "t.onmicrosoft.com", "--client-id", "abc"]),
            None,
        )
        .unwrap();
        assert_eq!(c.login_url, "https://login.microsoftonline.com");
        assert_eq!(c.scope, "https://api.securitycenter.microsoft.com/.default");
    }

    #[test]
    fn cloud_presets_and_overrides() {
        let c = resolve_connection(
            &args(&["--tenant", "t", "--client-id", "a", "--cloud", "gcc-high"]),
            None,
        )
        .unwrap();
        assert_eq!(c.login_url, "https://login.microsoftonline.us");
        assert_eq!(c.api_url, "https://api-gov.securitycenter.microsoft.us");
        let c = resolve_connection(
            &args(&[
                "--tenant",
                "t",
                "--client-id",
                "a",
                "--login-url",
                "http://127.0.0.1:8400/",
                "--api-url",
                "http://127.0.0.1:8400",
            ]),
            None,
        )
        .unwrap();
        assert_eq!(c.login_url, "http://127.0.0.1:8400");
        assert_eq!(c.scope, "https://api.securitycenter.microsoft.com/.default");
        let err = resolve_connection(
            &args(&[
                "--tenant",
                "t",
                "--client-id",
                "a",
                "--login-url",
                "http://login.example.com",
            ]),
            None,
        );
        assert!(err.is_err());
    }

    #[test]
    fn reauthorize_keeps_the_profile_connection_unless_told() {
        let first = resolve_connection(
            &args(&[
                "--tenant",
                "t",
                "--client-id",
                "a",
                "--api-url",
                "https://api-eu.securitycenter.microsoft.com",
            ]),
            None,
        )
        .unwrap();
        let p = Profile::new("default", first.clone());
        let again = resolve_connection(&args(&[]), Some(&p)).unwrap();
        assert_eq!(again, first);
        let moved = resolve_connection(&args(&["--cloud", "gcc"]), Some(&p)).unwrap();
        assert_eq!(moved.api_url, "https://api-gcc.securitycenter.microsoft.us");
    }

    #[test]
    fn ids_that_would_bend_urls_are_refused() {
        for bad in ["a/b", "a?b", "", "a b", "../x"] {
            assert!(validate_id("--tenant", bad).is_err(), "{bad}");
        }
        assert!(validate_id("--tenant", "contoso.onmicrosoft.com").is_ok());
    }

    #[test]
    fn credential_keys_are_fresh() {
        let a = new_credential_key("prod");
        assert!(
            a.starts_with("prod-") && a.len() == "prod-".len() + 16,
            "{a}"
        );
        assert_ne!(a, new_credential_key("prod"));
    }
}
