//! lade login, logout, list-tags, delete.

use super::Global;

#[derive(clap::Args, Debug)]
pub struct LoginArgs {}

pub fn login(_g: &Global, _a: LoginArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

#[derive(clap::Args, Debug)]
pub struct LogoutArgs {}

pub fn logout(_g: &Global, _a: LogoutArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

#[derive(clap::Args, Debug)]
pub struct ListTagsArgs {}

pub fn list_tags(_g: &Global, _a: ListTagsArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {}

pub fn delete(_g: &Global, _a: DeleteArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
