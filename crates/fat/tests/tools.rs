//! A small private oracle helper (the shared testutil kit had not landed when this was written).

use std::process::{Command, Output};

/// True when `tool` is on PATH (or in /usr/sbin, /sbin). When it is missing: with
/// IMAGETOOL_REQUIRE_TOOLS=1 the test fails with the apt-get hint, otherwise it prints a skip.
pub fn have(tool: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|d| d.join(tool).is_file());
    if found {
        return true;
    }
    if std::env::var("IMAGETOOL_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{tool} is required: apt-get install -y {package}");
    }
    eprintln!("skipping: {tool} not found (apt-get install -y {package})");
    false
}

/// Runs a command with /usr/sbin on PATH; panics with its stderr when it fails.
#[allow(dead_code)]
pub fn run(cmd: &str, args: &[&str]) -> Output {
    let path = format!(
        "{}:/usr/sbin:/sbin",
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(cmd)
        .args(args)
        .env("PATH", path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command and returns (success, stdout + stderr) without failing.
pub fn try_run(cmd: &str, args: &[&str]) -> (bool, String) {
    let path = format!(
        "{}:/usr/sbin:/sbin",
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(cmd)
        .args(args)
        .env("PATH", path)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
