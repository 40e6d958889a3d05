//! The local store as a transport (`lade:NAME`): the `oci:` code
//! over the store's layout, with names resolved and qualified like buildah, and the GC lock held while
//! writing.

use super::oci::{OciDestination, OciSource};
use super::{BlobStream, Descriptor, Digest, ImageDestination};
use crate::store::{GcGuard, Store, names};
use anyhow::Result;
use async_trait::async_trait;
use std::path::Path;

/// Read an image from the store.
pub struct LocalSource;

impl LocalSource {
    pub fn open(root: &Path, name: &str) -> Result<OciSource> {
        let store = Store::open(root)?;
        let (full, desc) = store.resolve(name)?;
        let repo = names::repository(&full).to_string();
        Ok(OciSource::from_parts(
            store.layout().clone(),
            desc,
            format!("lade:{full}"),
            Some(repo),
        ))
    }
}

/// Write an image into the store under a fully qualified name.
pub struct LocalDestination {
    inner: OciDestination,
    store: Store,
    _guard: GcGuard,
}

impl LocalDestination {
    /// `name` is qualified as a pulled name would be (`alpine` → `docker.io/library/alpine:latest`) when
    /// `remote`, else as a local one (`app` → `localhost/app:latest`).
    pub fn open_named(root: &Path, name: &str, remote: bool) -> Result<LocalDestination> {
        let store = Store::open(root)?;
        let full = Self::stored_name(name, remote);
        let guard = store.writer_guard()?;
        let repo = names::repository(&full).to_string();
        let inner = OciDestination::from_parts(
            store.layout().clone(),
            Some(full.clone()),
            Some(repo),
            format!("lade:{full}"),
        );
        Ok(LocalDestination {
            inner,
            store,
            _guard: guard,
        })
    }

    /// The name [`LocalDestination::open_named`] stores `name` under. `repo:tag@digest` is kept as
    /// `repo:tag`; `repo@digest` keeps the digest as its name (shown with tag `<none>`, as podman does)
    /// rather than taking over `repo:latest`, which may name another image.
    pub fn stored_name(name: &str, remote: bool) -> String {
        let full = if remote {
            names::qualify_remote(name)
        } else {
            names::qualify_local(name)
        };
        match full.split_once('@') {
            Some((n, _)) if n.rsplit('/').next().is_some_and(|l| l.contains(':')) => n.to_string(),
            _ => full,
        }
    }

    pub fn open(root: &Path, name: &str) -> Result<LocalDestination> {
        Self::open_named(root, name, false)
    }
}

#[async_trait]
impl ImageDestination for LocalDestination {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn supported_manifest_types(&self) -> Vec<&'static str> {
        self.inner.supported_manifest_types()
    }
    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        self.inner.has_blob(desc).await
    }
    async fn put_blob(&self, desc: &Descriptor, data: BlobStream) -> Result<()> {
        self.inner.put_blob(desc, data).await
    }
    async fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<()> {
        self.inner.put_manifest(bytes, media_type, instance).await?;
        if super::media::is_manifest(media_type) {
            // Best effort: the mapping is a cache, rebuildable from the layout.
            if let Err(e) = self.store.record_manifest_diff_ids(bytes) {
                tracing::debug!("recording diff_ids: {e:#}");
            }
        }
        Ok(())
    }
    async fn put_tagged_manifest(&self, bytes: &[u8], media_type: &str, tag: &str) -> Result<bool> {
        self.inner.put_tagged_manifest(bytes, media_type, tag).await
    }
    async fn commit(&self) -> Result<()> {
        self.inner.commit().await
    }
}
