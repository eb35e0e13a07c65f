//! `imagetool convert`: exit codes, messages, and no output left behind on failure.

use imagetool_testutil::Imagetool;
use std::path::Path;
use std::process::Output;

fn imagetool(args: &[&str]) -> Output {
    Imagetool::new(env!("CARGO_BIN_EXE_imagetool")).run(args)
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn test_convert_writes_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("in.raw");
    let mut data = vec![0u8; 3 << 20];
    data[5000..9000].fill(0xab);
    std::fs::write(&raw, &data).unwrap();
    for f in [
        "raw",
        "qcow2",
        "qcow2-compressed",
        "vdi",
        "vpc",
        "vhd-fixed",
        "vhdx",
        "vmdk",
        "vmdk-stream",
    ] {
        let out = dir.path().join(format!("out-{f}"));
        let o = imagetool(&["convert", p(&raw), "--format", f, "--output", p(&out)]);
        assert!(
            o.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stdout).contains(f), "{f}");
        assert!(std::fs::metadata(&out).unwrap().len() > 4096, "{f}");
    }
}

#[test]
fn test_convert_rejects_size_not_multiple_of_512() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("odd.raw");
    std::fs::write(&raw, vec![1u8; 1000]).unwrap();
    let out = dir.path().join("o.qcow2");
    let o = imagetool(&["convert", p(&raw), "--format", "qcow2", "--output", p(&out)]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("odd.raw") && err.contains("multiple of 512"),
        "{err}"
    );
    assert_eq!(entries(dir.path()), vec!["odd.raw"]);
}

#[test]
fn test_convert_rejects_unknown_format_and_compression() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("in.raw");
    std::fs::write(&raw, vec![0u8; 4096]).unwrap();
    let out = dir.path().join("o.img");
    let o = imagetool(&["convert", p(&raw), "--format", "qcow3", "--output", p(&out)]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("qcow3") && err.contains("vhdx"), "{err}");
    assert_eq!(entries(dir.path()), vec!["in.raw"]);
    let o = imagetool(&[
        "convert",
        p(&raw),
        "--format",
        "qcow2-compressed",
        "--compression",
        "lzma",
        "--output",
        p(&out),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("lzma"));
    assert_eq!(entries(dir.path()), vec!["in.raw"]);
}

#[test]
fn test_convert_to_unwritable_output_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("in.raw");
    std::fs::write(&raw, vec![0u8; 4096]).unwrap();
    // A directory that does not exist, and a "directory" that is a regular file.
    for out in [dir.path().join("missing/o.qcow2"), raw.join("o.qcow2")] {
        let o = imagetool(&["convert", p(&raw), "--format", "qcow2", "--output", p(&out)]);
        // An I/O failure exits with 1 (invalid input would be 2).
        assert_eq!(o.status.code(), Some(1), "{:?}", o.status);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(p(&out)), "{err}");
    }
    // A missing input.
    let o = imagetool(&[
        "convert",
        p(&dir.path().join("nope.raw")),
        "--format",
        "vdi",
        "--output",
        p(&dir.path().join("o.vdi")),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.raw"));
    assert_eq!(entries(dir.path()), vec!["in.raw"]);
}
