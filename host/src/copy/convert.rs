//! Manifest format conversion (`--format oci|v2s2`): media types of the manifest, its config and its
//! layers. Config bytes and layer bytes stay the same, so layer digests do not change.

use crate::oci::document::{Index, Manifest};
use crate::transport::media;
use anyhow::{Result, bail};

/// The manifest format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    /// OCI image manifest and index.
    Oci,
    /// Docker image manifest v2 schema 2 and manifest list.
    V2s2,
}

impl ManifestFormat {
    pub fn manifest_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => media::OCI_MANIFEST,
            ManifestFormat::V2s2 => media::DOCKER_MANIFEST,
        }
    }

    pub fn index_type(self) -> &'static str {
        match self {
            ManifestFormat::Oci => media::OCI_INDEX,
            ManifestFormat::V2s2 => media::DOCKER_LIST,
        }
    }

    /// The format a manifest media type belongs to.
    pub fn of(mt: &str) -> Option<ManifestFormat> {
        match mt {
            media::OCI_MANIFEST | media::OCI_INDEX => Some(ManifestFormat::Oci),
            media::DOCKER_MANIFEST | media::DOCKER_LIST => Some(ManifestFormat::V2s2),
            _ => None,
        }
    }
}

fn layer_type(mt: &str, to: ManifestFormat) -> Result<String> {
    Ok(match (to, mt) {
        (ManifestFormat::Oci, media::DOCKER_LAYER_GZIP) => media::OCI_LAYER_GZIP.into(),
        (ManifestFormat::Oci, media::DOCKER_LAYER) => media::OCI_LAYER.into(),
        (ManifestFormat::Oci, media::DOCKER_FOREIGN_LAYER) => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip".into()
        }
        (ManifestFormat::V2s2, media::OCI_LAYER_GZIP) => media::DOCKER_LAYER_GZIP.into(),
        (ManifestFormat::V2s2, media::OCI_LAYER) => media::DOCKER_LAYER.into(),
        (ManifestFormat::V2s2, "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip") => {
            media::DOCKER_FOREIGN_LAYER.into()
        }
        (ManifestFormat::V2s2, media::OCI_LAYER_ZSTD) => {
            bail!(
                "a zstd layer cannot be stored in a Docker v2s2 manifest; use --format oci or --dest-compress-format gzip"
            )
        }
        (_, other) => other.to_string(),
    })
}

/// Convert a single-image manifest to `to`; returns the new manifest (the input when nothing changes).
pub fn convert_manifest(m: &Manifest, to: ManifestFormat) -> Result<Manifest> {
    let mut m = m.clone();
    let cfg_mt = m.config.media_type().to_string();
    if to == ManifestFormat::V2s2
        && !matches!(cfg_mt.as_str(), media::OCI_CONFIG | media::DOCKER_CONFIG)
    {
        bail!("an artifact with config type `{cfg_mt}` cannot be stored as a Docker v2s2 image");
    }
    let new_cfg = match (to, cfg_mt.as_str()) {
        (ManifestFormat::V2s2, media::OCI_CONFIG) => Some(media::DOCKER_CONFIG),
        (ManifestFormat::Oci, media::DOCKER_CONFIG) => Some(media::OCI_CONFIG),
        _ => None,
    };
    if let Some(c) = new_cfg {
        m.config.media_type = Some(c.to_string());
    }
    for l in &mut m.layers {
        l.media_type = Some(layer_type(l.media_type(), to)?);
    }
    m.media_type = Some(to.manifest_type().to_string());
    if to == ManifestFormat::V2s2 {
        m.annotations = None;
        m.subject = None;
        m.artifact_type = None;
        for l in &mut m.layers {
            l.annotations = None;
        }
    }
    Ok(m)
}

/// Rewrite an index's media type and its entries' media types for `to`.
pub fn convert_index(idx: &Index, to: ManifestFormat) -> Result<Index> {
    let mut idx = idx.clone();
    idx.media_type = Some(to.index_type().to_string());
    if to == ManifestFormat::V2s2 {
        idx.annotations = None;
        idx.subject = None;
        idx.artifact_type = None;
    }
    Ok(idx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn oci_to_v2s2_and_back() {
        let v = json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": "sha256:00", "size": 1},
            "layers": [{"mediaType": media::OCI_LAYER_GZIP, "digest": "sha256:11", "size": 2}]});
        let m: Manifest = serde_json::from_value(v).unwrap();
        let d = convert_manifest(&m, ManifestFormat::V2s2).unwrap();
        assert_eq!(d.media_type.as_deref(), Some(media::DOCKER_MANIFEST));
        assert_eq!(d.config.media_type(), media::DOCKER_CONFIG);
        assert_eq!(d.layers[0].media_type(), media::DOCKER_LAYER_GZIP);
        assert_eq!(d.layers[0].digest, "sha256:11");
        let o = convert_manifest(&d, ManifestFormat::Oci).unwrap();
        assert_eq!(o, m);
        let mut z = m.clone();
        z.layers[0].media_type = Some(media::OCI_LAYER_ZSTD.into());
        assert!(convert_manifest(&z, ManifestFormat::V2s2).is_err());
    }
}
