# The image variants of `nixos-rebuild build-image` (nixpkgs' system.build.images.<variant>),
# each built by imagetool in one derivation: no VM, no KVM. `imagetool variants` lists them;
# docs/user-guide.md has the table (module, table, format, artifact).
#
#   (import ./images.nix).amazon { imagetool = "${pkgs.imagetool}/bin/imagetool";
#                                  toplevel = config.system.build.toplevel; }
#
# Every other argument is a spec setting (make-disk-image's names, docs/nix.md) and wins over
# the variant's defaults, e.g. `partitionTableType = "efi"` for an azure generation-2 image.
let
  variants = [
    "amazon"
    "azure"
    "digital-ocean"
    "google-compute"
    "hyperv"
    "linode"
    "oci"
    "openstack"
    "cloudstack"
    "kubevirt"
    "qemu"
    "qemu-efi"
    "raw"
    "raw-efi"
    "proxmox"
    "virtualbox"
    "vagrant-virtualbox"
    "vmware"
  ];
  imagetoolImage = import ./imagetool-image.nix;
  one =
    variant:
    { name ? "nixos-image-${variant}", ... }@args:
    imagetoolImage ({ inherit name variant; } // args);
in
builtins.listToAttrs (
  map (variant: {
    name = variant;
    value = one variant;
  }) variants
)
