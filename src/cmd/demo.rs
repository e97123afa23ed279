//! `demo`: not built yet.

use crate::cli::DemoArgs;
use crate::{Context, Exit};

pub async fn run(_ctx: &Context, _args: &DemoArgs) -> anyhow::Result<Exit> {
    Err(super::not_yet("demo"))
}
