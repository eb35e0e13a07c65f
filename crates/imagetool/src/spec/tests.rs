use super::*;
use std::path::Path;

use imagetool_nix::closure::ClosureInput;
use imagetool_ptable::{DiskSize, TableType};
use imagetool_vdisk::{Compression, Format};

const TOP: &str = "/nix/store/00000000000000000000000000000000-nixos-system";

/// One change to a valid spec.
type Change = fn(&mut Spec);

fn base() -> Spec {
    Spec {
        toplevel: Some(TOP.into()),
        closure_info: Some("/ci".into()),
        output: Some("/o/nixos.img".into()),
        install_boot_loader: false,
        ..Spec::default()
    }
}

fn err_of(json: &str) -> Error {
    Spec::from_json(json).unwrap_err()
}

#[test]
fn test_empty_object_is_the_default() {
    assert_eq!(Spec::from_json("{}").unwrap(), Spec::default());
}

#[test]
fn test_round_trip_through_json() {
    let mut s = base();
    s.partition_table_type = "hybrid".into();
    s.disk_size = SizeValue::Number(4096);
    s.contents.push(ContentSpec {
        source: "/a".into(),
        target: "/etc/a".into(),
        mode: Some("0600".into()),
        user: Some("root".into()),
        group: Some("wheel".into()),
    });
    s.root_gpuid = Some("11111111-2222-3333-4444-555555555555".into());
    assert_eq!(Spec::from_json(&s.to_json()).unwrap(), s);
}

#[test]
fn test_image_spec_deserializes_through_the_spec() {
    let json = format!(
        r#"{{"toplevel": "{TOP}", "closureInfo": "/ci", "output": "/o/x.qcow2",
            "partitionTableType": "efi", "format": "qcow2", "bootloader": "grub",
            "sourceDateEpoch": 42}}"#
    );
    let spec: ImageSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(spec.layout.table, TableType::Efi);
    assert_eq!(spec.format, Format::Qcow2);
    assert_eq!(spec.bootloader, Bootloader::Grub);
    assert_eq!(spec.timestamp.secs, 42);
    // The same checks as `--spec`: a bad value fails deserialization, naming the key.
    let bad = json.replace("\"efi\"", "\"gpt\"");
    let e = serde_json::from_str::<ImageSpec>(&bad).unwrap_err();
    assert!(e.to_string().contains("partitionTableType"), "{e}");
}

#[test]
fn test_unknown_key_is_named() {
    let e = err_of(r#"{"partitionTabelType": "efi"}"#);
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("partitionTabelType"), "{e}");
    let e = err_of(r#"{"contents": [{"source": "/a", "target": "/b", "modes": "1"}]}"#);
    assert!(e.to_string().contains("contents[0]"), "{e}");
    assert!(e.to_string().contains("modes"), "{e}");
}

#[test]
fn test_wrong_type_is_named() {
    let e = err_of(r#"{"onlyNixStore": "yes"}"#);
    assert_eq!(e.key(), Some("onlyNixStore"), "{e}");
    let e = err_of(r#"{"contents": [{"source": "/a", "target": 7}]}"#);
    assert_eq!(e.key(), Some("contents[0].target"), "{e}");
    let e = err_of(r#"{"diskSize": true}"#);
    assert_eq!(e.key(), Some("diskSize"), "{e}");
    let e = err_of(r#"{"diskSize": -3}"#);
    assert_eq!(e.key(), Some("diskSize"), "{e}");
    assert!(err_of("{").to_string().contains("EOF"));
}

#[test]
fn test_resolve_maps_every_setting() {
    let mut s = base();
    s.partition_table_type = "efi".into();
    s.format = "qcow2-compressed".into();
    s.compression = Some("zstd".into());
    s.disk_size = SizeValue::Text("2048".into());
    s.boot_size = SizeValue::Text("128M".into());
    s.label = Some("root".into());
    s.channel = Some(TOP.into());
    s.threads = 3;
    s.source_date_epoch = Some(42);
    let i = s.resolve(7).unwrap();
    assert_eq!(i.layout.table, TableType::Efi);
    assert_eq!(i.layout.disk_size, DiskSize::Mib(2048));
    assert_eq!(i.layout.boot_size, 128 << 20);
    assert_eq!(i.format, Format::Qcow2Compressed);
    assert_eq!(i.format_options.compression, Compression::Zstd);
    assert_eq!(i.label.as_deref(), Some("root"));
    assert_eq!(i.channel.as_deref(), Some(TOP));
    assert_eq!((i.threads, i.timestamp.secs), (3, 42));
    s.copy_channel = false;
    s.source_date_epoch = None;
    let i = s.resolve(7).unwrap();
    assert_eq!((i.channel, i.timestamp.secs), (None, 7));
    assert_eq!(
        base().resolve(0).unwrap().layout.disk_size,
        DiskSize::Auto {
            additional_space: 512 << 20
        }
    );
}

#[test]
fn test_touch_efi_vars_writes_beside_the_image_for_efi_tables_only() {
    for (table, ok) in [
        ("efi", true),
        ("hybrid", true),
        ("efixbootldr", true),
        ("legacy+gpt", true),
        ("legacy", false),
        ("legacy+boot", false),
        ("none", false),
    ] {
        let s = Spec::from_json(&format!(
            r#"{{"toplevel": "{TOP}", "closureInfo": "/ci", "output": "/o/nixos.img",
                "partitionTableType": "{table}", "touchEFIVars": true,
                "efiVariables": "/fw/OVMF_VARS.fd"}}"#
        ))
        .unwrap();
        match s.resolve(0) {
            Ok(i) => {
                assert!(ok, "{table}");
                assert_eq!(
                    i.efi_vars,
                    Some(crate::efi_vars::EfiVars {
                        template: Some("/fw/OVMF_VARS.fd".into()),
                        output: "/o/efi-vars.fd".into(),
                    })
                );
            }
            Err(e) => {
                assert!(!ok, "{table}: {e}");
                assert_eq!(e.key(), Some("touchEFIVars"), "{e}");
                assert!(e.to_string().contains(table), "{e}");
            }
        }
    }
    // efiVariables alone changes nothing (make-disk-image reads it only with touchEFIVars).
    let mut s = base();
    s.efi_variables = Some("/fw/OVMF_VARS.fd".into());
    assert_eq!(s.resolve(0).unwrap().efi_vars, None);
}

#[test]
fn test_unsupported_arguments_are_named() {
    let cases: [(Change, &str); 3] = [
        (|s| s.post_vm = "echo hi".into(), "postVM"),
        (|s| s.fs_type = "btrfs".into(), "fsType"),
        (
            |s| {
                s.touch_efi_vars = true;
                s.partition_table_type = "legacy".into();
            },
            "touchEFIVars",
        ),
    ];
    for (change, key) in cases {
        let mut s = base();
        change(&mut s);
        let e = s.resolve(0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert_eq!(e.key(), Some(key), "{e}");
    }
    // installBootLoader and bootloader resolve to the bootloader to install.
    for (change, want) in [
        (
            (|s| s.install_boot_loader = true) as Change,
            Bootloader::Auto,
        ),
        (|s| s.install_boot_loader = false, Bootloader::None),
        (|s| s.bootloader = Some("grub".into()), Bootloader::Grub),
        (
            |s| s.bootloader = Some("systemd-boot".into()),
            Bootloader::SystemdBoot,
        ),
    ] {
        let mut s = base();
        change(&mut s);
        assert_eq!(s.resolve(0).unwrap().bootloader, want);
    }
    // Harmless upstream arguments pass.
    let mut s = base();
    s.name = Some("img".into());
    s.mem_size = Some(2048);
    s.deterministic = false;
    s.post_vm = "  \n".into();
    s.resolve(0).unwrap();
}

#[test]
fn test_bad_values_are_named() {
    let cases: [(Change, &str); 10] = [
        (
            |s| s.partition_table_type = "gpt".into(),
            "partitionTableType",
        ),
        (|s| s.format = "iso".into(), "format"),
        (|s| s.disk_size = "big".into(), "diskSize"),
        (|s| s.additional_space = "lots".into(), "additionalSpace"),
        (|s| s.root_gpuid = Some("nope".into()), "rootGPUID"),
        (|s| s.root_fsuid = Some("nope".into()), "rootFSUID"),
        (|s| s.bootloader = Some("lilo".into()), "bootloader"),
        (|s| s.output = None, "output"),
        (|s| s.closure_info = None, "closureInfo"),
        (|s| s.compression = Some("lz4".into()), "compression"),
    ];
    for (change, key) in cases {
        let mut s = base();
        change(&mut s);
        let e = s.resolve(0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert_eq!(e.key(), Some(key), "{e}");
    }
}

#[test]
fn test_contents_targets_are_checked() {
    for (target, mode, user, group, key) in [
        ("/../etc/x", None, None, None::<&str>, "contents[0].target"),
        ("etc/x", None, None, None, "contents[0].target"),
        ("/", None, None, None, "contents[0].target"),
        ("/a/./b", None, None, None, "contents[0].target"),
        ("/x", Some("999"), None, None, "contents[0].mode"),
        ("/x", None, Some("root"), None, "contents[0].group"),
    ] {
        let mut s = base();
        s.contents.push(ContentSpec {
            source: "/src".into(),
            target: target.into(),
            mode: mode.map(Into::into),
            user: user.map(Into::into),
            group: group.map(Into::into),
        });
        let e = s.resolve(0).unwrap_err();
        assert_eq!(e.key(), Some(key), "{target}: {e}");
    }
}

#[test]
fn test_file_names_follow_make_disk_image() {
    let mut s = Spec::default();
    for (format, name) in [
        ("raw", "nixos.img"),
        ("qcow2", "nixos.qcow2"),
        ("qcow2-compressed", "nixos.qcow2"),
        ("vpc", "nixos.vhd"),
        ("vdi", "nixos.vdi"),
    ] {
        s.format = format.into();
        assert_eq!(s.file_name().unwrap(), name);
    }
    s.base_name = "../x".into();
    assert_eq!(s.file_name().unwrap_err().key(), Some("baseName"));
}

fn attrs(extra: &str) -> String {
    format!(
        r#"{{"builder": "/nix/store/x-imagetool", "args": ["build"], "system": "x86_64-linux",
        "name": "nixos-disk-image", "__structuredAttrs": true,
        "outputs": {{"out": "/nix/store/11111111111111111111111111111111-nixos-disk-image"}},
        "exportReferencesGraph": {{"closure": ["{TOP}"]}},
        "closure": [{{"path": "{TOP}", "references": [], "narSize": 1,
          "narHash": "sha256:0000000000000000000000000000000000000000000000000000"}}],
        "toplevel": "{TOP}", "installBootLoader": false{extra}}}"#
    )
}

#[test]
fn test_structured_attrs() {
    let a = StructuredAttrs::parse(
        &attrs(r#", "format": "qcow2", "baseName": "disk""#),
        Path::new("/b/.attrs.json"),
    )
    .unwrap();
    let out = "/nix/store/11111111111111111111111111111111-nixos-disk-image";
    assert_eq!(a.out, Path::new(out));
    assert_eq!(a.image, Path::new(out).join("disk.qcow2"));
    assert_eq!(
        a.spec.references_graph.as_deref(),
        Some(Path::new("/b/.attrs.json"))
    );
    assert_eq!(a.spec.name.as_deref(), Some("nixos-disk-image"));
    let i = a.spec.resolve(0).unwrap();
    assert_eq!(i.format, Format::Qcow2);
    assert_eq!(
        i.closure,
        ClosureInput::ReferencesGraph("/b/.attrs.json".into())
    );
}

#[test]
fn test_structured_attrs_errors_name_the_key() {
    let p = Path::new("/b/.attrs.json");
    let e = StructuredAttrs::parse(&attrs(r#", "fromat": "qcow2""#), p).unwrap_err();
    assert!(e.to_string().contains("fromat"), "{e}");
    let e = StructuredAttrs::parse(&attrs(r#", "contents": {}"#), p).unwrap_err();
    assert_eq!(e.key(), Some("contents"), "{e}");
    let missing = attrs("").replace(r#""closure": [{"#, r#""other": [{"#);
    let e = StructuredAttrs::parse(&missing, p).unwrap_err();
    assert_eq!(e.key(), Some("exportReferencesGraph.closure"), "{e}");
    let e = StructuredAttrs::parse(r#"{"toplevel": "x"}"#, p).unwrap_err();
    assert_eq!(e.key(), Some("outputs.out"), "{e}");
}
