//! SHIM by the lead until helper A replaces this whole file: same API, no caching.
use crate::context::BuildContext;
use anyhow::Result;
use std::path::Path;
pub struct StatCache;
impl StatCache {
    pub fn open(_p: &Path) -> StatCache {
        StatCache
    }
    pub fn digest(&self, ctx: &BuildContext, rel: &str) -> Result<String> {
        Ok(crate::layer::sha256_hex(&ctx.read_file(rel)?))
    }
    pub fn save(&self) -> Result<()> {
        Ok(())
    }
}
