//! One file per subcommand; each turns its arguments and the [`Context`] into
//! calls on the library and returns the exit code of the outcome.

pub mod authorize;
pub mod demo;
pub mod generate;
pub mod logout;
pub mod pull;
pub mod sandbox;
pub mod status;
pub mod test;
pub mod toggle;

use crate::cli::Command;
use crate::{Context, Exit};

pub async fn dispatch(ctx: &Context, command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Authorize(a) => authorize::run(ctx, &a).await,
        Command::Test(a) => test::run(ctx, &a).await,
        Command::Enable(_) => toggle::run(ctx, true),
        Command::Disable(_) => toggle::run(ctx, false),
        Command::Status(a) => status::run(ctx, &a),
        Command::Pull(a) => pull::run(ctx, &a).await,
        Command::Logout(_) => logout::run(ctx),
        Command::Sandbox(a) => sandbox::run(ctx, &a).await,
        Command::Demo(a) => demo::run(ctx, &a).await,
        Command::Generate(a) => generate::run(&a),
    }
}
