#!/bin/sh
# Test oracle: reproduces nixpkgs make-disk-image.nix's partitioning commands (current upstream: bootSize rounded up
# with round_to_nearest, which always adds one MiB). Usage: mdi.sh TYPE IMAGE DISK_MIB [BOOT_BYTES] [ROOTGPUID]
set -e
type=$1; img=$2; mib=$3; bootSize=${4:-268435456}; rootGPUID=${5:-F222513B-DED1-49FA-B591-20CE86A2FE7F}
mebibyte=$((1024*1024))
bootSizeMiB=$(( (bootSize / mebibyte + 1) * mebibyte / mebibyte ))MiB
rm -f "$img"; truncate -s "${mib}M" "$img"
case $type in
legacy) parted --script "$img" -- mklabel msdos mkpart primary ext4 1MiB 100% ;;
legacy+boot) parted --script "$img" -- mklabel msdos mkpart primary fat32 1MiB $bootSizeMiB set 1 boot on mkpart primary ext4 $bootSizeMiB 100% ;;
legacy+gpt) parted --script "$img" -- mklabel gpt mkpart no-fs 1MiB 2MiB set 1 bios_grub on mkpart primary ext4 2MiB 100% align-check optimal 2 ;;
efi) parted --script "$img" -- mklabel gpt mkpart ESP fat32 8MiB $bootSizeMiB set 1 boot on align-check optimal 1 mkpart primary ext4 $bootSizeMiB 100% align-check optimal 2 ;;
efixbootldr) parted --script "$img" -- mklabel gpt mkpart ESP fat32 8MiB 100MiB set 1 boot on mkpart BOOT fat32 100MiB $bootSizeMiB set 2 bls_boot on mkpart ROOT ext4 $bootSizeMiB 100% ;;
hybrid) parted --script "$img" -- mklabel gpt mkpart ESP fat32 8MiB $bootSizeMiB set 1 boot on mkpart no-fs 0 1024KiB set 2 bios_grub on mkpart primary ext4 $bootSizeMiB 100% ;;
*) echo "unknown type $type" >&2; exit 2 ;;
esac
case $type in
legacy|legacy+boot) ;;
efi) sgdisk --disk-guid=97FD5997-D90B-4AA3-8D16-C1723AEA73C --partition-guid=1:1C06F03B-704E-4657-B9CD-681A087A2FDC --partition-guid=2:$rootGPUID "$img" >/dev/null ;;
*) sgdisk --disk-guid=97FD5997-D90B-4AA3-8D16-C1723AEA73C --partition-guid=1:1C06F03B-704E-4657-B9CD-681A087A2FDC --partition-guid=2:970C694F-AFD0-4B99-B750-CDB7A329AB6F --partition-guid=3:$rootGPUID "$img" >/dev/null ;;
esac
