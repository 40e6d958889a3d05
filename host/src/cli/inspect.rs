//! lade inspect: an image's manifest and config, from the local store (a bare name) or any transport; for
//! `docker://` the summary lists the repository's tags in `RepoTags`, as skopeo does (`--no-tags` skips it).

use super::Global;
use crate::transport::verify::{DigestingReader, check_bytes, sha256_digest};
use crate::transport::{self, Descriptor, ImageSource, PlatformOverride, SystemContext, media};
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::path::PathBuf;
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
    /// Output format: json (the default output is JSON too, like skopeo)
    #[arg(long, value_enum, default_value_t)]
    pub format: super::OutputFormat,
    /// Verify TLS for a registry
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub tls_verify: Option<bool>,
    /// Credentials USER[:PASSWORD]
    #[arg(long, value_name = "USER[:PASS]")]
    pub creds: Option<String>,
    /// auth.json to read credentials from
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// certs.d-style directory for the registry
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
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

async fn read_blob(src: &dyn ImageSource, d: &Descriptor) -> Result<Vec<u8>> {
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
            let msg = format!("{e:#}");
            if msg.contains("HTTP 401") || msg.contains("HTTP 403") {
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
        tls_verify: a.tls_verify,
        creds: a.creds.clone(),
        authfile: a.authfile.clone(),
        cert_dir: a.cert_dir.clone(),
        registries_conf: g.registries_conf.clone(),
        retry_times: 3,
        platform: platform.clone(),
        store_root: g.root(),
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
            let idx: Value = serde_json::from_slice(&top)?;
            let i = crate::copy::platform::choose(&idx, &platform).with_context(|| src.name())?;
            let d: Descriptor = serde_json::from_value(idx["manifests"][i].clone())?;
            let (b, _) = src.manifest(Some(d.digest())).await?;
            check_bytes(&b, d.digest(), Some(d.size()))?;
            (b, sha256_digest(&top))
        } else {
            let d = sha256_digest(&top);
            (top, d)
        };
        let m: Value = serde_json::from_slice(&manifest).context("the manifest is not JSON")?;
        let cfg: Option<Descriptor> = m
            .get("config")
            .map(|c| serde_json::from_value(c.clone()))
            .transpose()?;
        let config_bytes = match &cfg {
            Some(c) => read_blob(src.as_ref(), c).await?,
            None => b"{}".to_vec(),
        };
        if a.config {
            if a.raw {
                return Ok(config_bytes);
            }
            let v: Value =
                serde_json::from_slice(&config_bytes).context("the config is not JSON")?;
            return Ok(serde_json::to_vec_pretty(&v)?);
        }
        let c: Value = serde_json::from_slice(&config_bytes).unwrap_or_default();
        let layers: Vec<Value> = m
            .get("layers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
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
            "Created": c.get("created"),
            "DockerVersion": c.get("docker_version").and_then(Value::as_str).unwrap_or(""),
            "Labels": c.pointer("/config/Labels"),
            "Architecture": c.get("architecture"),
            "Variant": c.get("variant"),
            "Os": c.get("os"),
            "Layers": layers.iter().filter_map(|l| l.get("digest")).collect::<Vec<_>>(),
            "LayersData": layers.iter().map(|l| json!({
                "MIMEType": l.get("mediaType"),
                "Digest": l.get("digest"),
                "Size": l.get("size"),
                "Annotations": l.get("annotations"),
            })).collect::<Vec<_>>(),
            "Env": c.pointer("/config/Env"),
        });
        Ok(serde_json::to_vec_pretty(&summary)?)
    })?;
    use std::io::Write;
    let mut so = std::io::stdout().lock();
    so.write_all(&out)?;
    if !a.raw {
        so.write_all(b"\n")?;
    }
    Ok(())
}
