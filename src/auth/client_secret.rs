//! App-only sign-in with a client secret, for unattended hosts.
//!
//! `authorize --flow client-secret` proves the secret works by getting a
//! client-credentials token before anything is saved, so a wrong or expired
//! secret fails at authorize time (AADSTS7000215 / 7000222) and not in cron.

use super::AuthError;
use super::entra_errors::{Situation, Stage};
use super::oauth::{Authority, SignInHttp, request_error};

/// Get one app-only token with `secret`; Ok means the secret, the app and the tenant are good.
pub async fn verify_client_secret(
    authority: &Authority,
    http: reqwest::Client,
    secret: &str,
    profile: &str,
) -> Result<(), AuthError> {
    let client = authority.client(Some(secret))?;
    let situation = Situation {
        authority,
        profile,
        stage: Stage::Authorize,
        redirect_uri: None,
    };
    client
        .exchange_client_credentials()
        .add_scope(oauth2::Scope::new(authority.scope.clone()))
        .request_async(&SignInHttp::new(http))
        .await
        .map_err(|e| request_error(e, &situation))?;
    Ok(())
}
