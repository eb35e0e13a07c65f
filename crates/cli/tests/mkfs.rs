//! `imagetool mkfs ext4` end to end: a good run, and bad input leaving no output behind.

use std::path::Path;
use std::process::{Command, Output};

use imagetool_testutil::tools::{E2FSCK, SETPRIV};
use imagetool_testutil::{Imagetool, Target, ext4, is_root};

fn imagetool(args: &[&str]) -> Output {
    Imagetool::new(env!("CARGO_BIN_EXE_imagetool"))
        .epoch(1)
        .run(args)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn assert_fails_naming(out: &Output, needle: &str, output_file: &Path) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded: {err}");
    assert!(
        err.contains(needle),
        "error does not name {needle:?}: {err}"
    );
    assert!(!output_file.exists(), "output left behind");
    let dir = output_file.parent().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".imagetool-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary file left: {leftovers:?}");
}

#[test]
fn test_mkfs_ext4_builds_identical_images_across_threads() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/hostname"), b"nixos\n").unwrap();
    let (a, b) = (dir.path().join("a.img"), dir.path().join("b.img"));
    let o1 = imagetool(&[
        "mkfs",
        "ext4",
        "--source",
        s(&src),
        "--output",
        s(&a),
        "--threads",
        "1",
        "-L",
        "nixos",
    ]);
    assert!(
        o1.status.success(),
        "{}",
        String::from_utf8_lossy(&o1.stderr)
    );
    let o2 = imagetool(&[
        "mkfs",
        "ext4",
        "--source",
        s(&src),
        "--output",
        s(&b),
        "--threads",
        "2",
        "-L",
        "nixos",
    ]);
    assert!(o2.status.success());
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
    if imagetool_testutil::require(&[E2FSCK]) {
        ext4::assert_clean(&Target::whole(&a));
    }
}

#[test]
fn test_mkfs_ext4_into_offset_of_existing_image() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    let img = dir.path().join("disk.img");
    // An old image full of 0xFF: nothing the writer leaves alone may be read as metadata.
    std::fs::write(&img, vec![0xFFu8; 20 << 20]).unwrap();
    let o = imagetool(&[
        "mkfs",
        "ext4",
        "--source",
        s(&src),
        "--output",
        s(&img),
        "--offset",
        "1M",
        "--size",
        "16M",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    if imagetool_testutil::require(&[E2FSCK]) {
        ext4::assert_clean(&Target::range(&img, 1 << 20, 16 << 20));
    }
}

#[test]
fn test_mkfs_ext4_source_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, b"").unwrap();
    let out = dir.path().join("o.img");
    let o = imagetool(&["mkfs", "ext4", "--source", s(&file), "--output", s(&out)]);
    assert_fails_naming(&o, s(&file), &out);
}

#[test]
fn test_mkfs_ext4_size_too_small() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("big"), vec![7u8; 12 << 20]).unwrap();
    let out = dir.path().join("o.img");
    let o = imagetool(&[
        "mkfs",
        "ext4",
        "--source",
        s(&src),
        "--output",
        s(&out),
        "--size",
        "10M",
    ]);
    assert_fails_naming(&o, "given 10 MiB", &out);
}

#[test]
fn test_mkfs_ext4_unreadable_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // Root reads everything: as root, run the command as `nobody` through setpriv.
    let as_root = is_root();
    if as_root && !imagetool_testutil::require(&[SETPRIV]) {
        return;
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(src.join("readable"), b"ok").unwrap();
    let secret = src.join("secret");
    std::fs::write(&secret, b"x").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = dir.path().join("o.img");
    let args = ["mkfs", "ext4", "--source", s(&src), "--output", s(&out)];
    let o = if as_root {
        Command::new(SETPRIV.path().unwrap())
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                env!("CARGO_BIN_EXE_imagetool"),
            ])
            .args(args)
            .output()
            .unwrap()
    } else {
        imagetool(&args)
    };
    assert_fails_naming(&o, s(&secret), &out);
}

/// Reading is not changing: two builds of one tree, every file's atime refreshed in between
/// (and its ctime moved by a chmod that restores the same mode), are byte-identical.
#[test]
fn test_mkfs_ext4_ignores_atime_and_ctime() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("a"), b"alpha").unwrap();
    std::fs::write(src.join("d/b"), vec![7u8; 10_000]).unwrap();
    let files = [src.join("a"), src.join("d/b"), src.join("d")];
    let set_atime = |when: &str| {
        for f in &files {
            let st = Command::new("touch")
                .args(["-a", "-d", when])
                .arg(f)
                .status()
                .unwrap();
            assert!(st.success());
        }
    };
    let mkfs = |out: &Path| {
        // A SOURCE_DATE_EPOCH later than every time, so nothing is clamped away.
        let o = Imagetool::new(env!("CARGO_BIN_EXE_imagetool"))
            .epoch(4_000_000_000)
            .run(&["mkfs", "ext4", "--source", s(&src), "--output", s(out)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    set_atime("@1000000000");
    let a = dir.path().join("a.img");
    mkfs(&a);
    set_atime("@1500000000");
    for f in &files {
        let m = std::fs::metadata(f).unwrap().permissions();
        std::fs::set_permissions(f, m).unwrap();
    }
    let b = dir.path().join("b.img");
    mkfs(&b);
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "the image changed with the sources' atimes"
    );
}
