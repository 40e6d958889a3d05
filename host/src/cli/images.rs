//! lade images, tag, rmi, prune.

use super::Global;

#[derive(clap::Args, Debug)]
pub struct ImagesArgs {}

pub fn images(_g: &Global, _a: ImagesArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

#[derive(clap::Args, Debug)]
pub struct TagArgs {}

pub fn tag(_g: &Global, _a: TagArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

#[derive(clap::Args, Debug)]
pub struct RmiArgs {}

pub fn rmi(_g: &Global, _a: RmiArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

#[derive(clap::Args, Debug)]
pub struct PruneArgs {}

pub fn prune(_g: &Global, _a: PruneArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
