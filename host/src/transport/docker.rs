//! The `docker://` transport: an image in a registry, through [`crate::registry`].
//! A source tries registries.conf mirrors first, then the primary location; a destination writes only to
//! the primary location and mounts blobs across repositories of the same registry.

use super::{
    BlobStream, Descriptor, Digest, ImageDestination, ImageSource, ReuseHint, SystemContext, media,
};
use crate::oci::document::{self, Desc, Referrer};
use crate::reference::Reference;
use crate::registry::{self, Repo, locations, repo::Manifest};
use anyhow::{Context, Result, anyhow, bail};
use async_trait::async_trait;
use tokio::sync::OnceCell;

fn parse_ref(reference: &str) -> Result<Reference> {
    Reference::parse(reference).with_context(|| format!("docker://{reference}"))
}

/// Open `docker://REFERENCE` for reading (REFERENCE without the prefix).
pub async fn open_source(reference: &str, ctx: &SystemContext) -> Result<Box<dyn ImageSource>> {
    Ok(Box::new(DockerSource::open(reference, ctx)?))
}

/// Open `docker://REFERENCE` for writing.
pub async fn open_destination(
    reference: &str,
    ctx: &SystemContext,
) -> Result<Box<dyn ImageDestination>> {
    Ok(Box::new(DockerDestination::open(reference, ctx)?))
}

/// Read side.
pub struct DockerSource {
    reference: Reference,
    endpoints: Vec<(Repo, Reference)>,
    /// The endpoint the top manifest came from; every later read goes there.
    chosen: OnceCell<usize>,
}

impl DockerSource {
    pub fn open(reference: &str, ctx: &SystemContext) -> Result<DockerSource> {
        let reference = parse_ref(reference)?;
        let conf = registry::registries_conf(ctx)?;
        let mut endpoints = vec![];
        for ep in conf.pull_endpoints(&reference)? {
            endpoints.push((registry::open_endpoint(&ep, ctx, false)?, ep.reference));
        }
        Ok(DockerSource {
            reference,
            endpoints,
            chosen: OnceCell::new(),
        })
    }

    /// The repository reads go to (the endpoint that served the top manifest).
    async fn repo(&self) -> Result<&Repo> {
        let i = self
            .chosen
            .get_or_try_init(|| async { self.top().await.map(|(i, _)| i) })
            .await?;
        Ok(&self.endpoints[*i].0)
    }

    /// The top manifest from the first endpoint that has it.
    async fn top(&self) -> Result<(usize, Manifest)> {
        let mut errors = vec![];
        for (i, (repo, r)) in self.endpoints.iter().enumerate() {
            match repo.get_manifest(&r.manifest_ref()).await {
                Ok(Some(m)) => return Ok((i, m)),
                Ok(None) => errors.push(format!("{r}: manifest unknown")),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if self.endpoints.len() == 1 {
            bail!("{}: {}", self.name(), errors.join("; "))
        }
        bail!(
            "{}: no mirror or location has it: {}",
            self.name(),
            errors.join("; ")
        )
    }

    /// The digest of the manifest the reference names (one request).
    pub async fn digest(&self) -> Result<Digest> {
        let (i, m) = self.top().await?;
        let _ = self.chosen.set(i);
        Ok(m.digest)
    }
}

#[async_trait]
impl ImageSource for DockerSource {
    fn name(&self) -> String {
        format!("docker://{}", self.reference)
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Vec<u8>, String)> {
        match instance {
            None => {
                let (i, m) = self.top().await?;
                let _ = self.chosen.set(i);
                Ok((m.bytes, m.media_type))
            }
            Some(d) => {
                let repo = self.repo().await?;
                let m = repo
                    .get_manifest(d.as_ref())
                    .await?
                    .with_context(|| format!("{}: manifest {d} not found", self.name()))?;
                Ok((m.bytes, m.media_type))
            }
        }
    }

    async fn blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        let repo = self.repo().await?;
        let stream = repo.get_blob(desc).await?;
        locations::record(desc.digest().as_ref(), &repo.registry.host, &repo.name);
        Ok(stream)
    }

    async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        self.repo().await?.referrers(subject.digest()).await
    }

    async fn tagged_manifest(&self, tag: &str) -> Result<Option<(Vec<u8>, String)>> {
        Ok(self
            .repo()
            .await?
            .get_manifest(tag)
            .await?
            .map(|m| (m.bytes, m.media_type)))
    }

    fn reuse_hint(&self) -> Option<ReuseHint> {
        let i = *self.chosen.get()?;
        let repo = &self.endpoints[i].0;
        Some(ReuseHint {
            registry: Some(repo.registry.host.clone()),
            repository: Some(repo.name.clone()),
        })
    }
}

/// Write side.
pub struct DockerDestination {
    reference: Reference,
    repo: Repo,
}

impl DockerDestination {
    pub fn open(reference: &str, ctx: &SystemContext) -> Result<DockerDestination> {
        let parsed = parse_ref(reference)?;
        let (repo, rewritten) = registry::open_repo(&parsed, ctx, true)?;
        Ok(DockerDestination {
            reference: rewritten,
            repo,
        })
    }

    /// A descriptor for manifest bytes (keeping artifactType and annotations, for the referrers index).
    fn descriptor_of(bytes: &[u8], media_type: &str, v: &Referrer) -> Result<Descriptor> {
        let digest = crate::oci::verify::sha256_digest(bytes);
        let mut d = Desc::new(media_type, &digest, bytes.len() as u64);
        d.artifact_type = v.artifact_type.clone().or_else(|| {
            (v.config.as_ref())
                .and_then(|c| c.media_type.clone())
                .filter(|c| c != media::OCI_CONFIG)
        });
        d.annotations = v.annotations.clone();
        d.spec().context("building a referrer descriptor")
    }
}

#[async_trait]
impl ImageDestination for DockerDestination {
    fn name(&self) -> String {
        format!("docker://{}", self.reference)
    }

    fn blob_namespace(&self) -> Option<String> {
        Some(format!(
            "docker://{}/{}",
            self.repo.registry.host, self.repo.name
        ))
    }

    fn manifest_namespace(&self) -> Option<String> {
        self.blob_namespace()
    }

    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        let present = self.repo.has_blob(desc.digest()).await?;
        if present {
            locations::record(
                desc.digest().as_ref(),
                &self.repo.registry.host,
                &self.repo.name,
            );
        }
        Ok(present)
    }

    async fn try_reuse_blob(&self, desc: &Descriptor, hint: Option<&ReuseHint>) -> Result<bool> {
        let host = &self.repo.registry.host;
        let digest = desc.digest();
        // The source's repository first, then repositories this registry was seen holding the blob in.
        let mut from: Vec<String> = vec![];
        if let Some(ReuseHint {
            registry: Some(reg),
            repository: Some(repo),
        }) = hint
            && reg == host
        {
            from.push(repo.clone());
        }
        for c in locations::candidates(digest.as_ref(), host) {
            if !from.contains(&c) {
                from.push(c);
            }
        }
        for repo in from.iter().filter(|r| **r != self.repo.name).take(3) {
            match self.repo.mount_blob(digest, repo).await {
                Ok(true) => {
                    locations::record(digest.as_ref(), host, &self.repo.name);
                    return Ok(true);
                }
                Ok(false) => {}
                Err(e) => tracing::debug!("mounting {digest} from {repo}: {e:#}"),
            }
        }
        Ok(false)
    }

    async fn put_blob(&self, desc: &Descriptor, data: BlobStream) -> Result<()> {
        self.repo.put_blob(desc, data).await?;
        locations::record(
            desc.digest().as_ref(),
            &self.repo.registry.host,
            &self.repo.name,
        );
        Ok(())
    }

    async fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<()> {
        let digest = crate::oci::verify::sha256_digest(bytes);
        let target = match instance {
            Some(d) => d.to_string(),
            None => match (&self.reference.tag, &self.reference.digest) {
                (Some(t), _) => t.clone(),
                (None, Some(d)) => {
                    if *d != digest.to_string() {
                        bail!(
                            "{}: the manifest to write is {digest}, but the destination names {d}; a digest reference cannot take different content (use a tag, or --preserve-digests)",
                            self.name()
                        );
                    }
                    d.clone()
                }
                (None, None) => "latest".into(),
            },
        };
        let handled = self.repo.put_manifest(&target, bytes, media_type).await?;
        let v: Referrer = document::parse(bytes)
            .map_err(|e| anyhow!("{}: manifest is not valid: {e}", self.name()))?;
        if !handled && let Some(subject) = v.subject.as_ref().map(|s| s.digest.as_str()) {
            let subject: Digest = subject.parse().with_context(|| {
                format!(
                    "{}: manifest subject `{subject}` is not a digest",
                    self.name()
                )
            })?;
            let desc = Self::descriptor_of(bytes, media_type, &v)?;
            self.repo
                .add_fallback_referrer(&subject, desc)
                .await
                .with_context(|| {
                    format!(
                        "{}: recording referrer {digest} of {subject} under the fallback tag",
                        self.name()
                    )
                })?;
        }
        Ok(())
    }

    async fn put_tagged_manifest(&self, bytes: &[u8], media_type: &str, tag: &str) -> Result<bool> {
        self.repo.put_manifest(tag, bytes, media_type).await?;
        Ok(true)
    }

    async fn commit(&self) -> Result<()> {
        Ok(())
    }
}

/// Tags of `docker://REPO` (tag or digest in REPO is an error, as in skopeo).
pub async fn list_tags(reference: &str, ctx: &SystemContext) -> Result<(String, Vec<String>)> {
    let r = parse_ref(reference)?;
    if r.tag.is_some() || r.digest.is_some() {
        bail!("docker://{reference}: list-tags takes a repository, without a tag or digest");
    }
    let src = DockerSource::open(reference, ctx)?;
    let mut errors = vec![];
    for (repo, _) in &src.endpoints {
        match repo.tags().await {
            Ok(t) => return Ok((r.name(), t)),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    bail!("{}", errors.join("; "))
}

/// Delete the manifest `docker://REF` names. Returns the deleted digest.
pub async fn delete(reference: &str, ctx: &SystemContext) -> Result<Digest> {
    let r = parse_ref(reference)?;
    let (repo, rewritten) = registry::open_repo(&r, ctx, true)?;
    repo.delete_manifest(&rewritten.manifest_ref())
        .await
        .with_context(|| format!("deleting docker://{r}"))
}

/// The digest of the manifest at `docker://REF`, or None when absent (one HEAD request).
pub async fn manifest_digest(reference: &str, ctx: &SystemContext) -> Result<Option<Digest>> {
    let r = parse_ref(reference)?;
    let (repo, rewritten) = registry::open_repo(&r, ctx, false)?;
    repo.head_manifest(&rewritten.manifest_ref()).await
}
