//! Scopes as Entra reads them: one resource (`{resource}/.default` or
//! `{resource}/Alert.Read.All`) plus the OpenID ones. The resource is the
//! Defender API in any cloud (or region), its app id, or the sandbox itself.

use super::identity::AadError;

/// The WindowsDefenderATP application permissions the registered app holds.
pub(crate) const APP_ROLES: [&str; 3] = [
    "Alert.Read.All",
    "Machine.Read.All",
    "SecurityRecommendation.Read.All",
];

/// The Defender API's app id (WindowsDefenderATP).
const DEFENDER_APP_ID: &str = "fc780465-2017-40d4-a0c5-307022471b92";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Requested {
    /// e.g. `https://api.securitycenter.microsoft.com`; the token's `aud`.
    pub resource: String,
    /// Scope names under the resource: `.default`, `Alert.Read.All`, ...
    pub names: Vec<String>,
    pub offline: bool,
    pub openid: bool,
}

fn invalid(scope: &str) -> AadError {
    AadError {
        status: hyper::StatusCode::BAD_REQUEST,
        error: "invalid_scope",
        code: 70011,
        message: format!(
            "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' ('{scope}') is not valid for this tenant's Defender for Endpoint API."
        ),
    }
}

fn known_resource(resource: &str, base_url: &str) -> bool {
    if resource.eq_ignore_ascii_case(DEFENDER_APP_ID) || resource.trim_end_matches('/') == base_url
    {
        return true;
    }
    let Ok(u) = url::Url::parse(resource) else {
        return false;
    };
    let host = u.host_str().unwrap_or("").to_ascii_lowercase();
    let defender = [
        "securitycenter.microsoft.com",
        "securitycenter.microsoft.us",
        "security.microsoft.com",
        "security.microsoft.us",
        "securitycenter.windows.com",
    ]
    .iter()
    .any(|d| host == *d || host.ends_with(&format!(".{d}")));
    let loopback = matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]");
    (u.scheme() == "https" && defender) || loopback
}

/// Parse a space-separated `scope` parameter.
pub(crate) fn parse(scope: &str, base_url: &str) -> Result<Requested, AadError> {
    let mut out = Requested {
        resource: String::new(),
        names: Vec::new(),
        offline: false,
        openid: false,
    };
    for s in scope.split_whitespace() {
        match s {
            "offline_access" => out.offline = true,
            "openid" | "profile" | "email" => out.openid = true,
            _ => {
                let Some((resource, name)) = s.rsplit_once('/') else {
                    return Err(invalid(scope));
                };
                if name.is_empty() || !known_resource(resource, base_url) {
                    return Err(invalid(scope));
                }
                let resource = if resource.eq_ignore_ascii_case(DEFENDER_APP_ID) {
                    "https://api.securitycenter.microsoft.com"
                } else {
                    resource
                };
                if !out.resource.is_empty() && out.resource != resource {
                    return Err(AadError {
                        status: hyper::StatusCode::BAD_REQUEST,
                        error: "invalid_request",
                        code: 28000,
                        message: format!(
                            "Provided value for the input parameter scope ('{scope}') is not valid because it contains more than one resource. Scope {scope} is not valid."
                        ),
                    });
                }
                out.resource = resource.to_string();
                out.names.push(name.to_string());
            }
        }
    }
    if out.resource.is_empty() {
        return Err(invalid(scope));
    }
    Ok(out)
}

impl Requested {
    /// The delegated `scp` claim: `.default` grants every consented permission.
    pub(crate) fn delegated_scp(&self) -> String {
        if self.names.iter().any(|n| n == ".default") {
            APP_ROLES.join(" ")
        } else {
            self.names.join(" ")
        }
    }

    /// The `scope` echoed in a token response.
    pub(crate) fn granted(&self) -> Vec<String> {
        self.delegated_scp()
            .split(' ')
            .map(|n| format!("{}/{n}", self.resource))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://127.0.0.1:1";

    #[test]
    fn accepts_defender_resources_in_every_cloud() {
        for s in [
            "https://api.securitycenter.microsoft.com/.default offline_access",
            "https://api-gcc.securitycenter.microsoft.us/.default",
            "https://api-gov.securitycenter.microsoft.us/Alert.Read.All openid profile",
            "https://api.security.microsoft.com/.default",
            "fc780465-2017-40d4-a0c5-307022471b92/.default",
        ] {
            assert!(parse(s, BASE).is_ok(), "{s}");
        }
        let r = parse(
            "https://api.securitycenter.microsoft.com/.default offline_access",
            BASE,
        )
        .unwrap();
        assert!(r.offline && !r.openid);
        assert_eq!(r.resource, "https://api.securitycenter.microsoft.com");
    }

    #[test]
    fn refuses_other_resources_and_mixtures() {
        for s in [
            "",
            "openid offline_access",
            "User.Read",
            "https://graph.microsoft.com/.default",
            "https://evil.example/securitycenter.microsoft.com/.default",
        ] {
            assert_eq!(parse(s, BASE).unwrap_err().code, 70011, "{s}");
        }
        let e = parse(
            "https://api.securitycenter.microsoft.com/.default https://api-gcc.securitycenter.microsoft.us/.default",
            BASE,
        )
        .unwrap_err();
        assert_eq!(e.code, 28000);
    }
}
