//! lade copy, push, pull: thin front ends over the one copy engine (`crate::copy`).

use super::Global;
use super::flags::{RemoteFlags, SideFlags, choice, human_size};
use super::progress::Shown;
use crate::copy::{CopyOptions, CopyReport, ManifestFormat, MultiArch, copy_image};
use crate::oci::Compression;
use crate::transport::{self, ImageDestination, PlatformOverride, SystemContext, TransportRef};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;

/// `--format`: a manifest format (`oci`, `v2s2`) and/or `json` for a machine-readable summary on stdout.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Oci,
    V2s2,
    Json,
}

fn manifest_format(f: &[CopyFormat]) -> Option<ManifestFormat> {
    f.iter().rev().find_map(|f| match f {
        CopyFormat::Oci => Some(ManifestFormat::Oci),
        CopyFormat::V2s2 => Some(ManifestFormat::V2s2),
        CopyFormat::Json => None,
    })
}

/// Flags shared by copy, push and pull that shape the copy itself.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineFlags {
    /// Manifest format to write (oci, v2s2), and/or `json` for a summary on stdout (repeat or comma-separate)
    #[arg(short = 'f', long, value_enum, value_delimiter = ',')]
    pub format: Vec<CopyFormat>,
    /// Copy every image of an index (same as --multi-arch all)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// For an index: the host's image (system), every image (all), or the index alone (index-only)
    #[arg(long, value_parser = choice::<MultiArch>(&["system", "all", "index-only"]))]
    pub multi_arch: Option<MultiArch>,
    /// Fail instead of changing any digest
    #[arg(long)]
    pub preserve_digests: bool,
    /// Recompress layers (gzip or zstd)
    #[arg(long, value_name = "FORMAT")]
    pub dest_compress_format: Option<Compression>,
    /// Do not copy referrers (OCI 1.1 subject referrers and cosign .sig/.att/.sbom tags)
    #[arg(long)]
    pub no_referrers: bool,
    /// Blobs copied at once
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub jobs: usize,
    /// Choose the image for this OS from an index (default: the host's)
    #[arg(long, visible_alias = "os", value_name = "OS")]
    pub override_os: Option<String>,
    /// Choose the image for this architecture from an index (default: the host's)
    #[arg(long, visible_alias = "arch", value_name = "ARCH")]
    pub override_arch: Option<String>,
    /// Choose the image for this variant from an index
    #[arg(long, visible_alias = "variant", value_name = "VARIANT")]
    pub override_variant: Option<String>,
    /// Choose the image for this platform from an index: OS/ARCH[/VARIANT] (the three flags above win)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Print nothing but errors
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub progress: super::progress::ProgressFlag,
}

impl EngineFlags {
    fn options(&self, g: &Global, retry_times: u32) -> CopyOptions {
        CopyOptions {
            multi_arch: if self.all {
                MultiArch::All
            } else {
                self.multi_arch.unwrap_or_default()
            },
            preserve_digests: self.preserve_digests,
            format: manifest_format(&self.format),
            compress: self.dest_compress_format,
            referrers: !self.no_referrers,
            signatures: true,
            platform: self.platform(),
            jobs: self.jobs.max(1),
            retry_times,
            tmp_dir: g.root().join("lade").join("tmp"),
            events: super::progress::sink(self.shown(), self.quiet),
        }
    }

    fn shown(&self) -> Shown {
        self.progress.progress.resolve()
    }

    fn platform(&self) -> PlatformOverride {
        let mut parts = self.platform.as_deref().unwrap_or("").splitn(3, '/');
        let mut part = || parts.next().filter(|s| !s.is_empty()).map(String::from);
        let (os, arch, variant) = (part(), part(), part());
        PlatformOverride {
            os: self.override_os.clone().or(os),
            arch: self.override_arch.clone().or(arch),
            variant: self.override_variant.clone().or(variant),
        }
    }

    /// A side's context with this copy's platform choice.
    fn side(&self, ctx: SystemContext) -> SystemContext {
        SystemContext {
            platform: self.platform(),
            ..ctx
        }
    }

    fn json(&self) -> bool {
        self.format.contains(&CopyFormat::Json)
    }
}

#[derive(clap::Args, Debug)]
pub struct CopyArgs {
    /// Source, as TRANSPORT:REFERENCE (docker://, oci:, oci-archive:, docker-archive:, dir:, lade:)
    pub source: String,
    /// Destination, as TRANSPORT:REFERENCE
    pub destination: String,
    #[command(flatten)]
    pub engine: EngineFlags,
    #[command(flatten)]
    pub sides: SideFlags,
    /// auth.json for both sides
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    #[command(flatten)]
    pub sign: super::sign::SignFlags,
    #[command(flatten)]
    pub gpg: super::gpg_sign::GpgSignFlags,
}

fn report(r: &CopyReport, e: &EngineFlags) -> Result<()> {
    if e.shown() == Shown::Json {
        // stdout is NDJSON: the `done` event carries the summary.
    } else if e.json() {
        crate::stdout::outln!("{}", serde_json::to_string_pretty(r)?);
    } else if !e.quiet {
        eprintln!(
            "Copied {} to {}: {} blobs ({}) written, {} already there, {} mounted, {} referrers; manifest {}",
            r.source,
            r.destination,
            r.blobs_copied,
            human_size(r.bytes_copied),
            r.blobs_skipped,
            r.blobs_mounted,
            r.referrers,
            r.digest
        );
    }
    Ok(())
}

/// Check the source against the policy, then open the destination (`dst`, awaited only then, so a refused
/// copy creates nothing) and copy; `gpg` keeps, drops or adds GPG signatures.
async fn run_copy(
    src_name: &str,
    src_ctx: &SystemContext,
    dst: impl std::future::Future<Output = Result<Box<dyn ImageDestination>>>,
    opts: &CopyOptions,
    gpg: Option<(&super::gpg_sign::GpgCopy, &SystemContext)>,
) -> Result<CopyReport> {
    let src = transport::open_source(src_name, src_ctx)
        .await
        .with_context(|| format!("opening {src_name}"))?;
    // The signature policy, before anything is written.
    let src = crate::policy::check(src_name, src, src_ctx).await?;
    let (src, opts, sigs) = match gpg {
        Some((g, _)) => g.prepare(src_name, src, src_ctx, opts).await?,
        None => (src, opts.clone(), vec![]),
    };
    let dst = dst.await?;
    let r = copy_image(src.as_ref(), dst.as_ref(), &opts).await?;
    if let Some((g, dst_ctx)) = gpg {
        g.finish(&r, sigs, dst_ctx)?;
    }
    Ok(r)
}

/// Open `name` as a copy's destination.
async fn open_dest(name: &str, ctx: &SystemContext) -> Result<Box<dyn ImageDestination>> {
    transport::open_destination(name, ctx)
        .await
        .with_context(|| format!("opening {name}"))
}

pub fn copy(g: &Global, a: CopyArgs) -> Result<()> {
    let e = &a.engine;
    let retry = a.sides.retry_times;
    let src_ctx = e.side(a.sides.src_context(g, a.authfile.as_ref()));
    let dst_ctx = e.side(a.sides.dest_context(g, a.authfile.as_ref()));
    let opts = e.options(g, retry);
    let signer = super::sign::copy_signer(g, &a.sign)?;
    let gpg = super::gpg_sign::GpgCopy::new(g, &a.gpg, &a.sign, &a.destination)?;
    let r = super::runtime()?.block_on(run_copy(
        &a.source,
        &src_ctx,
        open_dest(&a.destination, &dst_ctx),
        &opts,
        Some((&gpg, &dst_ctx)),
    ))?;
    if let Some(s) = &signer {
        s.sign(&a.destination, &dst_ctx)?;
    }
    report(&r, e)
}

#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// A local image (name, short name or ID)
    pub name: String,
    /// Where to (TRANSPORT:REF; no transport means docker://); default: the image's own name
    pub destination: Option<String>,
    #[command(flatten)]
    pub remote: RemoteFlags,
    #[command(flatten)]
    pub engine: EngineFlags,
    /// Write the pushed manifest's digest to this file
    #[arg(long, value_name = "FILE")]
    pub digestfile: Option<PathBuf>,
    #[command(flatten)]
    pub sign: super::sign::SignFlags,
    #[command(flatten)]
    pub gpg: super::gpg_sign::GpgSignFlags,
}

/// A transport string for a push/pull argument: no transport prefix means a registry.
fn with_transport(s: &str) -> String {
    if transport::parse(s).is_ok() {
        s.to_string()
    } else {
        format!("docker://{s}")
    }
}

pub fn push(g: &Global, a: PushArgs) -> Result<()> {
    let e = &a.engine;
    let store = crate::store::Store::open(&g.root())?;
    let (full, _) = store.resolve(&a.name)?;
    let dest = with_transport(a.destination.as_deref().unwrap_or(&full));
    let dst_ctx = e.side(a.remote.context(g));
    let src_ctx = e.side(RemoteFlags::default().context(g));
    let mut opts = e.options(g, a.remote.retry_times);
    if e.multi_arch.is_none() && !e.all {
        opts.multi_arch = MultiArch::All;
    }
    let signer = super::sign::copy_signer(g, &a.sign)?;
    let gpg = super::gpg_sign::GpgCopy::new(g, &a.gpg, &a.sign, &dest)?;
    let report_ = super::runtime()?.block_on(run_copy(
        &format!("lade:{full}"),
        &src_ctx,
        open_dest(&dest, &dst_ctx),
        &opts,
        Some((&gpg, &dst_ctx)),
    ))?;
    if let Some(s) = &signer {
        s.sign(&dest, &dst_ctx)?;
    }
    if let Some(f) = &a.digestfile {
        std::fs::write(f, &report_.digest).with_context(|| format!("writing {}", f.display()))?;
    }
    report(&report_, e)
}

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// What to pull (TRANSPORT:REF; no transport means docker://)
    pub source: String,
    #[command(flatten)]
    pub remote: RemoteFlags,
    #[command(flatten)]
    pub engine: EngineFlags,
}

/// The store name a pulled image gets, and whether it came from a registry.
fn pulled_name(src: &str) -> Result<(String, bool)> {
    let t = transport::parse(src)?;
    Ok((t.store_name(), matches!(t, TransportRef::Docker(_))))
}

pub fn pull(g: &Global, a: PullArgs) -> Result<()> {
    let e = &a.engine;
    let src = with_transport(&a.source);
    let src_ctx = e.side(a.remote.context(g));
    let opts = e.options(g, a.remote.retry_times);
    // A name typed without a transport is resolved through registries.conf (aliases, search registries),
    // as podman pull does; the candidates are tried in order and the first that has the image wins.
    let sources = if transport::parse(&a.source).is_err() {
        crate::registry::pull_candidates(&a.source, &src_ctx)?
            .iter()
            .map(|r| format!("docker://{r}"))
            .collect()
    } else {
        vec![src]
    };
    let root = g.root();
    let mut failures = Vec::new();
    let mut pulled = None;
    for src in &sources {
        let (name, remote) = pulled_name(src)?;
        let dst = async {
            let d = transport::local::LocalDestination::open_named(&root, &name, remote)?;
            anyhow::Ok(Box::new(d) as Box<dyn ImageDestination>)
        };
        // The image's GPG signatures are kept in the store, so a push carries them on.
        let gpg = super::gpg_sign::GpgCopy::new(
            g,
            &Default::default(),
            &Default::default(),
            &format!("lade:{name}"),
        )?;
        let copied =
            super::runtime()?.block_on(run_copy(src, &src_ctx, dst, &opts, Some((&gpg, &src_ctx))));
        match copied {
            Ok(rep) => {
                pulled = Some(rep);
                break;
            }
            Err(err) if sources.len() == 1 => return Err(err),
            Err(err) => failures.push(format!("{src}: {err:#}")),
        }
    }
    let Some(rep) = pulled else {
        bail!(
            "pulling `{}`: no candidate had it:\n  {}",
            a.source,
            failures.join("\n  ")
        );
    };
    if e.json() || e.shown() == Shown::Json {
        return report(&rep, e);
    }
    report(&rep, e)?;
    let store = crate::store::Store::open(&root)?;
    let d: crate::transport::Digest = rep.digest.parse()?;
    let desc = crate::oci::manifest_descriptor(d, 0, &rep.media_type)?;
    crate::stdout::outln!("{}", store.image_id(&desc)?);
    Ok(())
}
