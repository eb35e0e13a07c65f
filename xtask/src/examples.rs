//! `cargo xtask examples`: runs the facade crate's examples on the fixture and checks what they
//! wrote with the independent tools (e2fsck, qemu-img). Part of `cargo xtask test`.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{run, workspace_root};

/// Runs every example of `crates/imagetool/examples` against the fixture closure.
pub fn run_examples() -> Result<()> {
    let root = workspace_root();
    let fixture = imagetool_fixture::ensure().context("building the fixture closure")?;
    let out = root.join("target/examples-check");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("{}", out.display()))?;
    }
    std::fs::create_dir_all(&out).with_context(|| format!("{}", out.display()))?;
    let example = |name: &str| {
        let mut c = Command::new("cargo");
        c.current_dir(&root)
            .args(["run", "-q", "-p", "imagetool", "--example", name, "--"]);
        c
    };

    // mkfs_ext4: the fixture's store as an ext4 image; e2fsck must find it clean.
    let img = out.join("store.img");
    run(example("mkfs_ext4")
        .arg(&fixture.store_root)
        .arg(&img)
        .arg("nix-store")
        .env("SOURCE_DATE_EPOCH", "315532800"))?;
    run(Command::new("e2fsck").args(["-fn"]).arg(&img))?;

    // raw_to_qcow2, plain and compressed: qemu-img must see the same disk.
    for (file, flag) in [("store.qcow2", None), ("store-c.qcow2", Some("--compress"))] {
        let q = out.join(file);
        let mut c = example("raw_to_qcow2");
        c.arg(&img).arg(&q);
        if let Some(f) = flag {
            c.arg(f);
        }
        run(&mut c)?;
        run(Command::new("qemu-img").args(["check", "-q"]).arg(&q))?;
        run(Command::new("qemu-img")
            .args(["compare", "-q"])
            .arg(&img)
            .arg(&q))?;
    }

    // build_image: the fixture's hybrid qcow2 through the library's builder methods must be
    // byte-for-byte the image the CLI builds with the same settings.
    let lib_img = out.join("lib.qcow2");
    run(example("build_image")
        .arg(&fixture.toplevel)
        .arg(&fixture.dir)
        .arg(&fixture.store_root)
        .arg(&lib_img))?;
    run(Command::new("qemu-img").args(["check", "-q"]).arg(&lib_img))?;
    let cli_img = out.join("cli.qcow2");
    run(Command::new("cargo")
        .current_dir(&root)
        .args([
            "run",
            "-q",
            "-p",
            "imagetool-cli",
            "--",
            "build",
            "--toplevel",
        ])
        .arg(&fixture.toplevel)
        .arg("--closure-info")
        .arg(&fixture.dir)
        .arg("--store-root")
        .arg(&fixture.store_root)
        .args([
            "--partition",
            "hybrid",
            "--format",
            "qcow2",
            "--label",
            "nixos",
        ])
        .args(["--progress", "none", "--output"])
        .arg(&cli_img))?;
    if std::fs::read(&lib_img)? != std::fs::read(&cli_img)? {
        bail!(
            "{} (library) and {} (CLI) differ",
            lib_img.display(),
            cli_img.display()
        );
    }

    // Bad input: a clear error and a failure status, no output left.
    let missing = out.join("missing.qcow2");
    let status = example("raw_to_qcow2")
        .arg(out.join("no-such.img"))
        .arg(&missing)
        .status()?;
    if status.success() || missing.exists() {
        bail!("raw_to_qcow2 on a missing input must fail and leave no output");
    }
    eprintln!("xtask: examples ok");
    Ok(())
}
