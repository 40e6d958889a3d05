//! lade copy, push, pull: thin front ends over the one copy engine (`crate::copy`).

use super::Global;
use crate::copy::{Compression, CopyOptions, CopyReport, ManifestFormat, MultiArch, copy_image};
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
    #[arg(long, value_enum)]
    pub multi_arch: Option<MultiArch>,
    /// Fail instead of changing any digest
    #[arg(long)]
    pub preserve_digests: bool,
    /// Recompress layers (gzip or zstd)
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub dest_compress_format: Option<Compression>,
    /// Do not copy referrers (OCI 1.1 subject referrers and cosign .sig/.att/.sbom tags)
    #[arg(long)]
    pub no_referrers: bool,
    /// Retries for a blob after a transient failure
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub retry_times: u32,
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
}

impl EngineFlags {
    fn options(&self, g: &Global) -> CopyOptions {
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
            platform: self.platform(),
            jobs: self.jobs.max(1),
            retry_times: self.retry_times,
            tmp_dir: g.root().join("lade").join("tmp"),
        }
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
}

/// Registry options per side of a copy, named as skopeo names them (`copy` and `sync` share them).
#[derive(clap::Args, Debug)]
pub struct SideFlags {
    /// Credentials USER[:PASSWORD] for the source registry
    #[arg(long, value_name = "USER[:PASS]")]
    pub src_creds: Option<String>,
    /// Credentials USER[:PASSWORD] for the destination registry
    #[arg(long, value_name = "USER[:PASS]")]
    pub dest_creds: Option<String>,
    /// Verify TLS for the source registry
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub src_tls_verify: Option<bool>,
    /// Verify TLS for the destination registry
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub dest_tls_verify: Option<bool>,
    /// auth.json for the source
    #[arg(long, value_name = "FILE")]
    pub src_authfile: Option<PathBuf>,
    /// auth.json for the destination
    #[arg(long, value_name = "FILE")]
    pub dest_authfile: Option<PathBuf>,
    /// certs.d-style directory for the source registry
    #[arg(long, value_name = "DIR")]
    pub src_cert_dir: Option<PathBuf>,
    /// certs.d-style directory for the destination registry
    #[arg(long, value_name = "DIR")]
    pub dest_cert_dir: Option<PathBuf>,
}

/// A context for one side of a copy.
pub fn context(
    g: &Global,
    tls_verify: Option<bool>,
    creds: Option<String>,
    authfile: Option<PathBuf>,
    cert_dir: Option<PathBuf>,
    e: &EngineFlags,
) -> SystemContext {
    SystemContext {
        tls_verify,
        creds,
        authfile,
        cert_dir,
        registries_conf: g.registries_conf.clone(),
        retry_times: e.retry_times,
        platform: e.platform(),
        store_root: g.root(),
    }
}

fn human_bytes(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

fn report(r: &CopyReport, e: &EngineFlags) -> Result<()> {
    if e.json() {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else if !e.quiet {
        eprintln!(
            "Copied {} to {}: {} blobs ({}) written, {} already there, {} mounted, {} referrers; manifest {}",
            r.source,
            r.destination,
            r.blobs_copied,
            human_bytes(r.bytes_copied),
            r.blobs_skipped,
            r.blobs_mounted,
            r.referrers,
            r.digest
        );
    }
    Ok(())
}

async fn run_copy(
    src_name: &str,
    src_ctx: &SystemContext,
    dst: Box<dyn ImageDestination>,
    opts: &CopyOptions,
) -> Result<CopyReport> {
    let src = transport::open_source(src_name, src_ctx)
        .await
        .with_context(|| format!("opening {src_name}"))?;
    copy_image(src.as_ref(), dst.as_ref(), opts).await
}

pub fn copy(g: &Global, a: CopyArgs) -> Result<()> {
    let e = &a.engine;
    let src_ctx = context(
        g,
        a.sides.src_tls_verify,
        a.sides.src_creds.clone(),
        a.sides.src_authfile.clone().or(a.authfile.clone()),
        a.sides.src_cert_dir.clone(),
        e,
    );
    let dst_ctx = context(
        g,
        a.sides.dest_tls_verify,
        a.sides.dest_creds.clone(),
        a.sides.dest_authfile.clone().or(a.authfile.clone()),
        a.sides.dest_cert_dir.clone(),
        e,
    );
    let opts = e.options(g);
    let r = super::runtime()?.block_on(async {
        let dst = transport::open_destination(&a.destination, &dst_ctx)
            .await
            .with_context(|| format!("opening {}", a.destination))?;
        run_copy(&a.source, &src_ctx, dst, &opts).await
    })?;
    report(&r, e)
}

/// Registry-side flags of push, pull, build and manifest.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RemoteFlags {
    /// Verify TLS for the registry
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
}

impl RemoteFlags {
    /// The context for the registry these flags are about (3 retries, no platform override).
    pub fn context(&self, g: &Global) -> SystemContext {
        SystemContext {
            tls_verify: self.tls_verify,
            creds: self.creds.clone(),
            authfile: self.authfile.clone(),
            cert_dir: self.cert_dir.clone(),
            registries_conf: g.registries_conf.clone(),
            retry_times: 3,
            platform: PlatformOverride::default(),
            store_root: g.root(),
        }
    }
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
    let r = &a.remote;
    let dst_ctx = context(
        g,
        r.tls_verify,
        r.creds.clone(),
        r.authfile.clone(),
        r.cert_dir.clone(),
        e,
    );
    let src_ctx = context(g, None, None, None, None, e);
    let mut opts = e.options(g);
    if e.multi_arch.is_none() && !e.all {
        opts.multi_arch = MultiArch::All;
    }
    let report_ = super::runtime()?.block_on(async {
        let dst = transport::open_destination(&dest, &dst_ctx)
            .await
            .with_context(|| format!("opening {dest}"))?;
        run_copy(&format!("lade:{full}"), &src_ctx, dst, &opts).await
    })?;
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
    let r = &a.remote;
    let src_ctx = context(
        g,
        r.tls_verify,
        r.creds.clone(),
        r.authfile.clone(),
        r.cert_dir.clone(),
        e,
    );
    let opts = e.options(g);
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
        let copied = super::runtime()?.block_on(async {
            let dst = transport::local::LocalDestination::open_named(&root, &name, remote)?;
            run_copy(src, &src_ctx, Box::new(dst), &opts).await
        });
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
    if e.json() {
        return report(&rep, e);
    }
    report(&rep, e)?;
    let store = crate::store::Store::open(&root)?;
    let d: crate::transport::Digest = rep.digest.parse()?;
    let desc = crate::transport::oci::manifest_descriptor(d, 0, &rep.media_type)?;
    println!("{}", store.image_id(&desc)?);
    Ok(())
}
