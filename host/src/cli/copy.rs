//! lade copy, push, pull.

use super::Global;

#[derive(clap::Args, Debug)]
pub struct CopyArgs {}

pub fn copy(_g: &Global, _a: CopyArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

#[derive(clap::Args, Debug)]
pub struct PushArgs {}

pub fn push(_g: &Global, _a: PushArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

#[derive(clap::Args, Debug)]
pub struct PullArgs {}

pub fn pull(_g: &Global, _a: PullArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
