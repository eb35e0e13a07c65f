//! `imagetool build --dry-run`: the plan as a table (partitions, filesystems, what goes where)
//! or as JSON, with nothing written.

use std::fmt::Write as _;

use imagetool::build::BuildPlan;

use super::inspect::human;

/// The plan as text: one line per output, a table of the partitions (sectors, as sfdisk) with
/// the filesystem each will hold, then the files of each FAT filesystem.
pub fn text(p: &BuildPlan) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "dry run: nothing was written");
    for (format, path) in &p.outputs {
        let _ = writeln!(o, "would write {} ({format})", path.display());
    }
    let _ = writeln!(
        o,
        "disk: {}, {} bytes, {} table; bootloader: {}",
        human(p.layout.disk_size),
        p.layout.disk_size,
        p.layout.table.name(),
        p.bootloader
    );
    let _ = writeln!(
        o,
        "store: {} paths, {} of NAR",
        p.store_paths,
        human(p.nar_size)
    );
    let _ = writeln!(o, "Units: sectors of 512 bytes\n");
    let mut rows: Vec<Vec<String>> = vec![
        [
            "#", "Role", "Start", "End", "Sectors", "Size", "Name", "FS", "Label", "Used",
            "Contents",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for part in &p.layout.partitions {
        let (fs, label, used, contents) = if part.role == p.root.role {
            (
                "ext4".to_string(),
                p.root.label.clone(),
                human(p.root.used),
                format!(
                    "{} entries, {} inodes, UUID {}",
                    p.root.entries, p.root.inodes, p.root.uuid
                ),
            )
        } else if let Some(f) = p.fats.iter().find(|f| f.role == part.role) {
            (
                f.fat_type.clone(),
                f.label.clone(),
                human(f.used),
                format!("{} files", f.files.len()),
            )
        } else {
            (String::new(), String::new(), String::new(), String::new())
        };
        rows.push(vec![
            part.number.to_string(),
            imagetool::role_name(part.role).to_string(),
            part.first_lba.to_string(),
            (part.first_lba + part.sectors().saturating_sub(1)).to_string(),
            part.sectors().to_string(),
            human(part.sectors().saturating_mul(512)),
            part.name.clone(),
            fs,
            label,
            used,
            contents,
        ]);
    }
    let right = [
        true, false, true, true, true, true, false, false, false, true, false,
    ];
    o.push_str(&super::table::render(&rows, &right));
    if p.layout.partitions.is_empty() {
        // `none`: the disk is the root filesystem.
        let _ = writeln!(
            o,
            "whole disk: ext4 {:?}, {} used, {} entries, {} inodes",
            p.root.label,
            human(p.root.used),
            p.root.entries,
            p.root.inodes
        );
    }
    for f in &p.fats {
        let _ = writeln!(o, "\n{} ({}):", f.label, f.fat_type);
        o.push_str(&files_text(&f.files));
    }
    o
}

/// Directories holding more files than this are shown as one line (`--json` lists every file).
const LIST_AT_MOST: usize = 8;

/// The files of a FAT filesystem, one per line; a directory of many files (GRUB's modules) as
/// one line with its count and size.
fn files_text(files: &[(String, u64)]) -> String {
    let dir = |p: &str| {
        p.rsplit_once('/')
            .map_or(String::new(), |(d, _)| format!("{d}/"))
    };
    let mut per_dir: std::collections::BTreeMap<String, (usize, u64)> = Default::default();
    for (path, len) in files {
        let e = per_dir.entry(dir(path)).or_default();
        e.0 += 1;
        e.1 += len;
    }
    let mut o = String::new();
    let mut shown = std::collections::BTreeSet::new();
    for (path, len) in files {
        let d = dir(path);
        let (count, bytes) = per_dir[&d];
        if count <= LIST_AT_MOST {
            let _ = writeln!(o, "  {path}  {}", human(*len));
        } else if shown.insert(d.clone()) {
            let _ = writeln!(o, "  {d}  {count} files, {}", human(bytes));
        }
    }
    o
}
