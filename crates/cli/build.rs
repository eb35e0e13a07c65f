//! `--version`'s detail: the git revision of the checkout (when there is one) and the target.

use std::process::Command;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=IMAGETOOL_TARGET={target}");
    // A release build (a Nix build, a crate tarball) has no checkout: "unknown", or the
    // revision the packager gives in IMAGETOOL_GIT_REV.
    let rev = std::env::var("IMAGETOOL_GIT_REV")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
                .filter(|r| !r.is_empty())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=IMAGETOOL_GIT_REV={rev}");
    println!("cargo:rerun-if-env-changed=IMAGETOOL_GIT_REV");
    if let Ok(out) = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .output()
        && out.status.success()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/logs/HEAD");
    }
}
