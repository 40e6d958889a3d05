//! Argument parsing only: every command is a call into the `lade` library.

use clap::{Parser, Subcommand};
use lade::cli;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lade",
    version,
    about = "Build, copy, sign and scan OCI container images",
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    global: cli::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image from a Containerfile or Dockerfile
    #[command(visible_alias = "bud")]
    Build(cli::build::BuildArgs),
    /// Work with Containerfiles: show exactly what lade understood
    #[command(subcommand)]
    Dockerfile(cli::dockerfile::DockerfileCommand),
    /// List, inspect, install, push and remove plugins
    #[command(subcommand)]
    Plugin(cli::plugin::PluginCommand),
    /// List images in the local store
    Images(cli::images::ImagesArgs),
    /// Add a name to a local image
    Tag(cli::images::TagArgs),
    /// Remove names (and unreferenced images) from the local store
    Rmi(cli::images::RmiArgs),
    /// Remove blobs no image in the local store references
    Prune(cli::images::PruneArgs),
    /// Check the local store (re-hash blobs, check images and caches); --repair removes what is damaged
    Fsck(cli::fsck::FsckArgs),
    /// Show an image's manifest and config, from the local store or any transport
    Inspect(cli::inspect::InspectArgs),
    /// Show an image's history (created, created by, size, comment), as podman history
    History(cli::history::HistoryArgs),
    /// Copy an image between any two transports
    Copy(cli::copy::CopyArgs),
    /// Copy a local image to a destination
    Push(cli::copy::PushArgs),
    /// Copy an image into the local store
    Pull(cli::copy::PullArgs),
    /// Write local images into one oci-archive or docker-archive
    Save(cli::archive::SaveArgs),
    /// Read images from an oci-archive or docker-archive into the local store
    Load(cli::archive::LoadArgs),
    /// Store credentials for a registry
    Login(cli::registry::LoginArgs),
    /// Remove stored credentials for a registry
    Logout(cli::registry::LogoutArgs),
    /// List the tags of a repository
    ListTags(cli::registry::ListTagsArgs),
    /// Delete an image from a registry or a transport
    Delete(cli::registry::DeleteArgs),
    /// Mirror many images, incrementally
    Sync(cli::sync::SyncArgs),
    /// Create, fill and push image indexes (manifest lists)
    #[command(subcommand)]
    Manifest(cli::manifest::ManifestCommand),
    /// Show the host platform, binfmt_misc handlers and the runner each platform would get
    Info(cli::info::InfoArgs),
    /// Show or change the signature policy (policy.json), as podman image trust
    #[command(subcommand)]
    Trust(cli::trust::TrustCommand),
    /// Run a scanner plugin over an image or a root filesystem directory and report its findings
    Scan(cli::scan::ScanArgs),
    /// Make a software bill of materials (SPDX, CycloneDX) of an image or a root filesystem directory
    Sbom(cli::sbom::SbomArgs),
    /// Show the version, commit, wasmtime, plugin contract versions and platform (`--format json`)
    Version(cli::version::VersionArgs),
    /// The offline vulnerability database (OSV records) `lade scan` matches against
    #[command(subcommand)]
    Db(cli::db::DbCommand),
    /// Make a cosign key pair: PREFIX.key (encrypted) and PREFIX.pub
    GenerateKeyPair(cli::sign::GenerateKeyPairArgs),
    /// Sign an image with a cosign key: the signature goes into its sha256-<digest>.sig tag
    Sign(cli::sign::SignArgs),
    /// Check an image's cosign signatures with a public key, or its GPG signatures with a keyring
    Verify(cli::sign::VerifyArgs),
    /// Sign a manifest file with a GPG key, as skopeo standalone-sign
    StandaloneSign(cli::standalone::StandaloneSignArgs),
    /// Verify a GPG signature of a manifest file, as skopeo standalone-verify
    StandaloneVerify(cli::standalone::StandaloneVerifyArgs),
    /// Attach an SBOM to an image as an OCI 1.1 referrer (signed as an attestation with a signer)
    #[command(subcommand)]
    Attach(cli::attach::AttachCommand),
    /// Make a working container from an image (`scratch` for none); prints its name
    From(cli::containers::FromArgs),
    /// List working containers
    Containers(cli::containers::ContainersArgs),
    /// Run a command in a working container, confined as a build's RUN
    Run(cli::containers::RunArgs),
    /// Mount a working container's root filesystem; prints the mount point
    Mount(cli::containers::MountArgs),
    /// Unmount working containers
    Umount(cli::containers::UmountArgs),
    /// Run a command (default: a shell) in lade's user namespace, where `lade mount` works rootless
    Unshare(cli::containers::UnshareArgs),
    /// Change a working container's image config (buildah config's flags)
    Config(cli::containers_config::ConfigArgs),
    /// Copy host files into a working container, with COPY's rules (buildah copy)
    Cp(cli::containers::CopyInArgs),
    /// Add files, URLs or archives (extracted) into a working container, with ADD's rules
    Add(cli::containers::CopyInArgs),
    /// Make an image of a working container; prints the image id
    Commit(cli::containers::CommitArgs),
    /// Remove working containers
    Rm(cli::containers::RmArgs),
    /// Rename a working container
    Rename(cli::containers::RenameArgs),
    /// Show the files a working container or an image's top layer added (A), changed (C) or deleted (D)
    Diff(cli::containers::DiffArgs),
    /// Write a working container's root filesystem as a tar
    Export(cli::containers::ExportArgs),
    /// Make an image from a root filesystem tar
    Import(cli::containers::ImportArgs),
    /// Internal: run one RUN step from a spec file (lade re-executes itself for this)
    #[command(name = "__run-step", hide = true)]
    RunStep { spec: std::path::PathBuf },
}

fn main() -> ExitCode {
    let args = Cli::parse();
    // LADE_PARSE_ONLY=1: stop after the argument parser accepted the line (tests check CI recipes with it).
    if std::env::var_os("LADE_PARSE_ONLY").is_some_and(|v| v == "1") {
        return ExitCode::SUCCESS;
    }
    cli::init_logging(&args.global);
    cli::init_policy(&args.global);
    let g = &args.global;
    let result = match args.command {
        Command::Build(a) => cli::build::run(g, a),
        Command::Info(a) => cli::info::run(g, a),
        Command::Trust(a) => cli::trust::run(g, a),
        Command::GenerateKeyPair(a) => cli::sign::generate_key_pair(g, a),
        Command::Sign(a) => cli::sign::sign(g, a),
        Command::Verify(a) => cli::sign::verify(g, a),
        Command::StandaloneSign(a) => cli::standalone::standalone_sign(g, a),
        Command::StandaloneVerify(a) => cli::standalone::standalone_verify(g, a),
        Command::Attach(a) => cli::attach::run(g, a),
        Command::Manifest(a) => cli::manifest::run(g, a),
        Command::Dockerfile(a) => cli::dockerfile::run(g, a),
        Command::Plugin(a) => cli::plugin::run(g, a),
        Command::Images(a) => cli::images::images(g, a),
        Command::Tag(a) => cli::images::tag(g, a),
        Command::Rmi(a) => cli::images::rmi(g, a),
        Command::Prune(a) => cli::images::prune(g, a),
        Command::Fsck(a) => match cli::fsck::run(g, a) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Inspect(a) => cli::inspect::run(g, a),
        Command::History(a) => cli::history::run(g, a),
        Command::Copy(a) => cli::copy::copy(g, a),
        Command::Push(a) => cli::copy::push(g, a),
        Command::Pull(a) => cli::copy::pull(g, a),
        Command::Save(a) => cli::archive::save(g, a),
        Command::Load(a) => cli::archive::load(g, a),
        Command::Login(a) => cli::registry::login(g, a),
        Command::Logout(a) => cli::registry::logout(g, a),
        Command::ListTags(a) => cli::registry::list_tags(g, a),
        Command::Delete(a) => cli::registry::delete(g, a),
        Command::Sync(a) => cli::sync::run(g, a),
        Command::Scan(a) => match cli::scan::run(g, a) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Sbom(a) => cli::sbom::run(g, a),
        Command::Version(a) => cli::version::run(g, a),
        Command::Db(a) => cli::db::run(g, a),
        Command::From(a) => cli::containers::from(g, a),
        Command::Containers(a) => cli::containers::containers(g, a),
        Command::Run(a) => match cli::containers::run(g, a) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Mount(a) => cli::containers::mount(g, a),
        Command::Umount(a) => cli::containers::umount(g, a),
        Command::Unshare(a) => match cli::containers::unshare(g, a) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Config(a) => cli::containers_config::run(g, a),
        Command::Cp(a) => cli::containers::copy_in(g, a, false),
        Command::Add(a) => cli::containers::copy_in(g, a, true),
        Command::Commit(a) => cli::containers::commit(g, a),
        Command::Rm(a) => cli::containers::rm(g, a),
        Command::Rename(a) => cli::containers::rename(g, a),
        Command::Diff(a) => cli::containers::diff(g, a),
        Command::Export(a) => cli::containers::export(g, a),
        Command::Import(a) => cli::containers::import(g, a),
        Command::RunStep { spec } => lade::dispatch::isolation::child::main(&spec),
    };
    cli::exit(result)
}

#[cfg(test)]
mod tests {
    /// clap's own checks of every command and flag (two flags of one name panic only when that command
    /// is parsed, so a test walks them all).
    #[test]
    fn every_command_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
