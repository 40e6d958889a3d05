//! Where an image's signatures are read, behind [`SignatureSource`]: for a registry image the lookaside
//! (registries.d; `file://` or `http(s)://`) and, when registries.d enables them, the sigstore attachments
//! (`sha256-<hex>.sig`) and sigstore bundles among its OCI 1.1 referrers; for `dir:` its `signature-N` files;
//! for other transports (oci:, the store, archives) the bundles among its referrers.

use super::registries_d::RegistriesD;
use super::signature::{self, MAX_LOOKASIDE, MAX_SIGNATURE_BYTES, Signature};
use crate::reference::Reference;
use crate::transport::{Descriptor, ImageSource, SystemContext, media};
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tokio::io::AsyncReadExt;

/// Lists the signatures of the manifest with digest `manifest_digest`.
#[async_trait]
pub trait SignatureSource: Send + Sync {
    async fn signatures(&self, manifest_digest: &str) -> Result<Vec<Signature>>;
}

/// The signatures of an image opened from a transport.
pub struct ImageSignatures<'a> {
    pub src: &'a dyn ImageSource,
    pub ctx: &'a SystemContext,
    /// For a registry image: the lookaside base and whether sigstore attachments are read.
    pub registry: Option<(url::Url, bool)>,
    /// A directory of `signature-N` files: a `dir:` image's, or the store's for the manifest.
    pub dir: Option<PathBuf>,
    /// Without `registry`: whether sigstore bundles are read among the source's referrers (an OCI layout
    /// or the store holds them; a `dir:` image cannot).
    pub referrers: bool,
}

impl<'a> ImageSignatures<'a> {
    /// The signature locations of a registry image `r`, from registries.d in `registries_d`.
    pub fn registry(
        src: &'a dyn ImageSource,
        ctx: &'a SystemContext,
        r: &Reference,
        registries_d: &RegistriesD,
    ) -> Result<Self> {
        Ok(ImageSignatures {
            src,
            ctx,
            registry: Some((
                registries_d.lookaside_url(r, false)?,
                registries_d.use_sigstore_attachments(r),
            )),
            dir: None,
            referrers: false,
        })
    }
}

#[async_trait]
impl SignatureSource for ImageSignatures<'_> {
    async fn signatures(&self, manifest_digest: &str) -> Result<Vec<Signature>> {
        let mut out = vec![];
        if let Some((base, attachments)) = &self.registry {
            lookaside(base, manifest_digest, self.ctx, &mut out).await?;
            if *attachments {
                self.attachments(manifest_digest, &mut out).await?;
                self.bundles(manifest_digest, &mut out).await?;
            }
        }
        if self.registry.is_none() && self.referrers {
            self.bundles(manifest_digest, &mut out).await?;
        }
        if let Some(dir) = &self.dir {
            for i in 1..=MAX_LOOKASIDE {
                let p = dir.join(format!("signature-{i}"));
                match tokio::fs::read(&p).await {
                    Ok(b) => out.push(
                        signature::from_blob(&b)
                            .with_context(|| format!("parsing signature {}", p.display()))?,
                    ),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
                }
            }
        }
        Ok(out)
    }
}

impl ImageSignatures<'_> {
    /// The layers of the `sha256-<hex>.sig` manifest, each a sigstore signature.
    async fn attachments(&self, digest: &str, out: &mut Vec<Signature>) -> Result<()> {
        let tag = digest.replacen(':', "-", 1) + ".sig";
        let Some((bytes, mt)) = self
            .src
            .tagged_manifest(&tag)
            .await
            .with_context(|| format!("reading the sigstore attachments {tag}"))?
        else {
            return Ok(());
        };
        if mt != media::OCI_MANIFEST {
            bail!(
                "the sigstore attachment manifest {tag} has media type {mt:?}, expected {}",
                media::OCI_MANIFEST
            );
        }
        let m: oci_spec::image::ImageManifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing the sigstore attachment manifest {tag}"))?;
        for layer in m.layers() {
            let payload = read_blob(self.src, layer).await?;
            let annotations: BTreeMap<String, String> = layer
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect();
            out.push(Signature::Sigstore {
                media_type: layer.media_type().to_string(),
                payload,
                annotations,
            });
        }
        Ok(())
    }
}

impl ImageSignatures<'_> {
    /// Sigstore bundles among the OCI 1.1 referrers of the manifest (cosign v3 signatures); attestations
    /// (another `dev.sigstore.bundle.predicateType`) are left out.
    async fn bundles(&self, digest: &str, out: &mut Vec<Signature>) -> Result<()> {
        use super::statement::{BUNDLE_MEDIA_TYPE, SIGN_PREDICATE};
        let subject = crate::oci::manifest_descriptor(
            digest
                .parse()
                .with_context(|| format!("manifest digest {digest}"))?,
            0,
            media::OCI_MANIFEST,
        )?;
        let referrers = self
            .src
            .referrers(&subject)
            .await
            .with_context(|| format!("listing the referrers of {digest} (sigstore bundles)"))?;
        let mut found = 0;
        for r in referrers {
            if r.artifact_type().as_ref().map(|t| t.to_string()) != Some(BUNDLE_MEDIA_TYPE.into()) {
                continue;
            }
            let predicate = (r.annotations().as_ref())
                .and_then(|a| a.get(super::statement::PREDICATE_ANNOTATION).cloned());
            if predicate.is_some_and(|p| p != SIGN_PREDICATE) {
                continue;
            }
            found += 1;
            if found > MAX_LOOKASIDE {
                bail!(
                    "{digest} has more than {MAX_LOOKASIDE} sigstore bundles; assuming a server error"
                );
            }
            let (bytes, _) = self
                .src
                .manifest(Some(r.digest()))
                .await
                .with_context(|| format!("reading the bundle manifest {}", r.digest()))?;
            crate::oci::verify::check_bytes(&bytes, r.digest(), None)?;
            let m: oci_spec::image::ImageManifest = serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing the bundle manifest {}", r.digest()))?;
            for layer in m.layers() {
                if layer.media_type().to_string() == BUNDLE_MEDIA_TYPE {
                    out.push(Signature::Bundle(read_blob(self.src, layer).await?));
                }
            }
        }
        Ok(())
    }
}

/// A small blob, verified against its descriptor.
async fn read_blob(src: &dyn ImageSource, d: &Descriptor) -> Result<Vec<u8>> {
    if d.size() > MAX_SIGNATURE_BYTES as u64 {
        bail!(
            "signature blob {} is {} bytes, more than the {MAX_SIGNATURE_BYTES} allowed",
            d.digest(),
            d.size()
        );
    }
    let mut stream = src.blob(d).await?;
    let mut buf = Vec::with_capacity(d.size() as usize);
    (&mut stream)
        .take(MAX_SIGNATURE_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .await
        .with_context(|| format!("reading signature blob {}", d.digest()))?;
    crate::oci::verify::check_bytes(&buf, d.digest(), Some(d.size()))?;
    Ok(buf)
}

/// Lookaside signatures `signature-1`, `signature-2`, ... until the first missing one.
async fn lookaside(
    base: &url::Url,
    digest: &str,
    ctx: &SystemContext,
    out: &mut Vec<Signature>,
) -> Result<()> {
    for i in 0..=MAX_LOOKASIDE {
        if i == MAX_LOOKASIDE {
            bail!(
                "the lookaside has {MAX_LOOKASIDE} or more signatures for {digest}; assuming a server error"
            );
        }
        let url = RegistriesD::signature_url(base, digest, i)?;
        let blob = match url.scheme() {
            "file" => {
                let p = url
                    .to_file_path()
                    .map_err(|_| anyhow::anyhow!("{url} is not a local path"))?;
                match tokio::fs::read(&p).await {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
                }
            }
            "http" | "https" => match http_get(&url, ctx).await? {
                Some(b) => b,
                None => return Ok(()),
            },
            other => bail!("unsupported scheme {other:?} for the signature lookaside {url}"),
        };
        out.push(signature::from_blob(&blob).with_context(|| format!("parsing signature {url}"))?);
    }
    Ok(())
}

/// GET a lookaside signature: None on 404, the body (capped) on 200.
async fn http_get(url: &url::Url, ctx: &SystemContext) -> Result<Option<Vec<u8>>> {
    let host = url.host_str().unwrap_or_default();
    let host = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let settings = crate::registry::tls::settings_for(
        &host,
        ctx.tls_verify.unwrap_or(true),
        ctx.cert_dir.as_deref(),
    )?;
    let client = crate::registry::tls::client(&settings)?;
    let r = client
        .get(url.clone())
        .send()
        .await
        .with_context(|| format!("reading signature {url}"))?;
    match r.status() {
        reqwest::StatusCode::NOT_FOUND => Ok(None),
        reqwest::StatusCode::OK => Ok(Some(
            crate::registry::body::read(r, MAX_SIGNATURE_BYTES, "signature")
                .await
                .map_err(anyhow::Error::from)?,
        )),
        s => bail!("reading signature {url}: HTTP {s}"),
    }
}
