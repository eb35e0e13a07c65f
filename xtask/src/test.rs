//! `cargo xtask test`: the whole test gate, as CI runs it.

use std::process::Command;

use anyhow::Result;

use crate::{run, workspace_root};

/// Installs what is missing, then runs fmt, clippy and every test.
pub fn all(extra: &[String]) -> Result<()> {
    let root = workspace_root();
    crate::deps::ensure_all()?;
    run(Command::new("cargo")
        .current_dir(&root)
        .args(["fmt", "--all", "--", "--check"]))?;
    // Modules depend one way inside every crate (a text scan: milliseconds).
    crate::cycles::run_cycles()?;
    run(Command::new("cargo").current_dir(&root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The facade without its default features (no SQLite, no zstd) still builds, lint-clean:
    // a crate user's `default-features = false` (docs/library.md, "Cargo features").
    run(Command::new("cargo").current_dir(&root).args([
        "clippy",
        "-p",
        "imagetool",
        "--no-default-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The library face: API docs build without a warning, and every published crate packages
    // (and its packaged sources build on their own, against each other, as from crates.io).
    run(Command::new("cargo")
        .current_dir(&root)
        .env("RUSTDOCFLAGS", "-D warnings")
        .args(["doc", "--workspace", "--no-deps", "--lib", "-q"]))?;
    forget_packaged_sources()?;
    run(Command::new("cargo").current_dir(&root).args([
        "package",
        "--workspace",
        "--allow-dirty",
        "--exclude",
        "imagetool-fixture",
        "--exclude",
        "imagetool-testutil",
        "--exclude",
        "xtask",
        "--exclude",
        "imagetool-cli",
        "--exclude",
        "imagetool-benches",
        "-q",
    ]))?;
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&root);
    if has_nextest() {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd.args(extra);
    if std::env::var_os("CI").is_some() {
        // In CI every oracle must be present: a missing tool fails its test, not skips it.
        cmd.env("IMAGETOOL_REQUIRE_TOOLS", "1");
    }
    // Doctests are not run by nextest; run them first so nextest's summary closes the log.
    run(Command::new("cargo")
        .current_dir(&root)
        .args(["test", "--workspace", "--doc"]))?;
    run(&mut cmd)?;
    crate::examples::run_examples()?;
    // Every reader of untrusted bytes, fuzzed for a bounded time (docs/testing.md).
    crate::fuzz::run_all(crate::fuzz::CI_SECONDS)
}

/// `cargo package` verifies through a temporary local registry (`target/package/tmp-registry`)
/// and unpacks our crates from it into `$CARGO_HOME/registry/src/-<hash of that path>/`. Cargo
/// keeps those unpacked sources and reuses them when the version is unchanged, so a second run
/// in the same checkout would verify against the previous run's code (a function added since
/// is "not found"). Forget them first: only our own crates, only in local registries (the
/// directories whose name starts with `-`), never crates.io's.
fn forget_packaged_sources() -> Result<()> {
    let cargo_home = std::env::var_os("CARGO_HOME").map_or_else(
        || std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"),
        std::path::PathBuf::from,
    );
    let Ok(registries) = std::fs::read_dir(cargo_home.join("registry/src")) else {
        return Ok(());
    };
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        for krate in std::fs::read_dir(registry.path())?.flatten() {
            if krate.file_name().to_string_lossy().starts_with("imagetool") {
                std::fs::remove_dir_all(krate.path())?;
            }
        }
    }
    Ok(())
}

fn has_nextest() -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
