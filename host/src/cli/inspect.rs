//! lade inspect.

use super::Global;

#[derive(clap::Args, Debug)]
pub struct InspectArgs {}

pub fn run(_g: &Global, _a: InspectArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
