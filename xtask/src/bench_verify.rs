//! `cargo xtask bench verify [--closure DIR] [--files N] [--runs R]`: what verifying the store
//! on the way in costs, and the parallel NAR hash of one large store path.
//!
//! * On the benchmark closure (`cargo xtask fixture --bench --out DIR`; by default
//!   target/bench/closure): `imagetool build --format raw` with and without `--no-verify`,
//!   alternated `R` times (default 3), best wall and CPU time of each; verification's cost is
//!   the difference over the verified build's wall time. Then raw again from a cold page cache
//!   (dropped before every run; root only), where the one read of the store shows.
//! * One store path of `N` small files (default 300,000), given by a references graph without
//!   hashes so that imagetool must hash it while loading: `imagetool build` of it, against
//!   `nix-hash --type sha256` (Nix's own NAR hash, one thread) of the same directory. CPU
//!   seconds over wall seconds show how many cores worked.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::workspace_root;

/// Runs `cmd` after `sync`; (wall, CPU) seconds.
fn time(cmd: &mut Command) -> Result<(f64, f64)> {
    let _ = Command::new("sync").status();
    let cpu = crate::measure::children_cpu();
    let t = Instant::now();
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    let wall = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((wall, crate::measure::children_cpu() - cpu))
}

pub fn run_bench(args: &[String]) -> Result<()> {
    let root = workspace_root();
    let mut closure = root.join("target/bench/closure");
    let mut files: usize = 300_000;
    let mut runs: usize = 3;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().context("a flag without its value")?;
        match flag.as_str() {
            "--closure" => closure = value.into(),
            "--files" => files = value.parse().context("--files N")?,
            "--runs" => runs = value.parse().context("--runs R")?,
            _ => bail!("usage: cargo xtask bench verify [--closure DIR] [--files N] [--runs R]"),
        }
    }
    let bin = crate::measure::release_cli(&root)?;
    let work = root.join("target/bench/verify");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = (|| {
        closure_cost(&bin, &closure, &work, runs)?;
        one_large_path(&bin, &work, files)
    })();
    let _ = Command::new("chmod")
        .arg("-R")
        .arg("u+w")
        .arg(&work)
        .status();
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn closure_cost(bin: &Path, dir: &Path, work: &Path, runs: usize) -> Result<()> {
    let toplevel = std::fs::read_to_string(dir.join("toplevel")).with_context(|| {
        format!(
            "{}: not a closure from cargo xtask fixture --bench",
            dir.display()
        )
    })?;
    // Warm the page cache with the closure.
    crate::measure::warm_page_cache(&dir.join("store"))?;
    let out = work.join("a.img");
    let build = |format: &str, verify: bool| {
        let mut c = Command::new(bin);
        c.arg("build")
            .args(["--toplevel", toplevel.trim(), "--closure-info"])
            .arg(dir)
            .arg("--store-root")
            .arg(dir.join("store"))
            .args(["--partition", "hybrid", "--bootloader", "none"])
            .args(["--format", format, "--output"])
            .arg(&out);
        if !verify {
            c.arg("--no-verify");
        }
        c
    };
    println!(
        "imagetool build of {} (best of {runs}, a fresh output each run)\n",
        dir.display()
    );
    println!("| format | build | wall s | CPU s | verification's share of the wall time |");
    println!("|---|---|---|---|---|");
    // raw: the least work besides reading, so the hash's share is largest; qcow2: the format
    // most variants ship. Then raw from a cold page cache (root only: the caches are dropped
    // before each run), where reading the store once instead of twice shows.
    for (format, cold) in [("raw", false), ("qcow2", false), ("raw", true)] {
        if cold && !drop_caches() {
            println!("| {format} | cold cache | skipped: dropping the page cache needs root | | |");
            continue;
        }
        let (mut on, mut off) = ((f64::MAX, 0.0), (f64::MAX, 0.0));
        for _ in 0..runs.max(1) {
            for verify in [true, false] {
                if cold {
                    drop_caches();
                }
                let r = time(&mut build(format, verify))?;
                let best = if verify { &mut on } else { &mut off };
                if r.0 < best.0 {
                    *best = r;
                }
                std::fs::remove_file(&out)?;
            }
        }
        let what = if cold { ", cold cache" } else { "" };
        println!(
            "| {format}{what} | verified (default) | {:.2} | {:.2} | {:.1} % ({:+.2} s wall, {:+.2} s CPU) |",
            on.0,
            on.1,
            100.0 * (on.0 - off.0) / on.0,
            on.0 - off.0,
            on.1 - off.1
        );
        println!(
            "| {format}{what} | --no-verify | {:.2} | {:.2} | |",
            off.0, off.1
        );
    }
    println!("\nload average after: {}", crate::measure::loadavg());
    if let Some(line) = crate::measure::free_page_reporting() {
        println!("{line}");
    }
    println!();
    Ok(())
}

/// Writes back and drops the page cache (`sync; echo 3 > /proc/sys/vm/drop_caches`); whether
/// it could (root only).
fn drop_caches() -> bool {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn one_large_path(bin: &Path, work: &Path, files: usize) -> Result<()> {
    let store = work.join("store");
    let name = "00000000000000000000000000000000-one-large-path";
    let path = store.join("nix/store").join(name);
    eprintln!("bench: writing {files} files into {}", path.display());
    for i in 0..files {
        let d = path.join(format!("{:03}", i % 1000));
        if i < 1000 {
            std::fs::create_dir_all(&d)?;
        }
        std::fs::write(
            d.join(format!("f{i}")),
            format!("file {i}\n").repeat(1 + i % 7),
        )?;
    }
    let graph = work.join("graph");
    std::fs::write(&graph, format!("/nix/store/{name}\n\n0\n"))?;
    let out = work.join("big.img");
    crate::measure::warm_page_cache(&store.join("nix"))?;
    let ours = time(
        Command::new(bin)
            .arg("build")
            .arg("--references-graph")
            .arg(&graph)
            .arg("--store-root")
            .arg(&store)
            .args(["--partition", "none", "--bootloader", "none"])
            .args(["--format", "raw", "--output"])
            .arg(&out),
    )?;
    std::fs::remove_file(&out)?;
    let nix = time(
        Command::new("nix-hash")
            .args(["--type", "sha256"])
            .arg(&path)
            .env("NIX_CONFIG", "build-users-group =\nsandbox = false"),
    );
    println!(
        "one store path of {files} files, hash missing (load average after: {})\n",
        crate::measure::loadavg()
    );
    println!("| run | wall s | CPU s | cores busy (CPU/wall) |");
    println!("|---|---|---|---|");
    println!(
        "| imagetool build (hashes the path while loading, then writes the image) | {:.2} | {:.2} | {:.2} |",
        ours.0,
        ours.1,
        ours.1 / ours.0
    );
    match nix {
        Ok(n) => println!(
            "| nix-hash --type sha256 (NAR hash only, one thread) | {:.2} | {:.2} | {:.2} |",
            n.0,
            n.1,
            n.1 / n.0
        ),
        Err(e) => println!("| nix-hash: not run ({e}) | | | |"),
    }
    println!();
    Ok(())
}
