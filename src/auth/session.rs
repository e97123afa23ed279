//! Access tokens at run time for one profile.
//!
//! A [`Session`] holds the current access token in memory and gets a new one
//! when it is missing, within five minutes of expiry, or after the API rejected
//! it (401). Refreshes are single-flight: concurrent callers wait for the one
//! refresh in progress and share its token. Delegated profiles redeem their
//! refresh token (saving a rotated one back to the keyring at once); app-only
//! profiles ask for a client-credentials token with the secret from
//! `DEFENDER_INGEST_CLIENT_SECRET` or the keyring.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth2::RefreshToken;

use super::AuthError;
use super::entra_errors::{Situation, Stage};
use super::oauth::{Authority, EntraClient, SignInHttp, Token, request_error};
use crate::cli::Flow;
use crate::secrets::{CLIENT_SECRET_ENV, Credentials, SecretStore};
use crate::state::Profile;

/// Refresh this long before the access token expires, or a quarter of its
/// lifetime when that is shorter (so short-lived tokens are not renewed on
/// every call).
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// When a token that expires at `expires_at` should be renewed.
fn refresh_at(expires_at: Instant) -> Instant {
    let lifetime = expires_at.saturating_duration_since(Instant::now());
    expires_at - REFRESH_MARGIN.min(lifetime / 4)
}

/// Hands out access tokens for one profile.
pub struct Session {
    source: Source,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

struct Cached {
    access: String,
    /// When to stop handing it out and renew; `None` never.
    refresh_at: Option<Instant>,
}

enum Source {
    Fixed,
    Refresh {
        signer: Signer,
        secrets: Arc<dyn SecretStore>,
        key: String,
        /// The latest refresh token; replaced when Entra ID rotates it.
        refresh_token: std::sync::Mutex<String>,
    },
    ClientSecret {
        signer: Signer,
    },
}

struct Signer {
    authority: Authority,
    client: EntraClient,
    http: SignInHttp,
    profile: String,
}

impl Signer {
    fn situation(&self) -> Situation<'_> {
        Situation {
            authority: &self.authority,
            profile: &self.profile,
            stage: Stage::RunTime,
            redirect_uri: None,
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session { .. }")
    }
}

impl Session {
    /// A session that always presents `token` and cannot refresh it.
    pub fn with_token(token: impl Into<String>) -> Session {
        Session {
            source: Source::Fixed,
            cached: tokio::sync::Mutex::new(Some(Cached {
                access: token.into(),
                refresh_at: None,
            })),
        }
    }

    /// The session of a stored profile: its credentials from `secrets` (keyed by
    /// `profile.credential_key`), or for client-secret profiles the secret from
    /// `DEFENDER_INGEST_CLIENT_SECRET` when set. `http` is the client from
    /// [`crate::net::client`]. No token is fetched until [`Session::access_token`].
    ///
    /// Fails with exit 3 when the profile has no credentials (never authorized,
    /// keyring emptied) naming `authorize` as the remedy.
    pub async fn for_profile(
        profile: &Profile,
        secrets: Arc<dyn SecretStore>,
        http: reqwest::Client,
    ) -> Result<Session, AuthError> {
        let env_secret = std::env::var(CLIENT_SECRET_ENV)
            .ok()
            .filter(|s| !s.trim().is_empty());
        Session::for_profile_with(profile, secrets, http, env_secret).await
    }

    /// [`Session::for_profile`] with the client-secret override passed in
    /// instead of read from the environment.
    pub async fn for_profile_with(
        profile: &Profile,
        secrets: Arc<dyn SecretStore>,
        http: reqwest::Client,
        env_secret: Option<String>,
    ) -> Result<Session, AuthError> {
        let authority = Authority::from_connection(&profile.connection)?;
        let no_credentials = || AuthError::NoCredentials {
            profile: profile.name.clone(),
        };
        let stored = match &profile.credential_key {
            Some(key) => load_credentials(secrets.clone(), key.clone()).await,
            None => Ok(None),
        };
        let source = match profile.connection.flow {
            Flow::ClientSecret => {
                let secret = match env_secret {
                    Some(s) => s,
                    None => stored?.and_then(|c| c.client_secret).ok_or_else(|| {
                        AuthError::Other(format!(
                            "profile `{p}` has no client secret: set {CLIENT_SECRET_ENV} or run \
                                 `defender-ingest --profile {p} authorize --flow client-secret \
                                 --client-secret-stdin`",
                            p = profile.name
                        ))
                    })?,
                };
                Source::ClientSecret {
                    signer: Signer {
                        client: authority.client(Some(&secret))?,
                        authority,
                        http: SignInHttp::new(http),
                        profile: profile.name.clone(),
                    },
                }
            }
            Flow::Browser | Flow::DeviceCode => {
                let key = profile.credential_key.clone().ok_or_else(no_credentials)?;
                let refresh = stored?
                    .and_then(|c| c.refresh_token)
                    .ok_or_else(no_credentials)?;
                Source::Refresh {
                    signer: Signer {
                        client: authority.client(None)?,
                        authority,
                        http: SignInHttp::new(http),
                        profile: profile.name.clone(),
                    },
                    secrets,
                    key,
                    refresh_token: std::sync::Mutex::new(refresh),
                }
            }
        };
        Ok(Session {
            source,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// A token to send now: cached, or freshly obtained when missing or about to expire.
    pub async fn access_token(&self) -> Result<String, AuthError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && c.refresh_at.is_none_or(|at| Instant::now() < at)
        {
            return Ok(c.access.clone());
        }
        self.renew(&mut cached).await
    }

    /// The API answered 401 to `rejected`: get a new token (once per rejection).
    /// Callers that were rejected with a token someone else already replaced get
    /// the replacement without another refresh.
    pub async fn refresh_after_rejection(&self, rejected: &str) -> Result<String, AuthError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && c.access != rejected
        {
            return Ok(c.access.clone());
        }
        if matches!(self.source, Source::Fixed) {
            return Err(AuthError::Other(
                "the access token was rejected and this session cannot refresh it".into(),
            ));
        }
        *cached = None;
        self.renew(&mut cached).await
    }

    /// Get a new token while holding the cache lock (that is what makes it single-flight).
    async fn renew(&self, cached: &mut Option<Cached>) -> Result<String, AuthError> {
        let token = match &self.source {
            Source::Fixed => {
                return Err(AuthError::Other("no access token".into()));
            }
            Source::ClientSecret { signer } => signer
                .client
                .exchange_client_credentials()
                .add_scope(oauth2::Scope::new(signer.authority.scope.clone()))
                .request_async(&signer.http)
                .await
                .map_err(|e| request_error(e, &signer.situation()))?,
            Source::Refresh {
                signer,
                secrets,
                key,
                refresh_token,
            } => {
                let current = RefreshToken::new(refresh_token.lock().unwrap().clone());
                let resp = signer
                    .client
                    .exchange_refresh_token(&current)
                    .add_scopes(signer.authority.delegated_scopes())
                    .request_async(&signer.http)
                    .await
                    .map_err(|e| request_error(e, &signer.situation()))?;
                let token = Token::from_response(&resp);
                if let Some(new) = &token.refresh
                    && new != current.secret()
                {
                    *refresh_token.lock().unwrap() = new.clone();
                    let creds = Credentials {
                        refresh_token: Some(new.clone()),
                        client_secret: None,
                    };
                    if let Err(e) = save_credentials(secrets.clone(), key.clone(), creds).await {
                        // The old refresh token stays valid at Entra ID; the next run uses it.
                        tracing::warn!("could not save the rotated refresh token: {e}");
                    }
                }
                let access = token.access.clone();
                *cached = Some(Cached {
                    access: access.clone(),
                    refresh_at: Some(refresh_at(token.expires_at)),
                });
                return Ok(access);
            }
        };
        let token = Token::from_response(&token);
        let access = token.access.clone();
        *cached = Some(Cached {
            access: access.clone(),
            refresh_at: Some(refresh_at(token.expires_at)),
        });
        Ok(access)
    }
}

/// Keyring calls block (D-Bus); keep them off the async workers.
pub(crate) async fn load_credentials(
    secrets: Arc<dyn SecretStore>,
    key: String,
) -> Result<Option<Credentials>, AuthError> {
    tokio::task::spawn_blocking(move || Credentials::load(secrets.as_ref(), &key))
        .await
        .map_err(|e| AuthError::Other(format!("keyring task failed: {e}")))?
        .map_err(AuthError::from)
}

pub(crate) async fn save_credentials(
    secrets: Arc<dyn SecretStore>,
    key: String,
    creds: Credentials,
) -> Result<(), AuthError> {
    tokio::task::spawn_blocking(move || creds.save(secrets.as_ref(), &key))
        .await
        .map_err(|e| AuthError::Other(format!("keyring task failed: {e}")))?
        .map_err(AuthError::from)
}
