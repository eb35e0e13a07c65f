# The imagetool command, built from this repository.
{
  lib,
  stdenv,
  rustPlatform,
  installShellFiles,
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
  nativeBuildInputs = [ installShellFiles ];
  # --version names the revision (there is no .git in the source).
  IMAGETOOL_GIT_REV = "nix";
  # Completions and man pages come from the binary itself (as `cargo xtask dist-assets`).
  # (A cross build cannot run the binary, and ships without them.)
  postInstall = lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
    mkdir -p man1
    $out/bin/imagetool man --out man1
    installManPage man1/*.1
    installShellCompletion --cmd imagetool \
      --bash <($out/bin/imagetool completions bash) \
      --zsh <($out/bin/imagetool completions zsh) \
      --fish <($out/bin/imagetool completions fish)
  '';
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
