//! OVF 1.x descriptors (DMTF DSP0243, the envelope schema DSP8023) for one virtual machine
//! with one disk, as VirtualBox exports them (`VBoxManage export --options manifest`), and the
//! SHA-256 manifest (`.mf`) that goes with them in an OVA.
//!
//! The descriptor is built from values only (names, sizes, CPU and memory): no time, no host
//! data. Elements follow the schema's order, and the CIM RASD/VSSD elements inside `Item` and
//! `System` are in the alphabetical order their schemas require.

use std::fmt::Write as _;

/// The VMDK format URI for streamOptimized disks (the only one OVA importers take).
pub const VMDK_STREAM_FORMAT: &str =
    "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized";

/// Firmware of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// Legacy BIOS.
    Bios,
    /// UEFI.
    Efi,
}

/// The machine an OVF describes.
#[derive(Debug, Clone)]
pub struct Machine {
    /// The VM's name (`vmName`).
    pub name: String,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// BIOS or EFI.
    pub firmware: Firmware,
    /// The CIM operating system id (101: Linux 64-bit; 36: Linux).
    pub os_id: u32,
    /// The OS type as VirtualBox names it (`Linux26_64`).
    pub os_description: String,
}

/// The disk file an OVF references.
#[derive(Debug, Clone)]
pub struct DiskFile {
    /// The file name inside the package.
    pub href: String,
    /// The file's size in bytes.
    pub size: u64,
    /// The disk's virtual size in bytes.
    pub capacity: u64,
    /// The format URI ([`VMDK_STREAM_FORMAT`]).
    pub format: String,
}

/// Escapes text for XML content and attribute values.
#[must_use]
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The OVF descriptor of `machine` with `disk` attached to a SATA (AHCI) controller.
#[must_use]
pub fn descriptor(machine: &Machine, disk: &DiskFile) -> String {
    let name = xml_escape(&machine.name);
    let href = xml_escape(&disk.href);
    let format = xml_escape(&disk.format);
    let os = xml_escape(&machine.os_description);
    let mut x = String::new();
    let _ = write!(
        x,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:id="file1" ovf:href="{href}" ovf:size="{size}"/>
  </References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="{capacity}" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="{format}"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks used in the package</Info>
    <Network ovf:name="NAT">
      <Description>Logical network used by this appliance.</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine</Info>
    <OperatingSystemSection ovf:id="{os_id}">
      <Info>The kind of installed guest operating system</Info>
      <Description>{os}</Description>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType>
      </System>
"#,
        size = disk.size,
        capacity = disk.capacity,
        os_id = machine.os_id,
    );
    let items: [(&str, String); 5] = [
        (
            "cpu",
            format!(
                "<rasd:Caption>{n} virtual CPU</rasd:Caption>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:ElementName>{n} virtual CPU</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>{n}</rasd:VirtualQuantity>",
                n = machine.cpus
            ),
        ),
        (
            "memory",
            format!(
                "<rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>
        <rasd:Caption>{m} MB of memory</rasd:Caption>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>{m} MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{m}</rasd:VirtualQuantity>",
                m = machine.memory_mib
            ),
        ),
        (
            "sata",
            "<rasd:Address>0</rasd:Address>
        <rasd:Caption>sataController0</rasd:Caption>
        <rasd:Description>SATA Controller</rasd:Description>
        <rasd:ElementName>sataController0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>AHCI</rasd:ResourceSubType>
        <rasd:ResourceType>20</rasd:ResourceType>"
                .to_string(),
        ),
        (
            "disk",
            "<rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:Caption>disk1</rasd:Caption>
        <rasd:Description>Disk Image</rasd:Description>
        <rasd:ElementName>disk1</rasd:ElementName>
        <rasd:HostResource>/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>"
                .to_string(),
        ),
        (
            "nic",
            "<rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Caption>Ethernet adapter on 'NAT'</rasd:Caption>
        <rasd:Connection>NAT</rasd:Connection>
        <rasd:ElementName>Ethernet adapter on 'NAT'</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>E1000</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>"
                .to_string(),
        ),
    ];
    for (_, body) in &items {
        let _ = write!(x, "      <Item>\n        {body}\n      </Item>\n");
    }
    x.push_str("    </VirtualHardwareSection>\n");
    if machine.firmware == Firmware::Efi {
        // VirtualBox reads the firmware from its own section; other importers ignore it.
        x.push_str(
            "    <vbox:Machine ovf:required=\"false\" xmlns:vbox=\"http://www.virtualbox.org/ovf/machine\">\n      <Info>Complete VirtualBox machine configuration in VirtualBox format</Info>\n      <Hardware>\n        <BIOS/>\n        <Firmware type=\"EFI\"/>\n      </Hardware>\n    </vbox:Machine>\n",
        );
    }
    x.push_str("  </VirtualSystem>\n</Envelope>\n");
    x
}

/// The manifest (`.mf`) of `files` (name, SHA-256 digest), as VirtualBox writes it:
/// `SHA256(name)= hex` lines.
#[must_use]
pub fn manifest(files: &[(String, [u8; 32])]) -> String {
    let mut m = String::new();
    for (name, digest) in files {
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(m, "SHA256({name})= {hex}");
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_descriptor_names_the_disk_and_escapes() {
        let m = Machine {
            name: "NixOS <1> & co".into(),
            cpus: 1,
            memory_mib: 1536,
            firmware: Firmware::Bios,
            os_id: 101,
            os_description: "Linux26_64".into(),
        };
        let d = DiskFile {
            href: "disk001.vmdk".into(),
            size: 1234,
            capacity: 1 << 30,
            format: VMDK_STREAM_FORMAT.into(),
        };
        let x = descriptor(&m, &d);
        assert!(x.contains(r#"ovf:href="disk001.vmdk" ovf:size="1234""#));
        assert!(x.contains(r#"ovf:capacity="1073741824""#));
        assert!(x.contains("NixOS &lt;1&gt; &amp; co"));
        assert!(!x.contains("vbox:Machine"));
        let mf = manifest(&[("a.ovf".into(), [0xab; 32])]);
        assert_eq!(mf, format!("SHA256(a.ovf)= {}\n", "ab".repeat(32)));
    }
}
