//! Microsoft's error answers, so clients parse what Entra really sends: the
//! JSON body (`error`, an `AADSTS…` description with trace and correlation ids,
//! `error_codes`, `timestamp`, `error_uri`) for the token and devicecode
//! endpoints, the "trouble signing you in" page for a bad authorize request,
//! and the errors more than one endpoint gives (unknown tenant or client,
//! missing consent, wrong client secret).

use hyper::{Response, StatusCode};
use serde_json::json;

use crate::sandbox::http::{self, Body};
use crate::sandbox::jwt;

/// An Entra error: `error`, the AADSTS number and its text.
#[derive(Debug)]
pub(crate) struct AadError {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub message: String,
}

pub(super) fn aad(error: &'static str, code: u32, message: impl Into<String>) -> AadError {
    AadError {
        status: StatusCode::BAD_REQUEST,
        error,
        code,
        message: message.into(),
    }
}

impl AadError {
    pub(super) fn with_status(mut self, status: StatusCode) -> AadError {
        self.status = status;
        self
    }

    pub(crate) fn description(&self, trace: &str, correlation: &str, ts: &str) -> String {
        format!(
            "AADSTS{}: {}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {ts}",
            self.code, self.message
        )
    }

    pub(crate) fn to_response(&self) -> Response<Body> {
        let (trace, correlation) = (jwt::guid(), jwt::guid());
        let ts = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
        http::json(
            self.status,
            &json!({
                "error": self.error,
                "error_description": self.description(&trace, &correlation, &ts),
                "error_codes": [self.code],
                "timestamp": ts,
                "trace_id": trace,
                "correlation_id": correlation,
                "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
            }),
        )
    }
}

pub(super) fn unknown_tenant(tenant: &str) -> AadError {
    aad(
        "invalid_request",
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
        ),
    )
}

pub(super) fn unknown_client(client_id: &str, tenant: &str) -> AadError {
    aad(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
        ),
    )
}

pub(super) fn consent_missing(client_id: &str) -> AadError {
    aad(
        "invalid_grant",
        65001,
        format!(
            "The user or administrator has not consented to use the application with ID '{client_id}' named 'defender-ingest'. Send an interactive authorization request for this user and resource."
        ),
    )
}

pub(super) fn bad_secret(client_id: &str) -> AadError {
    aad(
        "invalid_client",
        7000215,
        format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
        ),
    )
    .with_status(StatusCode::UNAUTHORIZED)
}

pub(super) fn error_page(e: &AadError) -> Response<Body> {
    let (trace, correlation) = (jwt::guid(), jwt::guid());
    let ts = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    let text = html_escape(&e.description(&trace, &correlation, &ts));
    http::html(
        StatusCode::BAD_REQUEST,
        format!(
            "<!doctype html><title>Sign in to your account</title><h1>Sign in</h1>\
             <p>Sorry, but we're having trouble signing you in.</p><pre>{text}</pre>"
        ),
    )
}

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
