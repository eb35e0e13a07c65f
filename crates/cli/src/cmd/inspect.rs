//! `imagetool inspect`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use imagetool::probe::{FsInfo, Inspection, inspect_file};
use serde_json::{Value, json};

/// Arguments of `inspect`.
#[derive(Debug, Parser)]
pub struct Args {
    /// The image to read: raw or qcow2.
    image: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(a: &Args) -> Result<()> {
    let (container, r) =
        inspect_file(&a.image).with_context(|| format!("inspecting {}", a.image.display()))?;
    let text = if a.json {
        let mut v = to_json(&r);
        v["container"] = json!(container);
        serde_json::to_string_pretty(&v)? + "\n"
    } else {
        format!("container: {container}\n{}", text(&r))
    };
    // A closed pipe (`inspect … | head`) is not an error worth a message.
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn fs_json(f: &FsInfo) -> Value {
    json!({ "kind": f.kind, "label": f.label, "uuid": f.uuid, "size": f.size })
}

fn to_json(r: &Inspection) -> Value {
    json!({
        "size": r.size,
        "table": r.table.name(),
        "disk_guid": r.disk_guid.map(|g| g.to_string()),
        "mbr_signature": r.mbr_signature.map(|s| format!("0x{s:08x}")),
        "partitions": r.partitions.iter().map(|p| json!({
            "number": p.entry.number,
            "start": p.entry.first_lba,
            "sectors": p.entry.sectors,
            "start_bytes": p.entry.first_lba.saturating_mul(512),
            "size_bytes": p.entry.sectors.saturating_mul(512),
            "type": p.entry.type_id,
            "type_name": p.type_name,
            "name": p.entry.name,
            "guid": p.entry.guid.map(|g| g.to_string()),
            "bootable": p.entry.bootable,
            "filesystem": fs_json(&p.fs),
        })).collect::<Vec<_>>(),
        "filesystem": r.whole.as_ref().map(fs_json),
    })
}

fn text(r: &Inspection) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "size: {} bytes", r.size);
    let _ = writeln!(o, "table: {}", r.table.name());
    if let Some(g) = r.disk_guid {
        let _ = writeln!(o, "disk GUID: {g}");
    }
    if let Some(s) = r.mbr_signature {
        let _ = writeln!(o, "disk signature: 0x{s:08x}");
    }
    for p in &r.partitions {
        let e = &p.entry;
        let _ = writeln!(
            o,
            "partition {}: start {} size {} sectors, type {} ({}){}{}{}",
            e.number,
            e.first_lba,
            e.sectors,
            e.type_id,
            p.type_name,
            if e.name.is_empty() {
                String::new()
            } else {
                format!(", name {:?}", e.name)
            },
            e.guid.map_or(String::new(), |g| format!(", GUID {g}")),
            if e.bootable { ", bootable" } else { "" },
        );
        let _ = writeln!(o, "  filesystem: {}", fs_text(&p.fs));
    }
    if let Some(f) = &r.whole {
        let _ = writeln!(o, "filesystem: {}", fs_text(f));
    }
    o
}

fn fs_text(f: &FsInfo) -> String {
    if f.kind == "unknown" {
        return "unknown".into();
    }
    format!(
        "{} label {:?} uuid {} size {}",
        f.kind, f.label, f.uuid, f.size
    )
}
