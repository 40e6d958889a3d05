//! lade inspect: an image's manifest and config, from the local store (a bare name) or any transport; for
//! `docker://` the summary lists the repository's tags in `RepoTags`, as skopeo does (`--no-tags` skips it).

use super::Global;
use super::flags::RemoteFlags;
use super::template::Format;
use crate::oci::ImageConfig;
use crate::oci::config::set;
use crate::oci::document::{self, Index, Manifest};
use crate::oci::verify::{DigestingReader, check_bytes, sha256_digest};
use crate::transport::{self, Descriptor, ImageSource, PlatformOverride, SystemContext, media};
use anyhow::{Context, Result};
use serde_json::json;
use tokio::io::AsyncReadExt;

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// A local image (name, short name or ID) or TRANSPORT:REFERENCE
    pub image: String,
    /// Print the manifest (or with --config, the config) exactly as stored
    #[arg(long)]
    pub raw: bool,
    /// Print the image's config instead of the summary
    #[arg(long)]
    pub config: bool,
    /// Do not list the repository's tags in RepoTags (for docker://; saves a request)
    #[arg(short = 'n', long)]
    pub no_tags: bool,
    /// Output format: json (the default, like skopeo's) or a Go template over the printed document, with
    /// skopeo's fields: .Name .Digest .RepoTags .Created .DockerVersion .Labels .Architecture .Variant .Os
    /// .Layers .LayersData .Env (with --config, the config's own fields)
    #[arg(long, default_value = "json", value_parser = super::template::check)]
    pub format: String,
    #[command(flatten)]
    pub remote: RemoteFlags,
    /// From an index, the image for this OS
    #[arg(long, value_name = "OS")]
    pub override_os: Option<String>,
    /// From an index, the image for this architecture
    #[arg(long, value_name = "ARCH")]
    pub override_arch: Option<String>,
    /// From an index, the image for this variant
    #[arg(long, value_name = "VARIANT")]
    pub override_variant: Option<String>,
}

/// The largest config read into memory, as containers/image's `MaxConfigBodySize`.
const MAX_CONFIG: u64 = 4 << 20;

async fn read_blob(src: &dyn ImageSource, d: &Descriptor) -> Result<Vec<u8>> {
    if d.size() > MAX_CONFIG {
        anyhow::bail!(
            "{}: the config {} claims {} bytes, more than the {MAX_CONFIG} lade reads into memory",
            src.name(),
            d.digest(),
            d.size()
        );
    }
    let s = src.blob(d).await?;
    let mut r = DigestingReader::new(s, d.digest(), Some(d.size()))?;
    let mut out = vec![];
    r.read_to_end(&mut out)
        .await
        .with_context(|| format!("reading blob {} from {}", d.digest(), src.name()))?;
    Ok(out)
}

/// The tags of the repository `reference` is in, as skopeo lists them: from the registry the name points
/// at (its registries.conf `location`; mirrors are for reading images, not for listing). A registry that
/// refuses to list tags (401, 403) only costs the list, with a warning; any other failure is an error.
async fn repo_tags(reference: &str, ctx: &SystemContext) -> Result<Vec<String>> {
    let r = crate::reference::Reference::parse(reference)
        .with_context(|| format!("docker://{reference}"))?;
    let (repo, at) = crate::registry::open_repo(&r, ctx, false)?;
    match repo.tags().await {
        Ok(tags) => Ok(tags),
        Err(e) => {
            if crate::registry::HttpError::find(&e).is_some_and(|h| h.is_auth()) {
                let msg = format!("{e:#}");
                tracing::warn!(
                    "listing the tags of {} was refused, so RepoTags is empty: {msg}",
                    at.name()
                );
                Ok(vec![])
            } else {
                Err(e.context(format!(
                    "listing the tags of {} for RepoTags (pass --no-tags to skip that)",
                    at.name()
                )))
            }
        }
    }
}

pub fn run(g: &Global, a: InspectArgs) -> Result<()> {
    let templated = !matches!(Format::parse(&a.format)?, Format::Default | Format::Json);
    if templated && a.raw {
        anyhow::bail!(
            "--raw prints the stored bytes as they are; drop --raw to use a --format template"
        );
    }
    let name = if transport::parse(&a.image).is_ok() {
        a.image.clone()
    } else {
        format!("lade:{}", a.image)
    };
    let platform = PlatformOverride {
        os: a.override_os.clone(),
        arch: a.override_arch.clone(),
        variant: a.override_variant.clone(),
    };
    let ctx = SystemContext {
        platform: platform.clone(),
        ..a.remote.context(g)
    };
    let out = super::runtime()?.block_on(async {
        let src = transport::open_source(&name, &ctx)
            .await
            .with_context(|| format!("opening {name}"))?;
        let (top, top_mt) = src.manifest(None).await?;
        if a.raw && !a.config {
            return Ok::<_, anyhow::Error>(top);
        }
        let (manifest, digest) = if media::is_index(&top_mt) {
            let idx: Index = document::parse(&top).context("the index is not valid")?;
            let i = crate::oci::platform::choose(&idx, &platform).with_context(|| src.name())?;
            let d = idx.manifests[i].spec()?;
            let (b, _) = src.manifest(Some(d.digest())).await?;
            check_bytes(&b, d.digest(), Some(d.size()))?;
            (b, sha256_digest(&top))
        } else {
            let d = sha256_digest(&top);
            (top, d)
        };
        let m: Manifest = document::parse(&manifest).context("the manifest is not valid")?;
        let config_bytes = read_blob(src.as_ref(), &m.config.spec()?).await?;
        if a.config {
            if a.raw {
                return Ok(config_bytes);
            }
            // Printed as it is, whatever it holds (an artifact's config is any JSON).
            let v: serde_json::Value =
                serde_json::from_slice(&config_bytes).context("the config is not JSON")?;
            return Ok(serde_json::to_vec_pretty(&v)?);
        }
        let c: ImageConfig = document::parse(&config_bytes).unwrap_or_default();
        let cc = c.container();
        let layers = &m.layers;
        let name_only = match transport::parse(&name)? {
            transport::TransportRef::Docker(r) => Some(r),
            transport::TransportRef::Local(_) => {
                Some(src.name().trim_start_matches("lade:").to_string())
            }
            _ => None,
        };
        let repo_tags = match transport::parse(&name)? {
            transport::TransportRef::Docker(r) if !a.no_tags => repo_tags(&r, &ctx).await?,
            _ => vec![],
        };
        let summary = json!({
            "Name": name_only.as_deref().map(|n| crate::store::names::repository(n).to_string()),
            "Digest": digest.to_string(),
            "RepoTags": repo_tags,
            "Created": c.created,
            "DockerVersion": c.docker_version.as_deref().unwrap_or(""),
            "Labels": cc.and_then(|cc| set(&cc.labels)),
            "Architecture": c.architecture,
            "Variant": c.variant,
            "Os": c.os,
            "Layers": layers.iter().map(|l| &l.digest).collect::<Vec<_>>(),
            "LayersData": layers.iter().map(|l| json!({
                "MIMEType": l.media_type,
                "Digest": l.digest,
                "Size": l.size,
                "Annotations": l.annotations,
            })).collect::<Vec<_>>(),
            "Env": cc.and_then(|cc| set(&cc.env)),
        });
        Ok(serde_json::to_vec_pretty(&summary)?)
    })?;
    if templated {
        let mut v: serde_json::Value = serde_json::from_slice(&out)?;
        // A template sees `Created` as skopeo's does: a Go time, printed as Go prints it.
        if let Some(c) = v.get_mut("Created").filter(|_| !a.config)
            && let Some(t) = c.as_str().and_then(super::template::go_timestamp)
        {
            *c = serde_json::Value::String(t);
        }
        super::template::print_doc(&a.format, &v)?;
        return Ok(());
    }
    use std::io::Write;
    let mut so = std::io::stdout().lock();
    so.write_all(&out)?;
    if !a.raw {
        so.write_all(b"\n")?;
    }
    Ok(())
}
