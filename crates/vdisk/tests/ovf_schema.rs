//! The OVF descriptor against the DMTF OVF envelope schema (DSP8023 with the CIM RASD/VSSD
//! schemas it imports, vendored in `tests/ovf-schema/`), validated offline by `xmllint`: ours
//! is valid, and the same descriptor damaged in ways the schema forbids is not (the check can
//! fail).

use std::path::{Path, PathBuf};

use imagetool_testutil::tools::XMLLINT;
use imagetool_testutil::{require_tools, run};
use imagetool_vdisk::ovf::{self, DiskFile, Firmware, Machine};

fn schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ovf-schema/ovf.xsd")
}

/// `xmllint --noout --nonet --schema ovf.xsd FILE`: `Ok` or the complaint.
fn validate(file: &Path) -> Result<(), String> {
    let s = schema();
    let out = run(
        XMLLINT,
        &[
            "--noout".as_ref(),
            "--nonet".as_ref(),
            "--schema".as_ref(),
            s.as_os_str(),
            file.as_os_str(),
        ],
        &[],
    )
    .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{out}"))
    }
}

fn descriptor(firmware: Firmware) -> String {
    ovf::descriptor(
        &Machine {
            name: "NixOS 25.11 <test> & \"quotes\"".into(),
            cpus: 2,
            memory_mib: 1536,
            firmware,
            os_id: 101,
            os_description: "Linux26_64".into(),
        },
        &DiskFile {
            href: "nixos-disk001.vmdk".into(),
            size: 24_733_696,
            capacity: 590_348_288,
            format: ovf::VMDK_STREAM_FORMAT.into(),
        },
    )
}

#[test]
fn test_the_descriptor_is_valid_against_the_dmtf_schema_and_damage_is_caught() {
    require_tools!(XMLLINT);
    let tmp = tempfile::tempdir().unwrap();
    for firmware in [Firmware::Bios, Firmware::Efi] {
        let xml = descriptor(firmware);
        let good = tmp.path().join("good.ovf");
        std::fs::write(&good, &xml).unwrap();
        validate(&good).unwrap_or_else(|e| panic!("{firmware:?}: {e}\n{xml}"));
        let damages: [(&str, &str, &str); 3] = [
            // A RASD element out of the schema's alphabetical order.
            (
                "<rasd:InstanceID>",
                "<rasd:Bogus>1</rasd:Bogus><rasd:InstanceID>",
                "Bogus",
            ),
            // A required attribute gone.
            ("ovf:diskId=\"", "ovf:diskid=\"", "diskId"),
            // An element of the envelope namespace where none is allowed.
            ("<References>", "<References><Nonsense/>", "Nonsense"),
        ];
        for (from, to, complaint) in damages {
            assert!(xml.contains(from), "{from} not in the descriptor");
            let bad = tmp.path().join("bad.ovf");
            std::fs::write(&bad, xml.replacen(from, to, 1)).unwrap();
            let e = validate(&bad).expect_err(complaint);
            assert!(e.contains(complaint), "{complaint}: {e}");
        }
    }
}
