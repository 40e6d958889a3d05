//! `lade build`. The build executor (running a plan into an image) is not in this version: the command runs
//! the frontend in its sandbox, prints the plan it would execute, and stops with an error that says so.

use super::dockerfile::{DefinitionArgs, ParseArgs};
use super::{Global, OutputFormat};

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    pub definition: DefinitionArgs,
    /// Name for the image; repeatable
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    /// Cache intermediate layers (buildah's flag; on by default)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub layers: Option<bool>,
    /// Require HTTPS and verified certificates for registries
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub tls_verify: Option<bool>,
    /// Print less
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(g: &Global, a: BuildArgs) -> anyhow::Result<()> {
    super::dockerfile::parse(
        g,
        ParseArgs {
            definition: a.definition,
            format: OutputFormat::Text,
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
