//! lade sync: flags in, [`crate::copy::sync`] does the work, one line per image out.

use super::Global;
use super::flags::{SideFlags, choice};
use super::progress::Shown;
use crate::copy::sync::{self, DestKind, Outcome, SrcKind, SyncOptions};
use crate::copy::{CopyOptions, ManifestFormat, MultiArch};
use crate::events::Event;
use anyhow::{Result, bail};

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
}

pub fn run(g: &Global, a: SyncArgs) -> Result<()> {
    let shown = a.progress.progress.resolve();
    let events = super::progress::sink(shown, false);
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
        dst_ctx: a.sides.dest_context(g, None),
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
