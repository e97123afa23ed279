//! Records the git commit the binary was built from, for `--version`.
//!
//! In order: `DEFENDER_INGEST_GIT_COMMIT` from the build environment (for
//! distribution builds), the checkout this crate is the top of, or the
//! `.cargo_vcs_info.json` that `cargo package` leaves in a source tarball. A
//! tarball unpacked inside some other git checkout must not report that
//! checkout's commit, hence the top-level check.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
}

fn from_git(manifest_dir: &Path) -> Option<String> {
    let top = git(&["rev-parse", "--show-toplevel"])?;
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same(Path::new(&top), manifest_dir) {
        return None;
    }
    let commit = git(&["rev-parse", "--short=10", "HEAD"]).filter(|s| !s.is_empty())?;
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .map(|s| !s.is_empty())
        .unwrap_or(false);
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}

/// `{"git": {"sha1": "..."}}`, without a JSON parser.
fn from_vcs_info(manifest_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest_dir.join(".cargo_vcs_info.json")).ok()?;
    let rest = &text[text.find("\"sha1\"")? + 6..];
    let start = rest.find('"')? + 1;
    let sha: String = rest[start..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    (sha.len() >= 10).then(|| sha[..10].to_string())
}

fn main() {
    let manifest_dir = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    println!("cargo:rerun-if-env-changed=DEFENDER_INGEST_GIT_COMMIT");
    let value = std::env::var("DEFENDER_INGEST_GIT_COMMIT")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| from_git(&manifest_dir))
        .or_else(|| from_vcs_info(&manifest_dir))
        .unwrap_or_else(|| "unknown commit".to_string());
    println!("cargo:rustc-env=DEFENDER_INGEST_GIT_COMMIT={value}");
    // Rebuild when HEAD moves or the index changes (also in a `git worktree`,
    // where `.git` is a file and HEAD lives elsewhere).
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        for f in ["HEAD", "index"] {
            println!("cargo:rerun-if-changed={dir}/{f}");
        }
    }
    if let Some(common) = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]) {
        for f in ["refs/heads", "packed-refs"] {
            if Path::new(&common).join(f).exists() {
                println!("cargo:rerun-if-changed={common}/{f}");
            }
        }
    }
    if manifest_dir.join(".cargo_vcs_info.json").exists() {
        println!("cargo:rerun-if-changed=.cargo_vcs_info.json");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
