//! `test`: not built yet.

use crate::cli::TestArgs;
use crate::{Context, Exit};

pub async fn run(_ctx: &Context, _args: &TestArgs) -> anyhow::Result<Exit> {
    Err(super::not_yet("test"))
}
