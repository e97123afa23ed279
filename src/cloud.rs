//! National clouds: each preset fixes the sign-in authority, the API host and the
//! OAuth scope together, because mixing them (a commercial token against a GCC
//! High API) fails in ways that are hard to read.
//!
//! Hosts are from Microsoft's "Microsoft Defender for Endpoint for US Government
//! customers" page and the API's regional endpoints list.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cloud {
    /// Commercial (worldwide) cloud.
    #[default]
    Global,
    /// US Government Community Cloud.
    Gcc,
    /// US Government Community Cloud High.
    GccHigh,
    /// US Department of Defense.
    Dod,
}

/// The three URLs a cloud decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Sign-in authority; endpoints are `{login}/{tenant}/oauth2/v2.0/...`.
    pub login_url: &'static str,
    /// API base; endpoints are `{api}/api/alerts`, ...
    pub api_url: &'static str,
    /// The `.default` scope of the Defender API resource in that cloud.
    pub scope: &'static str,
}

impl Cloud {
    pub fn endpoints(self) -> Endpoints {
        match self {
            Cloud::Global => Endpoints {
                login_url: "https://login.microsoftonline.com",
                api_url: "https://api.securitycenter.microsoft.com",
                scope: "https://api.securitycenter.microsoft.com/.default",
            },
            Cloud::Gcc => Endpoints {
                login_url: "https://login.microsoftonline.com",
                api_url: "https://api-gcc.securitycenter.microsoft.us",
                scope: "https://api-gcc.securitycenter.microsoft.us/.default",
            },
            Cloud::GccHigh => Endpoints {
                login_url: "https://login.microsoftonline.us",
                api_url: "https://api-gov.securitycenter.microsoft.us",
                scope: "https://api-gov.securitycenter.microsoft.us/.default",
            },
            Cloud::Dod => Endpoints {
                login_url: "https://login.microsoftonline.us",
                api_url: "https://api-gov.securitycenter.microsoft.us",
                scope: "https://api-gov.securitycenter.microsoft.us/.default",
            },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::Gcc => "gcc",
            Cloud::GccHigh => "gcc-high",
            Cloud::Dod => "dod",
        }
    }
}

/// Regional API hosts of the commercial cloud, for tenants that want their data
/// to stay in region (`--api-url https://api-eu.securitycenter.microsoft.com`).
pub const GLOBAL_REGIONAL_API_HOSTS: &[&str] = &[
    "api.security.microsoft.com",
    "api-us.securitycenter.microsoft.com",
    "api-eu.securitycenter.microsoft.com",
    "api-uk.securitycenter.microsoft.com",
    "api-au.securitycenter.microsoft.com",
    "api-us.security.microsoft.com",
    "api-eu.security.microsoft.com",
    "api-uk.security.microsoft.com",
    "api-au.security.microsoft.com",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_https_and_scope_matches_api_host() {
        for cloud in Cloud::value_variants() {
            let e = cloud.endpoints();
            assert!(e.login_url.starts_with("https://"), "{cloud:?}");
            assert!(e.api_url.starts_with("https://"), "{cloud:?}");
            assert_eq!(e.scope, format!("{}/.default", e.api_url), "{cloud:?}");
        }
    }

    #[test]
    fn government_clouds_use_the_us_authority() {
        assert_eq!(
            Cloud::Global.endpoints().login_url,
            "https://login.microsoftonline.com"
        );
        assert_eq!(
            Cloud::Gcc.endpoints().login_url,
            "https://login.microsoftonline.com"
        );
        assert_eq!(
            Cloud::GccHigh.endpoints().login_url,
            "https://login.microsoftonline.us"
        );
        assert_eq!(
            Cloud::Dod.endpoints().login_url,
            "https://login.microsoftonline.us"
        );
        assert_eq!(
            Cloud::Gcc.endpoints().api_url,
            "https://api-gcc.securitycenter.microsoft.us"
        );
        assert_eq!(
            Cloud::Dod.endpoints().api_url,
            Cloud::GccHigh.endpoints().api_url
        );
    }
}

#[cfg(test)]
mod regional_tests {
    use super::*;

    #[test]
    fn regional_hosts_are_commercial_defender_api_hosts() {
        for host in GLOBAL_REGIONAL_API_HOSTS {
            let url = crate::net::parse_base_url("--api-url", &format!("https://{host}")).unwrap();
            assert!(
                host.ends_with(".securitycenter.microsoft.com")
                    || host.ends_with(".security.microsoft.com"),
                "{host}"
            );
            assert_eq!(url.host_str(), Some(*host));
        }
        // Their tokens carry the commercial cloud's scope, whatever the host.
        assert_eq!(
            Cloud::Global.endpoints().scope,
            "https://api.securitycenter.microsoft.com/.default"
        );
    }
}
