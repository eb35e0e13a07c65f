//! `imagetool build` on bad input: each case is a clear error naming the path, option or line,
//! a non-zero exit, and nothing left in the output directory.

use std::path::Path;
use std::process::{Command, Output};

fn imagetool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imagetool"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs a build that must fail; returns its stderr after checking the exit code and that the
/// output directory is still empty.
fn must_fail(args: &[&str], out_dir: &Path) -> String {
    let out = imagetool(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected failure: {args:?}\n{err}");
    let left: Vec<_> = std::fs::read_dir(out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    err
}

fn copy_dir(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

struct Case {
    _tmp: tempfile::TempDir,
    out_dir: std::path::PathBuf,
    output: String,
}

fn case() -> Case {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let output = out_dir.join("nixos.img").to_string_lossy().into_owned();
    Case {
        _tmp: tmp,
        out_dir,
        output,
    }
}

#[test]
fn test_build_succeeds_on_the_fixture() {
    let fx = imagetool_fixture::ensure().unwrap();
    let c = case();
    let out = imagetool(&[
        "build",
        "--toplevel",
        &fx.toplevel,
        "--closure-info",
        fx.dir.to_str().unwrap(),
        "--store-root",
        fx.store_root.to_str().unwrap(),
        "--partition",
        "none",
        "--format",
        "raw",
        "--output",
        &c.output,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(Path::new(&c.output).is_file());
    let phases = String::from_utf8_lossy(&out.stderr);
    for phase in ["closure", "root tree", "plan", "write"] {
        assert!(phases.contains(phase), "{phases}");
    }
}

#[test]
fn test_missing_store_path_is_named() {
    let fx = imagetool_fixture::ensure().unwrap();
    let c = case();
    let empty = c._tmp.path().join("empty-root");
    std::fs::create_dir_all(empty.join("nix/store")).unwrap();
    let err = must_fail(
        &[
            "build",
            "--toplevel",
            &fx.toplevel,
            "--closure-info",
            fx.dir.to_str().unwrap(),
            "--store-root",
            empty.to_str().unwrap(),
            "--partition",
            "none",
            "--output",
            &c.output,
        ],
        &c.out_dir,
    );
    assert!(err.contains("empty-root/nix/store/"), "{err}");
}

#[test]
fn test_reference_outside_the_closure_is_named() {
    let fx = imagetool_fixture::ensure().unwrap();
    let c = case();
    let graph = c._tmp.path().join("graph");
    let outside = "/nix/store/00000000000000000000000000000000-outside";
    std::fs::write(&graph, format!("{}\n\n1\n{outside}\n", fx.toplevel)).unwrap();
    let err = must_fail(
        &[
            "build",
            "--toplevel",
            &fx.toplevel,
            "--references-graph",
            graph.to_str().unwrap(),
            "--store-root",
            fx.store_root.to_str().unwrap(),
            "--partition",
            "none",
            "--output",
            &c.output,
        ],
        &c.out_dir,
    );
    assert!(
        err.contains(outside) && err.contains("not in the closure"),
        "{err}"
    );
}

#[test]
fn test_hash_mismatch_with_verify_closure_is_named() {
    let fx = imagetool_fixture::ensure().unwrap();
    let c = case();
    let root = c._tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    copy_dir(&fx.store_root.join("nix"), &root);
    let version = root
        .join(fx.toplevel.trim_start_matches('/'))
        .join("nixos-version");
    assert!(
        Command::new("chmod")
            .arg("u+w")
            .arg(&version)
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(&version, "changed").unwrap();
    let args = [
        "build",
        "--toplevel",
        &fx.toplevel,
        "--closure-info",
        fx.dir.to_str().unwrap(),
        "--store-root",
        root.to_str().unwrap(),
        "--partition",
        "none",
        "--output",
        &c.output,
    ];
    let mut verify = args.to_vec();
    verify.push("--verify-closure");
    let err = must_fail(&verify, &c.out_dir);
    assert!(
        err.contains(&fx.toplevel) && err.contains("narHash"),
        "{err}"
    );
}

#[test]
fn test_truncated_registration_names_file_and_line() {
    let fx = imagetool_fixture::ensure().unwrap();
    let c = case();
    let info = c._tmp.path().join("info");
    std::fs::create_dir(&info).unwrap();
    let reg = std::fs::read_to_string(fx.dir.join("registration")).unwrap();
    let lines: Vec<&str> = reg.lines().collect();
    std::fs::write(
        info.join("registration"),
        lines[..lines.len() - 3].join("\n"),
    )
    .unwrap();
    std::fs::write(info.join("store-paths"), "").unwrap();
    let err = must_fail(
        &[
            "build",
            "--toplevel",
            &fx.toplevel,
            "--closure-info",
            info.to_str().unwrap(),
            "--store-root",
            fx.store_root.to_str().unwrap(),
            "--partition",
            "none",
            "--output",
            &c.output,
        ],
        &c.out_dir,
    );
    assert!(
        err.contains("info/registration:") && err.contains("ends before"),
        "{err}"
    );

    std::fs::write(
        info.join("registration"),
        reg.replacen("sha256:", "sha1:", 1),
    )
    .unwrap();
    let err = must_fail(
        &[
            "build",
            "--toplevel",
            &fx.toplevel,
            "--closure-info",
            info.to_str().unwrap(),
            "--store-root",
            fx.store_root.to_str().unwrap(),
            "--partition",
            "none",
            "--output",
            &c.output,
        ],
        &c.out_dir,
    );
    assert!(err.contains("info/registration:2"), "{err}");
}

#[test]
fn test_bad_contents_targets_are_rejected() {
    let fx = imagetool_fixture::ensure().unwrap();
    let c = case();
    let src = c._tmp.path().join("motd");
    std::fs::write(&src, "hello").unwrap();
    let s = src.to_str().unwrap();
    let base = [
        "build",
        "--toplevel",
        &fx.toplevel,
        "--closure-info",
        fx.dir.to_str().unwrap(),
        "--store-root",
        fx.store_root.to_str().unwrap(),
        "--partition",
        "none",
        "--output",
        &c.output,
    ];
    let escape = format!("{s}:/etc/../../motd");
    let mut args = base.to_vec();
    args.extend(["--contents", &escape]);
    let err = must_fail(&args, &c.out_dir);
    assert!(err.contains("..") && err.contains("--contents"), "{err}");

    let dup = format!("{s}:/etc/motd");
    let mut args = base.to_vec();
    args.extend(["--contents", &dup, "--contents", &dup]);
    let err = must_fail(&args, &c.out_dir);
    assert!(err.contains("/etc/motd") && err.contains("twice"), "{err}");
}

#[test]
fn test_fixed_disk_too_small_fails_before_writing() {
    let fx = imagetool_fixture::ensure().unwrap();
    let c = case();
    let err = must_fail(
        &[
            "build",
            "--toplevel",
            &fx.toplevel,
            "--closure-info",
            fx.dir.to_str().unwrap(),
            "--store-root",
            fx.store_root.to_str().unwrap(),
            "--partition",
            "efi",
            "--disk-size",
            "270",
            "--output",
            &c.output,
        ],
        &c.out_dir,
    );
    assert!(err.contains("MiB"), "{err}");
}
