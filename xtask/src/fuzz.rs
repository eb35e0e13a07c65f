//! `cargo xtask fuzz [SECONDS]`: every cargo-fuzz target of `fuzz/` for a bounded time each.
//!
//! The toolchain is stable: cargo-fuzz runs with `RUSTC_BOOTSTRAP=1` (it passes `-Z` flags)
//! and `--sanitizer none` (no ASan on stable; the readers are safe Rust, so what the fuzzer
//! looks for is panics, aborts on huge allocations, and hangs). Each target starts from the
//! committed regression inputs (`fuzz/regressions/<target>/`) plus seeds made here (small
//! images of every container imagetool writes), works in a scratch corpus under
//! `fuzz/target/`, and runs under libFuzzer's `-rss_limit_mb=1024 -timeout=10`. A crash fails
//! the task and leaves its input in `fuzz/target/artifacts/<target>/`: fix it, then commit
//! that input to `fuzz/regressions/<target>/` (replayed on stable by
//! `crates/vdisk/tests/fuzz_regressions.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{run, workspace_root};

/// The cargo-fuzz release `cargo xtask` installs when `cargo fuzz` is missing.
const CARGO_FUZZ: &str = "0.13.2";
/// Seconds per target in `cargo xtask test`.
pub const CI_SECONDS: u64 = 8;

fn has_cargo_fuzz() -> bool {
    Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs every target for `seconds` each.
///
/// # Errors
/// cargo-fuzz cannot be installed or built, or a target finds a crash.
pub fn run_all(seconds: u64) -> Result<()> {
    if !has_cargo_fuzz() {
        run(Command::new("cargo").args([
            "install",
            "--locked",
            "cargo-fuzz",
            "--version",
            CARGO_FUZZ,
        ]))?;
    }
    let root = workspace_root();
    let fuzz = root.join("fuzz");
    let fuzz_cmd = |args: &[&str]| {
        let mut c = Command::new("cargo");
        c.current_dir(&fuzz)
            .env("RUSTC_BOOTSTRAP", "1")
            .arg("fuzz")
            .args(args);
        c
    };
    run(&mut fuzz_cmd(&["build", "--sanitizer", "none"]))?;
    // The targets as fuzz/Cargo.toml declares them (one list, kept by the fuzz crate).
    let listed = fuzz_cmd(&["list"]).output().context("cargo fuzz list")?;
    if !listed.status.success() {
        bail!(
            "cargo fuzz list failed: {}",
            String::from_utf8_lossy(&listed.stderr)
        );
    }
    let targets: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if targets.is_empty() {
        bail!("cargo fuzz list named no targets");
    }
    let scratch = fuzz.join("target/xtask");
    make_seeds(&root, &scratch.join("seeds"))?;
    for t in &targets {
        let corpus = scratch.join("corpus").join(t);
        let artifacts = scratch.join("artifacts").join(t);
        std::fs::create_dir_all(&corpus)?;
        std::fs::create_dir_all(&artifacts)?;
        let mut dirs = vec![corpus];
        for extra in [fuzz.join("regressions").join(t), seeds_for(&scratch, t)] {
            if extra.is_dir() {
                dirs.push(extra);
            }
        }
        let mut c = fuzz_cmd(&["run", t, "--sanitizer", "none"]);
        c.args(&dirs).arg("--").args([
            format!("-max_total_time={seconds}"),
            "-rss_limit_mb=1024".into(),
            "-malloc_limit_mb=1024".into(),
            "-timeout=10".into(),
            "-max_len=1048576".into(),
            "-print_final_stats=1".into(),
            format!("-artifact_prefix={}/", artifacts.display()),
        ]);
        run(&mut c).with_context(|| {
            format!(
                "fuzz target {t} found a crash: see {} (fix it, then commit the input to \
                 fuzz/regressions/{t}/)",
                artifacts.display()
            )
        })?;
    }
    Ok(())
}

fn seeds_for(scratch: &Path, target: &str) -> PathBuf {
    let kind = match target {
        "qcow2" | "vdi" | "vhd" | "vhdx" | "vmdk" | "container" => target,
        _ => "none",
    };
    scratch.join("seeds").join(kind)
}

/// Small images of every container, written by imagetool's own converter.
fn make_seeds(root: &Path, dir: &Path) -> Result<()> {
    let raw = dir.join("disk.raw");
    std::fs::create_dir_all(dir)?;
    let mut data = vec![0u8; 256 << 10];
    for (i, b) in data.iter_mut().enumerate().skip(70_000).take(5000) {
        *b = (i % 251) as u8;
    }
    std::fs::write(&raw, &data)?;
    for (kind, format) in [
        ("qcow2", "qcow2"),
        ("qcow2", "qcow2-compressed"),
        ("vdi", "vdi"),
        ("vhd", "vpc"),
        ("vhd", "vhd-fixed"),
        ("vhdx", "vhdx"),
        ("vmdk", "vmdk"),
        ("vmdk", "vmdk-stream"),
    ] {
        for sub in [kind, "container"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d)?;
            let out = d.join(format!("seed.{format}"));
            if out.exists() {
                continue;
            }
            let status = Command::new("cargo")
                .current_dir(root)
                .args(["run", "-q", "-p", "imagetool-cli", "--", "convert"])
                .arg(&raw)
                .args(["-O", format, "-o"])
                .arg(&out)
                .stdout(std::process::Stdio::null())
                .status()?;
            if !status.success() {
                bail!("making the {format} fuzz seed failed");
            }
        }
    }
    Ok(())
}
