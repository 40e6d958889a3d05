//! The `context` import: the `build-context` resource a frontend reads the build context through. The host
//! side is [`ContextReader`], implemented by [`crate::context::BuildContext`] (read-only, confined to the
//! context directory, honouring .containerignore); this file only translates between it and the contract,
//! for every contract version (0.1.0's answers are adapted down from the newest types).

use super::state::State;
use super::v0_1_0::adapt;
use super::v0_1_0::frontend_world::lade::plugin::context as wit_0_1;
use super::v0_2_0::frontend_world::lade::plugin::context as wit;
use super::v0_2_0::types::{DirEntry, FileKind, FileStat, PluginError};
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

fn kind(k: crate::context::FileKind) -> FileKind {
    use crate::context::FileKind as K;
    match k {
        K::File => FileKind::File,
        K::Directory => FileKind::Directory,
        K::Symlink => FileKind::Symlink,
        K::Other => FileKind::Other,
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

impl State {
    fn context_read(
        &self,
        this: &Resource<ContextHandle>,
        path: &str,
    ) -> wasmtime::Result<Result<Vec<u8>, PluginError>> {
        let ctx = self.context(this)?;
        match ctx.stat(path) {
            Ok(Some(st)) if st.size > MAX_READ => {
                return Ok(Err(PluginError::Host(format!(
                    "`{path}` in the build context is {} bytes; a plugin may read at most {MAX_READ}",
                    st.size
                ))));
            }
            // A FIFO or device would block or never end: only files (and links to them) are read.
            Ok(Some(st)) if matches!(st.kind, FileKind::Directory | FileKind::Other) => {
                return Ok(Err(PluginError::Host(format!(
                    "`{path}` in the build context is not a regular file"
                ))));
            }
            Ok(_) => {}
            Err(e) => return Ok(Err(host_error("reading", path, e))),
        }
        Ok(ctx
            .read_file(path)
            .map_err(|e| host_error("reading", path, e)))
    }

    fn context_stat(
        &self,
        this: &Resource<ContextHandle>,
        path: &str,
    ) -> wasmtime::Result<Result<Option<FileStat>, PluginError>> {
        let ctx = self.context(this)?;
        Ok(ctx.stat(path).map_err(|e| host_error("examining", path, e)))
    }

    fn context_list(
        &self,
        this: &Resource<ContextHandle>,
        path: &str,
    ) -> wasmtime::Result<Result<Vec<DirEntry>, PluginError>> {
        let ctx = self.context(this)?;
        Ok(ctx
            .list_dir(path)
            .map_err(|e| host_error("listing", path, e)))
    }
}

impl wit::HostBuildContext for State {
    fn read_file(
        &mut self,
        this: Resource<ContextHandle>,
        path: String,
    ) -> wasmtime::Result<Result<Vec<u8>, PluginError>> {
        self.context_read(&this, &path)
    }

    fn stat(
        &mut self,
        this: Resource<ContextHandle>,
        path: String,
    ) -> wasmtime::Result<Result<Option<FileStat>, PluginError>> {
        self.context_stat(&this, &path)
    }

    fn list_dir(
        &mut self,
        this: Resource<ContextHandle>,
        path: String,
    ) -> wasmtime::Result<Result<Vec<DirEntry>, PluginError>> {
        self.context_list(&this, &path)
    }

    fn drop(&mut self, this: Resource<ContextHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl wit::Host for State {}

/// 0.1.0: the same answers, adapted down (the shapes did not change).
impl wit_0_1::HostBuildContext for State {
    fn read_file(
        &mut self,
        this: Resource<ContextHandle>,
        path: String,
    ) -> wasmtime::Result<Result<Vec<u8>, super::v0_1_0::types::PluginError>> {
        // The bytes as they are (no serde detour); only an error needs adapting.
        Ok(match self.context_read(&this, &path)? {
            Ok(bytes) => Ok(bytes),
            Err(e) => Err(adapt("a plugin error", &e)?),
        })
    }

    fn stat(
        &mut self,
        this: Resource<ContextHandle>,
        path: String,
    ) -> wasmtime::Result<Result<Option<wit_0_1::FileStat>, super::v0_1_0::types::PluginError>>
    {
        adapt("a build-context answer", &self.context_stat(&this, &path)?)
    }

    fn list_dir(
        &mut self,
        this: Resource<ContextHandle>,
        path: String,
    ) -> wasmtime::Result<Result<Vec<wit_0_1::DirEntry>, super::v0_1_0::types::PluginError>> {
        adapt("a build-context answer", &self.context_list(&this, &path)?)
    }

    fn drop(&mut self, this: Resource<ContextHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl wit_0_1::Host for State {}

pub use super::v0_2_0::types::{
    DirEntry as ContextEntry, FileKind as ContextFileKind, FileStat as ContextStat,
};
