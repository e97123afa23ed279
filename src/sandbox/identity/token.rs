//! The token endpoint's grants: authorization code + PKCE (single-use codes,
//! the same redirect URI, an S256 verifier), refresh tokens (only with
//! `offline_access`, rotated on every use, refused once the refresh epoch
//! moves) and client credentials (secret checked, `/.default` scope, app
//! roles); the device-code grant is in `device`. Also the access, refresh and
//! id tokens every successful grant hands out.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::errors::{AadError, aad, bad_secret, consent_missing, unknown_client};
use super::{CODE_LIFETIME, Grant, device, get};
use crate::sandbox::{Shared, jwt, scopes};

pub(super) fn token(
    shared: &Shared,
    form: &[(String, String)],
    basic: Option<(String, String)>,
) -> Result<serde_json::Value, AadError> {
    let (client_id, secret) = match &basic {
        Some((id, secret)) => (id.as_str(), Some(secret.as_str())),
        None => (
            get(form, "client_id").unwrap_or(""),
            get(form, "client_secret"),
        ),
    };
    if client_id.is_empty() {
        return Err(aad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        ));
    }
    if client_id != shared.cfg.client_id {
        return Err(unknown_client(client_id, &shared.cfg.tenant_id));
    }
    if let Some(s) = secret
        && s != shared.cfg.client_secret
    {
        return Err(bad_secret(client_id));
    }
    let deny = shared.faults.lock().deny_consent;
    match get(form, "grant_type").unwrap_or("") {
        "authorization_code" => {
            let code = get(form, "code").unwrap_or("");
            let mut s = shared.identity.lock();
            let Some(c) = s.codes.get_mut(code) else {
                return Err(aad(
                    "invalid_grant",
                    9002313,
                    "Invalid request. Request is malformed or invalid: the provided value for the 'code' parameter is not valid.",
                ));
            };
            if c.used {
                return Err(aad(
                    "invalid_grant",
                    54005,
                    "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
                ));
            }
            if c.issued.elapsed() > CODE_LIFETIME {
                return Err(aad(
                    "invalid_grant",
                    70008,
                    "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
                ));
            }
            if get(form, "redirect_uri").unwrap_or("") != c.redirect_uri {
                return Err(aad(
                    "invalid_grant",
                    50011,
                    "The redirect URI specified in the request does not match the redirect URI used to obtain the authorization code.",
                ));
            }
            let verifier = get(form, "code_verifier").unwrap_or("");
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if verifier.is_empty() || computed != c.challenge {
                return Err(aad(
                    "invalid_grant",
                    50148,
                    "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
                ));
            }
            c.used = true;
            let grant = c.grant.clone();
            drop(s);
            if deny {
                return Err(consent_missing(client_id));
            }
            Ok(issue_user_tokens(shared, &grant.scopes))
        }
        "refresh_token" => {
            let rt = get(form, "refresh_token").unwrap_or("");
            let grant = shared.identity.lock().refresh.get(rt).cloned();
            let Some(grant) = grant else {
                return Err(aad(
                    "invalid_grant",
                    9002313,
                    "Invalid request. Request is malformed or invalid: the refresh token is not valid.",
                ));
            };
            if grant.epoch != shared.faults.lock().refresh_epoch {
                return Err(aad(
                    "invalid_grant",
                    700082,
                    "The refresh token has expired due to inactivity. The token was issued on a date and was inactive for longer than allowed. Send a new interactive authorization request for this user and resource.",
                ));
            }
            if deny {
                return Err(consent_missing(client_id));
            }
            let mut scopes = grant.scopes.clone();
            if let Some(asked) = get(form, "scope") {
                let asked = scopes::parse(asked, &shared.base_url)?;
                scopes.resource = asked.resource;
                scopes.names = asked.names;
                scopes.openid = asked.openid;
                // offline_access stays granted once consented.
                scopes.offline = scopes.offline || asked.offline;
            }
            Ok(issue_user_tokens(shared, &scopes))
        }
        "client_credentials" => {
            if secret.is_none() {
                return Err(aad(
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                )
                .with_status(StatusCode::UNAUTHORIZED));
            }
            let scope = get(form, "scope").unwrap_or("");
            let asked = scopes::parse(scope, &shared.base_url)?;
            if asked.names != [".default"] || asked.offline || asked.openid {
                return Err(aad(
                    "invalid_scope",
                    1002012,
                    format!(
                        "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                    ),
                ));
            }
            let roles: Vec<&str> = if deny {
                Vec::new()
            } else {
                scopes::APP_ROLES.to_vec()
            };
            let lifetime = shared.cfg.access_token_lifetime.as_secs();
            let access = mint_access(
                shared,
                &asked.resource,
                json!({"roles": roles, "idtyp": "app"}),
            );
            Ok(json!({
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": access,
            }))
        }
        "urn:ietf:params:oauth:grant-type:device_code" => {
            device::device_poll(shared, form, deny, client_id)
        }
        "" => Err(aad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        )),
        other => Err(aad(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

/// The signed-in sandbox administrator.
const USER_OID: &str = "2c1d0e4f-8a3b-4f6e-9d7c-1b2a3c4d5e6f";
const USER_UPN: &str = "admin@sandbox.onmicrosoft.com";

/// Token times use the host clock: `clock_offset` skews the Defender data, not Entra.
fn mint_access(shared: &Shared, resource: &str, extra: serde_json::Value) -> String {
    let now = chrono::Utc::now().timestamp();
    let lifetime = shared.cfg.access_token_lifetime.as_secs() as i64;
    // `exp` is whole seconds and a token is refused from `exp` on: round up, so
    // a token is good for at least its lifetime (a 1 s token would otherwise
    // die at the next second boundary).
    let exp = now + lifetime + 1;
    let mut payload = json!({
        "aud": resource,
        "iss": format!("https://sts.windows.net/{}/", shared.cfg.tenant_id),
        "iat": now,
        "nbf": now,
        "exp": exp,
        "tid": shared.cfg.tenant_id,
        "appid": shared.cfg.client_id,
        "ver": "1.0",
        "uti": jwt::random_token(16),
        "sbx_epoch": shared.faults.lock().access_epoch,
    });
    if let (Some(p), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    jwt::mint(shared.identity.key(), &payload)
}

pub(super) fn issue_user_tokens(shared: &Shared, scopes: &scopes::Requested) -> serde_json::Value {
    let lifetime = shared.cfg.access_token_lifetime.as_secs();
    let scp = scopes.delegated_scp();
    let access = mint_access(
        shared,
        &scopes.resource,
        json!({"scp": scp, "oid": USER_OID, "upn": USER_UPN, "name": "Sandbox Admin", "idtyp": "user"}),
    );
    let mut granted: Vec<String> = scopes.granted();
    let mut out = json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access,
    });
    if scopes.offline {
        let rt = format!("0.{}", jwt::random_token(96));
        let epoch = shared.faults.lock().refresh_epoch;
        shared.identity.lock().refresh.insert(
            rt.clone(),
            Grant {
                scopes: scopes.clone(),
                epoch,
            },
        );
        out["refresh_token"] = json!(rt);
        granted.push("offline_access".into());
    }
    if scopes.openid {
        let now = chrono::Utc::now().timestamp();
        out["id_token"] = json!(jwt::mint(
            shared.identity.key(),
            &json!({
                "aud": shared.cfg.client_id,
                "iss": format!("{}/{}/v2.0", shared.base_url, shared.cfg.tenant_id),
                "iat": now, "nbf": now, "exp": now + 3600,
                "tid": shared.cfg.tenant_id, "oid": USER_OID,
                "preferred_username": USER_UPN, "name": "Sandbox Admin", "ver": "2.0",
            })
        ));
        granted.push("openid".into());
        granted.push("profile".into());
    }
    out["scope"] = json!(granted.join(" "));
    out
}
