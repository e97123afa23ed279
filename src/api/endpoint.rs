//! The three endpoints and what differs between them.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Alerts,
    Investigations,
    Recommendations,
}

impl Endpoint {
    pub const ALL: [Endpoint; 3] = [
        Endpoint::Alerts,
        Endpoint::Investigations,
        Endpoint::Recommendations,
    ];

    /// The name used in state, `status` and `test` output: `alerts`, ...
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Alerts => "alerts",
            Endpoint::Investigations => "investigations",
            Endpoint::Recommendations => "recommendations",
        }
    }

    /// The output line's `kind`: `alert`, `investigation`, `recommendation`.
    pub fn kind(self) -> &'static str {
        match self {
            Endpoint::Alerts => "alert",
            Endpoint::Investigations => "investigation",
            Endpoint::Recommendations => "recommendation",
        }
    }

    /// Path under the API base.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Alerts => "/api/alerts",
            Endpoint::Investigations => "/api/investigations",
            Endpoint::Recommendations => "/api/recommendations",
        }
    }

    /// The application permission (WindowsDefenderATP) that reading it needs.
    pub fn permission(self) -> &'static str {
        match self {
            Endpoint::Alerts => "Alert.Read.All",
            Endpoint::Investigations => "Alert.Read.All",
            Endpoint::Recommendations => "SecurityRecommendation.Read.All",
        }
    }

    /// The datetime field that orders the endpoint, where it has one.
    pub fn time_field(self) -> Option<&'static str> {
        match self {
            Endpoint::Alerts => Some("lastUpdateTime"),
            Endpoint::Investigations => Some("startTime"),
            Endpoint::Recommendations => None,
        }
    }

    /// `$expand` sent with every query.
    pub fn expand(self) -> Option<&'static str> {
        match self {
            Endpoint::Alerts => Some("evidence"),
            _ => None,
        }
    }

    pub fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}
