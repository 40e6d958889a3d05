//! lade plugin list, inspect, install, remove.

use super::Global;

#[derive(clap::Subcommand, Debug)]
pub enum PluginCommand {
    /// List embedded and installed plugins
    List {},
}

pub fn run(_g: &Global, _c: PluginCommand) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
