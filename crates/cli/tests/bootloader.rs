//! `imagetool build --bootloader …` on bad input: a toplevel with no bootspec, a bootspec naming
//! a kernel outside the closure, a bootloader the table cannot boot; and no `grub-mkimage`
//! (the closure's or the host's) ever runs. Each is a clear error naming the file, key or tool, a non-zero exit, and
//! nothing left in the output directory. (The good cases boot in
//! crates/imagetool/tests/boot_matrix.rs.)

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imagetool_fixture::Fixture;

struct Case {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    out_dir: PathBuf,
}

impl Case {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let out_dir = dir.join("out");
        std::fs::create_dir(&out_dir).unwrap();
        Self {
            _tmp: tmp,
            dir,
            out_dir,
        }
    }

    fn run(&self, fx: &Fixture, store_root: &Path, extra: &[&str], path_env: &str) -> Output {
        Command::new(env!("CARGO_BIN_EXE_imagetool"))
            .env("PATH", path_env)
            .arg("build")
            .args(["--toplevel", &fx.toplevel])
            .arg("--closure-info")
            .arg(&fx.dir)
            .arg("--store-root")
            .arg(store_root)
            .arg("--output")
            .arg(self.out_dir.join("nixos.img"))
            // These cases edit the store's bootspec on purpose: the registration no longer
            // matches, and the store check (tested in tests/build.rs) would fail first.
            .arg("--no-verify")
            .args(extra)
            .output()
            .unwrap()
    }

    /// Runs a build that must fail; returns stderr after checking that nothing is left.
    fn must_fail(&self, fx: &Fixture, store_root: &Path, extra: &[&str], path_env: &str) -> String {
        let out = self.run(fx, store_root, extra, path_env);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "expected failure: {extra:?}\n{err}");
        let left: Vec<_> = std::fs::read_dir(&self.out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        err
    }

    /// A writable copy of the fixture's store root.
    fn store_copy(&self, fx: &Fixture) -> PathBuf {
        let to = self.dir.join("store");
        let st = Command::new("cp")
            .arg("-a")
            .arg(&fx.store_root)
            .arg(&to)
            .status()
            .unwrap();
        assert!(st.success());
        to
    }
}

fn host_path() -> String {
    std::env::var("PATH").unwrap_or_default()
}

fn toplevel_dir(store: &Path, fx: &Fixture) -> PathBuf {
    let t = store.join(fx.toplevel.trim_start_matches('/'));
    std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o755)).unwrap();
    t
}

#[test]
fn test_toplevel_without_bootspec_is_a_clear_error() {
    let fx = imagetool_fixture::ensure().unwrap();
    let c = Case::new();
    let store = c.store_copy(&fx);
    std::fs::remove_file(toplevel_dir(&store, &fx).join("boot.json")).unwrap();
    let err = c.must_fail(
        &fx,
        &store,
        &["--partition", "efi", "--bootloader", "auto"],
        &host_path(),
    );
    assert!(
        err.contains("boot.json") && err.contains("no bootspec"),
        "{err}"
    );
    // With no bootloader the bootspec is not needed.
    let out = c.run(
        &fx,
        &store,
        &["--partition", "efi", "--bootloader", "none"],
        &host_path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn test_bootspec_kernel_outside_the_closure_is_named() {
    let fx = imagetool_fixture::ensure().unwrap();
    let c = Case::new();
    let store = c.store_copy(&fx);
    let file = toplevel_dir(&store, &fx).join("boot.json");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let kernel = text
        .lines()
        .find(|l| l.contains("\"kernel\""))
        .unwrap()
        .to_string();
    let outside = "/nix/store/00000000000000000000000000000000-linux-elsewhere/bzImage";
    let replaced = text.replace(&kernel, &format!("    \"kernel\": \"{outside}\","));
    std::fs::write(&file, replaced).unwrap();
    let err = c.must_fail(
        &fx,
        &store,
        &["--partition", "hybrid", "--bootloader", "auto"],
        &host_path(),
    );
    assert!(
        err.contains("boot.json")
            && err.contains("\"kernel\"")
            && err.contains(outside)
            && err.contains("not in the closure"),
        "{err}"
    );
}

/// A `grub-mkimage` that records that it ran (and fails).
fn plant_trap(at: &Path, marker: &Path) {
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    std::fs::write(
        at,
        format!(
            "#!/bin/sh\necho \"$0 $*\" >> '{}'\nexit 1\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn test_grub_images_are_assembled_without_running_any_grub_mkimage() {
    // issue 14 item 4 / issue 16: a closure is data. Booby-trapped grub-mkimages in the
    // closure's GRUB store paths (`bin/grub-mkimage`) and as the only program on PATH must
    // not run, and GRUB images (BIOS core.img and BOOTX64.EFI) are still built.
    let fx = imagetool_fixture::ensure().unwrap();
    let c = Case::new();
    let store = c.store_copy(&fx);
    let marker = c.dir.join("grub-mkimage-ran");
    let mut planted = 0;
    for p in &fx.store_paths {
        let host = store.join(p.trim_start_matches('/'));
        if host.join("lib/grub").is_dir() {
            std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o755)).unwrap();
            plant_trap(&host.join("bin/grub-mkimage"), &marker);
            planted += 1;
        }
    }
    assert_eq!(
        planted, 2,
        "the fixture has GRUB for i386-pc and x86_64-efi"
    );
    let bin = c.dir.join("path-bin");
    plant_trap(&bin.join("grub-mkimage"), &marker);
    for table in ["legacy", "hybrid"] {
        let out = c.run(
            &fx,
            &store,
            &["--partition", table, "--bootloader", "auto"],
            &bin.to_string_lossy(),
        );
        assert!(
            out.status.success(),
            "{table}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let img = std::fs::read(c.out_dir.join("nixos.img")).unwrap();
        // boot.img in the MBR, the core image behind it.
        assert_eq!(&img[510..512], &[0x55, 0xAA], "{table}");
        std::fs::remove_file(c.out_dir.join("nixos.img")).unwrap();
    }
    assert!(
        !marker.exists(),
        "a grub-mkimage ran: {}",
        std::fs::read_to_string(&marker).unwrap_or_default()
    );
}

#[test]
fn test_bootloader_the_table_cannot_boot_is_rejected() {
    let fx = imagetool_fixture::ensure().unwrap();
    let c = Case::new();
    let err = c.must_fail(
        &fx,
        &fx.store_root,
        &["--partition", "legacy", "--bootloader", "systemd-boot"],
        &host_path(),
    );
    assert!(
        err.contains("systemd-boot") && err.contains("no ESP"),
        "{err}"
    );
    let err = c.must_fail(
        &fx,
        &fx.store_root,
        &["--partition", "none", "--bootloader", "grub"],
        &host_path(),
    );
    assert!(err.contains("no partition table"), "{err}");
    let err = c.must_fail(
        &fx,
        &fx.store_root,
        &["--partition", "efi", "--bootloader", "lilo"],
        &host_path(),
    );
    assert!(
        err.contains("bootloader") && err.contains("\"lilo\"") && err.contains("systemd-boot"),
        "{err}"
    );
}
