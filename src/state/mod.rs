//! Profiles and their state: one human-readable TOML file per profile under the
//! state directory, written atomically and guarded by file locks.
//!
//! A profile is one tenant connection (tenant, app registration, cloud, URLs,
//! flow), the enabled flag, and the position of every endpoint. Secrets never
//! live here: they are in the OS keyring (`crate::secrets`), keyed by
//! `credential_key`.

mod atomic;
mod lock;
mod profile;
mod seen_lines;
mod seen_section;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use atomic::{sync_dir, write_atomic};
pub use lock::{LockMode, ProfileLock};
pub use profile::{Connection, EndpointState, OutputMark, Profile, SCHEMA_VERSION};
pub use seen_lines::{SeenLine, SeenLines};

use crate::exit::Exit;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "the state file {path} is corrupt at line {line}: {message}\n\
         It was left untouched. Fix or move it aside; to start this profile over, delete it and run `authorize` again."
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "the state file {path} has schema_version {found}, newer than this build understands ({supported}); upgrade defender-ingest"
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "profile `{profile}` does not exist in {dir}; run `defender-ingest --profile {profile} authorize` first"
    )]
    NoProfile { profile: String, dir: PathBuf },
    #[error(
        "`{0}` is not a valid profile name: use letters, digits, `.`, `_` and `-` (not starting with `.`)"
    )]
    BadProfileName(String),
    #[error(
        "another `pull` is running for profile `{profile}` (lock {path} is held); try again when it ends"
    )]
    Locked { profile: String, path: PathBuf },
    #[error(
        "no state directory: set --state-dir or DEFENDER_INGEST_STATE_DIR (no home directory was found)"
    )]
    NoStateDir,
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StateError {
    pub fn exit(&self) -> Exit {
        match self {
            StateError::Locked { .. } => Exit::Locked,
            StateError::BadProfileName(_) => Exit::Usage,
            StateError::NoProfile { .. } => Exit::NotAuthorized,
            _ => Exit::Error,
        }
    }

    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        StateError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The default state directory: `$XDG_STATE_HOME/defender-ingest` on Linux, the
/// local data directory elsewhere.
pub fn default_dir() -> Result<PathBuf, StateError> {
    let dirs =
        directories::ProjectDirs::from("", "", "defender-ingest").ok_or(StateError::NoStateDir)?;
    Ok(dirs
        .state_dir()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dirs.data_local_dir().to_path_buf()))
}

/// A profile as read from its file, with the file's text.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub text: String,
    pub profile: Profile,
}

/// The state directory and the profiles in it.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateStore { dir: dir.into() }
    }

    /// `--state-dir` if given, else the platform default.
    pub fn open(dir: Option<&Path>) -> Result<Self, StateError> {
        Ok(match dir {
            Some(d) => StateStore::new(d),
            None => StateStore::new(default_dir()?),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn profile_path(&self, name: &str) -> Result<PathBuf, StateError> {
        validate_name(name)?;
        Ok(self.dir.join(format!("{name}.toml")))
    }

    /// Create the directory (0700) if it does not exist yet.
    pub fn ensure_dir(&self) -> Result<(), StateError> {
        if self.dir.is_dir() {
            return Ok(());
        }
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(&self.dir)
            .map_err(|e| StateError::io("create the state directory", &self.dir, e))
    }

    /// Read a profile; `Ok(None)` when it has never been created.
    pub fn load(&self, name: &str) -> Result<Option<Profile>, StateError> {
        Ok(self.load_snapshot(name)?.map(|s| s.profile))
    }

    /// Read a profile together with the text it was parsed from, so that a
    /// later [`StateStore::refresh`] or [`StateStore::update_from`] can skip
    /// parsing the file again when it has not changed.
    pub fn load_snapshot(&self, name: &str) -> Result<Option<Snapshot>, StateError> {
        let path = self.profile_path(name)?;
        let Some(text) = self.read_text(&path)? else {
            return Ok(None);
        };
        let profile = Profile::parse(&text, &path)?;
        Ok(Some(Snapshot { text, profile }))
    }

    /// Bring `known` up to date with the file: parsed again only if its text changed.
    pub fn refresh(&self, name: &str, known: &mut Snapshot) -> Result<(), StateError> {
        let path = self.profile_path(name)?;
        match self.read_text(&path)? {
            None => Err(StateError::NoProfile {
                profile: name.to_string(),
                dir: self.dir.clone(),
            }),
            Some(text) if text == known.text => Ok(()),
            Some(text) => {
                known.profile = Profile::parse(&text, &path)?;
                known.text = text;
                Ok(())
            }
        }
    }

    fn read_text(&self, path: &Path) -> Result<Option<String>, StateError> {
        match fs::read_to_string(path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StateError::io("read", path, e)),
        }
    }

    /// Read a profile that must exist.
    pub fn load_existing(&self, name: &str) -> Result<Profile, StateError> {
        self.load(name)?.ok_or_else(|| StateError::NoProfile {
            profile: name.to_string(),
            dir: self.dir.clone(),
        })
    }

    /// Write a profile atomically (temp file, fsync, rename, fsync dir), mode 0600.
    /// Callers that read-modify-write should use [`StateStore::update`].
    pub fn save(&self, profile: &Profile) -> Result<(), StateError> {
        self.ensure_dir()?;
        let path = self.profile_path(&profile.name)?;
        let text = profile.to_toml();
        write_atomic(&path, text.as_bytes()).map_err(|e| StateError::io("write", &path, e))
    }

    /// Read-modify-write a profile under the profile's state lock, so that
    /// concurrent commands (an `enable` while a `pull` commits) never lose each
    /// other's changes. The closure sees the file as it is on disk now.
    pub fn update<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Profile) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        self.update_or_create(name, |p| match p {
            Some(p) => f(p),
            None => Err(StateError::NoProfile {
                profile: name.to_string(),
                dir: self.dir.clone(),
            }),
        })
    }

    /// Like [`StateStore::update`], but starting from a snapshot this process
    /// read before: when the file still holds that text it is not parsed
    /// again (a large `seen` map makes parsing the main cost of a no-op pull).
    /// `known` is left holding what the file holds afterwards.
    pub fn update_from<T>(
        &self,
        name: &str,
        known: &mut Snapshot,
        f: impl FnOnce(&mut Profile) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        self.ensure_dir()?;
        let _guard = self.lock(name, LockMode::State)?;
        self.refresh(name, known)?;
        let mut profile = known.profile.clone();
        let out = f(&mut profile)?;
        if profile != known.profile {
            let path = self.profile_path(name)?;
            let text = profile.to_toml();
            write_atomic(&path, text.as_bytes()).map_err(|e| StateError::io("write", &path, e))?;
            *known = Snapshot { text, profile };
        }
        Ok(out)
    }

    /// Like [`StateStore::update`], but the closure also sees a profile that does
    /// not exist yet (`None`) and may create it by filling the option in.
    pub fn update_or_create<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Option<Profile>) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        self.ensure_dir()?;
        let _guard = self.lock(name, LockMode::State)?;
        let mut current = self.load(name)?;
        let before = current.clone();
        let out = f(&mut current)?;
        if let Some(p) = &current
            && before.as_ref() != Some(p)
        {
            self.save(p)?;
        }
        Ok(out)
    }

    /// Take one of the profile's locks. `LockMode::Pull` fails at once with
    /// [`StateError::Locked`] when held; `LockMode::State` waits (briefly held).
    pub fn lock(&self, name: &str, mode: LockMode) -> Result<ProfileLock, StateError> {
        validate_name(name)?;
        self.ensure_dir()?;
        ProfileLock::acquire(&self.dir, name, mode)
    }

    /// Every profile in the directory, by name.
    pub fn list(&self) -> Result<Vec<String>, StateError> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StateError::io("list", &self.dir, e)),
        };
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".toml")?;
                validate_name(stem).ok()?;
                Some(stem.to_string())
            })
            .collect();
        names.sort();
        Ok(names)
    }
}

/// Profile names become file names and keyring keys: keep them boring.
pub fn validate_name(name: &str) -> Result<(), StateError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(StateError::BadProfileName(name.to_string()))
    }
}

#[cfg(test)]
mod tests;
