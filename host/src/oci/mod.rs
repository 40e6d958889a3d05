//! The image model every other module shares: digests, descriptors, media types, blob streams, verified
//! readers, compression kinds and platform matching. A leaf: it imports nothing else from the crate.

pub mod compression;
pub mod config;
pub mod document;
pub mod platform;
pub mod verify;

pub use compression::Compression;
pub use config::ImageConfig;
pub use document::{Desc, Index, Manifest, Parsed};
pub use oci_spec::image::{Descriptor, Digest};

use anyhow::Result;
use oci_spec::image::{DescriptorBuilder, MediaType};

/// The bytes of one blob, streamed. Sources return it; destinations consume it to EOF.
pub type BlobStream = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// News of a blob being written to a file, for a reader following it (its digest is known only at the
/// end): the file, how far it is written, then `End` with the size and the digest its bytes must hash to.
/// A channel closed before `End` means the blob was abandoned. The writer only appends to the file: bytes
/// once reported written never change (a follower may map them).
#[derive(Debug)]
pub enum BlobProgress {
    Started(std::sync::Arc<std::fs::File>),
    Written(u64),
    End(u64, Digest),
}

/// Media types the engine and the transports recognise.
pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_FOREIGN_LAYER: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

    /// A manifest list or an OCI index.
    pub fn is_index(mt: &str) -> bool {
        mt == OCI_INDEX || mt == DOCKER_LIST
    }

    /// A single-image manifest (OCI or Docker v2s2).
    pub fn is_manifest(mt: &str) -> bool {
        mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
    }

    /// The media type of manifest bytes: their `mediaType` field, else `manifests` → OCI index, else an OCI
    /// manifest (the OCI spec makes the field optional).
    pub fn sniff(bytes: &[u8]) -> String {
        let Ok(k) = serde_json::from_slice::<super::document::Kind>(bytes) else {
            return OCI_MANIFEST.to_string();
        };
        if let Some(serde_json::Value::String(mt)) = k.media_type {
            return mt;
        }
        if k.manifests.is_some() {
            OCI_INDEX.to_string()
        } else {
            OCI_MANIFEST.to_string()
        }
    }
}

/// Overrides for choosing an instance from an index (`--override-os/--override-arch/--override-variant`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlatformOverride {
    pub os: Option<String>,
    pub arch: Option<String>,
    pub variant: Option<String>,
}

/// A descriptor for a manifest or index of `media_type`.
pub fn manifest_descriptor(digest: Digest, size: u64, media_type: &str) -> Result<Descriptor> {
    Ok(DescriptorBuilder::default()
        .media_type(MediaType::from(media_type))
        .digest(digest)
        .size(size)
        .build()?)
}
