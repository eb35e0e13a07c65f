# A NixOS module: `config.system.build.imagetoolImages.<variant>` is the imagetool build of
# `config.system.build.images.<variant>` (same artifact, no VM), so switching is one line:
#
#   imports = [ imagetool.nixosModules.default ];
#   # nix build .#nixosConfigurations.host.config.system.build.imagetoolImages.amazon
#
# `imagetool.imageSettings` adds spec settings to every variant (docs/nix.md).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  images = import ./images.nix;
  cfg = config.imagetool;
  baseName =
    if config ? image && config.image ? baseName then
      config.image.baseName
    else
      "nixos-image-${config.system.nixos.label}-${pkgs.stdenv.hostPlatform.system}";
in
{
  options = {
    imagetool.package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.imagetool;
      defaultText = lib.literalExpression "pkgs.imagetool";
      description = "The imagetool package that builds the images.";
    };
    imagetool.imageSettings = lib.mkOption {
      type = lib.types.attrsOf lib.types.anything;
      default = { };
      example = {
        partitionTableType = "efi";
        archiveCompression = "bzip2";
      };
      description = "Spec settings (make-disk-image's argument names) for every variant.";
    };
    system.build.imagetoolImages = lib.mkOption {
      type = lib.types.lazyAttrsOf lib.types.raw;
      readOnly = true;
      description = "Every image variant of this configuration, built by imagetool.";
    };
  };
  config.system.build.imagetoolImages = lib.mapAttrs (
    variant: build:
    build (
      {
        imagetool = "${cfg.package}/bin/imagetool";
        toplevel = config.system.build.toplevel;
        system = pkgs.stdenv.hostPlatform.system;
        inherit baseName;
      }
      // cfg.imageSettings
    )
  ) images;
}
