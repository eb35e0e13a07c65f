//! `SOURCE_DATE_EPOCH` / `sourceDateEpoch`: a value a writer cannot store is refused by value
//! and limit, never wrapped; the spec's value (not the environment's) lands in the VHD footer.

use imagetool::boot::Bootloader;
use imagetool::build::{NoProgress, build};
use imagetool::ptable::TableType;
use imagetool::vdisk::Format;

mod common;

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

#[test]
fn test_out_of_range_timestamps_are_refused_by_value_and_limit() {
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("a.img");
    for (table, format, ts, limit) in [
        (TableType::None, Format::Raw, -1, "ext4"),
        (TableType::None, Format::Raw, 1 << 34, "ext4"),
        (TableType::Efi, Format::Raw, 315_532_799, "FAT"),
        (TableType::Efi, Format::Raw, 4_354_819_200, "FAT"),
        (TableType::None, Format::Vpc, 5_300_000_000, "VHD"),
    ] {
        let spec = common::fixture_spec(&fx, table, Bootloader::None, format, &img).timestamp(ts);
        let err = chain(&build(&spec, &mut NoProgress).unwrap_err());
        assert!(
            err.contains(&ts.to_string()) && err.contains(limit),
            "{ts} ({limit}): {err}"
        );
        assert!(!img.exists());
    }
}

#[test]
fn test_spec_timestamp_lands_in_the_vhd_footer() {
    let fx = imagetool_fixture::ensure().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for format in [Format::Vpc, Format::VhdFixed] {
        let img = tmp.path().join("a.vhd");
        let ts = 1_700_000_123;
        let spec = common::fixture_spec(&fx, TableType::None, Bootloader::None, format, &img)
            .timestamp(ts);
        build(&spec, &mut NoProgress).unwrap();
        // The footer (the file's last 512 bytes; a dynamic VHD has its copy at the start):
        // cookie "conectix", then the big-endian seconds since 2000-01-01 at byte 24.
        let bytes = std::fs::read(&img).unwrap();
        let foot = &bytes[bytes.len() - 512..];
        assert_eq!(&foot[..8], b"conectix");
        let stamp = u32::from_be_bytes(foot[24..28].try_into().unwrap());
        assert_eq!(i64::from(stamp), ts - 946_684_800, "{format:?}");
        std::fs::remove_file(&img).unwrap();
    }
}
