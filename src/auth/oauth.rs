//! The OAuth client: where Entra ID's endpoints are, and how requests reach them.
//!
//! An [`Authority`] is one app registration in one tenant of one cloud. It builds
//! the `oauth2` crate's client with Entra ID's v2.0 endpoints
//! (`{login}/{tenant}/oauth2/v2.0/{authorize,token,devicecode}`) and sends every
//! request through [`SignInHttp`]: our own reqwest client (redirects off, the
//! contract's trust store and proxies) plus a few retries for the failures that
//! pass (connection errors, 429, 5xx), after which the sign-in service counts as
//! unavailable (exit 5).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use oauth2::basic::{
    BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthUrl, ClientId, ClientSecret, DeviceAuthorizationUrl, EmptyExtraTokenFields, EndpointNotSet,
    EndpointSet, HttpRequest, HttpResponse, RequestTokenError, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use url::Url;

use super::AuthError;
use super::entra_errors::{EntraErrorResponse, Situation, explain};

pub(crate) type EntraTokenResponse = StandardTokenResponse<EmptyExtraTokenFields, BasicTokenType>;

/// The `oauth2` client with Entra ID's authorize, device and token endpoints set.
pub(crate) type EntraClient = oauth2::Client<
    EntraErrorResponse,
    EntraTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The scope a delegated sign-in asks for so that pulls can refresh unattended.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// The redirect URI the browser flow sends: register `http://localhost` under
/// "Mobile and desktop applications"; Entra ID ignores the port of loopback URIs.
pub fn redirect_uri_for_port(port: u16) -> String {
    format!("http://localhost:{port}")
}

/// One app registration in one tenant, and the scope it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    pub login_url: Url,
    pub tenant: String,
    pub client_id: String,
    /// The API's `.default` scope, e.g. `https://api.securitycenter.microsoft.com/.default`.
    pub scope: String,
}

impl Authority {
    pub fn new(login_url: Url, tenant: &str, client_id: &str, scope: &str) -> Self {
        Authority {
            login_url,
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            scope: scope.to_string(),
        }
    }

    /// From a stored profile's connection.
    pub fn from_connection(c: &crate::state::Connection) -> Result<Self, AuthError> {
        let login = Url::parse(&c.login_url)
            .map_err(|e| AuthError::Other(format!("the profile's login_url is not a URL: {e}")))?;
        Ok(Authority::new(login, &c.tenant_id, &c.client_id, &c.scope))
    }

    fn base(&self) -> String {
        format!(
            "{}/{}",
            self.login_url.as_str().trim_end_matches('/'),
            self.tenant
        )
    }

    pub fn authorize_url(&self) -> String {
        format!("{}/oauth2/v2.0/authorize", self.base())
    }

    pub fn token_url(&self) -> String {
        format!("{}/oauth2/v2.0/token", self.base())
    }

    pub fn device_code_url(&self) -> String {
        format!("{}/oauth2/v2.0/devicecode", self.base())
    }

    /// Where an administrator grants tenant-wide consent (v2.0 admin consent endpoint).
    pub fn admin_consent_url(&self) -> String {
        let mut u = Url::parse(&format!("{}/v2.0/adminconsent", self.base()))
            .expect("authority URLs parse");
        u.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("scope", &self.scope)
            .append_pair("redirect_uri", "http://localhost");
        u.to_string()
    }

    /// The `oauth2` client; `secret` makes it a confidential client (sent in the body,
    /// as Microsoft's docs show).
    pub(crate) fn client(&self, secret: Option<&str>) -> Result<EntraClient, AuthError> {
        let bad = |e: url::ParseError| AuthError::Other(format!("bad sign-in URL: {e}"));
        let mut c = oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_auth_type(oauth2::AuthType::RequestBody)
            .set_auth_uri(AuthUrl::new(self.authorize_url()).map_err(bad)?)
            .set_token_uri(TokenUrl::new(self.token_url()).map_err(bad)?)
            .set_device_authorization_url(
                DeviceAuthorizationUrl::new(self.device_code_url()).map_err(bad)?,
            );
        if let Some(s) = secret {
            c = c.set_client_secret(ClientSecret::new(s.to_string()));
        }
        Ok(c)
    }

    /// The scopes a delegated (user) sign-in asks for.
    pub(crate) fn delegated_scopes(&self) -> Vec<Scope> {
        vec![
            Scope::new(self.scope.clone()),
            Scope::new(OFFLINE_ACCESS.to_string()),
        ]
    }
}

/// An access token and, for delegated sign-ins, the (possibly rotated) refresh token.
pub(crate) struct Token {
    pub access: String,
    pub expires_at: Instant,
    pub refresh: Option<String>,
}

impl Token {
    pub fn from_response(r: &EntraTokenResponse) -> Token {
        // Entra ID always sends expires_in; assume its usual hour if it does not.
        let lifetime = r.expires_in().unwrap_or(Duration::from_secs(3600));
        Token {
            access: r.access_token().secret().clone(),
            expires_at: Instant::now() + lifetime,
            refresh: r.refresh_token().map(|t| t.secret().clone()),
        }
    }
}

/// Why a request to the sign-in service got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpFailure {
    #[error("cannot reach {host}: {detail}")]
    Network { host: String, detail: String },
    #[error("{host} answered HTTP {status}")]
    Status { host: String, status: u16 },
    #[error("malformed request: {0}")]
    Request(String),
    /// The server's certificate was refused; never retried.
    #[error("cannot establish a trusted TLS connection to {host}: {reason}")]
    Certificate { host: String, reason: String },
    /// The proxy wants credentials (407); never retried.
    #[error("the proxy {proxy} refused to connect us to {host}: 407 Proxy Authentication Required")]
    ProxyAuth { host: String, proxy: String },
}

/// Our reqwest client as the `oauth2` crate's HTTP client, with retries.
#[derive(Debug, Clone)]
pub struct SignInHttp {
    client: reqwest::Client,
    attempts: u32,
    first_backoff: Duration,
}

impl SignInHttp {
    pub fn new(client: reqwest::Client) -> Self {
        SignInHttp {
            client,
            attempts: 3,
            first_backoff: Duration::from_millis(500),
        }
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpFailure> {
        let (parts, body) = request.into_parts();
        let host = parts
            .uri
            .host()
            .unwrap_or("the sign-in service")
            .to_string();
        let mut backoff = self.first_backoff;
        let mut attempt = 1;
        loop {
            let mut b = oauth2::http::Request::builder()
                .method(parts.method.clone())
                .uri(parts.uri.clone());
            for (k, v) in &parts.headers {
                b = b.header(k, v);
            }
            let req: reqwest::Request = b
                .body(body.clone())
                .map_err(|e| HttpFailure::Request(e.to_string()))?
                .try_into()
                .map_err(|e: reqwest::Error| HttpFailure::Request(e.to_string()))?;
            let outcome = self.client.execute(req).await;
            let retry_after = match outcome {
                Ok(resp) => {
                    let status = resp.status();
                    let transient = status.as_u16() == 429 || status.is_server_error();
                    if !transient {
                        return into_http_response(resp)
                            .await
                            .map_err(|e| HttpFailure::Network {
                                host: host.clone(),
                                detail: e.without_url().to_string(),
                            });
                    }
                    if attempt >= self.attempts {
                        return Err(HttpFailure::Status {
                            host,
                            status: status.as_u16(),
                        });
                    }
                    resp.headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(30)))
                }
                Err(e) => {
                    // Only a person can fix these: fail at once, saying what to do.
                    if let Some(reason) = crate::api::transport::certificate_problem(&e) {
                        return Err(HttpFailure::Certificate { host, reason });
                    }
                    if crate::net::proxy_refusal(&e) == Some(crate::net::ProxyRefusal::AuthRequired)
                    {
                        let proxy = Url::parse(&parts.uri.to_string())
                            .ok()
                            .and_then(|u| crate::net::proxy_for(&u))
                            .unwrap_or_else(|| "in use".into());
                        return Err(HttpFailure::ProxyAuth { host, proxy });
                    }
                    if attempt >= self.attempts {
                        return Err(HttpFailure::Network {
                            host,
                            detail: describe_reqwest(&e),
                        });
                    }
                    None
                }
            };
            tracing::debug!(attempt, "sign-in request failed transiently; retrying");
            tokio::time::sleep(retry_after.unwrap_or(backoff)).await;
            backoff *= 2;
            attempt += 1;
        }
    }
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

async fn into_http_response(resp: reqwest::Response) -> Result<HttpResponse, reqwest::Error> {
    let mut b = oauth2::http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        b = b.header(k, v);
    }
    let body = resp.bytes().await?.to_vec();
    Ok(b.body(body)
        .expect("status and headers came from a response"))
}

impl<'c> oauth2::AsyncHttpClient<'c> for SignInHttp {
    type Error = HttpFailure;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpFailure>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// Turn a failed token request into advice.
pub(crate) fn request_error<TE>(
    e: RequestTokenError<HttpFailure, TE>,
    situation: &Situation<'_>,
) -> AuthError
where
    TE: oauth2::ErrorResponse + 'static,
    TE: Into<EntraErrorResponse>,
{
    match e {
        RequestTokenError::ServerResponse(body) => explain(&body.into(), situation),
        RequestTokenError::Request(HttpFailure::Request(detail)) => AuthError::Other(detail),
        RequestTokenError::Request(HttpFailure::Certificate { host, reason }) => AuthError::Tls {
            host,
            detail: reason,
        },
        RequestTokenError::Request(HttpFailure::ProxyAuth { host, proxy }) => {
            AuthError::Proxy { host, proxy }
        }
        RequestTokenError::Request(failure) => AuthError::Unavailable(failure.to_string()),
        RequestTokenError::Parse(err, _) => AuthError::Protocol(format!(
            "unreadable response from the token endpoint ({})",
            err.path()
        )),
        RequestTokenError::Other(detail) => AuthError::Protocol(detail),
    }
}

impl From<oauth2::DeviceCodeErrorResponse> for EntraErrorResponse {
    fn from(e: oauth2::DeviceCodeErrorResponse) -> Self {
        EntraErrorResponse::new(
            e.error().as_ref(),
            e.error_description().map(String::as_str),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_the_v2_layout() {
        let a = Authority::new(
            Url::parse("http://127.0.0.1:8400/").unwrap(),
            "contoso.onmicrosoft.com",
            "app",
            "https://api.securitycenter.microsoft.com/.default",
        );
        assert_eq!(
            a.token_url(),
            "http://127.0.0.1:8400/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(
            a.authorize_url(),
            "http://127.0.0.1:8400/contoso.onmicrosoft.com/oauth2/v2.0/authorize"
        );
        assert_eq!(
            a.device_code_url(),
            "http://127.0.0.1:8400/contoso.onmicrosoft.com/oauth2/v2.0/devicecode"
        );
        assert_eq!(
            a.admin_consent_url(),
            "http://127.0.0.1:8400/contoso.onmicrosoft.com/v2.0/adminconsent?client_id=app&scope=https%3A%2F%2Fapi.securitycenter.microsoft.com%2F.default&redirect_uri=http%3A%2F%2Flocalhost"
        );
    }

    #[test]
    fn redirect_uri_is_localhost_with_the_port() {
        assert_eq!(redirect_uri_for_port(51234), "http://localhost:51234");
    }
}
