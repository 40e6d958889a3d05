//! The `context` import: the `build-context` resource a frontend reads the build context through. The host
//! side is [`ContextReader`], implemented by [`crate::context::BuildContext`] (read-only, confined to the
//! context directory, honouring .containerignore); this file only translates between it and the contract.

use super::state::State;
use super::v0_1_0::frontend_world::lade::plugin::context::{self as wit, DirEntry, FileStat};
use super::v0_1_0::types::PluginError;
use std::sync::Arc;
use wasmtime::component::Resource;

/// Read-only access to a build context, paths relative to its root. Errors reach the plugin as `host` errors
/// naming the path.
pub trait ContextReader: Send + Sync {
    /// The whole content of a regular file.
    fn read_file(&self, path: &str) -> anyhow::Result<Vec<u8>>;
    /// None when the path does not exist or is ignored.
    fn stat(&self, path: &str) -> anyhow::Result<Option<FileStat>>;
    /// The entries of a directory, sorted by name, ignored entries left out.
    fn list_dir(&self, path: &str) -> anyhow::Result<Vec<DirEntry>>;
}

fn kind(k: crate::context::FileKind) -> wit::FileKind {
    use crate::context::FileKind as K;
    match k {
        K::File => wit::FileKind::File,
        K::Directory => wit::FileKind::Directory,
        K::Symlink => wit::FileKind::Symlink,
        K::Other => wit::FileKind::Other,
    }
}

/// The real build context: confined by cap-std, filtered by .containerignore.
impl ContextReader for crate::context::BuildContext {
    fn read_file(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        crate::context::BuildContext::read_file(self, path)
    }

    fn stat(&self, path: &str) -> anyhow::Result<Option<FileStat>> {
        Ok(
            crate::context::BuildContext::stat(self, path)?.map(|s| FileStat {
                kind: kind(s.kind),
                size: s.size,
                // Permission bits only: the kind is its own field.
                mode: s.mode & 0o7777,
            }),
        )
    }

    fn list_dir(&self, path: &str) -> anyhow::Result<Vec<DirEntry>> {
        Ok(crate::context::BuildContext::list_dir(self, path)?
            .into_iter()
            .map(|(name, k)| DirEntry {
                name,
                kind: kind(k),
            })
            .collect())
    }
}

/// The host value behind a `build-context` handle.
pub struct ContextHandle(pub Arc<dyn ContextReader>);

/// Largest file a frontend may read in one call; bigger ones are refused rather than copied into the sandbox.
const MAX_READ: u64 = 64 << 20;

fn host_error(what: &str, path: &str, e: anyhow::Error) -> PluginError {
    PluginError::Host(format!("{what} `{path}` in the build context: {e:#}"))
}

impl State {
    fn context(
        &self,
        handle: &Resource<ContextHandle>,
    ) -> wasmtime::Result<Arc<dyn ContextReader>> {
        Ok(self.table.get(handle)?.0.clone())
    }
}

impl wit::HostBuildContext for State {
    fn read_file(
        &mut self,
        this: Resource<ContextHandle>,
        path: String,
    ) -> wasmtime::Result<Result<Vec<u8>, PluginError>> {
        let ctx = self.context(&this)?;
        match ctx.stat(&path) {
            Ok(Some(st)) if st.size > MAX_READ => {
                return Ok(Err(PluginError::Host(format!(
                    "`{path}` in the build context is {} bytes; a plugin may read at most {MAX_READ}",
                    st.size
                ))));
            }
            // A FIFO or device would block or never end: only files (and links to them) are read.
            Ok(Some(st)) if matches!(st.kind, wit::FileKind::Directory | wit::FileKind::Other) => {
                return Ok(Err(PluginError::Host(format!(
                    "`{path}` in the build context is not a regular file"
                ))));
            }
            Ok(_) => {}
            Err(e) => return Ok(Err(host_error("reading", &path, e))),
        }
        Ok(ctx
            .read_file(&path)
            .map_err(|e| host_error("reading", &path, e)))
    }

    fn stat(
        &mut self,
        this: Resource<ContextHandle>,
        path: String,
    ) -> wasmtime::Result<Result<Option<FileStat>, PluginError>> {
        let ctx = self.context(&this)?;
        Ok(ctx
            .stat(&path)
            .map_err(|e| host_error("examining", &path, e)))
    }

    fn list_dir(
        &mut self,
        this: Resource<ContextHandle>,
        path: String,
    ) -> wasmtime::Result<Result<Vec<DirEntry>, PluginError>> {
        let ctx = self.context(&this)?;
        Ok(ctx
            .list_dir(&path)
            .map_err(|e| host_error("listing", &path, e)))
    }

    fn drop(&mut self, this: Resource<ContextHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl wit::Host for State {}

pub use wit::{DirEntry as ContextEntry, FileKind as ContextFileKind, FileStat as ContextStat};
