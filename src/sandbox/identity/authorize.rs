//! The authorize endpoint: the browser leg of authorization code + PKCE. It
//! checks tenant, client and loopback redirect URI (failing on an error page,
//! since there is nowhere safe to redirect), then the response type, scopes,
//! PKCE challenge and consent (failing by redirect with `error`), and finally
//! redirects to the app with a single-use code bound to that redirect URI and
//! challenge.

use std::time::Instant;

use hyper::header::LOCATION;
use hyper::{Response, StatusCode};

use super::errors::{AadError, aad, consent_missing, error_page, unknown_client, unknown_tenant};
use super::{CodeGrant, Grant, get};
use crate::sandbox::http::{self, Body};
use crate::sandbox::{Shared, jwt, scopes};

/// Is this a loopback `http` redirect URI (any port, any path)?
pub(crate) fn is_loopback_redirect(uri: &str) -> bool {
    match url::Url::parse(uri) {
        Ok(u) => {
            u.scheme() == "http"
                && matches!(
                    u.host(),
                    Some(url::Host::Domain("localhost"))
                        | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
                        | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
                )
                && u.fragment().is_none()
        }
        Err(_) => false,
    }
}

fn redirect(uri: &str, params: &[(&str, &str)]) -> Response<Body> {
    let mut u = url::Url::parse(uri).expect("checked before");
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    let mut r = http::response(StatusCode::FOUND, "text/html; charset=utf-8", "");
    r.headers_mut().insert(
        LOCATION,
        u.as_str().parse().expect("a URL is a header value"),
    );
    r
}

pub(super) fn authorize(shared: &Shared, tenant: &str, q: &[(String, String)]) -> Response<Body> {
    if !shared.is_tenant(tenant) {
        return error_page(&unknown_tenant(tenant));
    }
    let client_id = get(q, "client_id").unwrap_or("");
    if client_id != shared.cfg.client_id {
        return error_page(&unknown_client(client_id, tenant));
    }
    let redirect_uri = get(q, "redirect_uri").unwrap_or("");
    if !is_loopback_redirect(redirect_uri) {
        return error_page(&aad(
            "invalid_request",
            50011,
            format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal."
            ),
        ));
    }
    let state = get(q, "state").unwrap_or("");
    let fail = |e: AadError| {
        let (trace, correlation) = (jwt::guid(), jwt::guid());
        let ts = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
        let desc = e.description(&trace, &correlation, &ts);
        let mut params = vec![("error", e.error), ("error_description", desc.as_str())];
        if !state.is_empty() {
            params.push(("state", state));
        }
        redirect(redirect_uri, &params)
    };
    if get(q, "response_type") != Some("code") {
        return fail(aad(
            "unsupported_response_type",
            700054,
            "response_type must be 'code' for this application.",
        ));
    }
    let requested = match scopes::parse(get(q, "scope").unwrap_or(""), &shared.base_url) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let challenge = get(q, "code_challenge").unwrap_or("");
    match get(q, "code_challenge_method") {
        _ if challenge.is_empty() => {
            return fail(aad(
                "invalid_request",
                9002325,
                "Proof Key for Code Exchange is required: send code_challenge with code_challenge_method=S256.",
            ));
        }
        Some("S256") => {}
        other => {
            return fail(aad(
                "invalid_request",
                9002325,
                format!(
                    "code_challenge_method '{}' is not supported; use S256.",
                    other.unwrap_or("plain")
                ),
            ));
        }
    }
    if shared.faults.lock().deny_consent {
        let mut e = consent_missing(client_id);
        e.error = "consent_required";
        return fail(e);
    }
    let code = format!("1.{}", jwt::random_token(48));
    let epoch = shared.faults.lock().refresh_epoch;
    shared.identity.lock().codes.insert(
        code.clone(),
        CodeGrant {
            grant: Grant {
                scopes: requested,
                epoch,
            },
            redirect_uri: redirect_uri.to_string(),
            challenge: challenge.to_string(),
            issued: Instant::now(),
            used: false,
        },
    );
    let session_state = jwt::guid();
    let mut params = vec![("code", code.as_str())];
    if !state.is_empty() {
        params.push(("state", state));
    }
    params.push(("session_state", session_state.as_str()));
    redirect(redirect_uri, &params)
}
