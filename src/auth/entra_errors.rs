//! Entra ID's error answers, and the one table that turns them into advice.
//!
//! The v2.0 endpoints answer failures with `{"error", "error_description",
//! "error_codes": [..], "trace_id", "correlation_id"}`, where the description
//! starts with `AADSTSnnnnn:`. People search for that code, so the advice names
//! it, says what it means for this tool and what to do next. Descriptions carry
//! trace ids and timestamps, never tokens, codes or secrets; only their first
//! line is shown.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::AuthError;
use super::oauth::Authority;

/// An error body from the token, authorize or devicecode endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntraErrorResponse {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_codes: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suberror: Option<String>,
}

impl EntraErrorResponse {
    pub fn new(error: &str, description: Option<&str>) -> Self {
        EntraErrorResponse {
            error: error.to_string(),
            error_description: description.map(str::to_string),
            ..Default::default()
        }
    }

    /// The AADSTS code: the first of `error_codes`, else the one the description starts with.
    pub fn code(&self) -> Option<u32> {
        if let Some(c) = self.error_codes.first() {
            return Some(*c);
        }
        let d = self.error_description.as_deref()?;
        let rest = &d[d.find("AADSTS")? + "AADSTS".len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    }

    /// The description's first line (the rest is trace ids and timestamps).
    pub fn first_line(&self) -> String {
        let line = self
            .error_description
            .as_deref()
            .and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty()))
            .unwrap_or("");
        // The description is the server's text; keep it to one short line.
        let line: String = line.chars().take(300).collect();
        if line.is_empty() {
            self.error.clone()
        } else {
            format!("{}: {line}", self.error)
        }
    }
}

impl fmt::Display for EntraErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.first_line())
    }
}

impl oauth2::ErrorResponse for EntraErrorResponse {}

/// Where the refusal happened, which changes what "do this next" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// During `authorize` (the user is at the terminal).
    Authorize,
    /// At run time, refreshing or getting an app-only token for `profile`.
    RunTime,
}

/// Everything the advice may mention.
pub struct Situation<'a> {
    pub authority: &'a Authority,
    pub profile: &'a str,
    pub stage: Stage,
    /// The redirect URI sent, for the browser flow.
    pub redirect_uri: Option<&'a str>,
}

/// Translate one Entra ID refusal into an [`AuthError`] that says what to do.
pub fn explain(err: &EntraErrorResponse, s: &Situation<'_>) -> AuthError {
    let code = err.code();
    let a = s.authority;
    let tenant = &a.tenant;
    let client_id = &a.client_id;
    let reauthorize = format!("defender-ingest --profile {} authorize", s.profile);
    let mut unavailable = false;
    let advice = match (code, err.error.as_str()) {
        (Some(65001), _) | (_, "consent_required") => format!(
            "admin consent for this app's Defender API permissions is missing in tenant {tenant}.\n\
             An administrator (Global Administrator, Privileged Role Administrator or Cloud \
             Application Administrator) can grant it by opening:\n{}\n\
             then run `{reauthorize}` again.",
            a.admin_consent_url()
        ),
        (Some(7000215), _) => format!(
            "the client secret is invalid: use the secret's Value (not its Secret ID) from the app \
             registration's \"Certificates & secrets\" page, then run `{reauthorize} --flow \
             client-secret --client-secret-stdin` again (or fix {}).",
            crate::secrets::CLIENT_SECRET_ENV
        ),
        (Some(7000222), _) => format!(
            "the client secret has expired: create a new one under the app registration's \
             \"Certificates & secrets\", then run `{reauthorize} --flow client-secret \
             --client-secret-stdin` again (or update {}).",
            crate::secrets::CLIENT_SECRET_ENV
        ),
        (Some(700082 | 70008 | 50173 | 70043 | 700084), _) => {
            format!("the stored sign-in has expired or was revoked; run `{reauthorize}` again.")
        }
        (Some(700016), _) => format!(
            "application {client_id} was not found in tenant {tenant}: check --client-id (the \
             \"Application (client) ID\" on the app registration's Overview page) and --tenant, \
             and that the app is registered in or consented to that tenant."
        ),
        (Some(90002 | 900023), _) => format!(
            "tenant `{tenant}` was not found: check --tenant (the directory id GUID or a verified \
             domain such as contoso.onmicrosoft.com) and that --cloud matches the tenant's cloud."
        ),
        (Some(50011 | 500113), _) => format!(
            "the redirect URI {} is not registered for application {client_id}.\n\
             In the Entra admin center open App registrations → the app → Authentication → Add a \
             platform → \"Mobile and desktop applications\", add the custom redirect URI \
             http://localhost (no port: Entra ID accepts any loopback port), save, and run \
             `{reauthorize}` again.",
            s.redirect_uri.unwrap_or("http://localhost")
        ),
        (Some(7000218), _) => format!(
            "application {client_id} does not allow public client flows. In App registrations → \
             the app → Authentication → Advanced settings, set \"Allow public client flows\" to \
             Yes (needed for --flow device-code), or use --flow browser or --flow client-secret."
        ),
        (Some(500011), _) => format!(
            "the Defender for Endpoint API ({}) was not found in tenant {tenant}: the tenant may \
             have no Defender for Endpoint licence yet, or --cloud does not match the tenant's \
             cloud.",
            a.scope
        ),
        (Some(65004), _) | (_, "access_denied") => format!(
            "the sign-in was cancelled or consent was declined. Run `{reauthorize}` again and \
             click Accept; if only an administrator may consent, they can grant it at:\n{}",
            a.admin_consent_url()
        ),
        (_, "authorization_declined") => {
            format!(
                "the sign-in was declined on the device-code page; run `{reauthorize} --flow device-code` again."
            )
        }
        (_, "expired_token") => format!(
            "the device code expired before the sign-in finished; run `{reauthorize} --flow device-code` again."
        ),
        (_, "bad_verification_code") => format!(
            "Entra ID did not recognise the device code; run `{reauthorize} --flow device-code` again."
        ),
        (_, "invalid_grant") if s.stage == Stage::RunTime => {
            format!("the stored sign-in is no longer accepted; run `{reauthorize}` again.")
        }
        (_, "temporarily_unavailable" | "server_error") => {
            unavailable = true;
            "the sign-in service is temporarily unavailable; try again later.".to_string()
        }
        _ => match s.stage {
            Stage::Authorize => "Entra ID refused the sign-in.".to_string(),
            Stage::RunTime => format!("Entra ID refused the sign-in; run `{reauthorize}` again."),
        },
    };
    AuthError::Refused {
        code,
        error: err.error.clone(),
        advice,
        detail: err.first_line(),
        unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority() -> Authority {
        Authority::new(
            url::Url::parse("https://login.microsoftonline.com").unwrap(),
            "contoso.onmicrosoft.com",
            "11111111-2222-3333-4444-555555555555",
            "https://api.securitycenter.microsoft.com/.default",
        )
    }

    fn situation(a: &Authority) -> Situation<'_> {
        Situation {
            authority: a,
            profile: "prod",
            stage: Stage::RunTime,
            redirect_uri: Some("http://localhost:51234"),
        }
    }

    fn body(error: &str, code: u32) -> EntraErrorResponse {
        serde_json::from_value(serde_json::json!({
            "error": error,
            "error_description": format!("AADSTS{code}: Something happened.\r\nTrace ID: 0000\r\nCorrelation ID: 1111\r\nTimestamp: 2026-12-03 10:00:00Z"),
            "error_codes": [code],
            "timestamp": "2026-12-03 10:00:00Z",
            "trace_id": "0000",
            "correlation_id": "1111",
        }))
        .unwrap()
    }

    #[test]
    fn code_comes_from_error_codes_or_description() {
        assert_eq!(body("invalid_grant", 700082).code(), Some(700082));
        let d = EntraErrorResponse::new(
            "invalid_client",
            Some("AADSTS7000215: Invalid client secret provided."),
        );
        assert_eq!(d.code(), Some(7000215));
        assert_eq!(EntraErrorResponse::new("x", None).code(), None);
    }

    #[test]
    fn every_mapped_code_says_what_to_do() {
        let a = authority();
        let s = situation(&a);
        let cases: &[(&str, u32, &str)] = &[
            (
                "invalid_grant",
                65001,
                "/contoso.onmicrosoft.com/v2.0/adminconsent?client_id=11111111-2222-3333-4444-555555555555",
            ),
            ("invalid_client", 7000215, "Value (not its Secret ID)"),
            ("invalid_client", 7000222, "has expired"),
            (
                "invalid_grant",
                700082,
                "defender-ingest --profile prod authorize",
            ),
            (
                "invalid_grant",
                70008,
                "defender-ingest --profile prod authorize",
            ),
            ("unauthorized_client", 700016, "Application (client) ID"),
            (
                "invalid_request",
                90002,
                "tenant `contoso.onmicrosoft.com` was not found",
            ),
            ("invalid_request", 50011, "Mobile and desktop applications"),
            ("invalid_client", 7000218, "Allow public client flows"),
            (
                "invalid_resource",
                500011,
                "https://api.securitycenter.microsoft.com/.default",
            ),
            ("access_denied", 65004, "cancelled"),
        ];
        for (error, code, needle) in cases {
            let e = explain(&body(error, *code), &s);
            let shown = e.to_string();
            assert!(shown.contains(needle), "AADSTS{code}: {shown}");
            assert!(shown.contains(&format!("AADSTS{code}")), "{shown}");
            assert!(!shown.contains("Trace ID"), "{shown}");
            assert_eq!(e.exit(), crate::exit::Exit::NotAuthorized, "{code}");
            assert_eq!(e.entra_code(), Some(*code));
        }
    }

    #[test]
    fn redirect_mismatch_names_the_uri_sent() {
        let a = authority();
        let shown = explain(&body("invalid_request", 50011), &situation(&a)).to_string();
        assert!(shown.contains("http://localhost:51234"), "{shown}");
        assert!(
            shown.contains("custom redirect URI http://localhost "),
            "{shown}"
        );
    }

    #[test]
    fn temporarily_unavailable_is_exit_5() {
        let a = authority();
        let e = explain(
            &EntraErrorResponse::new("temporarily_unavailable", Some("AADSTS50033: retry")),
            &situation(&a),
        );
        assert_eq!(e.exit(), crate::exit::Exit::Unavailable);
    }
}
