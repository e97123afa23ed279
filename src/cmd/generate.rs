//! The hidden `generate` subcommand: shell completions for bash, zsh, fish,
//! PowerShell and elvish, and man pages (one for the tool, one per subcommand),
//! all from the clap definition. The committed `completions/` directory is its
//! output (`cargo run -- generate completions`); a test fails when it is stale.
//!
//! The files are made from the command with the bare package version, not the
//! `--version` string with its git commit, so they change only when the command
//! line (or the release) does.

use std::fs;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::Exit;
use crate::cli::{Cli, GenerateArgs};

pub const BIN: &str = "defender-ingest";

pub fn run(args: &GenerateArgs) -> anyhow::Result<Exit> {
    let names = write_all(&args.dir)?;
    eprintln!(
        "wrote {} files to {}: {}",
        names.len(),
        args.dir.display(),
        names.join(", ")
    );
    Ok(Exit::Ok)
}

/// The command line as the generated files describe it: no git commit.
fn command() -> clap::Command {
    Cli::command().version(env!("CARGO_PKG_VERSION"))
}

/// Every generated file as (name, bytes), in a stable order.
pub fn files() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for (shell, name) in [
        (Shell::Bash, format!("{BIN}.bash")),
        (Shell::Zsh, format!("_{BIN}")),
        (Shell::Fish, format!("{BIN}.fish")),
        (Shell::PowerShell, format!("_{BIN}.ps1")),
        (Shell::Elvish, format!("{BIN}.elv")),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut command(), BIN, &mut buf);
        out.push((name, buf));
    }
    let mut cmd = command().disable_help_subcommand(true);
    cmd.build();
    man_pages(&cmd, &mut out)?;
    Ok(out)
}

/// `defender-ingest.1` and `defender-ingest-{sub}.1` for each visible subcommand.
fn man_pages(cmd: &clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    let man =
        clap_mangen::Man::new(cmd.clone()).source(format!("{BIN} {}", env!("CARGO_PKG_VERSION")));
    let mut page = Vec::new();
    man.render(&mut page)?;
    out.push((man.get_filename(), page));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, out)?;
    }
    Ok(())
}

/// Write every file into `dir` (created if missing); returns their names.
pub fn write_all(dir: &Path) -> anyhow::Result<Vec<String>> {
    fs::create_dir_all(dir)?;
    let mut names = Vec::new();
    for (name, bytes) in files()? {
        fs::write(dir.join(&name), bytes)?;
        names.push(name);
    }
    Ok(names)
}
