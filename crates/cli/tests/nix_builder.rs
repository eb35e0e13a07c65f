//! imagetool as a Nix builder, with Debian's Nix (nix-bin), offline, in the real local store:
//! the repository's `nix/imagetool-image.nix` (a plain `derivation`, no nixpkgs) with a static
//! imagetool as its builder builds the fixture closure's image from its structured attributes.
//!
//! * The derivation asks for no system feature (no `kvm`); the build runs in Nix's sandbox
//!   (Nix 2.8's default on Linux) as root without build users (`build-users-group = ""`),
//!   with no substituters.
//! * `nix-build --check` rebuilds it and finds the same output.
//! * The image boots (direct kernel boot, the image as the root disk).
//! * Bad specs fail the build with the key or path named in the log.
//!
//! Setup (idempotent): a static imagetool is built once under `target/static`
//! (`-C target-feature=+crt-static`; `IMAGETOOL_STATIC_BIN` skips that), the fixture closure is
//! copied into `/nix/store` and registered with `nix-store --load-db`. It needs root (the
//! store is root's); elsewhere the test is skipped like a missing tool.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use imagetool_fixture::Fixture;
use imagetool_testutil::boot::{self, BootConfig, DiskFormat, Firmware};
use imagetool_testutil::require_tools;
use imagetool_testutil::tools::{NIX_STORE, QEMU_SYSTEM, SEABIOS, Tool};

const NIX_BUILD: Tool = Tool::new("nix-build", "nix-bin");
const NIX_INSTANTIATE: Tool = Tool::new("nix-instantiate", "nix-bin");

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The static imagetool: `IMAGETOOL_STATIC_BIN`, or built under `target/static`.
fn static_imagetool() -> PathBuf {
    if let Some(p) = std::env::var_os("IMAGETOOL_STATIC_BIN") {
        return PathBuf::from(p);
    }
    let ws = workspace();
    let target = "x86_64-unknown-linux-gnu";
    let out = Command::new(env!("CARGO"))
        .current_dir(&ws)
        .args([
            "build",
            "--release",
            "--target",
            target,
            "-p",
            "imagetool-cli",
        ])
        .arg("--target-dir")
        .arg(ws.join("target/static"))
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "static build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = ws.join(format!("target/static/{target}/release/imagetool"));
    let file = Command::new("file").arg(&bin).output();
    if let Ok(f) = file {
        let text = String::from_utf8_lossy(&f.stdout);
        assert!(
            text.contains("static") || text.is_empty(),
            "not static: {text}"
        );
    }
    bin
}

/// Copies the fixture's store paths into `/nix/store` (those not there yet) and registers them.
fn import_fixture(fx: &Fixture) {
    for p in &fx.store_paths {
        if Path::new(p).exists() {
            continue;
        }
        // Copy beside it, then rename: a concurrent test process may be doing the same.
        let tmp = format!("{p}.imagetool-tmp-{}", std::process::id());
        let st = Command::new("cp")
            .arg("-a")
            .arg(fx.host_path(p))
            .arg(&tmp)
            .status()
            .unwrap();
        assert!(st.success(), "cp {p}");
        if std::fs::rename(&tmp, p).is_err() {
            assert!(Path::new(p).exists(), "cannot place {p}");
            let _ = Command::new("rm").arg("-rf").arg(&tmp).status();
        }
    }
    let reg = std::fs::File::open(fx.dir.join("registration")).unwrap();
    let out = Command::new(NIX_STORE.path().unwrap())
        .arg("--load-db")
        .stdin(reg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nix-store --load-db: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Setup {
    fx: Fixture,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

fn setup() -> Option<&'static Setup> {
    static SETUP: OnceLock<Option<Setup>> = OnceLock::new();
    SETUP
        .get_or_init(|| {
            let root = Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
            let writable = std::fs::create_dir_all("/nix/store").is_ok();
            if !(root && writable) {
                assert!(
                    std::env::var("IMAGETOOL_REQUIRE_TOOLS").as_deref() != Ok("1"),
                    "the Nix builder test needs root and a writable /nix/store"
                );
                println!("skipped: the Nix builder test needs root and a writable /nix/store");
                return None;
            }
            let fx = imagetool_fixture::ensure().unwrap();
            import_fixture(&fx);
            let bin = static_imagetool();
            Some(Setup {
                fx,
                bin,
                dir: tempfile::tempdir().unwrap(),
            })
        })
        .as_ref()
}

/// A Nix expression for `nix/imagetool-image.nix` with `extra` settings (Nix attribute text),
/// or, with `raw`, a plain `derivation` whose attributes are `extra` alone.
fn expression(s: &Setup, extra: &str, raw: bool) -> String {
    let bin = s.bin.display();
    let top = &s.fx.toplevel;
    let image = workspace().join("nix/imagetool-image.nix");
    let body = if raw {
        format!(
            "derivation ({{ name = \"nixos-disk-image\"; system = builtins.currentSystem; \
             builder = imagetool; args = [ \"build\" ]; __structuredAttrs = true; \
             installBootLoader = false; toplevel = top; }} // {extra})"
        )
    } else {
        format!(
            "import {} ({{ inherit imagetool; toplevel = top; \
             partitionTableType = \"efi\"; format = \"qcow2\"; baseName = \"fixture\"; }} // {extra})",
            image.display()
        )
    };
    format!(
        "let\n  imagetool = \"${{builtins.path {{ path = {bin}; name = \"imagetool\"; }}}}\";\n  \
         top = builtins.storePath \"{top}\";\n  \
         busybox = builtins.storePath \"{}\";\nin\n{body}\n",
        s.fx.store_paths
            .iter()
            .find(|p| p.contains("-busybox-"))
            .unwrap()
    )
}

/// Runs `nix-build` on `expr`; returns (success, stdout, stderr).
fn nix_build(s: &Setup, name: &str, expr: &str, extra_args: &[&str]) -> (bool, String, String) {
    let file = s.dir.path().join(format!("{name}.nix"));
    std::fs::write(&file, expr).unwrap();
    let out = Command::new(NIX_BUILD.path().unwrap())
        .arg(&file)
        .args([
            "--no-out-link",
            "--option",
            "substituters",
            "",
            "--option",
            "build-users-group",
            "",
            "--option",
            "sandbox",
            "true",
        ])
        .args(extra_args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn test_nix_builds_boots_and_checks_the_image() {
    require_tools!(NIX_STORE, NIX_BUILD, NIX_INSTANTIATE, QEMU_SYSTEM, SEABIOS);
    let Some(s) = setup() else { return };
    let expr = expression(s, "{ }", false);

    // The derivation asks for no system feature.
    let file = s.dir.path().join("inst.nix");
    std::fs::write(&file, &expr).unwrap();
    let inst = Command::new(NIX_INSTANTIATE.path().unwrap())
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        inst.status.success(),
        "{}",
        String::from_utf8_lossy(&inst.stderr)
    );
    let drv = String::from_utf8_lossy(&inst.stdout).trim().to_string();
    let drv_text = std::fs::read_to_string(&drv).unwrap();
    assert!(!drv_text.contains("kvm"), "{drv_text}");
    assert!(!drv_text.contains("requiredSystemFeatures"), "{drv_text}");

    let (ok, out, err) = nix_build(s, "good", &expr, &[]);
    assert!(ok, "{err}");
    let out = PathBuf::from(out);
    let image = out.join("fixture.qcow2");
    assert!(image.is_file(), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("nix-support/hydra-build-products")).unwrap(),
        format!("file qcow2-image {}\n", image.display())
    );
    // One line per phase in the build log (read back: an earlier run may have built it).
    let log = Command::new(NIX_STORE.path().unwrap())
        .arg("--read-log")
        .arg(&drv)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    for phase in ["closure", "root tree", "plan", "write", "convert"] {
        assert!(log.contains(&format!("imagetool: {phase}")), "{log}\n{err}");
    }

    // The same derivation built again gives the same output.
    let (ok, _, err) = nix_build(s, "good", &expr, &["--check"]);
    assert!(ok, "nix-build --check: {err}");

    let expected = s.fx.expected_manifest_sha256().unwrap();
    // The image boots by itself: OVMF finds systemd-boot, installed inside the Nix build
    // (installBootLoader's default, true) with no VM.
    let cfg = BootConfig::new(Firmware::Ovmf).drive(&image, DiskFormat::Qcow2);
    let r =
        boot::boot_and_expect(&cfg, &s.fx.toplevel, &expected).unwrap_or_else(|e| panic!("{e}"));
    println!("booted in {:.1?}", r.elapsed);
}

#[test]
fn test_nix_build_fails_on_bad_specs_naming_the_key() {
    require_tools!(NIX_STORE, NIX_BUILD);
    let Some(s) = setup() else { return };
    let cases = [
        (
            "unknown-key",
            "{ partitionTabelType = \"efi\"; }",
            false,
            "partitionTabelType",
        ),
        ("wrong-type", "{ diskSize = true; }", false, "diskSize"),
        (
            "escaping-target",
            "{ contents = [ { source = busybox; target = \"/../etc/x\"; } ]; }",
            false,
            "contents[0].target",
        ),
        (
            "unsupported",
            "{ postVM = \"cp $diskImage /tmp\"; }",
            false,
            "postVM",
        ),
        (
            "toplevel-not-in-closure",
            "{ exportReferencesGraph.closure = [ busybox ]; }",
            true,
            s.fx.toplevel.trim_start_matches("/nix/store/"),
        ),
        (
            "no-closure",
            "{ exportReferencesGraph = { }; }",
            true,
            "exportReferencesGraph",
        ),
    ];
    for (name, extra, raw, needle) in cases {
        let (ok, _, err) = nix_build(s, name, &expression(s, extra, raw), &[]);
        assert!(!ok, "{name}: built");
        assert!(err.contains("imagetool: error:"), "{name}: {err}");
        assert!(err.contains(needle), "{name}: {needle} not named:\n{err}");
    }
}

#[test]
fn test_nix_files_parse() {
    require_tools!(NIX_INSTANTIATE);
    let ws = workspace();
    let mut files = vec![ws.join("flake.nix")];
    for e in std::fs::read_dir(ws.join("nix")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "nix") {
            files.push(p);
        }
    }
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        let out = Command::new(NIX_INSTANTIATE.path().unwrap())
            .arg("--parse")
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A syntax error is caught (the check can fail).
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.nix");
    std::fs::write(&bad, "{ a = ; }").unwrap();
    let out = Command::new(NIX_INSTANTIATE.path().unwrap())
        .arg("--parse")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// `nix/make-disk-image.nix` with make-disk-image's arguments, evaluated against a minimal
/// stand-in for nixpkgs (the few `lib` functions and `pkgs` attributes it uses; no nixpkgs
/// here): the arguments reach imagetool and the output is named as upstream names it.
#[test]
fn test_make_disk_image_wrapper_builds() {
    require_tools!(NIX_STORE, NIX_BUILD);
    let Some(s) = setup() else { return };
    // A package-shaped directory: <pkg>/bin/imagetool.
    let pkg = s.dir.path().join("imagetool-pkg");
    std::fs::create_dir_all(pkg.join("bin")).unwrap();
    let exe = pkg.join("bin/imagetool");
    if !exe.exists() {
        std::fs::copy(&s.bin, &exe).unwrap();
    }
    let wrapper = workspace().join("nix/make-disk-image.nix");
    let expr = format!(
        r#"let
  top = builtins.storePath "{top}";
  lib = {{
    assertMsg = c: m: c || throw m;
    all = builtins.all;
    cleanSource = p: p;
    optionalAttrs = c: a: if c then a else {{ }};
  }};
  pkgs = {{
    imagetool = builtins.path {{ path = {pkg}; name = "imagetool"; }};
    stdenv.hostPlatform.system = builtins.currentSystem;
    path = /var/empty;
    runCommand = throw "runCommand is not needed without copyChannel and postVM";
  }};
  config = {{
    system.build.toplevel = top;
    system.nixos = {{ version = "25.11"; versionSuffix = ""; }};
  }};
in
import {wrapper} {{
  inherit pkgs lib config;
  format = "raw";
  baseName = "wrapped";
  partitionTableType = "efi";
  bootSize = "64M";
  label = "wrapped";
  copyChannel = false;
  installBootLoader = false;
  memSize = 4096;
  imagetoolSettings.threads = 2;
}}
"#,
        top = s.fx.toplevel,
        pkg = pkg.display(),
        wrapper = wrapper.display(),
    );
    let (ok, out, err) = nix_build(s, "wrapper", &expr, &[]);
    assert!(ok, "{err}");
    let out = PathBuf::from(out);
    let image = out.join("wrapped.img");
    assert!(image.is_file(), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("nix-support/hydra-build-products")).unwrap(),
        format!("file raw-image {}\n", image.display())
    );
    // The settings arrived: the efi layout with bootSize, the root filesystem's label.
    let conv = Command::new(env!("CARGO_BIN_EXE_imagetool"))
        .args(["inspect", "--json"])
        .arg(&image)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&conv.stdout);
    assert!(
        conv.status.success(),
        "{}",
        String::from_utf8_lossy(&conv.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["table"], "gpt", "{text}");
    assert_eq!(v["partitions"][0]["name"], "ESP", "{text}");
    // bootSize = "64M" ends the ESP at 65 MiB (upstream's rounding).
    assert_eq!(v["partitions"][1]["startBytes"], 65u64 << 20, "{text}");
    assert_eq!(
        v["partitions"][1]["filesystem"]["label"], "wrapped",
        "{text}"
    );

    // touchEFIVars writes $out/efi-vars.fd, an OVMF variable store of the 4 MiB layout.
    let touch = expr.replace("memSize = 4096;", "touchEFIVars = true;");
    let (ok, out, err) = nix_build(s, "wrapper-efivars", &touch, &[]);
    assert!(ok, "{err}");
    let vars = std::fs::read(PathBuf::from(out).join("efi-vars.fd")).unwrap();
    assert_eq!(vars.len(), 0x84000);
    assert_eq!(&vars[0x28..0x2c], b"_FVH");
    // With a table make-disk-image refuses it for, the wrapper's assertion names it.
    let bad = touch.replace(
        "partitionTableType = \"efi\";",
        "partitionTableType = \"legacy\";",
    );
    let (ok, _, err) = nix_build(s, "wrapper-bad", &bad, &[]);
    assert!(!ok);
    assert!(err.contains("touchEFIVars"), "{err}");
}

/// `nix/images.nix`'s google-compute variant built by Nix: `$out` holds the module's artifact
/// (`<baseName>.raw.tar.gz` with `disk.raw`) and hydra-build-products, and a second build is
/// identical.
#[test]
fn test_nix_builds_a_variant() {
    require_tools!(NIX_STORE, NIX_BUILD);
    let Some(s) = setup() else { return };
    let images = workspace().join("nix/images.nix");
    let expr = expression(s, "{ }", false)
        .replace(
            &format!(
                "import {} (",
                workspace().join("nix/imagetool-image.nix").display()
            ),
            &format!("(import {}).google-compute (", images.display()),
        )
        // The variant's own format (raw inside the tar): an explicit `format` would win over it.
        .replace("format = \"qcow2\"; ", "");
    assert!(expr.contains("images.nix"), "{expr}");
    let (ok, out, err) = nix_build(s, "variant", &expr, &[]);
    assert!(ok, "{err}");
    let out = PathBuf::from(out);
    let artifact = out.join("fixture.raw.tar.gz");
    assert!(artifact.is_file(), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("nix-support/hydra-build-products")).unwrap(),
        format!("file raw-image {}\n", artifact.display())
    );
    let list = Command::new("tar")
        .arg("-tzf")
        .arg(&artifact)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout), "disk.raw\n");
    let (ok, _, err) = nix_build(s, "variant", &expr, &["--check"]);
    assert!(ok, "nix-build --check: {err}");
}
