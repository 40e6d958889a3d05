//! Plugins as OCI artifacts, in the CNCF TAG Runtime "Wasm OCI Artifact layout": an OCI image manifest whose
//! config has the media type `application/vnd.wasm.config.v0+json` (architecture `wasm`, os `wasip2`, the
//! layer digests and the component's imports and exports) and whose one layer is the component itself,
//! `application/wasm`, titled `<name>.wasm`. The config media type is the artifact's type, so the manifest
//! needs no `artifactType` (OCI 1.1 asks for one only with an empty config).
//!
//! Pushing goes through the copy engine from an in-memory source ([`ArtifactSource`]), so every transport
//! the engine writes (docker://, oci:, oci-archive:, dir:) takes a plugin. Pulling reads the manifest and
//! the two blobs from any transport, each checked against its digest; a pinned manifest digest
//! (`REF@sha256:…`) is honoured and a manifest that does not hash to it is refused.

use super::runtime::Plugin;
use crate::copy::{CopyOptions, CopyReport, copy_image};
use crate::oci::document::{self, Desc, Manifest};
use crate::oci::verify::{DigestingReader, check_bytes, sha256_digest};
use crate::oci::{BlobStream, Descriptor, Digest, media};
use crate::transport::{self, ImageSource, SystemContext};
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio::io::AsyncReadExt;

/// The config of a Wasm OCI artifact (CNCF TAG Runtime's layout); what lade does not name survives in `extra`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct WasmConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    os: Option<String>,
    #[serde(
        rename = "layerDigests",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    layer_digests: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    component: Option<Component>,
    #[serde(flatten)]
    extra: BTreeMap<String, serde_json::Value>,
}

/// The component's surface, as the layout's `component` member.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Component {
    #[serde(default)]
    exports: Vec<String>,
    #[serde(default)]
    imports: Vec<String>,
    #[serde(default)]
    target: String,
}

/// The config media type of a Wasm OCI artifact.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of its one layer, the component.
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The layer annotation naming the file.
pub const TITLE: &str = "org.opencontainers.image.title";

/// The most a pulled component may weigh; a larger layer is refused before a byte of it is read.
pub const MAX_WASM: u64 = 64 << 20;
/// The most a pulled config may weigh.
const MAX_CONFIG: u64 = 1 << 20;

/// An artifact made in memory: the manifest, the config and the component, ready to be copied.
pub struct Artifact {
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    pub wasm: Vec<u8>,
}

impl Artifact {
    /// The artifact for a loaded (and so checked) plugin. `created`: RFC 3339, for the config and the
    /// manifest annotation (SOURCE_DATE_EPOCH or now, chosen by the caller).
    pub fn new(plugin: &Plugin, wasm: Vec<u8>, created: &str) -> Result<Artifact> {
        let d = plugin.describe();
        let wasm_digest = sha256_digest(&wasm).to_string();
        let config = document::to_vec(&WasmConfig {
            created: Some(created.to_string()),
            architecture: Some("wasm".into()),
            os: Some("wasip2".into()),
            layer_digests: Some(vec![wasm_digest.clone()]),
            component: Some(Component {
                exports: d.exports.clone(),
                imports: d.imports.clone(),
                target: format!(
                    "lade:plugin/{}-plugin@{}",
                    d.kind.as_str(),
                    d.contract_version
                ),
            }),
            extra: BTreeMap::new(),
        })?;
        let mut layer = Desc::new(LAYER_MEDIA_TYPE, &wasm_digest.parse()?, wasm.len() as u64);
        layer.annotations = Some(BTreeMap::from([(
            TITLE.to_string(),
            format!("{}.wasm", d.name),
        )]));
        let manifest = document::to_vec(&Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            config: Desc::new(
                CONFIG_MEDIA_TYPE,
                &sha256_digest(&config),
                config.len() as u64,
            ),
            layers: vec![layer],
            annotations: Some(BTreeMap::from([
                (
                    "org.opencontainers.image.created".to_string(),
                    created.to_string(),
                ),
                ("org.opencontainers.image.title".to_string(), d.name.clone()),
                (
                    "org.opencontainers.image.version".to_string(),
                    d.version.clone(),
                ),
                (
                    "org.opencontainers.image.description".to_string(),
                    d.description.clone(),
                ),
            ])),
            ..Manifest::default()
        })?;
        Ok(Artifact {
            manifest,
            config,
            wasm,
        })
    }

    /// Copy the artifact to `destination` (a transport string) with the copy engine.
    pub async fn push(&self, destination: &str, ctx: &SystemContext) -> Result<CopyReport> {
        let dst = transport::open_destination(destination, ctx)
            .await
            .with_context(|| format!("opening {destination}"))?;
        let src = ArtifactSource { artifact: self };
        let opts = CopyOptions {
            referrers: false,
            preserve_digests: true,
            ..CopyOptions::default()
        };
        copy_image(&src, dst.as_ref(), &opts).await
    }
}

/// The copy engine's view of an [`Artifact`].
struct ArtifactSource<'a> {
    artifact: &'a Artifact,
}

#[async_trait]
impl ImageSource for ArtifactSource<'_> {
    fn name(&self) -> String {
        "the plugin artifact".into()
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Vec<u8>, String)> {
        match instance {
            None => Ok((self.artifact.manifest.clone(), media::OCI_MANIFEST.into())),
            Some(d) => bail!("the plugin artifact has no manifest {d}"),
        }
    }

    async fn blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        let a = self.artifact;
        let bytes = [&a.config, &a.wasm]
            .into_iter()
            .find(|b| sha256_digest(b) == *desc.digest())
            .with_context(|| format!("the plugin artifact has no blob {}", desc.digest()))?;
        Ok(Box::new(std::io::Cursor::new(bytes.clone())))
    }
}

/// `REF@sha256:<64 hex>` → (`REF`, the pinned digest); anything else is returned whole, unpinned.
pub fn split_pin(reference: &str) -> Result<(&str, Option<Digest>)> {
    match reference.rsplit_once('@') {
        Some((rest, pin)) if pin.starts_with("sha256:") => {
            let digest: Digest = pin
                .parse()
                .with_context(|| format!("`{reference}`: `{pin}` is not a sha256 digest"))?;
            anyhow::ensure!(
                pin.len() == "sha256:".len() + 64,
                "`{reference}`: a sha256 digest has 64 hex characters"
            );
            Ok((rest, Some(digest)))
        }
        _ => Ok((reference, None)),
    }
}

/// A plugin artifact's manifest, read and checked, with its source still open for the blobs.
pub struct Remote {
    /// The transport string it was read from, pin included.
    pub reference: String,
    /// The manifest's digest: the pin when there was one.
    pub digest: Digest,
    pub layer: Descriptor,
    config: Descriptor,
    src: Box<dyn ImageSource>,
}

impl Remote {
    /// Read the manifest `reference` (a transport string, `@sha256:…` allowed) names and check that it is a
    /// Wasm OCI artifact within the size bounds. Nothing else is downloaded yet.
    pub async fn open(reference: &str, ctx: &SystemContext) -> Result<Remote> {
        let (unpinned, pin) = split_pin(reference)?;
        // A registry serves the pinned manifest by digest, so the pin is honoured wherever the tag points
        // now; the other transports are read at their tag and must hold the pinned manifest there.
        let is_docker = matches!(
            transport::parse(unpinned)?,
            transport::TransportRef::Docker(_)
        );
        let open_as = if is_docker { reference } else { unpinned };
        let src = transport::open_source(open_as, ctx)
            .await
            .with_context(|| format!("opening {reference}"))?;
        // The trust policy (policy.json), before any blob is fetched or anything stored; the manifest read
        // below is the one the policy checked.
        let src = crate::policy::check(open_as, src, ctx).await?;
        let (bytes, mt) = src.manifest(None).await.with_context(|| match &pin {
            Some(p) => format!("reading the pinned manifest {p} of {reference}"),
            None => format!("reading the manifest of {reference}"),
        })?;
        let digest = sha256_digest(&bytes);
        if let Some(p) = &pin {
            check_bytes(&bytes, p, None).map_err(|_| {
                anyhow::anyhow!(
                    "{reference}: the manifest is {digest}, not the pinned {p}; refusing it (check the pin, or \
                     whether the plugin was pushed again)"
                )
            })?;
        }
        let (config, layer) = artifact_parts(reference, &bytes, &mt)?;
        Ok(Remote {
            reference: reference.to_string(),
            digest,
            layer,
            config,
            src,
        })
    }

    /// The config and the component, each read within its bound and checked against its digest; the
    /// config must list the layer it describes.
    pub async fn fetch(&self) -> Result<Vec<u8>> {
        let config = read_blob(self.src.as_ref(), &self.config, MAX_CONFIG)
            .await
            .with_context(|| format!("{}: reading the config", self.reference))?;
        let c: WasmConfig = document::parse(&config).with_context(|| {
            format!(
                "{}: the config is not a Wasm artifact config",
                self.reference
            )
        })?;
        if let Some(list) = &c.layer_digests {
            anyhow::ensure!(
                list.iter().any(|d| d == self.layer.digest().as_ref()),
                "{}: the config's layerDigests do not list the layer {}",
                self.reference,
                self.layer.digest()
            );
        }
        read_blob(self.src.as_ref(), &self.layer, MAX_WASM)
            .await
            .with_context(|| format!("{}: reading the component", self.reference))
    }
}

/// The config and the one wasm layer of a Wasm OCI artifact's manifest, or a clear refusal.
fn artifact_parts(reference: &str, bytes: &[u8], mt: &str) -> Result<(Descriptor, Descriptor)> {
    if media::is_index(mt) {
        bail!(
            "{reference} is an image index, not a plugin: a plugin is an OCI manifest with a {CONFIG_MEDIA_TYPE} \
             config (push one with `lade plugin push`)"
        );
    }
    let m: oci_spec::image::ImageManifest = serde_json::from_slice(bytes)
        .with_context(|| format!("{reference}: the manifest is not an OCI image manifest"))?;
    let config = m.config().clone();
    if config.media_type().to_string() != CONFIG_MEDIA_TYPE {
        bail!(
            "{reference} is not a lade plugin: its config is {}, not {CONFIG_MEDIA_TYPE} (is it a container \
             image?)",
            config.media_type()
        );
    }
    let wasm: Vec<&Descriptor> = m
        .layers()
        .iter()
        .filter(|l| l.media_type().to_string() == LAYER_MEDIA_TYPE)
        .collect();
    let [layer] = wasm.as_slice() else {
        bail!(
            "{reference}: a plugin artifact has exactly one {LAYER_MEDIA_TYPE} layer, this one has {}",
            wasm.len()
        );
    };
    if layer.size() > MAX_WASM {
        bail!(
            "{reference}: the component is {} bytes, more than the {} a plugin may have",
            layer.size(),
            super::limits::describe_bytes(MAX_WASM as usize)
        );
    }
    Ok((config, (*layer).clone()))
}

/// A whole blob in memory, within `max` bytes, its digest and size checked while it streams.
async fn read_blob(src: &dyn ImageSource, desc: &Descriptor, max: u64) -> Result<Vec<u8>> {
    anyhow::ensure!(
        desc.size() <= max,
        "blob {} is {} bytes, more than the {max} lade reads",
        desc.digest(),
        desc.size()
    );
    let stream = src.blob(desc).await?;
    let mut reader = DigestingReader::new(stream, desc.digest(), Some(desc.size()))?;
    let mut out = Vec::with_capacity(desc.size() as usize);
    reader.read_to_end(&mut out).await.map_err(|e| {
        anyhow::anyhow!(
            "blob {} does not match the manifest: {e}; the artifact was changed after it was pushed, refusing it",
            desc.digest()
        )
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pins_are_split_off_and_checked() {
        let hex = "a".repeat(64);
        let r = format!("docker://h/p:1@sha256:{hex}");
        let (rest, pin) = split_pin(&r).unwrap();
        assert_eq!(rest, "docker://h/p:1");
        assert_eq!(pin.unwrap().to_string(), format!("sha256:{hex}"));
        assert_eq!(split_pin("oci:/d:tag").unwrap(), ("oci:/d:tag", None));
        assert!(split_pin("h/p@sha256:abc").is_err());
    }

    #[test]
    fn only_wasm_artifacts_pass() {
        let layer = json!({"mediaType": LAYER_MEDIA_TYPE, "digest": format!("sha256:{}", "b".repeat(64)), "size": 3});
        let m = |config_mt: &str, layers: serde_json::Value| {
            serde_json::to_vec(&json!({
                "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
                "config": {"mediaType": config_mt, "digest": format!("sha256:{}", "c".repeat(64)), "size": 2},
                "layers": layers,
            }))
            .unwrap()
        };
        artifact_parts(
            "r",
            &m(CONFIG_MEDIA_TYPE, json!([layer])),
            media::OCI_MANIFEST,
        )
        .unwrap();
        let e = artifact_parts(
            "r",
            &m(media::OCI_CONFIG, json!([layer])),
            media::OCI_MANIFEST,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a lade plugin"), "{e}");
        let e = artifact_parts(
            "r",
            &m(CONFIG_MEDIA_TYPE, json!([layer, layer])),
            media::OCI_MANIFEST,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("exactly one"), "{e}");
        let mut big = layer.clone();
        big["size"] = json!(MAX_WASM + 1);
        let e = artifact_parts(
            "r",
            &m(CONFIG_MEDIA_TYPE, json!([big])),
            media::OCI_MANIFEST,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("more than the 64 MiB"), "{e}");
        assert!(artifact_parts("r", b"{}", media::OCI_INDEX).is_err());
    }
}
