//! `sandbox`: not built yet.

use crate::cli::SandboxArgs;
use crate::{Context, Exit};

pub async fn run(_ctx: &Context, _args: &SandboxArgs) -> anyhow::Result<Exit> {
    Err(super::not_yet("sandbox"))
}
