//! `cargo xtask bench ext4 [--tree DIR] [--skip-bigdir]`: imagetool's ext4 writer against
//! `mkfs.ext4 -d` on the same tree in the same run: wall time and peak RSS (from
//! `/usr/bin/time -v`), imagetool with 1 and 2 threads, plus a 60,000-entry directory alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

struct Run {
    wall: Duration,
    rss_kib: u64,
}

/// Runs `cmd` under `/usr/bin/time -v`, with a timeout, and returns wall time and peak RSS.
fn measure(args: &[&str], timeout_s: u64) -> Result<Option<Run>> {
    let mut cmd = Command::new("timeout");
    cmd.arg(timeout_s.to_string())
        .arg("/usr/bin/time")
        .arg("-v")
        .args(args);
    let start = std::time::Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("running {args:?} (needs /usr/bin/time: apt-get install time)"))?;
    let wall = start.elapsed();
    if out.status.code() == Some(124) {
        return Ok(None);
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("{args:?} failed: {err}");
    }
    let rss_kib = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(Some(Run { wall, rss_kib }))
}

fn fmt(r: &Option<Run>, timeout_s: u64) -> String {
    match r {
        Some(r) => format!(
            "{:>8.2} s {:>7} MiB",
            r.wall.as_secs_f64(),
            r.rss_kib / 1024
        ),
        None => format!("> {timeout_s} s (timed out)"),
    }
}

fn ratio(base: &Option<Run>, x: &Option<Run>, timeout_s: u64) -> String {
    match (base, x) {
        (Some(b), Some(x)) => format!("{:.1}x", b.wall.as_secs_f64() / x.wall.as_secs_f64()),
        (None, Some(x)) => format!("> {:.1}x", timeout_s as f64 / x.wall.as_secs_f64()),
        _ => "-".into(),
    }
}

fn compare(name: &str, tree: &Path, work: &Path, bin: &Path, timeout_s: u64) -> Result<()> {
    let ours = work.join("imagetool.img");
    let s = |p: &Path| p.to_string_lossy().into_owned();
    // Warm the inode and dentry caches once, so no tool pays for the cold tree alone.
    let _ = Command::new("du").arg("-s").arg(tree).output();
    let mut rows = Vec::new();
    for threads in ["1", "2"] {
        let r = measure(
            &[
                &s(bin),
                "mkfs",
                "ext4",
                "--source",
                &s(tree),
                "--output",
                &s(&ours),
                "--threads",
                threads,
            ],
            timeout_s,
        )?;
        rows.push((format!("imagetool --threads {threads}"), r));
    }
    let size = std::fs::metadata(&ours)?.len();
    let theirs = work.join("mke2fs.img");
    let _ = std::fs::remove_file(&theirs);
    // mke2fs packs less tightly (inode ratio, no exact sizing): give it a quarter more room.
    std::fs::File::create(&theirs)?.set_len(size / 4 * 5 + (64 << 20))?;
    let m = measure(
        &[
            "mkfs.ext4",
            "-q",
            "-F",
            "-b",
            "4096",
            "-d",
            &s(tree),
            &s(&theirs),
        ],
        timeout_s,
    )?;
    println!("\n## {name} ({} MiB image)\n", size >> 20);
    println!("| tool | wall | peak RSS | speed-up vs mkfs.ext4 -d |\n|---|---|---|---|");
    println!(
        "| mkfs.ext4 -d | {} | 1.0x |",
        fmt(&m, timeout_s).replacen(" s ", " s | ", 1)
    );
    for (label, r) in &rows {
        println!(
            "| {label} | {} | {} |",
            fmt(r, timeout_s).replacen(" s ", " s | ", 1),
            ratio(&m, r, timeout_s)
        );
    }
    let _ = std::fs::remove_file(&ours);
    let _ = std::fs::remove_file(&theirs);
    Ok(())
}

/// A generated store-like tree: `files` files of mixed sizes in 1/10 as many directories.
fn generate(dir: &Path, files: usize) -> Result<()> {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut buf = vec![0u8; 1 << 20];
    for (k, b) in buf.iter_mut().enumerate() {
        *b = (k as u64).wrapping_mul(0x9E37) as u8;
    }
    for i in 0..files {
        let d = dir.join(format!("store/{:016x}-pkg-{}", rnd(), i / 10));
        std::fs::create_dir_all(&d)?;
        let size = match rnd() % 10 {
            0..=5 => rnd() % 8192,
            6..=8 => rnd() % 65536,
            _ => rnd() % (1 << 20),
        } as usize;
        std::fs::write(d.join(format!("file{i}")), &buf[..size])?;
    }
    Ok(())
}

/// `cargo xtask bench ext4 [--tree DIR] [--timeout SECS]`.
pub fn run(args: &[String]) -> Result<()> {
    let mut it = args.iter();
    let what = it.next().map(String::as_str);
    if what != Some("ext4") {
        bail!("usage: cargo xtask bench ext4 [--tree DIR] [--timeout SECS]");
    }
    let mut tree: Option<PathBuf> = None;
    let mut timeout_s = 600;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--tree" => tree = it.next().map(PathBuf::from),
            "--timeout" => {
                timeout_s = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .context("--timeout SECS")?;
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    let bin = crate::measure::release_cli(&crate::workspace_root())?;
    let work = std::env::temp_dir().join(format!("imagetool-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = (|| {
        let tree = match tree {
            Some(t) => t,
            None => {
                let t = work.join("tree");
                eprintln!("bench: generating a 20,000-file tree in {}", t.display());
                generate(&t, 20_000)?;
                t
            }
        };
        compare(
            &format!("tree {}", tree.display()),
            &tree,
            &work,
            &bin,
            timeout_s,
        )?;
        let big = work.join("bigdir");
        std::fs::create_dir_all(big.join("d"))?;
        let long = "x".repeat(200);
        for i in 0..60_000 {
            std::fs::File::create(big.join(format!("d/{i:05}-{long}")))?;
        }
        compare(
            "one directory with 60,000 entries",
            &big,
            &work,
            &bin,
            timeout_s,
        )
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}
