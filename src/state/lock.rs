//! Advisory file locks per profile.
//!
//! Two locks, because they are held for very different times: the *pull* lock
//! for the whole of a `pull` (a second pull must fail at once, exit 6), and the
//! *state* lock around each read-modify-write of the TOML file (held for
//! milliseconds, so others simply wait for it). The lock files are never
//! deleted: deleting a lock file races with a process about to lock it.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::StateError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Held for a whole pull; fail fast when taken.
    Pull,
    /// Held around a state write; wait for it (up to 30 s).
    State,
}

/// A held lock; released on drop (and by the OS if the process dies).
#[derive(Debug)]
pub struct ProfileLock {
    _file: File,
    path: PathBuf,
}

impl ProfileLock {
    pub(super) fn acquire(dir: &Path, profile: &str, mode: LockMode) -> Result<Self, StateError> {
        let path = dir.join(match mode {
            LockMode::Pull => format!("{profile}.pull.lock"),
            LockMode::State => format!("{profile}.lock"),
        });
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts
            .open(&path)
            .map_err(|e| StateError::io("open the lock file", &path, e))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(ProfileLock { _file: file, path }),
                Err(TryLockError::WouldBlock)
                    if mode == LockMode::State && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(StateError::Locked {
                        profile: profile.to_string(),
                        path,
                    });
                }
                Err(TryLockError::Error(e)) => return Err(StateError::io("lock", &path, e)),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
