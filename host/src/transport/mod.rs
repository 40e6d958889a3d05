//! Transports (docker://, oci:, oci-archive:, docker-archive:, dir:, the local store) behind one
//! source/destination interface.
//!
//! # The contract (stable; every transport implements it, the copy engine drives it)
//!
//! * [`ImageSource`] hands out manifests (the tagged top one, or a child of an index by digest) and blobs as
//!   a [`BlobStream`]. A source does not need to verify what it returns: the engine wraps every blob in a
//!   [`verify::DigestingReader`] and checks every manifest with [`verify::check_bytes`].
//! * [`ImageDestination`] receives blobs, then manifests (children of an index first, each with
//!   `instance: Some(digest)`; the top one last with `instance: None`), then [`ImageDestination::commit`].
//!   Nothing may become visible (a blob file, a tag) before it is complete: `put_blob` must read the stream
//!   to EOF without error before it publishes the blob. The stream the engine passes is a `DigestingReader`,
//!   which fails at EOF on a short read, an overlong read or a digest mismatch, so a destination that only
//!   publishes after a clean EOF never publishes a bad blob and need not hash again. A destination called
//!   with a stream that does not come from the engine must wrap it in a `DigestingReader` itself.
//! * [`open_source`] / [`open_destination`] parse a transport string (`oci:/x:tag`, `docker://host/repo:tag`,
//!   ...) with [`parse`] and open the right transport. `docker://` is delegated to
//!   `crate::transport::docker::{open_source, open_destination}(rest_without_prefix, ctx)`.

/// podman's and buildah's store (`containers-storage:`), read and written in place.
pub mod containers_storage;
pub mod dir;
/// The registry transport (`docker://`), over the client in `crate::registry`.
pub mod docker;
pub mod docker_archive;
pub mod local;
pub mod oci;
pub mod oci_archive;

pub use crate::oci::{BlobStream, Descriptor, Digest, PlatformOverride, media};
pub use crate::registry::SystemContext;
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use std::path::PathBuf;

/// Where a blob was read from, so a destination can try a cross-repository mount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReuseHint {
    /// For a registry source: the registry host (`docker.io`, `127.0.0.1:5000`).
    pub registry: Option<String>,
    /// For a registry source: the repository path (`library/alpine`).
    pub repository: Option<String>,
}

/// Read side of a transport.
#[async_trait]
pub trait ImageSource: Send + Sync {
    /// The transport string, for messages (`oci:/tmp/x:latest`).
    fn name(&self) -> String;

    /// The manifest the reference names (`instance: None`), or a child of an index by digest.
    /// Returns the exact bytes and their media type.
    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Vec<u8>, String)>;

    /// A blob's bytes. The engine verifies digest and size while reading.
    async fn blob(&self, desc: &Descriptor) -> Result<BlobStream>;

    /// The file that holds a blob, for transports whose blobs are plain files on this machine (a layout
    /// directory): readers that need a file (a scan) use it in place instead of a copy. The bytes are as
    /// untrusted as [`ImageSource::blob`]'s: the caller checks the digest.
    fn blob_file(&self, _desc: &Descriptor) -> Option<std::path::PathBuf> {
        None
    }

    /// OCI 1.1 referrers of `subject` (signatures, attestations, SBOMs that name it in `subject`).
    async fn referrers(&self, _subject: &Descriptor) -> Result<Vec<Descriptor>> {
        Ok(vec![])
    }

    /// Another tag in the same repository (cosign's `sha256-<hex>.sig` scheme): Ok(None) when absent or
    /// when the transport has no such notion.
    async fn tagged_manifest(&self, _tag: &str) -> Result<Option<(Vec<u8>, String)>> {
        Ok(None)
    }

    /// Where blobs come from, for cross-repository mounts at a registry destination.
    fn reuse_hint(&self) -> Option<ReuseHint> {
        None
    }
}

/// Write side of a transport.
#[async_trait]
pub trait ImageDestination: Send + Sync {
    /// The transport string, for messages.
    fn name(&self) -> String;

    /// Manifest media types this destination can store, most preferred first. Empty: any.
    fn supported_manifest_types(&self) -> Vec<&'static str> {
        vec![]
    }

    /// Whether it can store an index (manifest list); when false the engine copies one instance.
    fn supports_index(&self) -> bool {
        true
    }

    /// Where this destination's blobs live (`docker://host/repo`, `oci:/abs/dir`): copies running at once in
    /// this process that name the same namespace write each blob there once (see the copy engine's `once`).
    /// None: nothing is shared.
    fn blob_namespace(&self) -> Option<String> {
        None
    }

    /// Like [`Self::blob_namespace`], for manifests written by digest (children of an index, referrers):
    /// Some only when a manifest written there once needs no second write (a registry repository).
    fn manifest_namespace(&self) -> Option<String> {
        None
    }

    /// Whether the destination already holds this blob (checked before any upload).
    async fn has_blob(&self, desc: &Descriptor) -> Result<bool>;

    /// Make the blob present without uploading it (a registry's cross-repository mount). Ok(false): not
    /// possible, the engine will call `put_blob`.
    async fn try_reuse_blob(&self, _desc: &Descriptor, _hint: Option<&ReuseHint>) -> Result<bool> {
        Ok(false)
    }

    /// Store a blob. Must read `data` to EOF without error before making it visible (see module docs).
    async fn put_blob(&self, desc: &Descriptor, data: BlobStream) -> Result<()>;

    /// Store a manifest. `instance: Some(d)` for a child of an index or an untagged manifest (a referrer);
    /// `None` for the top manifest the reference names, which gets the reference's tag.
    async fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<()>;

    /// Store a manifest under another tag of the same repository (cosign `sha256-<hex>.sig`).
    /// Ok(false) when the destination has no tags besides its reference's.
    async fn put_tagged_manifest(
        &self,
        _bytes: &[u8],
        _media_type: &str,
        _tag: &str,
    ) -> Result<bool> {
        Ok(false)
    }

    /// Finish: publish tags, write archives. Nothing is visible under the reference before this.
    async fn commit(&self) -> Result<()>;
}

/// A parsed transport string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportRef {
    /// `docker://REF` (REF without the prefix).
    Docker(String),
    /// `oci:DIR[:REF]`.
    Oci {
        dir: PathBuf,
        reference: Option<String>,
    },
    /// `oci-archive:FILE[:REF]`.
    OciArchive {
        file: PathBuf,
        reference: Option<String>,
    },
    /// `docker-archive:FILE[:REF]` (REF: a name:tag, or `@N` for the N-th image).
    DockerArchive {
        file: PathBuf,
        reference: Option<String>,
    },
    /// `dir:DIR`.
    Dir(PathBuf),
    /// The local store: `lade:NAME` (NAME: name, short name or image ID).
    Local(String),
    /// podman's store: `containers-storage:[DRIVER@GRAPHROOT+RUNROOT]IMAGE` (the text after the colon).
    ContainersStorage(String),
}

impl TransportRef {
    /// The name an image read from here gets in the local store (`lade pull`, a build's FROM): the
    /// reference when there is one, else the file or directory stem.
    pub fn store_name(&self) -> String {
        match self {
            TransportRef::Oci {
                reference: Some(r), ..
            }
            | TransportRef::OciArchive {
                reference: Some(r), ..
            }
            | TransportRef::DockerArchive {
                reference: Some(r), ..
            } if !r.starts_with('@') => r.clone(),
            TransportRef::Oci { dir: p, .. }
            | TransportRef::OciArchive { file: p, .. }
            | TransportRef::DockerArchive { file: p, .. }
            | TransportRef::Dir(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().to_lowercase())
                .unwrap_or_else(|| "image".into()),
            TransportRef::Docker(r) | TransportRef::Local(r) => r.clone(),
            TransportRef::ContainersStorage(r) => {
                let image = containers_storage::CsRef::parse(r)
                    .map(|c| c.image)
                    .unwrap_or_else(|_| r.clone());
                containers_storage::normalized_name(&image)
                    .ok()
                    .flatten()
                    .unwrap_or(image)
            }
        }
    }
}

/// Split `PATH[:REF]` at the first colon, as containers/image does (paths holding a colon are not
/// supported, exactly like skopeo).
fn split_path_ref(rest: &str) -> (PathBuf, Option<String>) {
    match rest.split_once(':') {
        Some((p, r)) if !r.is_empty() => (PathBuf::from(p), Some(r.to_string())),
        Some((p, _)) => (PathBuf::from(p), None),
        None => (PathBuf::from(rest), None),
    }
}

/// Parse a transport string. A name without a known transport prefix is an error naming the choices.
pub fn parse(name: &str) -> Result<TransportRef> {
    let (transport, rest) = name.split_once(':').with_context(|| {
        format!("`{name}` names no transport: use docker://, oci:, oci-archive:, docker-archive:, dir:, lade: or containers-storage:")
    })?;
    if rest.is_empty() {
        bail!("`{name}`: the {transport}: transport needs a location after the colon");
    }
    Ok(match transport {
        "docker" => match rest.strip_prefix("//") {
            Some(r) if !r.is_empty() => TransportRef::Docker(r.to_string()),
            _ => bail!("`{name}`: write docker://HOST/REPO[:TAG|@DIGEST]"),
        },
        "oci" => {
            let (dir, reference) = split_path_ref(rest);
            TransportRef::Oci { dir, reference }
        }
        "oci-archive" => {
            let (file, reference) = split_path_ref(rest);
            TransportRef::OciArchive { file, reference }
        }
        "docker-archive" => {
            let (file, reference) = split_path_ref(rest);
            TransportRef::DockerArchive { file, reference }
        }
        "dir" => TransportRef::Dir(PathBuf::from(rest)),
        "lade" => TransportRef::Local(rest.to_string()),
        "containers-storage" => TransportRef::ContainersStorage(rest.to_string()),
        other => bail!(
            "`{name}`: unknown transport `{other}:`; use docker://, oci:, oci-archive:, docker-archive:, dir:, lade: or containers-storage:"
        ),
    })
}

/// Open the read side of `name` (a transport string).
pub async fn open_source(name: &str, ctx: &SystemContext) -> Result<Box<dyn ImageSource>> {
    Ok(match parse(name)? {
        TransportRef::Docker(r) => docker::open_source(&r, ctx).await?,
        TransportRef::Oci { dir, reference } => {
            Box::new(oci::OciSource::open(&dir, reference.as_deref())?)
        }
        TransportRef::OciArchive { file, reference } => Box::new(
            oci_archive::OciArchiveSource::open(&file, reference.as_deref())?,
        ),
        TransportRef::DockerArchive { file, reference } => Box::new(
            docker_archive::DockerArchiveSource::open(&file, reference.as_deref())?,
        ),
        TransportRef::Dir(d) => Box::new(dir::DirSource::open(&d)?),
        TransportRef::Local(n) => Box::new(local::LocalSource::open(&ctx.store_root, &n)?),
        TransportRef::ContainersStorage(r) => Box::new(
            tokio::task::spawn_blocking(move || containers_storage::CsSource::open(&r)).await??,
        ),
    })
}

/// Open the write side of `name` (a transport string).
pub async fn open_destination(
    name: &str,
    ctx: &SystemContext,
) -> Result<Box<dyn ImageDestination>> {
    Ok(match parse(name)? {
        TransportRef::Docker(r) => docker::open_destination(&r, ctx).await?,
        TransportRef::Oci { dir, reference } => {
            Box::new(oci::OciDestination::open(&dir, reference.as_deref())?)
        }
        TransportRef::OciArchive { file, reference } => Box::new(
            oci_archive::OciArchiveDestination::create(&file, reference.as_deref())?,
        ),
        TransportRef::DockerArchive { file, reference } => Box::new(
            docker_archive::DockerArchiveDestination::create(&file, reference.as_deref())?,
        ),
        TransportRef::Dir(d) => Box::new(dir::DirDestination::create(&d)?),
        TransportRef::Local(n) => Box::new(local::LocalDestination::open(&ctx.store_root, &n)?),
        TransportRef::ContainersStorage(r) => {
            Box::new(containers_storage::CsDestination::open(&r)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transport_strings() {
        assert_eq!(
            parse("oci:/x/y:tag").unwrap(),
            TransportRef::Oci {
                dir: "/x/y".into(),
                reference: Some("tag".into())
            }
        );
        assert_eq!(
            parse("oci:/x/y").unwrap(),
            TransportRef::Oci {
                dir: "/x/y".into(),
                reference: None
            }
        );
        assert_eq!(
            parse("oci:/x:localhost/app:1").unwrap(),
            TransportRef::Oci {
                dir: "/x".into(),
                reference: Some("localhost/app:1".into())
            }
        );
        assert_eq!(
            parse("docker://a.b/c:1").unwrap(),
            TransportRef::Docker("a.b/c:1".into())
        );
        assert_eq!(parse("dir:/d").unwrap(), TransportRef::Dir("/d".into()));
        assert_eq!(
            parse("docker-archive:/a.tar:app:1").unwrap(),
            TransportRef::DockerArchive {
                file: "/a.tar".into(),
                reference: Some("app:1".into())
            }
        );
        assert_eq!(
            parse("containers-storage:[overlay@/r+/rr]app").unwrap(),
            TransportRef::ContainersStorage("[overlay@/r+/rr]app".into())
        );
        assert_eq!(
            parse("lade:app").unwrap(),
            TransportRef::Local("app".into())
        );
        assert!(parse("nope:/x").is_err());
        assert!(parse("alpine").is_err());
        assert!(parse("docker:alpine").is_err());
    }
}
