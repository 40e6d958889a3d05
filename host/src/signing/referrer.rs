//! OCI 1.1 referrers written by lade (sigstore bundles, SBOMs): an artifact manifest whose `subject` is the
//! image's top manifest, its `artifactType` the content's media type, the empty config, and the content as
//! its one layer. The destination records it: a registry's referrers API takes it as it is, a registry
//! without one gets the `sha256-<hex>` fallback tag index updated (`transport::docker`), an OCI layout and
//! the store an untagged `index.json` entry.

use crate::oci::media;
use crate::oci::verify::{DigestingReader, sha256_digest};
use crate::transport::{self, Descriptor, Digest, ImageDestination, SystemContext};
use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

/// The manifest a referrer names as its subject.
#[derive(Debug, Clone)]
pub struct Subject {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

/// The top manifest of the image `name` (any transport), as a referrer's subject, and its bytes.
pub async fn subject_of(name: &str, ctx: &SystemContext) -> Result<(Subject, Vec<u8>)> {
    let src = transport::open_source(name, ctx).await?;
    let (bytes, media_type) = src
        .manifest(None)
        .await
        .with_context(|| format!("reading the manifest of {name}"))?;
    Ok((
        Subject {
            digest: sha256_digest(&bytes),
            size: bytes.len() as u64,
            media_type,
        },
        bytes,
    ))
}

/// What to attach.
pub struct Artifact<'a> {
    /// The manifest's `artifactType`.
    pub artifact_type: &'a str,
    /// The layer's media type and bytes.
    pub media_type: &'a str,
    pub content: &'a [u8],
    /// `org.opencontainers.image.title` of the layer (a file name).
    pub title: String,
    /// The manifest's annotations (copied into the referrers index by the registry or the fallback).
    pub annotations: Vec<(&'a str, String)>,
}

/// The referrer manifest of `artifact` about `subject` (keys sorted, so the same content gives the same
/// manifest).
pub fn manifest(subject: &Subject, artifact: &Artifact) -> Result<Vec<u8>> {
    let mut annotations = Map::new();
    for (k, v) in &artifact.annotations {
        annotations.insert((*k).into(), v.clone().into());
    }
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "artifactType": artifact.artifact_type,
        "config": {"mediaType": media::OCI_EMPTY, "digest": sha256_digest(b"{}").to_string(), "size": 2},
        "layers": [{
            "mediaType": artifact.media_type,
            "digest": sha256_digest(artifact.content).to_string(),
            "size": artifact.content.len(),
            "annotations": {"org.opencontainers.image.title": artifact.title},
        }],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest.to_string(), "size": subject.size},
    });
    if !annotations.is_empty() {
        m["annotations"] = Value::Object(annotations);
    }
    Ok(serde_json::to_vec(&m)?)
}

/// Push `artifact` as a referrer of `subject` into the image `name`'s repository (or layout, or store).
/// Returns the referrer manifest's digest.
pub async fn push(
    name: &str,
    ctx: &SystemContext,
    subject: &Subject,
    artifact: &Artifact<'_>,
) -> Result<Digest> {
    let manifest = manifest(subject, artifact)?;
    let digest = sha256_digest(&manifest);
    let dest = transport::open_destination(name, ctx).await?;
    for blob in [&b"{}"[..], artifact.content] {
        put_blob(dest.as_ref(), blob).await?;
    }
    dest.put_manifest(&manifest, media::OCI_MANIFEST, Some(&digest))
        .await
        .with_context(|| format!("{name}: writing the referrer manifest {digest}"))?;
    dest.commit().await?;
    Ok(digest)
}

async fn put_blob(dest: &dyn ImageDestination, blob: &[u8]) -> Result<()> {
    let desc: Descriptor = oci_spec::image::DescriptorBuilder::default()
        .media_type(oci_spec::image::MediaType::Other(
            "application/octet-stream".into(),
        ))
        .digest(sha256_digest(blob))
        .size(blob.len() as u64)
        .build()?;
    if dest.has_blob(&desc).await? {
        return Ok(());
    }
    let stream = DigestingReader::new(
        std::io::Cursor::new(blob.to_vec()),
        desc.digest(),
        Some(desc.size()),
    )?;
    dest.put_blob(&desc, Box::new(stream)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_referrer_manifest_names_its_subject_and_type() {
        let subject = Subject {
            digest: sha256_digest(b"image"),
            size: 5,
            media_type: media::OCI_MANIFEST.into(),
        };
        let a = Artifact {
            artifact_type: "application/spdx+json",
            media_type: "application/spdx+json",
            content: b"{\"spdxVersion\":\"SPDX-2.3\"}",
            title: "sbom.spdx.json".into(),
            annotations: vec![],
        };
        let m: Value = serde_json::from_slice(&manifest(&subject, &a).unwrap()).unwrap();
        assert_eq!(m["artifactType"], "application/spdx+json");
        assert_eq!(m["subject"]["digest"], subject.digest.to_string());
        assert_eq!(m["config"]["mediaType"], media::OCI_EMPTY);
        assert_eq!(m["layers"][0]["size"], a.content.len());
        assert!(m.get("annotations").is_none());
    }
}
