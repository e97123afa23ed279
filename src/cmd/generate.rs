//! The hidden `generate` subcommand: shell completions for bash, zsh, fish,
//! PowerShell and elvish, and the man page, all from the clap definition. The
//! committed `completions/` directory is its output; a test fails when stale.

use std::fs;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::Exit;
use crate::cli::{Cli, GenerateArgs};

pub const BIN: &str = "defender-ingest";

pub fn run(args: &GenerateArgs) -> anyhow::Result<Exit> {
    write_all(&args.dir)?;
    Ok(Exit::Ok)
}

/// Every generated file as (name, bytes).
pub fn files() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::PowerShell,
        Shell::Elvish,
    ] {
        let mut cmd = Cli::command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, BIN, &mut buf);
        let name = match shell {
            Shell::Bash => format!("{BIN}.bash"),
            Shell::Zsh => format!("_{BIN}"),
            Shell::Fish => format!("{BIN}.fish"),
            Shell::PowerShell => format!("_{BIN}.ps1"),
            Shell::Elvish => format!("{BIN}.elv"),
            _ => unreachable!(),
        };
        out.push((name, buf));
    }
    let mut man = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut man)?;
    out.push((format!("{BIN}.1"), man));
    Ok(out)
}

pub fn write_all(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    for (name, bytes) in files()? {
        fs::write(dir.join(&name), bytes)?;
    }
    Ok(())
}
