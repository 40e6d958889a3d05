//! lade save, load.

use super::Global;

#[derive(clap::Args, Debug)]
pub struct SaveArgs {}

pub fn save(_g: &Global, _a: SaveArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

#[derive(clap::Args, Debug)]
pub struct LoadArgs {}

pub fn load(_g: &Global, _a: LoadArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
