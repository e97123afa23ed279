//! The committed `completions/` (shell completions and man pages) must be what
//! the binary generates from its clap definition today.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::common::Env;

const FIX: &str = "run `cargo run -- generate completions` and commit `completions/`";

fn committed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("completions")
}

fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; {FIX}", dir.display()))
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn assert_same(generated: &BTreeMap<String, Vec<u8>>, committed: &BTreeMap<String, Vec<u8>>) {
    for (name, bytes) in generated {
        match committed.get(name) {
            None => panic!("completions/{name} is missing; {FIX}"),
            Some(c) if c != bytes => panic!("completions/{name} is stale; {FIX}"),
            Some(_) => {}
        }
    }
    for name in committed.keys() {
        assert!(
            generated.contains_key(name),
            "completions/{name} is no longer generated; delete it ({FIX})"
        );
    }
}

#[test]
fn committed_completions_match_what_the_binary_generates() {
    let env = Env::new();
    let out = env.home().join("generated");
    env.cmd().arg("generate").arg(&out).assert().success();
    let generated = read_dir(&out);
    for expected in [
        "defender-ingest.bash",
        "_defender-ingest",
        "defender-ingest.fish",
        "_defender-ingest.ps1",
        "defender-ingest.elv",
        "defender-ingest.1",
        "defender-ingest-pull.1",
    ] {
        assert!(generated.contains_key(expected), "{expected} not generated");
    }
    assert_same(&generated, &read_dir(&committed_dir()));
}

#[test]
fn generated_files_do_not_embed_the_git_commit() {
    let files = defender_ingest::cmd::generate::files().unwrap();
    let version = defender_ingest::VERSION;
    let commit = version
        .split_once('(')
        .map(|(_, c)| c.trim_end_matches(')'))
        .unwrap();
    for (name, bytes) in files {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(commit), "{name} embeds `{commit}`");
        assert!(!text.contains(version), "{name} embeds `{version}`");
    }
}
