//! lade build.

use super::Global;

#[derive(clap::Args, Debug)]
pub struct BuildArgs {}

pub fn run(_g: &Global, _a: BuildArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
