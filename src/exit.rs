//! Exit codes, decided in one place.
//!
//! Library code returns typed errors; the binary turns whatever error reached the
//! top into one of the contract's exit codes by walking the error chain here, so
//! no module has to know about process exit statuses.

use std::process::ExitCode;

/// The contract's exit codes (`CONTRACT.md`, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Error = 1,
    Usage = 2,
    NotAuthorized = 3,
    PermissionDenied = 4,
    Unavailable = 5,
    Locked = 6,
    OutputFailed = 7,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

/// A usage error found after clap parsed the command line (a bad `--since`, a
/// missing `--tenant` on first authorize, an `http://` URL to a remote host).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl UsageError {
    pub fn new(msg: impl Into<String>) -> Self {
        UsageError(msg.into())
    }
}

/// Map an error chain to the exit code the contract gives it. The first error in
/// the chain that has an opinion wins.
pub fn classify(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if cause.is::<UsageError>() {
            return Exit::Usage;
        }
        if let Some(e) = cause.downcast_ref::<crate::state::StateError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::secrets::SecretError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::auth::AuthError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::api::ApiError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::pull::PullError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::pull::sink::SinkError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::net::NetError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>()
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            return Exit::OutputFailed;
        }
    }
    Exit::Error
}
