//! `authorize`: not built yet.

use crate::cli::AuthorizeArgs;
use crate::{Context, Exit};

pub async fn run(_ctx: &Context, _args: &AuthorizeArgs) -> anyhow::Result<Exit> {
    Err(super::not_yet("authorize"))
}
