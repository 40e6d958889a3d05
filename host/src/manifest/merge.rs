//! `lade manifest merge TARGET SRC...` (buildx's `imagetools create -t TARGET SRC...`): images already in a
//! registry (single images or indexes) merged into one index at TARGET without pulling their layers.
//!
//! The sources are read as manifests (and, for a single image, its small config, for the platform); the new
//! index goes through the copy engine from a [`Merged`] source. Every blob's repository is recorded in the
//! blob locations first, so a registry destination mounts blobs across repositories (or finds them there)
//! instead of downloading them; only a destination on another registry makes the engine stream them.

use super::ListFormat;
use crate::copy::{CopyOptions, CopyReport, MultiArch, copy_image};
use crate::events::Events;
use crate::oci::document::{self, Desc, Index, Manifest, Platform};
use crate::oci::{BlobStream, Descriptor, Digest, ImageConfig, media};
use crate::registry::{SystemContext, locations};
use crate::transport::{self, ImageSource, ReuseHint};
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use std::collections::HashMap;
use tokio::io::AsyncReadExt;

/// Largest config read for an entry's platform (as containers/image's manifest cap).
const CONFIG_CAP: u64 = 4 << 20;

/// The merged index and the sources its children and blobs come from.
struct Merged {
    sources: Vec<Box<dyn ImageSource>>,
    index: Vec<u8>,
    index_type: String,
    /// Child manifests by digest: bytes, media type.
    children: HashMap<String, (Vec<u8>, String)>,
    /// Blob digest → the source that has it.
    blobs: HashMap<String, usize>,
}

#[async_trait]
impl ImageSource for Merged {
    fn name(&self) -> String {
        let names: Vec<String> = self.sources.iter().map(|s| s.name()).collect();
        format!("the merge of {}", names.join(", "))
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Vec<u8>, String)> {
        match instance {
            None => Ok((self.index.clone(), self.index_type.clone())),
            Some(d) => self
                .children
                .get(d.as_ref())
                .cloned()
                .with_context(|| format!("{}: no manifest {d}", self.name())),
        }
    }

    async fn blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        let i = *self
            .blobs
            .get(desc.digest().as_ref())
            .with_context(|| format!("{}: no blob {}", self.name(), desc.digest()))?;
        self.sources[i].blob(desc).await
    }
}

/// The platform a single image's config names.
async fn platform(src: &dyn ImageSource, m: &Manifest) -> Result<Platform> {
    let d = m.config.spec()?;
    if d.size() > CONFIG_CAP {
        bail!(
            "{}: the config is {} bytes, over the {CONFIG_CAP} cap",
            src.name(),
            d.size()
        );
    }
    let mut bytes = Vec::new();
    src.blob(&d)
        .await?
        .take(CONFIG_CAP)
        .read_to_end(&mut bytes)
        .await?;
    crate::oci::verify::check_bytes(&bytes, d.digest(), Some(d.size()))?;
    let cfg: ImageConfig = document::parse(&bytes)
        .with_context(|| format!("{}: the config is not an image config", src.name()))?;
    Ok(Platform {
        architecture: cfg.architecture,
        os: cfg.os,
        variant: cfg.variant,
        os_version: cfg.os_version,
        os_features: cfg.os_features,
        ..Platform::default()
    })
}

impl Merged {
    /// Remember child `bytes` of source `i`: its blobs' owner, and where they live for mounts.
    fn add_child(&mut self, i: usize, digest: &str, bytes: Vec<u8>, mt: &str) -> Result<Manifest> {
        let m: Manifest = document::parse(&bytes).with_context(|| {
            format!(
                "{}: {digest} is not an image manifest",
                self.sources[i].name()
            )
        })?;
        let hint = self.sources[i].reuse_hint();
        for d in std::iter::once(&m.config).chain(&m.layers) {
            self.blobs.entry(d.digest.clone()).or_insert(i);
            if let Some(ReuseHint {
                registry: Some(host),
                repository: Some(repo),
            }) = &hint
            {
                locations::record(&d.digest, host, repo);
            }
        }
        self.children
            .insert(digest.to_string(), (bytes, mt.to_string()));
        Ok(m)
    }

    /// Read source `i`'s top manifest and return the index entries it gives.
    async fn entries(&mut self, i: usize) -> Result<Vec<Desc>> {
        let src = &self.sources[i];
        let (bytes, mt) = src
            .manifest(None)
            .await
            .with_context(|| format!("reading the manifest of {}", src.name()))?;
        let digest = crate::oci::verify::sha256_digest(&bytes);
        if media::is_index(&mt) {
            let idx: Index = document::parse(&bytes)
                .with_context(|| format!("{}: the index is not valid", src.name()))?;
            for e in &idx.manifests {
                let d: Digest = e.digest.parse()?;
                let (b, t) = self.sources[i].manifest(Some(&d)).await?;
                crate::oci::verify::check_bytes(&b, &d, Some(e.size))?;
                if media::is_index(&t) {
                    bail!(
                        "{}: nested indexes are not merged ({d})",
                        self.sources[i].name()
                    );
                }
                self.add_child(i, &e.digest, b, &t)?;
            }
            return Ok(idx.manifests);
        }
        if !media::is_manifest(&mt) {
            bail!("{}: `{mt}` is neither an image nor an index", src.name());
        }
        let len = bytes.len() as u64;
        let m = self.add_child(i, digest.as_ref(), bytes, &mt)?;
        let platform = platform(self.sources[i].as_ref(), &m).await?;
        Ok(vec![Desc {
            platform: Some(platform),
            ..Desc::new(&mt, &digest, len)
        }])
    }
}

/// Merge `sources` (transport strings; no transport means a registry) into one index written to `target`.
pub async fn merge(
    target: &str,
    sources: &[String],
    ctx: &SystemContext,
    format: ListFormat,
    events: Events,
    tmp_dir: std::path::PathBuf,
) -> Result<CopyReport> {
    if sources.is_empty() {
        bail!("name at least one source image to merge");
    }
    let with_transport = |s: &str| {
        if super::has_transport(s) {
            s.to_string()
        } else {
            format!("docker://{s}")
        }
    };
    let mut merged = Merged {
        sources: Vec::new(),
        index: Vec::new(),
        index_type: String::new(),
        children: HashMap::new(),
        blobs: HashMap::new(),
    };
    for s in sources {
        let s = with_transport(s);
        let src = transport::open_source(&s, ctx)
            .await
            .with_context(|| format!("opening {s}"))?;
        merged.sources.push(src);
    }
    let mut index = super::empty_index(format);
    for i in 0..merged.sources.len() {
        for e in merged.entries(i).await? {
            if !index.manifests.iter().any(|m| m.digest == e.digest) {
                index.manifests.push(e);
            }
        }
    }
    merged.index_type = index.media_type.clone().unwrap_or_default();
    merged.index = document::to_vec(&index)?;
    let target = with_transport(target);
    let dst = transport::open_destination(&target, ctx)
        .await
        .with_context(|| format!("opening {target}"))?;
    let opts = CopyOptions {
        multi_arch: MultiArch::All,
        referrers: false,
        retry_times: ctx.retry_times,
        tmp_dir,
        events,
        ..CopyOptions::default()
    };
    copy_image(&merged, dst.as_ref(), &opts).await
}
