#!/bin/sh
# Test oracle: nixpkgs sd-image.nix's partitioning command (sfdisk on an image file) with its
# defaults: firmwarePartitionOffset 8 (MiB), firmwareSize 30 (MiB), firmwarePartitionID
# 0x2178694e. Usage: sd_image.sh IMAGE DISK_BYTES
set -e
img=$1; bytes=$2
gap=8
firmwareSizeBlocks=$((30 * 1024 * 1024 / 512))
rm -f "$img"; truncate -s "$bytes" "$img"
sfdisk --no-reread --no-tell-kernel "$img" >/dev/null <<SFDISK
    label: dos
    label-id: 0x2178694e

    start=${gap}M, size=$firmwareSizeBlocks, type=b, bootable
    start=$((gap + 30))M, type=83
SFDISK
