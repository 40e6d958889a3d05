//! lade sync.

use super::Global;

#[derive(clap::Args, Debug)]
pub struct SyncArgs {}

pub fn run(_g: &Global, _a: SyncArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
