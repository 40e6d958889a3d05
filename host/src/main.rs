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
    /// List, inspect, install and remove plugins
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
    /// Show an image's manifest and config, from the local store or any transport
    Inspect(cli::inspect::InspectArgs),
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
    /// Internal: run one RUN step from a spec file (lade re-executes itself for this)
    #[command(name = "__run-step", hide = true)]
    RunStep { spec: std::path::PathBuf },
}

fn main() -> ExitCode {
    let args = Cli::parse();
    cli::init_logging(&args.global);
    let g = &args.global;
    let result = match args.command {
        Command::Build(a) => cli::build::run(g, a),
        Command::Info(a) => cli::info::run(g, a),
        Command::Manifest(a) => cli::manifest::run(g, a),
        Command::Dockerfile(a) => cli::dockerfile::run(g, a),
        Command::Plugin(a) => cli::plugin::run(g, a),
        Command::Images(a) => cli::images::images(g, a),
        Command::Tag(a) => cli::images::tag(g, a),
        Command::Rmi(a) => cli::images::rmi(g, a),
        Command::Prune(a) => cli::images::prune(g, a),
        Command::Inspect(a) => cli::inspect::run(g, a),
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
        Command::RunStep { spec } => lade::dispatch::isolation::child::main(&spec),
    };
    cli::exit(result)
}
