//! `imagetool build --dry-run` (issue 19): the plan it prints is the image the same command
//! then builds. For each table, the dry run writes nothing; the real build's partition table
//! (sfdisk), root filesystem (dumpe2fs) and FAT filesystems (mtools) are what the plan said.

use std::path::Path;

use imagetool_testutil::{Imagetool, Target};
use serde_json::Value;

fn imagetool<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    Imagetool::new(env!("CARGO_BIN_EXE_imagetool")).run(args)
}

/// `build` with the fixture's closure, then `rest`.
fn fixture_args(fx: &imagetool_fixture::Fixture, rest: &[&str]) -> Vec<String> {
    let head = [
        "build",
        "--toplevel",
        &fx.toplevel,
        "--closure-info",
        fx.dir.to_str().unwrap(),
        "--store-root",
        fx.store_root.to_str().unwrap(),
    ];
    head.iter().chain(rest).map(|s| (*s).to_string()).collect()
}

fn build_args(
    fx: &imagetool_fixture::Fixture,
    table: &str,
    format: &str,
    out: &Path,
) -> Vec<String> {
    let out = out.to_str().unwrap();
    fixture_args(
        fx,
        &[
            "--partition",
            table,
            "--format",
            format,
            "--output",
            out,
            "-q",
        ],
    )
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// Compares the plan with the built image; returns every difference.
fn check(plan: &Value, image: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let size = std::fs::metadata(image).unwrap().len();
    if size != u(&plan["layout"], "diskSize") {
        bad.push(format!(
            "disk size {size}, planned {}",
            plan["layout"]["diskSize"]
        ));
    }
    let parts = plan["layout"]["partitions"].as_array().unwrap();
    // The partitions, as sfdisk reads them.
    let mut ranges = Vec::new();
    if plan["layout"]["table"] == "none" {
        // No table: the disk is the root filesystem.
        ranges.push(("root".to_string(), 0, size));
    } else {
        let t = imagetool_testutil::ptable::read(&Target::whole(image)).unwrap();
        if t.partitions.len() != parts.len() {
            bad.push(format!(
                "{} partitions, planned {}",
                t.partitions.len(),
                parts.len()
            ));
        }
        for (p, s) in parts.iter().zip(&t.partitions) {
            if (u(p, "start"), u(p, "sectors")) != (s.start, s.size) {
                bad.push(format!(
                    "partition {p}: sfdisk says {} + {}",
                    s.start, s.size
                ));
            }
            ranges.push((
                p["role"].as_str().unwrap().to_string(),
                s.start * 512,
                s.size * 512,
            ));
        }
    }
    for fs in plan["filesystems"].as_array().unwrap() {
        let role = fs["role"].as_str().unwrap();
        let Some(&(_, off, len)) = ranges.iter().find(|(r, _, _)| r == role) else {
            bad.push(format!("{role}: planned a filesystem on no partition"));
            continue;
        };
        let target = Target::range(image, off, len);
        if fs["type"] == "ext4" {
            let sb = imagetool_testutil::ext4::dumpe2fs(&target).unwrap();
            let bs = sb.block_size().unwrap();
            let blocks = sb.block_count().unwrap();
            let got = [
                ("size", blocks * bs),
                ("used", (blocks - sb.free_blocks().unwrap()) * bs),
                ("inodes", sb.inode_count().unwrap()),
            ];
            for (k, v) in got {
                if v != u(fs, k) {
                    bad.push(format!("ext4 {k}: dumpe2fs says {v}, planned {}", fs[k]));
                }
            }
            if Some(sb.uuid().unwrap()) != fs["uuid"].as_str() {
                bad.push(format!(
                    "ext4 UUID {}, planned {}",
                    sb.uuid().unwrap(),
                    fs["uuid"]
                ));
            }
            if sb.label() != fs["label"].as_str() {
                bad.push(format!(
                    "ext4 label {:?}, planned {}",
                    sb.label(),
                    fs["label"]
                ));
            }
        } else {
            let tree = imagetool_testutil::fat::read_tree(&target).unwrap();
            let with_data: std::collections::BTreeMap<String, u64> = tree
                .iter()
                .filter_map(|(p, d)| d.as_ref().map(|d| (p.clone(), d.len() as u64)))
                .filter(|(_, n)| *n > 0)
                .collect();
            let planned: std::collections::BTreeMap<String, u64> = fs["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| (f["path"].as_str().unwrap().to_string(), u(f, "size")))
                .collect();
            if with_data != planned {
                let only_img: Vec<_> = with_data
                    .iter()
                    .filter(|e| !planned.contains_key(e.0))
                    .collect();
                let only_plan: Vec<_> = planned
                    .iter()
                    .filter(|e| with_data.get(e.0) != Some(e.1))
                    .collect();
                bad.push(format!(
                    "{role}: files differ: only in the image {only_img:?}, planned otherwise {only_plan:?}"
                ));
            }
        }
    }
    bad
}

#[test]
fn test_dry_run_plans_exactly_the_image_the_build_writes() {
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let mut failures = Vec::new();
    for table in ["hybrid", "efi", "legacy+boot", "none"] {
        let out = out_dir.join("nixos.img");
        let mut args = build_args(&fx, table, "raw", &out);
        args.extend(["--dry-run".into(), "--json".into()]);
        let o = imagetool(&args);
        assert!(
            o.status.success(),
            "{table}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let left: Vec<_> = std::fs::read_dir(&out_dir).unwrap().collect();
        assert!(left.is_empty(), "{table}: the dry run wrote {left:?}");
        let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(plan["dryRun"], true);
        assert_eq!(plan["layout"]["table"], table);

        let o = imagetool(&build_args(&fx, table, "raw", &out));
        assert!(
            o.status.success(),
            "{table}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for b in check(&plan, &out) {
            failures.push(format!("{table}: {b}"));
        }
        std::fs::remove_file(&out).unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn test_dry_run_text_and_refusals() {
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("nixos.qcow2");
    let mut args = build_args(&fx, "hybrid", "qcow2", &out);
    args.push("--dry-run".into());
    let o = imagetool(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    for want in [
        "dry run: nothing was written",
        "nixos.qcow2 (qcow2)",
        "esp",
        "bios-boot",
        "ext4",
        "/grub/i386-pc/",
        "/loader/loader.conf",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    assert!(!out.exists());
    // A disk too small fails as the build would (invalid input: status 2), and writes nothing.
    let mut small = build_args(&fx, "efi", "qcow2", &out);
    small.extend(["--disk-size".into(), "64".into(), "--dry-run".into()]);
    let o = imagetool(&small);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("disk"), "{err}");
    assert!(!out.exists());
    // Not for variants: a usage error (status 2).
    let o = imagetool(&fixture_args(
        &fx,
        &[
            "--variant",
            "amazon",
            "--output",
            tmp.path().to_str().unwrap(),
            "--dry-run",
        ],
    ));
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("--dry-run"));
}
