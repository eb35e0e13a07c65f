# The imagetool command, built from this repository.
{
  lib,
  rustPlatform,
}:

let
  cargoToml = builtins.fromTOML (builtins.readFile ../Cargo.toml);
in
rustPlatform.buildRustPackage {
  pname = "imagetool";
  inherit (cargoToml.workspace.package) version;
  src = lib.cleanSourceWith {
    src = ../.;
    filter =
      path: type:
      let
        base = baseNameOf path;
      in
      !(type == "directory" && (base == "target" || base == ".git"));
  };
  cargoLock.lockFile = ../Cargo.lock;
  cargoBuildFlags = [
    "-p"
    "imagetool-cli"
  ];
  # The test suite needs e2fsprogs, qemu, Nix and a network fetch of the fixture's Debian
  # packages; CI runs it (cargo xtask ci), the package build does not.
  doCheck = false;
  meta = {
    description = cargoToml.workspace.package.description or "Build NixOS disk images without a VM";
    homepage = cargoToml.workspace.package.homepage;
    license = with lib.licenses; [
      mit
      asl20
    ];
    mainProgram = "imagetool";
  };
}
