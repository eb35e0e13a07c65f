//! The image's Nix database, judged by Debian's Nix: a root holding the fixture's store and a
//! database written by `db::write_db` from a loaded closure must pass
//! `nix-store --verify --check-contents`, and a wrong hash in it must not.

use std::path::Path;
use std::process::Command;

use imagetool_nix::closure::{ClosureInput, LoadOptions, load};
use imagetool_nix::db::write_db;
use imagetool_nix::{ErrorKind, PathInfo, StorePath};
use imagetool_testutil::tools::NIX_STORE;
use imagetool_testutil::{nix, require_tools};

fn copy_store(from_root: &Path, to_root: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from_root.join("nix"))
        .arg(to_root)
        .status()
        .unwrap();
    assert!(st.success());
}

fn options(fx: &imagetool_fixture::Fixture) -> LoadOptions {
    let mut o = LoadOptions::default();
    o.store_root = fx.store_root.clone();
    o.roots = vec![StorePath::parse(&fx.toplevel).unwrap()];
    o
}

#[test]
fn test_db_from_closure_info_verifies_with_nix_store() {
    require_tools!(NIX_STORE);
    let fx = imagetool_fixture::ensure().unwrap();
    let closure = load(&ClosureInput::ClosureInfo(fx.dir.clone()), &options(&fx)).unwrap();
    assert_eq!(closure.len(), fx.store_paths.len());

    let root = tempfile::tempdir().unwrap();
    copy_store(&fx.store_root, root.path());
    let db_dir = root.path().join("nix/var/nix/db");
    std::fs::create_dir_all(&db_dir).unwrap();
    let infos: Vec<PathInfo> = closure.infos().cloned().collect();
    write_db(&db_dir.join("db.sqlite"), &infos, 1).unwrap();
    std::fs::write(db_dir.join("schema"), "10").unwrap();
    nix::assert_verified(root.path());

    // A database with one wrong hash must be caught by the same oracle.
    let bad_root = tempfile::tempdir().unwrap();
    copy_store(&fx.store_root, bad_root.path());
    let bad_db = bad_root.path().join("nix/var/nix/db");
    std::fs::create_dir_all(&bad_db).unwrap();
    let mut bad = infos.clone();
    bad[0].nar_hash[0] ^= 1;
    write_db(&bad_db.join("db.sqlite"), &bad, 1).unwrap();
    assert!(nix::verify(bad_root.path()).is_err());
}

#[test]
fn test_references_graph_without_hashes_loads_the_same_closure() {
    let fx = imagetool_fixture::ensure().unwrap();
    let from_info = load(&ClosureInput::ClosureInfo(fx.dir.clone()), &options(&fx)).unwrap();
    // The plain exportReferencesGraph format: path, deriver, count, references; no hashes.
    let mut plain = String::new();
    for i in from_info.infos() {
        plain.push_str(&format!("{}\n\n{}\n", i.path, i.references.len()));
        for r in &i.references {
            plain.push_str(&format!("{r}\n"));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("closure");
    std::fs::write(&graph, plain).unwrap();
    let from_graph = load(&ClosureInput::ReferencesGraph(graph), &options(&fx)).unwrap();
    assert_eq!(from_graph, from_info);
}

#[test]
fn test_verify_catches_a_modified_store_file() {
    let fx = imagetool_fixture::ensure().unwrap();
    let root = tempfile::tempdir().unwrap();
    copy_store(&fx.store_root, root.path());
    let mut opts = options(&fx);
    opts.store_root = root.path().to_path_buf();
    opts.verify = true;
    load(&ClosureInput::ClosureInfo(fx.dir.clone()), &opts).unwrap();
    let version = root
        .path()
        .join(fx.toplevel.trim_start_matches('/'))
        .join("nixos-version");
    let st = Command::new("chmod")
        .arg("u+w")
        .arg(&version)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(&version, "tampered").unwrap();
    let err = load(&ClosureInput::ClosureInfo(fx.dir.clone()), &opts).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("nixos-system"), "{err}");
}

#[test]
fn test_additional_path_is_closed_under_references() {
    let fx = imagetool_fixture::ensure().unwrap();
    let full = load(&ClosureInput::ClosureInfo(fx.dir.clone()), &options(&fx)).unwrap();
    // A graph holding only busybox (no references); the toplevel added as an extra path must
    // bring everything it refers to, with the same hashes and references as the registration.
    let busybox = full
        .infos()
        .find(|i| i.path.name().contains("busybox"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("g");
    std::fs::write(&graph, format!("{}\n\n0\n", busybox.path)).unwrap();
    let mut opts = LoadOptions::default();
    opts.store_root = fx.store_root.clone();
    opts.roots = Vec::new();
    opts.additional_paths = vec![StorePath::parse(&fx.toplevel).unwrap()];
    opts.verify = false;
    let grown = load(&ClosureInput::ReferencesGraph(graph), &opts).unwrap();
    assert_eq!(grown, full);
}
