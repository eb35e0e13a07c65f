//! `imagetool inspect`: a table like `sfdisk -l`, or `--json`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use imagetool::probe::{FsInfo, Inspection, inspect_file};

/// Arguments of `inspect`.
#[derive(Debug, Parser)]
#[command(after_help = "Examples:
  imagetool inspect nixos.qcow2
  imagetool inspect --json nixos.img | jq '.partitions[] | {number, startBytes, sizeBytes}'")]
pub struct Args {
    /// The image to read: raw, qcow2, vdi, vpc, vhd-fixed, vhdx or vmdk (detected by magic).
    image: PathBuf,
    /// Print JSON (schema docs/imagetool-output.schema.json) instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: &Args) -> Result<()> {
    let (container, r) =
        inspect_file(&a.image).with_context(|| format!("inspecting {}", a.image.display()))?;
    if a.json {
        let mut v = r.to_json();
        v["image"] = serde_json::json!(a.image);
        v["container"] = serde_json::json!(container);
        return super::json_out("inspect", v);
    }
    super::out(format_args!(
        "{}",
        text(&a.image.display().to_string(), container, &r).trim_end()
    ))
}

/// A size as sfdisk prints it: the largest binary unit, one decimal when not whole.
pub(super) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut unit = 0;
    let mut v = bytes as f64;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if (v - v.round()).abs() < 0.05 {
        format!("{}{}", v.round() as u64, UNITS[unit])
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}

fn text(name: &str, container: &str, r: &Inspection) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Disk {name}: {}, {} bytes, {} sectors",
        human(r.size),
        r.size,
        r.size / 512
    );
    let _ = writeln!(o, "container: {container}");
    let _ = writeln!(o, "table: {}", r.table.name());
    if let Some(g) = r.disk_guid {
        let _ = writeln!(o, "disk GUID: {g}");
    }
    if let Some(s) = r.mbr_signature {
        let _ = writeln!(o, "disk signature: 0x{s:08x}");
    }
    if let Some(f) = &r.whole {
        let _ = writeln!(o, "filesystem: {}", fs_text(f));
    }
    if r.partitions.is_empty() {
        return o;
    }
    let _ = writeln!(o, "Units: sectors of 512 bytes\n");
    let mut rows: Vec<[String; 11]> = vec![[
        "Device".into(),
        "Boot".into(),
        "Start".into(),
        "End".into(),
        "Sectors".into(),
        "Size".into(),
        "Type".into(),
        "Name".into(),
        "FS".into(),
        "Label".into(),
        "UUID".into(),
    ]];
    for p in &r.partitions {
        let e = &p.entry;
        let ty = if p.type_name.is_empty() || p.type_name == "unknown" {
            e.type_id.clone()
        } else {
            p.type_name.to_string()
        };
        rows.push([
            format!("{name}{}", e.number),
            if e.bootable {
                "*".into()
            } else {
                String::new()
            },
            e.first_lba.to_string(),
            (e.first_lba + e.sectors.saturating_sub(1)).to_string(),
            e.sectors.to_string(),
            human(e.sectors.saturating_mul(512)),
            ty,
            e.name.clone(),
            p.fs.kind.to_string(),
            p.fs.label.clone(),
            p.fs.uuid.clone(),
        ]);
    }
    // Numbers right-aligned, text left-aligned, as sfdisk.
    let right = [
        false, false, true, true, true, true, false, false, false, false, false,
    ];
    o.push_str(&super::table::render(&rows, &right));
    o
}

fn fs_text(f: &FsInfo) -> String {
    if f.kind == imagetool::probe::FsKind::Unknown {
        return "unknown".into();
    }
    format!(
        "{} label {:?} uuid {} size {}",
        f.kind, f.label, f.uuid, f.size
    )
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn test_sizes_read_as_sfdisk_prints_them() {
        assert_eq!(human(256 << 20), "256M");
        assert_eq!(human(2 << 30), "2G");
        assert_eq!(human(1536 << 20), "1.5G");
        assert_eq!(human(512), "512B");
    }
}
