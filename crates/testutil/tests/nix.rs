//! The Nix oracle on tiny stores made by Debian's `nix-store --add` and `--load-db`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use imagetool_testutil::tools::NIX_STORE;
use imagetool_testutil::{ErrorKind, nix, require_tools, run};

fn inputs(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let file = dir.join("hello.txt");
    std::fs::write(&file, b"hello\n").unwrap();
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(pkg.join("bin")).unwrap();
    std::fs::write(pkg.join("bin/tool"), b"#!/bin/sh\necho tool\n").unwrap();
    std::fs::set_permissions(pkg.join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("bin/tool", pkg.join("link")).unwrap();
    (file, pkg)
}

fn make_writable(p: &Path) {
    let md = std::fs::symlink_metadata(p).unwrap();
    if md.file_type().is_symlink() {
        return;
    }
    std::fs::set_permissions(
        p,
        std::fs::Permissions::from_mode(md.permissions().mode() | 0o200),
    )
    .unwrap();
    if md.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            make_writable(&e.unwrap().path());
        }
    }
}

#[test]
fn added_store_verifies_and_a_modified_file_fails() {
    require_tools!(NIX_STORE);
    let tmp = tempfile::tempdir().unwrap();
    let (file, pkg) = inputs(tmp.path());
    let root = tmp.path().join("root");
    let paths = nix::add(&root, &[&file, &pkg]).unwrap();
    assert_eq!(paths.len(), 2);
    assert!(
        paths.iter().all(|p| p.starts_with("/nix/store/")),
        "{paths:?}"
    );
    nix::assert_verified(&root);

    // A modified store file: its NAR hash no longer matches the database.
    let tool = root.join(paths[1].trim_start_matches('/')).join("bin/tool");
    make_writable(&root.join("nix/store"));
    std::fs::write(&tool, b"#!/bin/sh\necho evil\n").unwrap();
    let e = nix::verify(&root).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Finding);
    assert!(e.message().contains("was modified!"), "{e}");
}

#[test]
fn load_db_registration_verifies_and_a_missing_path_fails() {
    require_tools!(NIX_STORE);
    let tmp = tempfile::tempdir().unwrap();
    let (file, pkg) = inputs(tmp.path());
    let first = tmp.path().join("first");
    let paths = nix::add(&first, &[&file, &pkg]).unwrap();
    // The registration (closureInfo format) of the first store, loaded into a fresh root that
    // holds a copy of the store paths: what an image's root filesystem carries.
    let store = first.to_str().unwrap();
    let mut args = vec!["--store", store, "--dump-db"];
    args.extend(paths.iter().map(String::as_str));
    let out = run(NIX_STORE, &args, &[]).unwrap();
    assert!(out.status.success(), "{out}");
    let reg = tmp.path().join("registration");
    std::fs::write(&reg, &out.stdout).unwrap();
    let second = tmp.path().join("second");
    std::fs::create_dir_all(second.join("nix/store")).unwrap();
    for p in &paths {
        let rel = p.trim_start_matches('/');
        common::must(
            imagetool_testutil::Tool::new("cp", "coreutils"),
            &[
                "-a",
                first.join(rel).to_str().unwrap(),
                second.join(rel).to_str().unwrap(),
            ],
        );
    }
    nix::load_db(&second, &reg).unwrap();
    nix::assert_verified(&second);

    // A registered path that is not in the store is a complaint too.
    let gone = second.join(paths[0].trim_start_matches('/'));
    make_writable(&second.join("nix/store"));
    std::fs::remove_file(&gone).unwrap();
    let e = nix::verify(&second).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Finding, "{e}");
    println!("{e}");
}

#[test]
fn fixture_registration_loads_and_verifies() {
    const APT_GET: imagetool_testutil::Tool = imagetool_testutil::Tool::new("apt-get", "apt");
    const DPKG_DEB: imagetool_testutil::Tool = imagetool_testutil::Tool::new("dpkg-deb", "dpkg");
    require_tools!(NIX_STORE, APT_GET, DPKG_DEB);
    let fx = imagetool_fixture::ensure().unwrap_or_else(|e| panic!("fixture: {e}"));
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("nix")).unwrap();
    common::must(
        imagetool_testutil::Tool::new("cp", "coreutils"),
        &[
            "-a",
            fx.store_root.join("nix/store").to_str().unwrap(),
            root.join("nix/store").to_str().unwrap(),
        ],
    );
    nix::load_db(&root, &fx.dir.join("registration")).unwrap();
    nix::assert_verified(&root);
    // The toplevel's boot.json changed by one byte: its narHash no longer matches.
    let bootspec = root
        .join(fx.toplevel.trim_start_matches('/'))
        .join("boot.json");
    make_writable(&root.join("nix/store"));
    let mut data = std::fs::read(&bootspec).unwrap();
    data[0] ^= 0x20;
    std::fs::write(&bootspec, data).unwrap();
    let e = nix::verify(&root).unwrap_err();
    assert!(e.message().contains("was modified!"), "{e}");
}
