//! Oracle tests against Debian's Nix (`apt-get install nix-bin`): NAR bytes, NAR hashes, store
//! paths and registrations must be exactly what `nix-store` / `nix-hash` make of the same trees.
//!
//! A missing tool skips locally and fails when `IMAGETOOL_REQUIRE_TOOLS=1` (CI), through the
//! oracle kit's `require_tools!`.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use imagetool_nix::closure_info::{PathInfo, parse_registration, write_registration};
use imagetool_nix::nar::{self, HashSink, TeeSink};
use imagetool_nix::refscan::RefScanner;
use imagetool_nix::store_path::make_source_path;
use imagetool_nix::{StorePath, base32};
use imagetool_testutil::command_ok as run;
use imagetool_testutil::nix as nix_kit;
use imagetool_testutil::nix::command as nix;
use imagetool_testutil::require_tools;
use imagetool_testutil::tools::NIX_HASH;
use imagetool_testutil::tools::NIX_STORE;

/// A tree with every kind of NAR node and the awkward cases: empty files, executables, a file
/// larger than the copy buffer, dangling and directory symlinks, names whose byte order differs
/// from a locale order.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("share/empty-dir")).unwrap();
    fs::write(root.join("bin/tool"), b"#!/bin/sh\necho tool\n").unwrap();
    fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("bin/odd-mode"), b"x").unwrap();
    fs::set_permissions(root.join("bin/odd-mode"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    let big: Vec<u8> = (0..700_001u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(root.join("share/big.bin"), &big).unwrap();
    for name in ["B", "a", "a-b", "a.b", "a_b", "Z9", "\u{e4}"] {
        fs::write(root.join("share").join(name), name.as_bytes()).unwrap();
    }
    symlink("../bin/tool", root.join("share/link-to-tool")).unwrap();
    symlink("/nonexistent/dangling", root.join("dangling")).unwrap();
    symlink("share", root.join("share-link")).unwrap();
}

#[test]
fn test_nar_bytes_equal_nix_store_dump() {
    require_tools!(NIX_STORE, NIX_HASH);
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    make_tree(&tree);
    let want = run(nix("nix-store").arg("--dump").arg(&tree)).stdout;
    let mut ours = Vec::new();
    nar::dump_path(&tree, &mut ours).unwrap();
    assert_eq!(ours.len(), want.len());
    assert!(ours == want, "NAR bytes differ from nix-store --dump");
    // A single file and a single symlink as the root node.
    for p in [tree.join("bin/tool"), tree.join("dangling")] {
        let want = run(nix("nix-store").arg("--dump").arg(&p)).stdout;
        let mut ours = Vec::new();
        nar::dump_path(&p, &mut ours).unwrap();
        assert!(ours == want, "{}: NAR differs", p.display());
    }
}

#[test]
fn test_nar_hash_equals_nix_hash() {
    require_tools!(NIX_STORE, NIX_HASH);
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    make_tree(&tree);
    let out = run(nix("nix-hash")
        .args(["--type", "sha256", "--base32"])
        .arg(&tree))
    .stdout;
    let (hash, size) = nar::hash_path(&tree).unwrap();
    assert_eq!(base32::encode(&hash), String::from_utf8_lossy(&out).trim());
    let mut v = Vec::new();
    nar::dump_path(&tree, &mut v).unwrap();
    assert_eq!(size, v.len() as u64);
}

#[test]
fn test_store_path_equals_nix_store_add() {
    require_tools!(NIX_STORE, NIX_HASH);
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("my-tree-1.0");
    make_tree(&tree);
    let file = dir.path().join("hello.txt");
    fs::write(&file, b"hello\n").unwrap();
    for p in [&tree, &file] {
        let store = dir.path().join("store-root");
        let out = run(nix("nix-store")
            .arg("--store")
            .arg(&store)
            .arg("--add")
            .arg(p))
        .stdout;
        let (hash, _) = nar::hash_path(p).unwrap();
        let name = p.file_name().unwrap().to_str().unwrap();
        let ours = make_source_path(&hash, name, [], false).unwrap();
        assert_eq!(ours.as_str(), String::from_utf8_lossy(&out).trim());
    }
}

/// Copies `src` into `<root>/nix/store/<base>` and describes it.
fn install(root: &Path, src: &Path, path: &StorePath, candidates: &[StorePath]) -> PathInfo {
    let dest = root.join("nix/store").join(path.base_name());
    run(Command::new("cp").arg("-a").arg(src).arg(&dest));
    let mut sink = TeeSink {
        a: HashSink::new(),
        b: RefScanner::new(candidates),
    };
    nar::dump_path(&dest, &mut sink).unwrap();
    let (nar_hash, nar_size) = sink.a.finish();
    PathInfo {
        path: path.clone(),
        nar_hash,
        nar_size,
        deriver: None,
        references: sink.b.found(),
    }
}

#[test]
fn test_registration_loads_and_verifies() {
    require_tools!(NIX_STORE, NIX_HASH);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("nix/store")).unwrap();
    // A leaf, and a path that refers to the leaf and to itself.
    let leaf_src = dir.path().join("leaf");
    make_tree(&leaf_src);
    let leaf = make_source_path(&nar::hash_path(&leaf_src).unwrap().0, "leaf", [], false).unwrap();
    let top = StorePath::parse("/nix/store/0c6kzph7l0dcbfmjap64f0czdafn3b7x-top").unwrap();
    let top_src = dir.path().join("top");
    fs::create_dir_all(&top_src).unwrap();
    fs::write(
        top_src.join("init"),
        format!("#!{leaf}/bin/tool\n# {top}\n"),
    )
    .unwrap();
    let infos = vec![
        install(&root, &top_src, &top, &[leaf.clone(), top.clone()]),
        install(&root, &leaf_src, &leaf, &[leaf.clone(), top.clone()]),
    ];
    assert_eq!(
        infos[0].references,
        BTreeSet::from([leaf.clone(), top.clone()])
    );
    assert!(infos[1].references.is_empty());
    let reg = write_registration(&infos);
    assert_eq!(parse_registration(&reg).unwrap().len(), 2);
    let reg_file = dir.path().join("registration");
    fs::write(&reg_file, &reg).unwrap();
    nix_kit::load_db(&root, &reg_file).unwrap_or_else(|e| panic!("{e}"));
    nix_kit::assert_verified(&root);
    let got = nix_kit::query(&root, "--references", top.as_str()).unwrap_or_else(|e| panic!("{e}"));
    let want = BTreeSet::from([leaf.to_string(), top.to_string()]);
    assert_eq!(got, want);

    // Negative: one changed byte makes Nix's own check fail.
    let victim = root
        .join("nix/store")
        .join(leaf.base_name())
        .join("share/a");
    fs::write(&victim, b"A").unwrap();
    let out = nix("nix-store")
        .arg("--store")
        .arg(&root)
        .args(["--verify", "--check-contents"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() || stderr.contains("modified"),
        "nix-store --verify accepted a modified path: {stderr}"
    );
}
