//! Manifest format conversion (`--format oci|v2s2`): media types of the manifest, its config and its
//! layers. Config bytes and layer bytes stay the same, so layer digests do not change.

use crate::transport::media;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// The manifest format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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

/// Convert a single-image manifest to `to`; returns the new JSON (the input when nothing changes).
pub fn convert_manifest(m: &Value, to: ManifestFormat) -> Result<Value> {
    let mut m = m.clone();
    let obj = m.as_object_mut().context("a manifest is a JSON object")?;
    let cfg_mt = obj
        .get("config")
        .and_then(|c| c.get("mediaType"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if to == ManifestFormat::V2s2 && !matches!(cfg_mt, media::OCI_CONFIG | media::DOCKER_CONFIG) {
        bail!("an artifact with config type `{cfg_mt}` cannot be stored as a Docker v2s2 image");
    }
    let new_cfg = match (to, cfg_mt) {
        (ManifestFormat::V2s2, media::OCI_CONFIG) => Some(media::DOCKER_CONFIG),
        (ManifestFormat::Oci, media::DOCKER_CONFIG) => Some(media::OCI_CONFIG),
        _ => None,
    };
    if let Some(c) = new_cfg {
        obj["config"]["mediaType"] = json!(c);
    }
    if let Some(layers) = obj.get_mut("layers").and_then(Value::as_array_mut) {
        for l in layers {
            let mt = l
                .get("mediaType")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            l["mediaType"] = json!(layer_type(&mt, to)?);
        }
    }
    obj.insert("mediaType".into(), json!(to.manifest_type()));
    if to == ManifestFormat::V2s2 {
        for k in ["annotations", "subject", "artifactType"] {
            obj.remove(k);
        }
        for l in obj
            .get_mut("layers")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(o) = l.as_object_mut() {
                o.remove("annotations");
            }
        }
    }
    Ok(m)
}

/// Rewrite an index's media type and its entries' media types for `to`.
pub fn convert_index(idx: &Value, to: ManifestFormat) -> Result<Value> {
    let mut idx = idx.clone();
    let obj = idx.as_object_mut().context("an index is a JSON object")?;
    obj.insert("mediaType".into(), json!(to.index_type()));
    if to == ManifestFormat::V2s2 {
        obj.remove("annotations");
        obj.remove("subject");
        obj.remove("artifactType");
    }
    Ok(idx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_to_v2s2_and_back() {
        let m = json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": "sha256:00", "size": 1},
            "layers": [{"mediaType": media::OCI_LAYER_GZIP, "digest": "sha256:11", "size": 2}]});
        let d = convert_manifest(&m, ManifestFormat::V2s2).unwrap();
        assert_eq!(d["mediaType"], media::DOCKER_MANIFEST);
        assert_eq!(d["config"]["mediaType"], media::DOCKER_CONFIG);
        assert_eq!(d["layers"][0]["mediaType"], media::DOCKER_LAYER_GZIP);
        assert_eq!(d["layers"][0]["digest"], "sha256:11");
        let o = convert_manifest(&d, ManifestFormat::Oci).unwrap();
        assert_eq!(o, m);
        let mut z = m.clone();
        z["layers"][0]["mediaType"] = json!(media::OCI_LAYER_ZSTD);
        assert!(convert_manifest(&z, ManifestFormat::V2s2).is_err());
    }
}
