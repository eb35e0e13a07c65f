{
  description = "imagetool: NixOS disk images built natively, no VM and no KVM";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: rec {
        imagetool = pkgs.callPackage ./nix/package.nix { };
        default = imagetool;
      });

      # pkgs.imagetool, for nix/make-disk-image.nix's default `imagetool` argument.
      overlays.default = final: _prev: {
        imagetool = final.callPackage ./nix/package.nix { };
      };

      lib = {
        # make-disk-image's arguments ({ pkgs, lib, config, format, partitionTableType, ... }).
        makeDiskImage =
          args:
          import ./nix/make-disk-image.nix (
            {
              imagetool = self.packages.${args.pkgs.stdenv.hostPlatform.system}.default;
            }
            // args
          );
        # The builtins-only derivation ({ imagetool, toplevel, ... } with spec keys).
        imagetoolImage = import ./nix/imagetool-image.nix;
        # nixos-rebuild build-image's variants: lib.images.amazon { pkgs, config, ... }.
        images = builtins.mapAttrs (
          _variant: build:
          { pkgs, config, ... }@args:
          build (
            {
              imagetool = "${self.packages.${pkgs.stdenv.hostPlatform.system}.default}/bin/imagetool";
              toplevel = config.system.build.toplevel;
              system = pkgs.stdenv.hostPlatform.system;
            }
            // builtins.removeAttrs args [
              "pkgs"
              "config"
            ]
          )
        ) (import ./nix/images.nix);
      };

      # system.build.imagetoolImages.<variant> for a NixOS configuration.
      nixosModules.default =
        { pkgs, lib, ... }:
        {
          imports = [ ./nix/module.nix ];
          imagetool.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
    };
}
