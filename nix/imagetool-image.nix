# One derivation that builds a NixOS disk image with imagetool as its builder: no VM, no KVM,
# no `requiredSystemFeatures`. Uses builtins only, so it works without nixpkgs (the repository's
# tests call it with Debian's Nix); nix/make-disk-image.nix is the nixpkgs-facing wrapper.
#
# Every argument except `imagetool`, `system` and `name` is a setting of `imagetool build --spec`
# (make-disk-image's argument names, docs/nix.md): the derivation's structured attributes are the
# spec, and the closure comes from `exportReferencesGraph.closure`, so no closureInfo step is
# needed. The image is `$out/<baseName>.<ext>`, with `$out/nix-support/hydra-build-products`.
{
  # The imagetool executable (a store path string or a path), e.g. "${pkgs.imagetool}/bin/imagetool".
  imagetool,
  # The system toplevel (config.system.build.toplevel).
  toplevel,
  system ? builtins.currentSystem,
  name ? "nixos-disk-image",
  additionalPaths ? [ ],
  # A channel store path to copy into root's channels profile (with copyChannel).
  channel ? null,
  copyChannel ? true,
  ...
}@settings:

let
  closureRoots =
    [ toplevel ]
    ++ additionalPaths
    ++ (if copyChannel && channel != null then [ channel ] else [ ]);
  spec = builtins.removeAttrs settings [
    "imagetool"
    "system"
  ];
in
derivation (
  spec
  // {
    inherit name system;
    builder = imagetool;
    args = [
      "build"
      "--progress"
      "plain"
    ];
    __structuredAttrs = true;
    exportReferencesGraph.closure = closureRoots;
  }
)
