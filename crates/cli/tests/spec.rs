//! `imagetool build --spec`: JSON with make-disk-image's argument names gives the same bytes as
//! the flags; structured attributes (`.attrs.json`) write `$out/<baseName>.<ext>` and
//! `nix-support/hydra-build-products`; bad specs name the key; `--progress json` is one JSON
//! object per line.

use std::path::{Path, PathBuf};
use std::process::Output;

use imagetool_fixture::Fixture;
use imagetool_testutil::Imagetool;

fn imagetool<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &Path)]) -> Output {
    let mut c = Imagetool::new(env!("CARGO_BIN_EXE_imagetool"));
    for (k, v) in env {
        c = c.env(k, v);
    }
    c.run(args)
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A contents source, a configuration.nix and a spec settings object for the fixture that
/// exercise most keys.
fn settings(fx: &Fixture, tmp: &Path) -> serde_json::Value {
    let src = tmp.join("motd");
    std::fs::write(&src, "hello from the spec\n").unwrap();
    let conf = tmp.join("configuration.nix");
    std::fs::write(&conf, "{ }\n").unwrap();
    serde_json::json!({
        "toplevel": fx.toplevel,
        "closureInfo": fx.dir,
        "storeRoot": fx.store_root,
        "partitionTableType": "efi",
        "format": "qcow2",
        "diskSize": "auto",
        "additionalSpace": "16M",
        "bootSize": "64M",
        "label": "specroot",
        "rootGPUID": "11111111-2222-4333-8444-555555555555",
        "configFile": conf,
        "contents": [{ "source": src, "target": "/etc/motd", "mode": "0640", "user": "0", "group": "0" }],
        "name": "ignored-derivation-name",
        "memSize": 2048,
        "deterministic": true,
    })
}

#[test]
fn test_spec_and_flags_give_identical_images() {
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings(&fx, tmp.path());
    let by_spec = tmp.path().join("spec.qcow2");
    s["output"] = serde_json::json!(by_spec);
    let spec_file = tmp.path().join("spec.json");
    std::fs::write(&spec_file, s.to_string()).unwrap();
    let spec_file_s = spec_file.display().to_string();
    ok(&imagetool(
        &["build", "--spec", &spec_file_s, "--progress", "none"],
        &[],
    ));

    let by_flags = tmp.path().join("flags.qcow2");
    let src = tmp.path().join("motd");
    let flags: Vec<String> = [
        "build",
        "--toplevel",
        &fx.toplevel,
        "--closure-info",
        &fx.dir.display().to_string(),
        "--store-root",
        &fx.store_root.display().to_string(),
        "--partition",
        "efi",
        "--format",
        "qcow2",
        "--additional-space",
        "16M",
        "--boot-size",
        "64M",
        "--label",
        "specroot",
        "--root-guid",
        "11111111-2222-4333-8444-555555555555",
        "--config-file",
        &tmp.path().join("configuration.nix").display().to_string(),
        "--contents",
        &format!("{}:/etc/motd:0640:0:0", src.display()),
        "--output",
        &by_flags.display().to_string(),
        "--progress",
        "plain",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    ok(&imagetool(&flags, &[]));
    let (a, b) = (
        std::fs::read(&by_spec).unwrap(),
        std::fs::read(&by_flags).unwrap(),
    );
    assert!(a.len() > 1 << 20);
    assert!(a == b, "the spec and the flags gave different images");

    // --output overrides the spec's output; --threads never changes a byte.
    let other = tmp.path().join("other.qcow2");
    let other_s = other.display().to_string();
    ok(&imagetool(
        &[
            "build",
            "--spec",
            &spec_file_s,
            "--output",
            &other_s,
            "--threads",
            "1",
            "--progress",
            "none",
        ],
        &[],
    ));
    assert!(std::fs::read(&other).unwrap() == a);

    // Settings flags and --spec exclude each other.
    let out = imagetool(&["build", "--spec", &spec_file_s, "--format", "raw"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format"));
}

/// Writes `spec` to `dir/spec.json`, runs a build that must fail, returns stderr after
/// checking that `dir/out` stayed empty.
fn must_fail(dir: &Path, spec: &serde_json::Value) -> String {
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let file = dir.join("spec.json");
    std::fs::write(&file, spec.to_string()).unwrap();
    let out = imagetool(&["build", "--spec", &file.display().to_string()], &[]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected failure: {spec}\n{err}");
    assert!(files_in(&out_dir).is_empty(), "{:?}", files_in(&out_dir));
    err
}

/// One change to a good spec.
type Change = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn test_bad_specs_name_the_key() {
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut good = settings(&fx, tmp.path());
    good["output"] = serde_json::json!(tmp.path().join("out/nixos.qcow2"));
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "unknown key",
            Box::new(|s| s["partitionTabelType"] = "efi".into()),
            "partitionTabelType",
        ),
        (
            "unknown nested key",
            Box::new(|s| s["contents"][0]["owner"] = "root".into()),
            "contents[0]",
        ),
        (
            "wrong type",
            Box::new(|s| s["onlyNixStore"] = "yes".into()),
            "onlyNixStore",
        ),
        (
            "wrong nested type",
            Box::new(|s| s["contents"][0]["target"] = 5.into()),
            "contents[0].target",
        ),
        (
            "target outside the root",
            Box::new(|s| s["contents"][0]["target"] = "/../../etc/motd".into()),
            "contents[0].target",
        ),
        (
            "missing closure",
            Box::new(|s| {
                s.as_object_mut().unwrap().remove("closureInfo");
            }),
            "closureInfo",
        ),
        (
            "unknown format",
            Box::new(|s| s["format"] = "iso".into()),
            "format",
        ),
        (
            "postVM",
            Box::new(|s| s["postVM"] = "cp $diskImage /tmp".into()),
            "postVM",
        ),
        (
            "fsType",
            Box::new(|s| s["fsType"] = "btrfs".into()),
            "fsType",
        ),
        (
            "touchEFIVars with a legacy table",
            Box::new(|s| {
                s["touchEFIVars"] = true.into();
                s["partitionTableType"] = "legacy".into();
            }),
            "touchEFIVars",
        ),
        (
            "malformed efiVariables",
            Box::new(|s| {
                s["touchEFIVars"] = true.into();
                s["efiVariables"] = s["configFile"].clone();
            }),
            "efiVariables",
        ),
        (
            "toplevel outside the closure",
            Box::new(|s| {
                s["toplevel"] = "/nix/store/00000000000000000000000000000000-nixos-system".into();
            }),
            "00000000000000000000000000000000-nixos-system",
        ),
    ];
    for (what, change, needle) in cases {
        let mut s = good.clone();
        change(&mut s);
        let err = must_fail(tmp.path(), &s);
        assert!(err.contains(needle), "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
}

/// The fixture's registration as an exportReferencesGraph array.
fn graph(fx: &Fixture) -> serde_json::Value {
    let text = std::fs::read_to_string(fx.dir.join("registration")).unwrap();
    let mut lines = text.lines();
    let mut out = Vec::new();
    while let Some(path) = lines.next() {
        let hash = lines.next().unwrap();
        let size: u64 = lines.next().unwrap().parse().unwrap();
        let _deriver = lines.next().unwrap();
        let n: usize = lines.next().unwrap().parse().unwrap();
        let refs: Vec<&str> = (0..n).map(|_| lines.next().unwrap()).collect();
        out.push(serde_json::json!({
            "path": path, "narHash": hash, "narSize": size, "references": refs,
        }));
    }
    serde_json::Value::Array(out)
}

#[test]
fn test_structured_attrs_write_out_and_build_products() {
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let attrs_file = tmp.path().join(".attrs.json");
    let attrs = serde_json::json!({
        "name": "nixos-disk-image",
        "system": "x86_64-linux",
        "builder": "/nix/store/00000000000000000000000000000000-imagetool/bin/imagetool",
        "args": ["build"],
        "outputs": { "out": out },
        "exportReferencesGraph": { "closure": [fx.toplevel] },
        "closure": graph(&fx),
        "toplevel": fx.toplevel,
        "storeRoot": fx.store_root,
        "partitionTableType": "none",
        "format": "vpc",
        "baseName": "disk",
        "installBootLoader": false,
        "copyChannel": true,
        "postVM": "",
    });
    std::fs::write(&attrs_file, attrs.to_string()).unwrap();
    // Through $NIX_ATTRS_JSON_FILE, as a derivation's builder runs it.
    let stdout = ok(&imagetool(
        &["build", "--progress", "json"],
        &[("NIX_ATTRS_JSON_FILE", &attrs_file)],
    ));
    assert_eq!(files_in(&out), ["disk.vhd", "nix-support"]);
    let products = std::fs::read_to_string(out.join("nix-support/hydra-build-products")).unwrap();
    assert_eq!(
        products,
        format!("file vpc-image {}\n", out.join("disk.vhd").display())
    );
    // Each line of --progress json is an object; write and convert report bytes up to the
    // total, and the last line is the report.
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    for phase in ["write", "convert"] {
        let last = events
            .iter()
            .rfind(|e| e["event"] == "bytes" && e["phase"] == phase)
            .unwrap_or_else(|| panic!("no bytes for {phase}: {stdout}"));
        assert_eq!(last["done"], last["total"], "{stdout}");
        assert!(last["total"].as_u64().unwrap() > 1 << 20, "{stdout}");
    }
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done");
    assert_eq!(
        PathBuf::from(done["output"].as_str().unwrap()),
        out.join("disk.vhd")
    );

    // --spec with the same file gives the same image; a graph missing from the attributes
    // is named.
    let first = std::fs::read(out.join("disk.vhd")).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    ok(&imagetool(
        &["build", "--spec", &attrs_file.display().to_string()],
        &[],
    ));
    assert!(std::fs::read(out.join("disk.vhd")).unwrap() == first);
    std::fs::remove_dir_all(&out).unwrap();
    let mut bad = attrs.clone();
    bad.as_object_mut().unwrap().remove("closure");
    std::fs::write(&attrs_file, bad.to_string()).unwrap();
    let r = imagetool(&["build"], &[("NIX_ATTRS_JSON_FILE", &attrs_file)]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(err.contains("exportReferencesGraph.closure"), "{err}");
    assert!(!out.exists());
}

#[test]
fn test_library_builder_matches_the_cli() {
    use imagetool::build::ImageSpec;
    use imagetool::build::{NoProgress, build};
    use imagetool::nix::closure::ClosureInput;
    use imagetool::ptable::TableType;
    use imagetool::vdisk::Format;

    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let by_lib = tmp.path().join("lib.vhdx");
    let spec = ImageSpec::new(
        Some(fx.toplevel.clone()),
        ClosureInput::ClosureInfo(fx.dir.clone()),
        by_lib.clone(),
    )
    .store_root(fx.store_root.clone())
    .partition(TableType::LegacyGpt)
    .format(Format::Vhdx)
    .label("library");
    build(&spec, &mut NoProgress).unwrap();

    let by_cli = tmp.path().join("cli.vhdx");
    let args: Vec<String> = [
        "build",
        "--toplevel",
        &fx.toplevel,
        "--closure-info",
        &fx.dir.display().to_string(),
        "--store-root",
        &fx.store_root.display().to_string(),
        "--partition",
        "legacy+gpt",
        "--format",
        "vhdx",
        "--label",
        "library",
        "--output",
        &by_cli.display().to_string(),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    ok(&imagetool(&args, &[]));
    assert!(std::fs::read(&by_lib).unwrap() == std::fs::read(&by_cli).unwrap());
}
