//! lade dockerfile parse.

use super::Global;

#[derive(clap::Subcommand, Debug)]
pub enum DockerfileCommand {
    /// Print the raw instructions and the resolved plan
    Parse {},
}

pub fn run(_g: &Global, _c: DockerfileCommand) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
