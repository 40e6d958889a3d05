//! cosign tag signatures: the `sha256-<hex>.sig` manifest next to an image, each layer a simple-signing
//! payload (`application/vnd.dev.cosign.simplesigning.v1+json`) with its base64 signature in the
//! `dev.cosignproject.cosign/signature` annotation. Signing is read-modify-write of that manifest (an
//! identical signature is never added twice); verifying checks each layer's signature with the key, then
//! the payload (strictly parsed) against the image's manifest digest.

use crate::oci::media;
use crate::oci::verify::{DigestingReader, sha256_digest};
use crate::plugin::signer::{
    CosignSignature, SignRequest, SignatureFormat, Signed, SigningKey, VerifyingKey,
};
use crate::policy::scope;
use crate::policy::signature::{
    self, COSIGN_TYPE, SIGSTORE_MEDIA_TYPE, SIGSTORE_SIGNATURE_ANNOTATION,
};
use crate::transport::{self, Descriptor, ImageSource, SystemContext};
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

/// The tag cosign stores an image's signatures under.
pub fn signature_tag(manifest_digest: &str) -> String {
    format!("{}.sig", manifest_digest.replacen(':', "-", 1))
}

/// The docker reference a payload names for `name` (a transport string): `identity` when given, else the
/// image's own docker reference (with its tag, as containers/image signs).
pub fn identity_for(name: &str, ctx: &SystemContext, identity: Option<&str>) -> Result<String> {
    if let Some(i) = identity {
        return Ok(i.to_string());
    }
    // A store image is named as the policy names it: by its full name in the store.
    let stored = match transport::parse(name)? {
        transport::TransportRef::Local(n) => crate::store::Store::open(&ctx.store_root)
            .and_then(|s| s.resolve(&n))
            .ok()
            .map(|(full, _)| full),
        _ => None,
    };
    let r = scope::policy_ref(name, &ctx.store_root, stored.as_deref())?;
    match r.docker_reference {
        Some(d) => Ok(scope::docker_identity(&d)),
        None => bail!(
            "{name} has no registry name to put in the signature; pass --sign-identity REGISTRY/REPO:TAG"
        ),
    }
}

/// The cosign simple-signing payload for `digest` under `identity` (cosign's key order).
pub fn payload(identity: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"critical": {"identity": {"docker-reference": identity},
        "image": {"docker-manifest-digest": digest}, "type": COSIGN_TYPE}, "optional": null}),
    )
    .expect("JSON")
}

/// What [`sign`] did.
#[derive(Debug, Serialize)]
pub struct Signed1 {
    pub manifest_digest: String,
    pub signature_tag: String,
    pub identity: String,
    /// False when the very same signature was there already.
    pub added: bool,
}

/// Sign the image `name` (any transport whose destination can hold another tag: docker://, oci:, the
/// store) with `key`, adding the signature to its `.sig` manifest.
pub async fn sign(
    name: &str,
    ctx: &SystemContext,
    key: &SigningKey<'_>,
    identity: Option<&str>,
) -> Result<Signed1> {
    let identity = identity_for(name, ctx, identity)?;
    let src = transport::open_source(name, ctx).await?;
    let (manifest, _) = src
        .manifest(None)
        .await
        .with_context(|| format!("reading the manifest of {name}"))?;
    let digest = signature::manifest_digest(&manifest)?;
    let tag = signature_tag(&digest);
    let payload = payload(&identity, &digest);
    let sig = match key.sign(&SignRequest {
        format: SignatureFormat::Cosign,
        payload: payload.clone(),
        payload_type: SIGSTORE_MEDIA_TYPE.into(),
    })? {
        Signed::Cosign(c) => c,
        _ => bail!("the signer returned another format than the cosign signature asked for"),
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(&sig.signature);
    let payload_digest = sha256_digest(&payload);
    let mut layers: Vec<Value> = match src.tagged_manifest(&tag).await? {
        Some((bytes, _)) => {
            let v: Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("{name}: the signature manifest {tag} is not JSON"))?;
            v["layers"].as_array().cloned().unwrap_or_default()
        }
        None => vec![],
    };
    let same = |l: &Value| {
        l["digest"] == payload_digest.to_string()
            && l["annotations"][SIGSTORE_SIGNATURE_ANNOTATION] == b64.as_str()
    };
    let out = Signed1 {
        manifest_digest: digest.clone(),
        signature_tag: tag.clone(),
        identity,
        added: !layers.iter().any(same),
    };
    if !out.added {
        return Ok(out);
    }
    let mut annotations = serde_json::Map::new();
    annotations.insert(SIGSTORE_SIGNATURE_ANNOTATION.into(), b64.into());
    for kv in &sig.annotations {
        annotations.insert(kv.key.clone(), kv.value.clone().into());
    }
    layers.push(
        json!({"mediaType": SIGSTORE_MEDIA_TYPE, "digest": payload_digest.to_string(),
        "size": payload.len(), "annotations": annotations}),
    );
    let diff_ids: Vec<Value> = layers.iter().map(|l| l["digest"].clone()).collect();
    let config = serde_json::to_vec(&json!({"architecture": "", "os": "", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}}))?;
    let manifest = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": sha256_digest(&config).to_string(), "size": config.len()},
        "layers": layers}),
    )?;
    let dest = transport::open_destination(name, ctx).await?;
    for blob in [&config, &payload] {
        let desc = blob_descriptor(blob)?;
        if !dest.has_blob(&desc).await? {
            let stream = DigestingReader::new(
                std::io::Cursor::new(blob.clone()),
                desc.digest(),
                Some(desc.size()),
            )?;
            dest.put_blob(&desc, Box::new(stream)).await?;
        }
    }
    if !dest
        .put_tagged_manifest(&manifest, media::OCI_MANIFEST, &tag)
        .await?
    {
        bail!(
            "{name}: this transport cannot store a signature tag next to the image; sign a docker://, oci: or local image"
        );
    }
    dest.commit().await?;
    Ok(out)
}

fn blob_descriptor(bytes: &[u8]) -> Result<Descriptor> {
    Ok(oci_spec::image::DescriptorBuilder::default()
        .media_type(oci_spec::image::MediaType::Other(
            "application/octet-stream".into(),
        ))
        .digest(sha256_digest(bytes))
        .size(bytes.len() as u64)
        .build()?)
}

/// One signature [`verify`] looked at.
#[derive(Debug, Serialize)]
pub struct Checked {
    pub layer: usize,
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What [`verify`] checked.
#[derive(Debug, Serialize)]
pub struct Report {
    pub image: String,
    pub manifest_digest: String,
    pub signature_tag: String,
    /// The checks each accepted signature passed.
    pub checks: Vec<&'static str>,
    pub signatures: Vec<Checked>,
}

impl Report {
    pub fn accepted(&self) -> usize {
        self.signatures.iter().filter(|s| s.valid).count()
    }
}

/// Check every cosign signature of the image `name` with `key`.
pub async fn verify(name: &str, ctx: &SystemContext, key: &VerifyingKey<'_>) -> Result<Report> {
    let src = transport::open_source(name, ctx).await?;
    let (manifest, _) = src
        .manifest(None)
        .await
        .with_context(|| format!("reading the manifest of {name}"))?;
    let digest = signature::manifest_digest(&manifest)?;
    let tag = signature_tag(&digest);
    let (sig_manifest, _) = src
        .tagged_manifest(&tag)
        .await?
        .ok_or_else(|| anyhow!("{name} has no cosign signatures: no {tag} manifest"))?;
    let v: Value = serde_json::from_slice(&sig_manifest)
        .with_context(|| format!("the signature manifest {tag} is not JSON"))?;
    let layers = v["layers"].as_array().cloned().unwrap_or_default();
    let mut signatures = vec![];
    for (i, l) in layers.iter().enumerate() {
        let r = check_layer(src.as_ref(), l, &digest, key).await;
        signatures.push(match r {
            Ok((key_id, reference)) => Checked {
                layer: i,
                valid: true,
                key_id: Some(key_id),
                docker_reference: Some(reference),
                error: None,
            },
            Err(e) => Checked {
                layer: i,
                valid: false,
                key_id: None,
                docker_reference: None,
                error: Some(format!("{e:#}")),
            },
        });
    }
    Ok(Report {
        image: name.to_string(),
        manifest_digest: digest,
        signature_tag: tag,
        checks: vec![
            "the signature over the payload was made by the key",
            "the payload is a cosign simple-signing payload (parsed strictly)",
            "the payload's docker-manifest-digest is the image's manifest digest",
        ],
        signatures,
    })
}

async fn check_layer(
    src: &dyn ImageSource,
    layer: &Value,
    digest: &str,
    key: &VerifyingKey<'_>,
) -> Result<(String, String)> {
    if layer["mediaType"] != SIGSTORE_MEDIA_TYPE {
        bail!("not a cosign signature layer ({})", layer["mediaType"]);
    }
    let b64 = layer["annotations"][SIGSTORE_SIGNATURE_ANNOTATION]
        .as_str()
        .ok_or_else(|| anyhow!("no {SIGSTORE_SIGNATURE_ANNOTATION} annotation"))?;
    let desc: Descriptor =
        serde_json::from_value(layer.clone()).context("the layer's descriptor is invalid")?;
    if desc.size() > signature::MAX_SIGNATURE_BYTES as u64 {
        bail!("the payload is {} bytes, more than allowed", desc.size());
    }
    let mut payload = vec![];
    DigestingReader::new(src.blob(&desc).await?, desc.digest(), Some(desc.size()))?
        .read_to_end(&mut payload)
        .await
        .context("reading the payload")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .context("the signature annotation is not base64")?;
    let v = key.verify(
        Some(&payload),
        &Signed::Cosign(CosignSignature {
            signature: raw,
            annotations: vec![],
        }),
    )?;
    let p = signature::parse_payload(&payload, COSIGN_TYPE)?;
    if p.manifest_digest != digest {
        bail!(
            "the signature is for manifest digest {}, the image's manifest is {digest}",
            p.manifest_digest
        );
    }
    Ok((v.key_id, p.docker_reference))
}
