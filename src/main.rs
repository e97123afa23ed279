//! The `defender-ingest` binary: parse, run, exit with the contract's code.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use defender_ingest::{Exit, cli::Cli, exit};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match defender_ingest::run(cli) {
        Ok(code) => code.into(),
        Err(err) => {
            let code = exit::classify(&err);
            // stderr may be gone too (a closed terminal): nothing more to do then.
            let _ = writeln!(
                std::io::stderr(),
                "defender-ingest: error: {}",
                message(&err)
            );
            if code == Exit::Ok {
                Exit::Error.into()
            } else {
                code.into()
            }
        }
    }
}

/// The error and its causes, each said once: many errors already include
/// their cause in their own message.
fn message(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}
