//! Typed image manifests (OCI and Docker v2s2, which share one shape) and indexes (OCI indexes and Docker
//! manifest lists).
//!
//! Every struct keeps the fields it does not name in `extra`, so a read-modify-write loses nothing. A document
//! that is only read is never written back: `Parsed` keeps its exact bytes (its digest is theirs). A document
//! lade writes is serialized by `to_vec`, with object keys in sorted order, as lade always wrote them.
//!
//! oci-spec's `ImageManifest`/`ImageIndex` are not used: they drop unknown fields, require a media type on
//! every descriptor, and its `Platform` writes `os.version` as `osVersion`.

use super::{Descriptor as SpecDescriptor, Digest};
use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Fields a struct does not name, kept as they were read.
pub type Extra = BTreeMap<String, Value>;

/// A document together with the exact bytes it was read from.
#[derive(Debug, Clone)]
pub struct Parsed<T> {
    pub raw: Vec<u8>,
    pub doc: T,
}

impl<T: DeserializeOwned> Parsed<T> {
    pub fn parse(raw: Vec<u8>) -> serde_json::Result<Parsed<T>> {
        let doc = serde_json::from_slice(&raw)?;
        Ok(Parsed { raw, doc })
    }

    /// The sha256 digest of the bytes read.
    pub fn digest(&self) -> Digest {
        super::verify::sha256_digest(&self.raw)
    }
}

/// A document parsed from bytes.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    serde_json::from_slice(bytes)
}

/// The bytes lade writes for a document: compact JSON, object keys sorted (through a `Value`, whose maps are
/// ordered), so the bytes (and so the digests) stay the ones lade wrote before its documents were typed.
pub fn to_vec<T: Serialize>(doc: &T) -> Result<Vec<u8>> {
    let v = serde_json::to_value(doc).context("serializing a document")?;
    Ok(serde_json::to_vec(&v)?)
}

/// `to_vec`, indented (for documents people read, as `lade manifest` lists).
pub fn to_vec_pretty<T: Serialize>(doc: &T) -> Result<Vec<u8>> {
    let v = serde_json::to_value(doc).context("serializing a document")?;
    Ok(serde_json::to_vec_pretty(&v)?)
}

/// The platform of an index entry (`os.version` and `os.features` spelled as the OCI spec has them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Platform {
    /// `os/architecture[/variant]`, `?` for a missing part.
    pub fn describe(&self) -> String {
        let os = self.os.as_deref().unwrap_or("?");
        let arch = self.architecture.as_deref().unwrap_or("?");
        match &self.variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        }
    }
}

/// A descriptor inside a document: a manifest's config and layers, an index's entries, a subject. The
/// oci-spec `Descriptor` (`oci::Descriptor`) is what the engine passes around; `spec()` converts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Desc {
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Desc {
    /// A descriptor of media type, digest and size only.
    pub fn new(media_type: &str, digest: &Digest, size: u64) -> Desc {
        Desc {
            media_type: Some(media_type.to_string()),
            digest: digest.to_string(),
            size,
            ..Desc::default()
        }
    }

    pub fn media_type(&self) -> &str {
        self.media_type.as_deref().unwrap_or("")
    }

    /// The oci-spec descriptor (which checks the digest and wants a media type).
    pub fn spec(&self) -> Result<SpecDescriptor> {
        let v = serde_json::to_value(self)?;
        serde_json::from_value(v).with_context(|| format!("descriptor of {}", self.digest))
    }

    /// From an oci-spec descriptor, its platform's `os.version` and `os.features` spelled as the OCI spec
    /// has them (oci-spec 0.10 writes `os_version`/`os_features`).
    pub fn from_spec(d: &SpecDescriptor) -> Result<Desc> {
        let mut v = serde_json::to_value(d)?;
        if let Some(p) = v.get_mut("platform").and_then(Value::as_object_mut) {
            for (from, to) in [
                ("os_version", "os.version"),
                ("osVersion", "os.version"),
                ("os_features", "os.features"),
                ("osFeatures", "os.features"),
            ] {
                if let Some(x) = p.remove(from) {
                    p.insert(to.into(), x);
                }
            }
        }
        Ok(serde_json::from_value(v)?)
    }
}

fn two() -> u32 {
    2
}

/// An image manifest: OCI or Docker v2s2 (the same fields; v2s2 has no annotations, subject or artifactType).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion", default = "two")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    pub config: Desc,
    #[serde(default)]
    pub layers: Vec<Desc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Desc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// An OCI image index or a Docker manifest list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion", default = "two")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Desc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Desc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Index {
    /// An empty index of `media_type` (`None`: no `mediaType` field, as an OCI layout's `index.json`).
    pub fn empty(media_type: Option<&str>) -> Index {
        Index {
            schema_version: 2,
            media_type: media_type.map(str::to_string),
            ..Index::default()
        }
    }
}

/// Just the subject of any manifest or index (what makes it a referrer), read leniently.
#[derive(Debug, Deserialize)]
pub struct Subject {
    pub subject: Option<SubjectDigest>,
}

#[derive(Debug, Deserialize)]
pub struct SubjectDigest {
    pub digest: String,
}

/// What a referrer (a manifest or an index naming a `subject`) tells about itself, read leniently.
#[derive(Debug, Default, Deserialize)]
pub struct Referrer {
    #[serde(rename = "artifactType")]
    pub artifact_type: Option<String>,
    pub config: Option<MediaTyped>,
    pub subject: Option<SubjectDigest>,
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
pub struct MediaTyped {
    #[serde(rename = "mediaType")]
    pub media_type: Option<String>,
}

/// Just enough of any manifest to tell its kind.
#[derive(Deserialize)]
pub(super) struct Kind {
    #[serde(rename = "mediaType")]
    pub media_type: Option<Value>,
    pub manifests: Option<serde::de::IgnoredAny>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let v = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "c", "digest": "sha256:aa", "size": 3, "x-config": [1]},
            "layers": [{"mediaType": "l", "digest": "sha256:bb", "size": 4, "data": "AA==",
                        "annotations": {"k": "v"}}],
            "annotations": {"a": "b"},
            "x-top": {"nested": true},
        });
        let bytes = serde_json::to_vec(&v).unwrap();
        let m: Manifest = parse(&bytes).unwrap();
        assert_eq!(m.layers[0].extra["data"], json!("AA=="));
        assert_eq!(
            to_vec(&m).unwrap(),
            bytes,
            "a read and write keeps every byte"
        );

        let idx = json!({"schemaVersion": 2, "manifests": [{"mediaType": "m", "digest": "sha256:cc",
            "size": 1, "platform": {"os": "windows", "architecture": "amd64", "os.version": "10.0.1",
            "os.features": ["win32k"], "x-p": 1}}], "x-i": "y"});
        let bytes = serde_json::to_vec(&idx).unwrap();
        let i: Index = parse(&bytes).unwrap();
        let p = i.manifests[0].platform.as_ref().unwrap();
        assert_eq!(p.os_version.as_deref(), Some("10.0.1"));
        assert_eq!(p.describe(), "windows/amd64");
        assert_eq!(to_vec(&i).unwrap(), bytes);
    }

    #[test]
    fn from_spec_spells_os_version_as_the_spec() {
        use oci_spec::image::{DescriptorBuilder, PlatformBuilder};
        let p = PlatformBuilder::default()
            .os("windows")
            .architecture("amd64")
            .os_version("10.0.1")
            .os_features(vec!["win32k".to_string()])
            .build()
            .unwrap();
        let d = DescriptorBuilder::default()
            .media_type("m")
            .digest(super::super::verify::sha256_digest(b""))
            .size(1u64)
            .platform(p)
            .build()
            .unwrap();
        let back = Desc::from_spec(&d).unwrap();
        let v = serde_json::to_value(&back).unwrap();
        assert_eq!(v["platform"]["os.version"], "10.0.1", "{v}");
        assert_eq!(v["platform"]["os.features"], json!(["win32k"]), "{v}");
        assert!(v["platform"].get("osVersion").is_none(), "{v}");
        assert_eq!(back.spec().unwrap().digest(), d.digest());
    }
}
