//! `lade build`. The build executor (running a plan into an image) is not in this version: the command runs
//! the frontend in its sandbox, prints the plan it would execute, and stops with an error that says so.

use std::path::PathBuf;

use super::dockerfile::ParseArgs;
use super::{Global, OutputFormat};

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// The Containerfile (default: Containerfile, then Dockerfile, in the context directory)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Name for the image; repeatable
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    /// A build argument, `NAME=value`; repeatable
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_args: Vec<String>,
    /// The platform to build for (default: the one lade runs on)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// The stage to build (default: the last)
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Cache intermediate layers (buildah's flag; on by default)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub layers: Option<bool>,
    /// Require HTTPS and verified certificates for registries
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub tls_verify: Option<bool>,
    /// Print less
    #[arg(short, long)]
    pub quiet: bool,
    /// The frontend plugin: a built-in or installed name, or a component file
    #[arg(long, value_name = "NAME|FILE", default_value = "dockerfile")]
    pub frontend: String,
    /// The build context directory
    #[arg(value_name = "CONTEXT", default_value = ".")]
    pub context: PathBuf,
}

pub fn run(g: &Global, a: BuildArgs) -> anyhow::Result<()> {
    super::dockerfile::parse(
        g,
        ParseArgs {
            file: a.file,
            build_args: a.build_args,
            platform: a.platform,
            target: a.target,
            frontend: a.frontend,
            format: OutputFormat::Text,
            context: a.context,
        },
    )?;
    anyhow::bail!(
        "stopping after the plan: the build executor is not part of this version of lade, so no image was built{}",
        if a.tags.is_empty() {
            String::new()
        } else {
            format!(" (nothing was tagged {})", a.tags.join(", "))
        }
    )
}
