//! A small private oracle helper (the shared testutil kit had not landed when this was written).

use std::path::Path;
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

/// `sfdisk --dump` with the device name removed (and the label-id line when `drop_label_id`).
pub fn sfdisk_dump(img: &Path, drop_label_id: bool) -> String {
    let out = run("sfdisk", &["--dump", img.to_str().unwrap()]);
    let name = img.to_str().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !(l.starts_with("device:") || (drop_label_id && l.starts_with("label-id:"))))
        .map(|l| l.replace(name, "IMG"))
        .collect::<Vec<_>>()
        .join("\n")
}
