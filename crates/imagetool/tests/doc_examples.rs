//! Every module-level `pub fn` of the facade has a runnable example (a "```" block in its doc
//! comment, compiled and run by `cargo test --doc`), or is listed below with the reason it
//! has none. A new entry point without an example fails this test; so does a stale
//! exemption (the function gained an example or is gone). Methods are covered by their
//! type's or module's examples (`ImageSpec`'s builder in `build`'s example, for one).

use std::collections::BTreeMap;
use std::path::Path;

/// `file:function` → why it has no example of its own.
const EXEMPT: &[(&str, &str)] = &[
    (
        "build/bootloader.rs:write_bios",
        "writes GRUB's BIOS stage over build's own plan (boot::Plan and the disk layout); run \
         by every legacy table of build (tests/boot_matrix.rs boots them)",
    ),
    (
        "disk.rs:build_disk_cancellable",
        "build_disk with a Cancel: build_disk's example shows the spec, \
         build::build_cancellable's the cancelling",
    ),
    (
        "disk.rs:mkfs_vfat_cancellable",
        "mkfs_vfat with a Cancel: see mkfs_vfat and build::build_cancellable",
    ),
    (
        "efi_vars.rs:store_bytes",
        "needs an OVMF variable-store template (touchEFIVars' efiVariables) and build's plan; \
         tests/efi_vars.rs checks its output with virt-fw-vars and a QEMU boot",
    ),
    (
        "iso.rs:build_iso",
        "needs a bootable NixOS toplevel (kernel, initrd, bootspec); tests/iso.rs builds the \
         fixture's ISO and boots it in QEMU",
    ),
    (
        "iso.rs:build_iso_cancellable",
        "build_iso with a Cancel: see build_iso and build::build_cancellable",
    ),
    (
        "mkfs.rs:mkfs_ext4_cancellable",
        "mkfs_ext4 with a Cancel: see mkfs_ext4 and build::build_cancellable",
    ),
    (
        "mkfs.rs:mkfs_squashfs_cancellable",
        "mkfs_squashfs with a Cancel: see mkfs_squashfs and build::build_cancellable",
    ),
    (
        "sdcard.rs:check_raw_writes",
        "a step of build over its planned sd-card layout (rawWrites); tests/boot_aarch64.rs",
    ),
    (
        "sdcard.rs:apply_boot_flag",
        "a step of build over its planned sd-card layout (the bootable flag); \
         tests/boot_aarch64.rs",
    ),
    (
        "variant.rs:qemu_server_conf_for",
        "part of build_variant's proxmox packaging; tests/variants.rs compares it with \
         proxmox-image.nix's",
    ),
    (
        "variant.rs:amazon_image_info",
        "part of build_variant's amazon packaging; tests/variants.rs checks the file",
    ),
];

/// The module-level `pub fn`s of every file under `src`, with whether their doc comment has a
/// code block.
fn entry_points(src: &Path) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            // The hidden setup of the examples themselves.
            if !rel.ends_with(".rs") || rel == "doc_support.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let Some(rest) = line.strip_prefix("pub fn ") else {
                    continue;
                };
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let has_example = lines[..i]
                    .iter()
                    .rev()
                    .take_while(|l| l.starts_with("///") || l.starts_with("#["))
                    .any(|l| l.starts_with("/// ```"));
                out.insert(format!("{rel}:{name}"), has_example);
            }
        }
    }
    out
}

#[test]
fn test_every_public_entry_point_has_an_example_or_a_reason() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = entry_points(&src);
    assert!(
        found.contains_key("build/mod.rs:build"),
        "the scan found no `build`: {found:?}"
    );
    let exempt: BTreeMap<&str, &str> = EXEMPT.iter().copied().collect();
    let missing: Vec<&String> = found
        .iter()
        .filter(|(k, has)| !**has && !exempt.contains_key(k.as_str()))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty(),
        "public functions without a doc example (add a ```-block that runs, or an EXEMPT \
         entry with the reason): {missing:?}"
    );
    let stale: Vec<&&str> = exempt
        .keys()
        .filter(|k| found.get(**k) != Some(&false))
        .collect();
    assert!(
        stale.is_empty(),
        "EXEMPT entries that have an example now or no longer exist: {stale:?}"
    );
}
