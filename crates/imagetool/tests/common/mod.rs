//! What the build tests share: the fixture's image spec.

use std::path::Path;

use imagetool::boot::Bootloader;
use imagetool::build::ImageSpec;
use imagetool::nix::closure::ClosureInput;
use imagetool::ptable::{DiskSize, TableType};
use imagetool::vdisk::Format;

/// The fixture closure as a `table` image in `format` at `out`, through the public builder:
/// 16 MiB of free space, a fixed timestamp, and `bootloader`.
pub fn fixture_spec(
    fx: &imagetool_fixture::Fixture,
    table: TableType,
    bootloader: Bootloader,
    format: Format,
    out: &Path,
) -> ImageSpec {
    ImageSpec::new(
        Some(fx.toplevel.clone()),
        ClosureInput::ClosureInfo(fx.dir.clone()),
        out.to_path_buf(),
    )
    .store_root(fx.store_root.clone())
    .partition(table)
    .disk_size(DiskSize::Auto {
        additional_space: 16 << 20,
    })
    .bootloader(bootloader)
    .format(format)
    .timestamp(1_700_000_000)
}
