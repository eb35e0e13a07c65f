//! `touchEFIVars`: the OVMF variable store (`efi-vars.fd`) make-disk-image's VM leaves beside
//! the image, written without a VM.
//!
//! make-disk-image copies `efiVariables` (default `OVMF.variables`) to `$out/efi-vars.fd`, boots
//! its VM with it as pflash unit 1 and runs the installer, which registers its boot entry
//! through efivarfs. Here the same template (or, without one, an empty store of edk2's OVMF
//! 4 MiB layout) gets what the installer would write:
//!
//! - systemd-boot: `bootctl install`'s `Boot####` "Linux Boot Manager" →
//!   `HD(ESP)/File(\EFI\systemd\systemd-boot<arch>.efi)`, first in `BootOrder`
//!   ([`imagetool_boot::efivars::add_boot_entry`]);
//! - GRUB: nothing. imagetool installs GRUB as removable (`EFI/BOOT/BOOT<ARCH>.EFI`), which
//!   NixOS does with `efiInstallAsRemovable`, and then `grub-install --removable` writes no
//!   variables (NixOS asserts `canTouchEfiVariables` is off with it);
//! - no EFI bootloader (`legacy+gpt`, `--bootloader none`): nothing.
//!
//! Variables the firmware itself creates on its first boot (its own `Boot####` for devices,
//! `ConOut`, `Lang`, …) are not recorded: OVMF adds them at the next boot, after ours in
//! `BootOrder`.

use std::path::PathBuf;

use imagetool_boot::efivars::{self, HardDrive, LoadOption, VarStore};
use imagetool_boot::{EfiLoader, Plan};
use imagetool_ptable::{DiskLayout, Role, TableType};

use crate::build::BuildError;

/// `touchEFIVars`' settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfiVars {
    /// `efiVariables`: the OVMF variable file to start from (`None`: an empty store of the
    /// OVMF 4 MiB layout, [`VarStore::empty_ovmf`]).
    pub template: Option<PathBuf>,
    /// Where `efi-vars.fd` is written (beside the image, or in a variant's output directory).
    pub output: PathBuf,
}

/// The file name make-disk-image gives the store.
pub const FILE_NAME: &str = "efi-vars.fd";

/// The table types make-disk-image accepts `touchEFIVars` with (its assertion).
pub const TABLES: [TableType; 4] = [
    TableType::Hybrid,
    TableType::Efi,
    TableType::EfiXbootldr,
    TableType::LegacyGpt,
];

/// Refuses a table make-disk-image refuses `touchEFIVars` with.
///
/// # Errors
/// [`BuildError::InvalidInput`] naming `touchEFIVars`, the table and the accepted ones.
///
/// ```
/// use imagetool::efi_vars::check_table;
/// use imagetool::ptable::TableType;
///
/// assert!(check_table(TableType::Efi).is_ok());
/// let err = check_table(TableType::Legacy).unwrap_err();
/// assert!(err.to_string().starts_with("touchEFIVars: "));
/// ```
pub fn check_table(table: TableType) -> Result<(), BuildError> {
    match refusal(table) {
        None => Ok(()),
        Some(why) => Err(BuildError::InvalidInput(format!("touchEFIVars: {why}"))),
    }
}

/// Why `touchEFIVars` is refused with `table` (`None`: accepted).
///
/// ```
/// use imagetool::efi_vars::refusal;
/// use imagetool::ptable::TableType;
///
/// assert_eq!(refusal(TableType::Hybrid), None);
/// assert!(refusal(TableType::Legacy).is_some_and(|why| why.contains("legacy")));
/// ```
#[must_use]
pub fn refusal(table: TableType) -> Option<String> {
    (!TABLES.contains(&table)).then(|| {
        format!(
            "the {table} table has no EFI boot (make-disk-image allows it only with {})",
            TABLES.map(|t| t.to_string()).join(", ")
        )
    })
}

/// The store's bytes for the planned disk and bootloader.
///
/// # Errors
/// [`BuildError::InvalidInput`] for a missing or malformed template (naming `efiVariables` and
/// the file), a table without EFI boot or an ESP without a GUID; [`BuildError::Boot`] for a
/// template too full for the entry.
pub fn store_bytes(
    settings: &EfiVars,
    layout: &DiskLayout,
    plan: &Plan,
) -> Result<Vec<u8>, BuildError> {
    check_table(layout.table)?;
    let mut store = match &settings.template {
        Some(p) => {
            VarStore::read(p).map_err(|e| BuildError::InvalidInput(format!("efiVariables: {e}")))?
        }
        None => VarStore::empty_ovmf(),
    };
    if plan.efi == Some(EfiLoader::SystemdBoot) {
        let esp = layout.partition(Role::Esp).ok_or_else(|| {
            BuildError::InvalidInput("touchEFIVars: systemd-boot but no ESP in the layout".into())
        })?;
        let guid = esp.guid.ok_or_else(|| {
            BuildError::InvalidInput("touchEFIVars: the ESP has no partition GUID".into())
        })?;
        // The loader bootctl registers: its own copy under EFI/systemd/.
        let loader = plan
            .esp
            .iter()
            .map(|f| f.path.as_str())
            .find(|p| p.starts_with("EFI/systemd/systemd-boot"))
            .ok_or_else(|| {
                BuildError::InvalidInput(
                    "touchEFIVars: systemd-boot's EFI/systemd/systemd-boot*.efi is not on the ESP"
                        .into(),
                )
            })?;
        let option = LoadOption {
            attributes: efivars::LOAD_OPTION_ACTIVE,
            description: efivars::SYSTEMD_BOOT_DESCRIPTION.to_string(),
            partition: HardDrive {
                number: esp.number,
                start_lba: esp.first_lba,
                size_lba: esp.sectors(),
                guid: guid.disk_bytes(),
            },
            path: format!("\\{}", loader.replace('/', "\\")),
        };
        efivars::add_boot_entry(&mut store, &option)?;
    }
    Ok(store.into_bytes())
}

/// Writes the store into `file` with make-disk-image's mode 0644.
///
/// # Errors
/// The I/O error.
pub(crate) fn write(file: &std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    (&*file).write_all(bytes)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}
