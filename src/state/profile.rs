//! The profile record as it sits in `{state-dir}/{profile}.toml`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::StateError;
use super::seen_lines::SeenLines;
use super::seen_section;
use crate::cli::Flow;
use crate::cloud::Cloud;

/// Bumped when the file's meaning changes; older builds refuse newer files.
/// 2: each endpoint's `seen` is a string of lines in a `[seen]` table at the
/// end (it was a table of its own under `[endpoints.NAME]`); files of version
/// 1 are read as before and written back as version 2.
pub const SCHEMA_VERSION: u32 = 2;

/// One tenant connection and everything `pull` remembers about it. In the
/// file, the endpoints' `seen` lines sit in a `[seen]` table of their own, last
/// (see [`seen_section`]); [`Profile::parse`] and [`Profile::to_toml`] move them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub schema_version: u32,
    /// The profile's name (also the file's stem).
    pub name: String,
    /// Whether `pull` fetches anything. New profiles start disabled.
    pub enabled: bool,
    /// When `authorize` last succeeded (the host's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorized_at: Option<String>,
    /// Key of this profile's entry in the OS keyring; not a secret. A fresh key is
    /// made by each `authorize`, so two state directories never share credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_key: Option<String>,
    pub connection: Connection,
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointState>,
    /// Bookkeeping for `--output FILE` targets, keyed by the path as given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, OutputMark>,
    /// The file's `[seen]` table: endpoint name → its `seen` lines. Always
    /// empty in a parsed profile (moved into the endpoints) and never
    /// serialized from here (written last, by hand).
    #[serde(default, skip_serializing)]
    seen: BTreeMap<String, SeenLines>,
}

/// Where and how to sign in and call the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    pub tenant_id: String,
    pub client_id: String,
    pub cloud: Cloud,
    pub flow: Flow,
    pub login_url: String,
    pub api_url: String,
    pub scope: String,
}

/// The position of one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointState {
    /// The endpoint's position in server time (alerts: the largest
    /// `lastUpdateTime` written; investigations: the largest `startTime` seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// When the last pull that covered this endpoint finished (host clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pull: Option<String>,
    /// The earliest time this endpoint reads from: the first pull's `--since`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<String>,
    /// A page size the server was seen to cap `$top` at, if smaller than asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_cap: Option<u32>,
    /// What was already written within the endpoint's window: one
    /// `fingerprint time id` line per record (see [`SeenLines`]). Bounded by
    /// the window, pruned every pull. Written in the file's `[seen]` table;
    /// read from there, or from here in files of schema 1.
    #[serde(default, skip_serializing)]
    pub seen: SeenLines,
}

/// What `pull` knows about an output file it appends to, so a crash that left
/// uncommitted lines behind can be undone, and rotation recognised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputMark {
    pub dev: u64,
    pub ino: u64,
    /// The file's length when the state last moved: everything before it is accounted for.
    pub committed_len: u64,
    /// Set when a pull starts appending at this offset and cleared when it
    /// commits: if it is still set, that pull did not finish, and what it wrote
    /// past this offset is dropped before the next pull writes again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_from: Option<u64>,
}

impl Profile {
    pub fn new(name: &str, connection: Connection) -> Self {
        Profile {
            schema_version: SCHEMA_VERSION,
            name: name.to_string(),
            enabled: false,
            authorized_at: None,
            credential_key: None,
            connection,
            endpoints: BTreeMap::new(),
            outputs: BTreeMap::new(),
            seen: BTreeMap::new(),
        }
    }

    pub fn endpoint(&self, name: &str) -> Option<&EndpointState> {
        self.endpoints.get(name)
    }

    pub fn endpoint_mut(&mut self, name: &str) -> &mut EndpointState {
        self.endpoints.entry(name.to_string()).or_default()
    }

    /// Parse the file's text; errors name the file and the line. The file is
    /// parsed once; only a file that does not parse is looked at again, to
    /// report a newer schema as such rather than as "unknown field".
    pub fn parse(text: &str, path: &Path) -> Result<Profile, StateError> {
        let too_new = |found: i64| StateError::TooNew {
            path: path.to_path_buf(),
            found: found as u32,
            supported: SCHEMA_VERSION,
        };
        // The long `[seen]` strings by hand when they are in the shape
        // written below; the whole file through `toml` otherwise (and for errors).
        let fast = seen_section::split(text).and_then(|(head, seen)| {
            let mut p = toml::from_str::<Profile>(head).ok()?;
            if !p.seen.is_empty() {
                return None;
            }
            for (name, lines) in seen {
                p.seen.insert(name.to_string(), SeenLines::from_text(lines));
            }
            Some(p)
        });
        match fast.map_or_else(|| toml::from_str::<Profile>(text), Ok) {
            Ok(p) if p.schema_version > SCHEMA_VERSION => Err(too_new(p.schema_version as i64)),
            Ok(mut p) => {
                // What was read is held in the current form, and written so.
                p.schema_version = SCHEMA_VERSION;
                for (name, lines) in std::mem::take(&mut p.seen) {
                    p.endpoint_mut(&name).seen = lines;
                }
                Ok(p)
            }
            Err(e) => {
                if let Ok(table) = text.parse::<toml::Table>()
                    && let Some(v) = table.get("schema_version").and_then(|v| v.as_integer())
                    && v > SCHEMA_VERSION as i64
                {
                    return Err(too_new(v));
                }
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                    .unwrap_or(1);
                Err(StateError::Corrupt {
                    path: path.to_path_buf(),
                    line,
                    message: e.message().to_string(),
                })
            }
        }
    }

    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).expect("a profile always serializes");
        let seen_len: usize = self.endpoints.values().map(|e| e.seen.as_str().len()).sum();
        let mut out = format!(
            "# defender-ingest state for profile `{}`. No secrets are stored here (they are in the OS keyring).\n\
             # Safe to read; edit only while no command runs.\n{body}",
            self.name
        );
        out.reserve(seen_len + 64 * self.endpoints.len());
        seen_section::write(
            &mut out,
            self.endpoints
                .iter()
                .map(|(name, e)| (name.as_str(), e.seen.as_str())),
        );
        out
    }
}
