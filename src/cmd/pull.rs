//! `pull`: not built yet.

use crate::cli::PullArgs;
use crate::{Context, Exit};

pub async fn run(_ctx: &Context, _args: &PullArgs) -> anyhow::Result<Exit> {
    Err(super::not_yet("pull"))
}
