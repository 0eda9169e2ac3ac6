//! Embeds the project's `suites/*.yaml` and `matrices/*.yaml` into the
//! binary, so that one static binary copied to a cloud instance carries its
//! cases and environments with it. `*.example.yaml` files are templates to
//! copy and fill in (matrices/cloud.example.yaml), not environments of this
//! build, so they stay out.
//!
//! It also records the checkout's git revision as `PMUC_GIT_REVISION`
//! (`unknown` outside a git checkout), for certificates to name.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.join("../..");
    let mut out = String::new();
    embed(&root, "suites", "SUITES", &mut out);
    embed(&root, "matrices", "MATRICES", &mut out);
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("builtin_data.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
    git_revision(&root);
}

/// `PMUC_GIT_REVISION`: `git rev-parse --short=12 HEAD`, with `-dirty` when
/// tracked files differ from it, or `unknown`.
fn git_revision(root: &Path) {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let revision = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(head) if !head.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty { format!("{head}-dirty") } else { head }
        }
        _ => "unknown".to_owned(),
    };
    for watched in [".git/HEAD", ".git/index"] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo::rustc-env=PMUC_GIT_REVISION={revision}");
}

/// Writes `pub static NAME: &[(&str, &str)]`: (shown path, text) for each `dir/*.yaml`.
fn embed(root: &Path, dir: &str, name: &str, out: &mut String) {
    let folder = root.join(dir);
    println!("cargo::rerun-if-changed={}", folder.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == "yaml") && !p.to_string_lossy().ends_with(".example.yaml"));
    files.sort();
    writeln!(
        out,
        "/// `{dir}/*.yaml` as they were at build time: (shown path, text)."
    )
    .unwrap();
    writeln!(out, "pub static {name}: &[(&str, &str)] = &[").unwrap();
    for file in &files {
        println!("cargo::rerun-if-changed={}", file.display());
        let file_name = file.file_name().expect("a file").to_string_lossy();
        let absolute = file.canonicalize().expect("listed files exist");
        writeln!(
            out,
            "    (\"{dir}/{file_name}\", include_str!({:?})),",
            absolute.display().to_string()
        )
        .unwrap();
    }
    writeln!(out, "];").unwrap();
}
