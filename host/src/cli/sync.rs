//! lade sync: flags in, [`crate::copy::sync`] does the work, one line per image out.

use super::Global;
use super::flags::{SideFlags, choice};
use super::gpg_sign::{GpgCopy, GpgSignFlags};
use super::progress::Shown;
use super::sign::{CopySigner, SignFlags};
use crate::copy::sync::{
    self, DestKind, ImageSignatures, Job, Outcome, Signatures, SrcKind, SyncOptions,
};
use crate::copy::{CopyOptions, CopyReport, ManifestFormat, MultiArch};
use crate::events::Event;
use crate::registry::SystemContext;
use crate::transport::ImageSource;
use anyhow::{Result, bail};
use std::sync::Arc;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncFormat {
    Oci,
    V2s2,
}

#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    /// Source: a repository or image (docker), a directory of dir: images (dir), or a sync YAML file (yaml)
    pub source: String,
    /// Destination: a registry prefix (docker), or a directory (dir, oci)
    pub destination: String,
    /// What SOURCE is
    #[arg(long, value_parser = choice::<SrcKind>(&["docker", "dir", "yaml"]))]
    pub src: SrcKind,
    /// What DESTINATION is
    #[arg(long, value_parser = choice::<DestKind>(&["docker", "dir", "oci"]))]
    pub dest: DestKind,
    /// Copy every image of an index, not only the host's
    #[arg(short, long)]
    pub all: bool,
    /// Show what would be copied, copy nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Go on after an image fails (the exit code still reports the failure)
    #[arg(long)]
    pub keep_going: bool,
    /// Fail instead of changing any digest
    #[arg(long)]
    pub preserve_digests: bool,
    /// Keep the source's full name under the destination (host/path/name:tag), not only the last component
    #[arg(long)]
    pub scoped: bool,
    /// Manifest format to write
    #[arg(short, long, value_enum)]
    pub format: Option<SyncFormat>,
    /// Do not copy referrers (signatures, attestations, SBOMs)
    #[arg(long)]
    pub no_referrers: bool,
    #[command(flatten)]
    pub sides: SideFlags,
    /// Images copied at once
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub image_parallelism: usize,
    /// Blobs copied at once per image
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub jobs: usize,
    #[command(flatten)]
    pub progress: super::progress::ProgressFlag,
    #[command(flatten)]
    pub gpg: GpgSignFlags,
    #[command(flatten)]
    pub sign: SignFlags,
}

/// A sync's signatures, as skopeo sync keeps and makes them: each image's GPG signatures are copied to its
/// destination (unless --remove-signatures), and with --sign-by or --sign-by-sigstore-private-key each
/// image is signed under its destination name. An image already at the destination is skipped only when
/// it needs nothing: its signatures there and no key to sign with (with a key, each is copied and signed
/// again, as skopeo sync does every run; the GPG signatures are replaced, not piled up).
struct SyncSignatures {
    gpg: GpgCopy,
    cosign: Option<Arc<CopySigner>>,
    dst_ctx: SystemContext,
}

impl SyncSignatures {
    fn new(g: &Global, a: &SyncArgs, dst_ctx: &SystemContext) -> Result<SyncSignatures> {
        let signs = a.gpg.sign_by.is_some() || a.sign.sign_by_sigstore_private_key.is_some();
        if a.sign.sign_identity.is_some() {
            bail!(
                "--sign-identity names one image: sync signs each image under its own destination name"
            );
        }
        if signs && a.dest != DestKind::Docker {
            bail!(
                "sync signs images only in a registry (--dest docker): a {} destination has no name to sign",
                if a.dest == DestKind::Dir {
                    "dir"
                } else {
                    "oci"
                }
            );
        }
        Ok(SyncSignatures {
            gpg: GpgCopy::for_sync(g, &a.gpg, &a.sign)?,
            cosign: super::sign::copy_signer(g, &a.sign)?.map(Arc::new),
            dst_ctx: dst_ctx.clone(),
        })
    }
}

/// One image's side: the GPG side of its destination, made once, and the source's signatures it keeps.
struct SyncedImage {
    gpg: GpgCopy,
    kept: Vec<Vec<u8>>,
    cosign: Option<Arc<CopySigner>>,
    dst: String,
    dst_ctx: SystemContext,
}

#[async_trait::async_trait]
impl Signatures for SyncSignatures {
    async fn prepare(
        &self,
        job: &Job,
        src: Box<dyn ImageSource>,
        opts: &CopyOptions,
    ) -> Result<(Box<dyn ImageSource>, CopyOptions, Box<dyn ImageSignatures>)> {
        let gpg = self.gpg.to(&job.dst, &self.dst_ctx, self.gpg.signs())?;
        let (src, opts, kept) = gpg.prepare(&job.src, src, job.src_ctx(), opts).await?;
        let image = SyncedImage {
            gpg,
            kept,
            cosign: self.cosign.clone(),
            dst: job.dst.clone(),
            dst_ctx: self.dst_ctx.clone(),
        };
        Ok((src, opts, Box::new(image)))
    }
}

#[async_trait::async_trait]
impl ImageSignatures for SyncedImage {
    fn complete(&self, digest: &str) -> Result<bool> {
        Ok(self.cosign.is_none() && self.gpg.complete(digest, &self.kept)?)
    }

    async fn finish(&self, report: &CopyReport) -> Result<()> {
        self.gpg.finish(report, self.kept.clone(), &self.dst_ctx)?;
        if let Some(c) = &self.cosign {
            c.sign_async(&self.dst, &self.dst_ctx).await?;
        }
        Ok(())
    }
}

pub fn run(g: &Global, a: SyncArgs) -> Result<()> {
    let shown = a.progress.progress.resolve();
    let events = super::progress::sink(shown, false);
    let dst_ctx = a.sides.dest_context(g, None);
    // The keys are opened (passphrases checked) before anything is copied.
    let signatures = SyncSignatures::new(g, &a, &dst_ctx)?;
    let o = SyncOptions {
        source: a.source.clone(),
        destination: a.destination.clone(),
        src: a.src,
        dest: a.dest,
        scoped: a.scoped,
        dry_run: a.dry_run,
        keep_going: a.keep_going,
        image_parallelism: a.image_parallelism,
        src_ctx: a.sides.src_context(g, None),
        dst_ctx,
        copy: CopyOptions {
            multi_arch: if a.all {
                MultiArch::All
            } else {
                MultiArch::System
            },
            preserve_digests: a.preserve_digests,
            format: a.format.map(|f| match f {
                SyncFormat::Oci => ManifestFormat::Oci,
                SyncFormat::V2s2 => ManifestFormat::V2s2,
            }),
            referrers: !a.no_referrers,
            jobs: a.jobs.max(1),
            retry_times: a.sides.retry_times,
            tmp_dir: g.root().join("lade").join("tmp"),
            events: events.clone(),
            ..Default::default()
        },
        signatures: Some(Arc::new(signatures)),
    };
    super::runtime()?.block_on(async {
        let jobs = sync::plan(&o).await?;
        if jobs.is_empty() {
            eprintln!("Nothing to sync: the source selects no image");
            return Ok(());
        }
        let sum = sync::run(&o, &jobs, |job, r| match r {
            Ok(Outcome::Copied(rep)) => eprintln!(
                "Copied {} to {}: {} blobs written, {} already there, {} mounted",
                job.src, job.dst, rep.blobs_copied, rep.blobs_skipped, rep.blobs_mounted
            ),
            Ok(Outcome::UpToDate) => eprintln!("Up to date: {}", job.dst),
            Ok(Outcome::WouldCopy) if shown == Shown::Json => events.emit(Event::Message {
                text: format!("Would copy {} to {}", job.src, job.dst),
            }),
            Ok(Outcome::WouldCopy) => {
                crate::stdout::outln!("Would copy {} to {}", job.src, job.dst)
            }
            Err(e) => eprintln!("error: syncing {} to {}: {e:#}", job.src, job.dst),
        })
        .await?;
        let verb = if a.dry_run {
            "would be copied"
        } else {
            "copied"
        };
        eprintln!(
            "Synced {} images: {} {verb}, {} up to date, {} failed",
            jobs.len(),
            sum.copied,
            sum.up_to_date,
            sum.failed.len()
        );
        if !sum.failed.is_empty() {
            bail!(
                "{} of {} images failed: {}",
                sum.failed.len(),
                jobs.len(),
                sum.failed.join(", ")
            );
        }
        Ok(())
    })
}
