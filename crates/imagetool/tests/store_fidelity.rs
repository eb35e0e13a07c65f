//! What lands in the image's store is what the registration describes, or the build fails
//! naming the path and leaving no output: one byte, one executable bit, one symlink target
//! changed in a copy of the fixture's store (same size, same mtime); a FIFO in a store path.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use imagetool::boot::Bootloader;
use imagetool::build::{NoProgress, build};
use imagetool::nix::root::Content;
use imagetool::ptable::TableType;
use imagetool::vdisk::Format;
use imagetool_testutil::require_tools;
use imagetool_testutil::tools::DEBUGFS;

mod common;

/// A writable copy of the fixture's store root.
fn store_copy(fx: &imagetool_fixture::Fixture, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let to = dir.join("store");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&fx.store_root)
        .arg(&to)
        .status()
        .unwrap();
    assert!(st.success());
    to
}

/// The host path of the fixture store path whose name ends with `suffix`, in `root`.
fn store_path(fx: &imagetool_fixture::Fixture, root: &Path, suffix: &str) -> (String, PathBuf) {
    let reg = std::fs::read_to_string(fx.dir.join("store-paths")).unwrap();
    let p = reg
        .lines()
        .find(|l| l.ends_with(suffix))
        .unwrap_or_else(|| panic!("no store path *{suffix}"))
        .to_string();
    let host = root.join(p.trim_start_matches('/'));
    (p, host)
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Sets `p`'s mtime (not following a symlink) back to 1, as the store has it.
fn mtime_one(p: &Path) {
    let st = Command::new("touch")
        .args(["-h", "-m", "-d", "@1"])
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

/// The error and its sources, as the CLI prints them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Builds the fixture from `store` (verification on, as by default); the error text.
fn build_fails(fx: &imagetool_fixture::Fixture, store: &Path, out_dir: &Path) -> String {
    std::fs::create_dir_all(out_dir).unwrap();
    let img = out_dir.join("a.img");
    let mut spec = common::fixture_spec(fx, TableType::None, Bootloader::None, Format::Raw, &img);
    spec.store_root = store.to_path_buf();
    assert!(spec.verify, "verification is on by default");
    let err = chain(&build(&spec, &mut NoProgress).unwrap_err());
    let left: Vec<_> = std::fs::read_dir(out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    err
}

#[test]
fn test_changed_byte_exec_bit_and_symlink_target_fail_by_name() {
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // One byte of a single-file store path, same size, mtime put back.
    let store = store_copy(&fx, &tmp.path().join("byte"));
    let (name, file) = store_path(&fx, &store, "-fixture-motd.txt");
    set_mode(&file, 0o644);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    set_mode(&file, 0o444);
    mtime_one(&file);
    let err = build_fails(&fx, &store, &tmp.path().join("out1"));
    assert!(err.contains(&name) && err.contains("narHash"), "{err}");

    // One executable bit, inside a directory store path.
    let store = store_copy(&fx, &tmp.path().join("exec"));
    let (name, dir) = store_path(&fx, &store, "-fixture-shapes");
    set_mode(&dir.join("empty"), 0o555);
    let err = build_fails(&fx, &store, &tmp.path().join("out2"));
    assert!(err.contains(&name), "{err}");

    // One symlink target (same length): the store path that is itself a symlink.
    let store = store_copy(&fx, &tmp.path().join("link"));
    let (name, link) = store_path(&fx, &store, "-fixture-sh-link");
    let target = std::fs::read_link(&link).unwrap();
    let mut t = target.into_os_string().into_string().unwrap();
    let last = t.pop().unwrap();
    t.push(if last == 'x' { 'y' } else { 'x' });
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&t, &link).unwrap();
    mtime_one(&link);
    let err = build_fails(&fx, &store, &tmp.path().join("out3"));
    assert!(err.contains(&name), "{err}");

    // The same store builds with the check off (the image then holds the changed bytes).
    let img = tmp.path().join("unverified.img");
    let mut spec = common::fixture_spec(&fx, TableType::None, Bootloader::None, Format::Raw, &img);
    spec.store_root = store;
    spec.verify = false;
    build(&spec, &mut NoProgress).unwrap();
    assert!(img.is_file());
}

#[test]
fn test_fifo_in_a_store_path_is_refused_by_name() {
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = store_copy(&fx, tmp.path());
    let (_, dir) = store_path(&fx, &store, "-fixture-shapes");
    set_mode(&dir, 0o755);
    let fifo = dir.join("a fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    // Refused whether or not the store is verified: a NAR cannot hold it.
    for verify in [true, false] {
        let out_dir = tmp.path().join(format!("out-{verify}"));
        std::fs::create_dir_all(&out_dir).unwrap();
        let img = out_dir.join("a.img");
        let mut spec =
            common::fixture_spec(&fx, TableType::None, Bootloader::None, Format::Raw, &img);
        spec.store_root = store.clone();
        spec.verify = verify;
        let err = chain(&build(&spec, &mut NoProgress).unwrap_err());
        assert!(
            err.contains(&fifo.display().to_string()) && err.contains("FIFO"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0);
    }
}

/// Builds the fixture with one `--contents` entry; the error text, checking nothing is left.
fn contents_fail(fx: &imagetool_fixture::Fixture, entry: &str, out_dir: &Path) -> String {
    std::fs::create_dir_all(out_dir).unwrap();
    let img = out_dir.join("a.img");
    let spec = common::fixture_spec(fx, TableType::None, Bootloader::None, Format::Raw, &img)
        .contents(vec![Content::parse(entry).unwrap()]);
    let err = chain(&build(&spec, &mut NoProgress).unwrap_err());
    assert_eq!(std::fs::read_dir(out_dir).unwrap().count(), 0, "{entry}");
    err
}

#[test]
fn test_contents_refuse_fifo_device_and_proc_and_keep_holes() {
    require_tools!(DEBUGFS);
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let err = contents_fail(
        &fx,
        &format!("{}:/etc/fifo", fifo.display()),
        &tmp.path().join("o1"),
    );
    assert!(err.contains(&fifo.display().to_string()), "{err}");
    // A FIFO inside a directory source.
    let dir = tmp.path().join("dir");
    std::fs::create_dir(&dir).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(dir.join("p"))
            .status()
            .unwrap()
            .success()
    );
    let err = contents_fail(
        &fx,
        &format!("{}:/etc/dir", dir.display()),
        &tmp.path().join("o2"),
    );
    assert!(err.contains(&dir.join("p").display().to_string()), "{err}");
    let err = contents_fail(&fx, "/dev/null:/etc/null", &tmp.path().join("o3"));
    assert!(err.contains("/dev/null"), "{err}");
    let err = contents_fail(&fx, "/proc/self/status:/etc/status", &tmp.path().join("o4"));
    assert!(err.contains("/proc/self/status"), "{err}");

    // A 1 GiB sparse file with 4 KiB of data stays sparse in the image.
    let sparse = tmp.path().join("sparse");
    let f = std::fs::File::create(&sparse).unwrap();
    f.set_len(1 << 30).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&[1u8; 4096], 1 << 29).unwrap();
    drop(f);
    let img = tmp.path().join("sparse.img");
    let spec = common::fixture_spec(&fx, TableType::None, Bootloader::None, Format::Raw, &img)
        .contents(vec![
            Content::parse(&format!("{}:/var/sparse", sparse.display())).unwrap(),
        ]);
    build(&spec, &mut NoProgress).unwrap();
    // debugfs: the file's size, and the blocks it has allocated (1 KiB units).
    let out = Command::new("debugfs")
        .args(["-R", "stat /var/sparse"])
        .arg(&img)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Size: 1073741824"), "{text}");
    let blockcount: u64 = text
        .split("Blockcount: ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(blockcount <= 64, "{blockcount} sectors allocated:\n{text}");
    use std::os::unix::fs::MetadataExt;
    let allocated = std::fs::metadata(&img).unwrap().blocks() * 512;
    assert!(
        allocated < 256 << 20,
        "the image allocates {allocated} bytes"
    );
}

/// Records each phase's detail.
#[derive(Default)]
struct Details(Vec<(imagetool::build::Phase, String)>);

impl imagetool::build::Progress for Details {
    fn finished(&mut self, phase: imagetool::build::Phase, _: std::time::Duration, detail: &str) {
        self.0.push((phase, detail.to_string()));
    }
}

/// Verification reads the store once: every store path is hashed from the bytes the container
/// writers read into the image (two outputs read it twice; the second read is not hashed
/// again), none by a read of its own.
#[test]
fn test_every_store_path_is_hashed_from_the_image_writers_read() {
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("a.qcow2");
    let mut spec = common::fixture_spec(&fx, TableType::Efi, Bootloader::None, Format::Qcow2, &img);
    spec.also.push((Format::Raw, tmp.path().join("a.img")));
    let mut details = Details::default();
    build(&spec, &mut details).unwrap();
    let n = std::fs::read_to_string(fx.dir.join("store-paths"))
        .unwrap()
        .lines()
        .count();
    let convert = details
        .0
        .iter()
        .find(|(p, _)| *p == imagetool::build::Phase::Convert)
        .map(|(_, d)| d.clone())
        .unwrap();
    assert!(
        convert.contains(&format!(
            "store verified: {n} paths hashed as the image read them, 0 read again"
        )),
        "{convert}"
    );
}
