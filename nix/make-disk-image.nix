# A drop-in for nixpkgs' nixos/lib/make-disk-image.nix that builds the image with imagetool in
# one derivation: no VM, so no `requiredSystemFeatures = [ "kvm" ]`, and it builds on any Nix
# builder. Same arguments and defaults; docs/nix.md lists each one (supported, how, or why not).
#
#   import ./make-disk-image.nix { inherit pkgs lib config; format = "qcow2";
#                                  partitionTableType = "efi"; }
{
  pkgs,
  lib,
  config,
  # The imagetool package (the flake's overlay provides pkgs.imagetool).
  imagetool ? pkgs.imagetool,
  diskSize ? "auto",
  additionalSpace ? "512M",
  bootSize ? "256M",
  contents ? [ ],
  partitionTableType ? "legacy",
  installBootLoader ? true,
  # Writes $out/efi-vars.fd natively (the boot entry the installer registers), from
  # efiVariables (an OVMF_VARS file, e.g. "''${pkgs.OVMF.variables}") or, when null, an empty
  # store of the OVMF 4 MiB layout.
  touchEFIVars ? false,
  efiVariables ? null,
  # Only used by the VM of make-disk-image; accepted so callers need not change.
  OVMF ? null,
  efiFirmware ? null,
  memSize ? 1024,
  fsType ? "ext4",
  onlyNixStore ? false,
  label ? if onlyNixStore then "nix-store" else "nixos",
  configFile ? null,
  # Shell run after the image is built, with $diskImage and $out (in a second derivation).
  postVM ? "",
  name ? "nixos-disk-image",
  format ? "raw",
  baseName ? "nixos",
  deterministic ? true,
  rootGPUID ? "F222513B-DED1-49FA-B591-20CE86A2FE7F",
  rootFSUID ? if fsType == "ext4" then rootGPUID else null,
  copyChannel ? true,
  additionalPaths ? [ ],
  # imagetool's own settings (docs/nix.md): bootloader, seed, compression, threads, ...
  imagetoolSettings ? { },
}:

assert lib.assertMsg (fsType == "ext4") "imagetool: fsType must be ext4 (got ${fsType})";
assert lib.assertMsg (
  touchEFIVars
  -> builtins.elem partitionTableType [
    "hybrid"
    "efi"
    "efixbootldr"
    "legacy+gpt"
  ]
) "imagetool: touchEFIVars is only supported with partitionTableType hybrid, efi, efixbootldr or legacy+gpt";
assert lib.assertMsg (
  (lib.all (c: (c ? user) == (c ? group)) contents)
) "imagetool: contents: user and group must be set together";
assert lib.assertMsg (
  onlyNixStore -> contents == [ ] && configFile == null && !installBootLoader
) "imagetool: onlyNixStore is incompatible with contents, configFile and installBootLoader";

let
  # The same channel make-disk-image copies.
  nixpkgs = lib.cleanSource pkgs.path;
  channelSources = pkgs.runCommand "nixos-${config.system.nixos.version}" { } ''
    mkdir -p $out
    cp -prd ${nixpkgs.outPath} $out/nixos
    chmod -R u+w $out/nixos
    if [ ! -e $out/nixos/nixpkgs ]; then
      ln -s . $out/nixos/nixpkgs
    fi
    rm -rf $out/nixos/.git
    echo -n ${config.system.nixos.versionSuffix} > $out/nixos/.version-suffix
  '';

  image = import ./imagetool-image.nix (
    {
      imagetool = "${imagetool}/bin/imagetool";
      system = pkgs.stdenv.hostPlatform.system;
      toplevel = config.system.build.toplevel;
      channel = if copyChannel && !onlyNixStore then channelSources else null;
      inherit
        name
        diskSize
        additionalSpace
        bootSize
        contents
        partitionTableType
        installBootLoader
        fsType
        onlyNixStore
        label
        configFile
        format
        baseName
        deterministic
        rootGPUID
        copyChannel
        additionalPaths
        ;
    }
    // lib.optionalAttrs (rootFSUID != null) { inherit rootFSUID; }
    // lib.optionalAttrs touchEFIVars { inherit touchEFIVars; }
    // lib.optionalAttrs (touchEFIVars && efiVariables != null) { inherit efiVariables; }
    // imagetoolSettings
  );

  filename =
    baseName
    + "."
    + (
      {
        qcow2 = "qcow2";
        "qcow2-compressed" = "qcow2";
        vdi = "vdi";
        vpc = "vhd";
        raw = "img";
      }
      .${format} or format
    );
in
if postVM == "" then
  image
else
  # make-disk-image runs postVM on the host after the VM: here, on a copy of the image.
  pkgs.runCommand name { } ''
    cp -r --no-preserve=mode ${image} $out
    sed -i "s|${image}|$out|" $out/nix-support/hydra-build-products
    diskImage=$out/${filename}
    ${postVM}
  ''
