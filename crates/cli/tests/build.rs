//! `imagetool build` on bad input: each case is a clear error naming the path, option or line,
//! a non-zero exit, and nothing left in the output directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imagetool_fixture::Fixture;
use imagetool_testutil::Imagetool;

fn imagetool<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Imagetool::new(env!("CARGO_BIN_EXE_imagetool")).run(args)
}

/// A scratch directory with an empty output directory in it.
struct Case {
    tmp: tempfile::TempDir,
    out_dir: PathBuf,
}

impl Case {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let out_dir = tmp.path().join("out");
        std::fs::create_dir(&out_dir).unwrap();
        Self { tmp, out_dir }
    }

    /// `build --toplevel … <closure flag> <closure> --store-root <root> --partition none
    /// --output out/nixos.img`, plus `extra`.
    fn args(
        &self,
        fx: &Fixture,
        closure: (&str, &Path),
        store_root: &Path,
        extra: &[&str],
    ) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "build".into(),
            "--toplevel".into(),
            fx.toplevel.clone(),
            closure.0.into(),
            closure.1.display().to_string(),
            "--store-root".into(),
            store_root.display().to_string(),
            "--partition".into(),
            "none".into(),
            "--output".into(),
            self.out_dir.join("nixos.img").display().to_string(),
        ];
        v.extend(extra.iter().map(|s| (*s).to_string()));
        v
    }

    /// The usual arguments for the fixture's own closure and store.
    fn fixture_args(&self, fx: &Fixture, extra: &[&str]) -> Vec<String> {
        self.args(fx, ("--closure-info", &fx.dir), &fx.store_root, extra)
    }

    /// Runs a build that must fail; returns its stderr after checking the exit code and that
    /// the output directory is still empty.
    fn must_fail(&self, args: &[String]) -> String {
        let out = imagetool(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "expected failure: {args:?}\n{err}");
        // Every case here is a bad input (or a disk too small for it), never an I/O fault of
        // imagetool's own: exit status 2 for invalid input, 1 for no space.
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{:?}\n{err}",
            out.status
        );
        let left: Vec<_> = std::fs::read_dir(&self.out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        err
    }
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

#[test]
fn test_build_succeeds_on_the_fixture() {
    let fx = imagetool_fixture::ensure().unwrap();
    let c = Case::new();
    let out = imagetool(&c.fixture_args(&fx, &["--format", "raw"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(c.out_dir.join("nixos.img").is_file());
    let phases = String::from_utf8_lossy(&out.stderr);
    for phase in ["closure", "root tree", "plan", "write"] {
        assert!(phases.contains(phase), "{phases}");
    }
}

#[test]
fn test_missing_store_path_is_named() {
    let fx = imagetool_fixture::ensure().unwrap();
    let c = Case::new();
    let empty = c.tmp.path().join("empty-root");
    std::fs::create_dir_all(empty.join("nix/store")).unwrap();
    let err = c.must_fail(&c.args(&fx, ("--closure-info", &fx.dir), &empty, &[]));
    assert!(err.contains("empty-root/nix/store/"), "{err}");
}

#[test]
fn test_reference_outside_the_closure_is_named() {
    let fx = imagetool_fixture::ensure().unwrap();
    let c = Case::new();
    let graph = c.tmp.path().join("graph");
    let outside = "/nix/store/00000000000000000000000000000000-outside";
    std::fs::write(&graph, format!("{}\n\n1\n{outside}\n", fx.toplevel)).unwrap();
    let args = c.args(&fx, ("--references-graph", &graph), &fx.store_root, &[]);
    let err = c.must_fail(&args);
    assert!(
        err.contains(outside) && err.contains("not in the closure"),
        "{err}"
    );
    // Invalid input exits with 2 (the library's error kind), not the generic 1.
    assert_eq!(imagetool(&args).status.code(), Some(2), "{err}");
}

#[test]
fn test_hash_mismatch_with_verify_closure_is_named() {
    let fx = imagetool_fixture::ensure().unwrap();
    let c = Case::new();
    let root = c.tmp.path().join("root");
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
    let args = c.args(
        &fx,
        ("--closure-info", &fx.dir),
        &root,
        &["--verify-closure"],
    );
    let err = c.must_fail(&args);
    assert!(
        err.contains(&fx.toplevel) && err.contains("narHash"),
        "{err}"
    );
}

#[test]
fn test_truncated_registration_names_file_and_line() {
    let fx = imagetool_fixture::ensure().unwrap();
    let c = Case::new();
    let info = c.tmp.path().join("info");
    std::fs::create_dir(&info).unwrap();
    let reg = std::fs::read_to_string(fx.dir.join("registration")).unwrap();
    let lines: Vec<&str> = reg.lines().collect();
    std::fs::write(
        info.join("registration"),
        lines[..lines.len() - 3].join("\n"),
    )
    .unwrap();
    std::fs::write(info.join("store-paths"), "").unwrap();
    let args = c.args(&fx, ("--closure-info", &info), &fx.store_root, &[]);
    let err = c.must_fail(&args);
    assert!(
        err.contains("info/registration:") && err.contains("ends before"),
        "{err}"
    );

    std::fs::write(
        info.join("registration"),
        reg.replacen("sha256:", "sha1:", 1),
    )
    .unwrap();
    let err = c.must_fail(&args);
    assert!(err.contains("info/registration:2"), "{err}");
}

#[test]
fn test_bad_contents_targets_are_rejected() {
    let fx = imagetool_fixture::ensure().unwrap();
    let c = Case::new();
    let src = c.tmp.path().join("motd");
    std::fs::write(&src, "hello").unwrap();
    let escape = format!("{}:/etc/../../motd", src.display());
    let err = c.must_fail(&c.fixture_args(&fx, &["--contents", &escape]));
    assert!(err.contains("..") && err.contains("--contents"), "{err}");

    let dup = format!("{}:/etc/motd", src.display());
    let err = c.must_fail(&c.fixture_args(&fx, &["--contents", &dup, "--contents", &dup]));
    assert!(err.contains("/etc/motd") && err.contains("twice"), "{err}");
}

#[test]
fn test_fixed_disk_too_small_fails_before_writing() {
    let fx = imagetool_fixture::ensure().unwrap();
    let c = Case::new();
    // The efi layout's ESP ends at 257 MiB: 270 MiB leaves the root far less than it needs.
    let mut args = c.fixture_args(&fx, &["--disk-size", "270"]);
    let p = args.iter().position(|a| a == "none").unwrap();
    args[p] = "efi".into();
    let err = c.must_fail(&args);
    assert!(err.contains("MiB"), "{err}");
}
