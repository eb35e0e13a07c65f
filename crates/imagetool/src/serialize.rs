//! `serde::Serialize` for the reports ([`BuildReport`], [`BuildPlan`], [`Inspection`],
//! [`DiskReport`]): the shape the CLI's `--json` prints, one key style (camelCase, as the
//! spec), sizes and offsets in bytes (and sectors where `sfdisk --json` has them), identifiers
//! as text. The layer
//! crates stay free of serde; the JSON Schema is `docs/imagetool-output.schema.json`.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};

use crate::build::{BuildPlan, BuildReport};
use crate::disk::DiskReport;
use crate::probe::{FsInfo, Inspection, PartitionReport};
use crate::ptable::{DiskLayout, Role};

/// A partition role's name in JSON.
///
/// ```
/// use imagetool::ptable::Role;
///
/// assert_eq!(imagetool::role_name(Role::Esp), "esp");
/// assert_eq!(imagetool::role_name(Role::Root), "root");
/// ```
#[must_use]
pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Esp => "esp",
        Role::Boot => "boot",
        Role::BiosBoot => "bios-boot",
        Role::Root => "root",
        Role::Firmware => "firmware",
    }
}

fn fs_value(f: &FsInfo) -> Value {
    json!({ "kind": f.kind.as_str(), "label": f.label, "uuid": f.uuid, "size": f.size })
}

fn partition_value(p: &PartitionReport) -> Value {
    let e = &p.entry;
    json!({
        "number": e.number,
        "start": e.first_lba,
        "sectors": e.sectors,
        "startBytes": e.first_lba.saturating_mul(512),
        "sizeBytes": e.sectors.saturating_mul(512),
        "type": e.type_id,
        "typeName": p.type_name,
        "name": e.name,
        "guid": e.guid.map(|g| g.to_string()),
        "bootable": e.bootable,
        "filesystem": fs_value(&p.fs),
    })
}

fn layout_value(l: &DiskLayout) -> Value {
    json!({
        "table": l.table.name(),
        "diskSize": l.disk_size,
        "diskGuid": l.disk_guid.map(|g| g.to_string()),
        "mbrSignature": l.mbr_signature.map(|s| format!("0x{s:08x}")),
        "partitions": l.partitions.iter().map(|p| json!({
            "number": p.number,
            "role": role_name(p.role),
            "name": p.name,
            "start": p.first_lba,
            "sectors": p.sectors(),
            "startBytes": p.first_lba.saturating_mul(512),
            "sizeBytes": p.sectors().saturating_mul(512),
            "guid": p.guid.map(|g| g.to_string()),
            "bootable": p.bootable,
        })).collect::<Vec<_>>(),
    })
}

fn write_value<S: Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
    let Value::Object(m) = v else {
        return v.serialize(s);
    };
    let mut map = s.serialize_map(Some(m.len()))?;
    for (k, v) in m {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

impl Inspection {
    /// This inspection as the JSON `inspect --json` prints (without the container).
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "size": self.size,
            "table": self.table.name(),
            "diskGuid": self.disk_guid.map(|g| g.to_string()),
            "mbrSignature": self.mbr_signature.map(|s| format!("0x{s:08x}")),
            "partitions": self.partitions.iter().map(partition_value).collect::<Vec<_>>(),
            "filesystem": self.whole.as_ref().map(fs_value),
        })
    }
}

impl Serialize for Inspection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        write_value(&self.to_json(), s)
    }
}

impl BuildReport {
    /// This report as the JSON `build --json` prints.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "output": self.output,
            "format": self.format.name(),
            "diskSize": self.disk_size,
            "allocated": self.allocated,
            "rootFsUuid": self.root_fs_uuid.to_string(),
            "storePaths": self.store_paths,
            "layout": layout_value(&self.layout),
            "timings": self.timings.iter()
                .map(|(p, d)| (p.name().to_string(), json!(d.as_secs_f64())))
                .collect::<serde_json::Map<_, _>>(),
        })
    }
}

impl Serialize for BuildReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        write_value(&self.to_json(), s)
    }
}

impl DiskReport {
    /// This report as the JSON `disk --json` prints (without the output path).
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "allocated": self.written.iter().map(|r| r.end - r.start).sum::<u64>(),
            "layout": layout_value(&self.layout),
        })
    }
}

impl Serialize for DiskReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        write_value(&self.to_json(), s)
    }
}

impl BuildPlan {
    /// This plan as the JSON `build --dry-run --json` prints.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "dryRun": true,
            "outputs": self.outputs.iter().map(|(f, p)| json!({
                "output": p,
                "format": f.name(),
            })).collect::<Vec<_>>(),
            "layout": layout_value(&self.layout),
            "storePaths": self.store_paths,
            "narSize": self.nar_size,
            "bootloader": self.bootloader,
            "filesystems": std::iter::once(json!({
                "role": role_name(self.root.role),
                "type": "ext4",
                "label": self.root.label,
                "uuid": self.root.uuid.to_string(),
                "size": self.root.size,
                "used": self.root.used,
                "inodes": self.root.inodes,
                "entries": self.root.entries,
            }))
            .chain(self.fats.iter().map(|f| json!({
                "role": role_name(f.role),
                "type": f.fat_type,
                "label": f.label,
                "size": f.size,
                "used": f.used,
                "files": f.files.iter().map(|(p, n)| json!({"path": p, "size": n}))
                    .collect::<Vec<_>>(),
            })))
            .collect::<Vec<_>>(),
        })
    }
}

impl Serialize for BuildPlan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        write_value(&self.to_json(), s)
    }
}
