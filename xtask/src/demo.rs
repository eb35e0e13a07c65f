//! `cargo xtask demo`: the main job on the bundled default. Builds the fixture closure (a
//! small bootable NixOS-shaped system from Debian packages), builds a `hybrid` qcow2 image of
//! it with imagetool (release build of the CLI) with its bootloader installed natively
//! (systemd-boot on the ESP, GRUB in the BIOS boot partition), boots the image in QEMU under
//! OVMF through systemd-boot (no kernel given to QEMU), and shows the serial output and how
//! long each step took.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use imagetool_testutil::boot::{self, BootConfig, DiskFormat, Firmware};

use crate::{run, workspace_root};

/// Runs the demo; `args` may hold `--out DIR` (default `target/demo`).
pub fn run_demo(args: &[String]) -> Result<()> {
    let root = workspace_root();
    let out = match args {
        [flag, dir] if flag == "--out" => PathBuf::from(dir),
        [] => root.join("target/demo"),
        _ => bail!("usage: cargo xtask demo [--out DIR]"),
    };
    crate::deps::ensure_all()?;
    std::fs::create_dir_all(&out).with_context(|| out.display().to_string())?;
    let mut steps: Vec<(&str, f64)> = Vec::new();

    let t = Instant::now();
    let fx = imagetool_fixture::ensure().context("building the fixture closure")?;
    steps.push((
        "fixture closure (apt-get download + NAR hashing)",
        t.elapsed().as_secs_f64(),
    ));

    let t = Instant::now();
    run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "imagetool-cli",
    ]))?;
    steps.push((
        "cargo build --release (imagetool)",
        t.elapsed().as_secs_f64(),
    ));

    let image = out.join("nixos.qcow2");
    let t = Instant::now();
    run(Command::new(root.join("target/release/imagetool"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .arg("build")
        .args(["--toplevel", &fx.toplevel])
        .arg("--closure-info")
        .arg(&fx.dir)
        .arg("--store-root")
        .arg(&fx.store_root)
        .args([
            "--partition",
            "hybrid",
            "--bootloader",
            "auto",
            "--format",
            "qcow2",
            "--additional-space",
            "64M",
        ])
        .arg("--output")
        .arg(&image))?;
    steps.push((
        "imagetool build --partition hybrid --bootloader auto --format qcow2",
        t.elapsed().as_secs_f64(),
    ));
    run(Command::new(root.join("target/release/imagetool"))
        .arg("inspect")
        .arg(&image))
    .or_else(|_| run(Command::new("qemu-img").arg("info").arg(&image)))?;

    let expected = fx.expected_manifest_sha256()?;
    let cfg = BootConfig::new(Firmware::Ovmf).drive(&image, DiskFormat::Qcow2);
    let t = Instant::now();
    let result = boot::boot_and_expect(&cfg, &fx.toplevel, &expected);
    let boot_secs = t.elapsed().as_secs_f64();
    match &result {
        Ok(r) => {
            println!("---- serial console ({:?}) ----", r.accel);
            print!("{}", r.log);
            println!("---- end of serial console ----");
        }
        Err(e) => eprintln!("{e}"),
    }
    steps.push((
        "boot in QEMU (OVMF -> systemd-boot -> kernel) to the stage-2 marker",
        boot_secs,
    ));
    println!(
        "\nimage: {} ({} store paths)",
        image.display(),
        fx.store_paths.len()
    );
    println!("expected manifest sha256: {expected}");
    for (what, secs) in &steps {
        println!("{secs:>8.2}s  {what}");
    }
    result
        .map(|_| ())
        .context("the image did not boot to the marker")
}
