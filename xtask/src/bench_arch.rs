//! `cargo xtask bench arch [--runs N] [--debug]`: an aarch64 image built on this (x86_64) host against
//! the same-size x86_64 image, in the same run.
//!
//! The aarch64 input is the aarch64 fixture closure (Debian's arm64 packages). Its x86_64 twin
//! is a copy whose bootspec says `x86_64-linux` and whose systemd-boot binary is named
//! `systemd-bootx64.efi`: the same bytes to copy (within one byte), only the architecture
//! differs. Both are built as `efi` images with systemd-boot by the release CLI, alternating,
//! `--runs` times each (default 5); the medians and their ratio are printed. A ratio near 1
//! shows that the target architecture costs nothing: no emulation, the same copying.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{run, workspace_root};

pub fn run_bench(args: &[String]) -> Result<()> {
    let mut runs = 5usize;
    let mut release = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => {
                runs = it
                    .next()
                    .context("--runs needs a value")?
                    .parse()
                    .context("--runs: not a number")?;
            }
            "--debug" => release = false,
            _ => bail!("usage: cargo xtask bench arch [--runs N] [--debug]"),
        }
    }
    let root = workspace_root();
    let work = root.join("target/bench/arch");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let profile: &[&str] = if release { &["--release"] } else { &[] };
    run(Command::new("cargo")
        .current_dir(&root)
        .arg("build")
        .args(profile)
        .args(["-q", "-p", "imagetool-cli"]))?;
    let bin = root.join(if release {
        "target/release/imagetool"
    } else {
        "target/debug/imagetool"
    });
    let fx = imagetool_fixture::ensure_arch(imagetool_fixture::Arch::Aarch64)?;
    let twin = work.join("x86_64-twin");
    make_twin(&fx.dir, &twin, &fx.toplevel)?;

    let build = |dir: &Path, out: &Path| -> Result<Duration> {
        let t0 = Instant::now();
        run(Command::new(&bin)
            .args(["build", "--toplevel", &fx.toplevel, "--closure-info"])
            .arg(dir)
            .arg("--store-root")
            .arg(dir.join("store"))
            .args([
                "--partition",
                "efi",
                "--bootloader",
                "systemd-boot",
                "--progress",
                "none",
                // The twin's bootspec and loader name were edited after registration; both
                // sides skip verification so that they do the same work.
                "--no-verify",
                "--output",
            ])
            .arg(out))?;
        let dt = t0.elapsed();
        std::fs::remove_file(out)?;
        Ok(dt)
    };
    // Warm the page cache for both inputs.
    build(&fx.dir, &work.join("warm-a.img"))?;
    build(&twin, &work.join("warm-x.img"))?;
    let (mut a, mut x) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        a.push(build(&fx.dir, &work.join("aarch64.img"))?);
        x.push(build(&twin, &work.join("x86_64.img"))?);
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (ma, mx) = (median(&mut a), median(&mut x));
    let bytes = dir_bytes(&fx.dir.join("store"))?;
    println!(
        "bench arch: closure {} MiB, {} runs each (median wall time, {} CLI, efi + systemd-boot)",
        bytes >> 20,
        runs,
        if release { "release" } else { "debug" }
    );
    println!("  aarch64-linux image: {:>7.3} s", ma.as_secs_f64());
    println!("  x86_64-linux image:  {:>7.3} s", mx.as_secs_f64());
    println!(
        "  ratio aarch64 / x86_64: {:.2}",
        ma.as_secs_f64() / mx.as_secs_f64()
    );
    std::fs::remove_dir_all(&work)?;
    Ok(())
}

/// Copies the aarch64 closure and turns it into an x86_64 one of the same size.
fn make_twin(src: &Path, dst: &Path, toplevel: &str) -> Result<()> {
    run(Command::new("cp").arg("-a").arg(src).arg(dst))?;
    let store = dst.join("store");
    let top = store.join(toplevel.trim_start_matches('/'));
    run(Command::new("chmod").args(["-R", "u+w"]).arg(&store))?;
    let bj = top.join("boot.json");
    let text = std::fs::read_to_string(&bj)?;
    // Same length: "aarch64-linux" is one byte longer than "x86_64-linux".
    let new = text.replace("\"aarch64-linux\"", "\"x86_64-linux\" ");
    if new == text {
        bail!("{}: no aarch64-linux system", bj.display());
    }
    std::fs::write(&bj, new)?;
    let sd = std::fs::read_link(top.join("systemd"))?;
    let efi = store
        .join(sd.to_string_lossy().trim_start_matches('/'))
        .join("lib/systemd/boot/efi");
    std::fs::rename(
        efi.join("systemd-bootaa64.efi"),
        efi.join("systemd-bootx64.efi"),
    )?;
    Ok(())
}

fn dir_bytes(p: &Path) -> Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(p)? {
        let e = e?;
        let m = std::fs::symlink_metadata(e.path())?;
        if m.is_dir() {
            n += dir_bytes(&e.path())?;
        } else {
            n += m.len();
        }
    }
    Ok(n)
}
