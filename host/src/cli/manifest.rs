//! `lade manifest`: image indexes (manifest lists) in the local store — create, add from any transport,
//! remove, annotate, inspect, push (with `--all`, every image first), rm and exists.

use super::Global;
use super::flags::{RemoteFlags, choice};
use crate::manifest::{
    self, EntryFields, List, ListFormat, add_entries, apply_entry, empty_index, entries_for,
    find_entry, key_values, load, save,
};
use crate::store::Store;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;

/// Platform and annotation fields of one index entry.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EntryFlags {
    /// Architecture of the entry (default: from the image config)
    #[arg(long)]
    pub arch: Option<String>,
    /// OS of the entry
    #[arg(long)]
    pub os: Option<String>,
    /// Architecture variant (`v7`, `v8`)
    #[arg(long)]
    pub variant: Option<String>,
    /// OS version
    #[arg(long)]
    pub os_version: Option<String>,
    /// OS features; repeatable
    #[arg(long)]
    pub os_features: Vec<String>,
    /// CPU features; repeatable
    #[arg(long)]
    pub features: Vec<String>,
    /// An annotation `KEY=value` on the entry; repeatable
    #[arg(long)]
    pub annotation: Vec<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum ManifestCommand {
    /// Create an empty index named LIST, optionally adding images
    Create {
        list: String,
        images: Vec<String>,
        /// Index format
        #[arg(long, default_value = "oci", value_parser = choice::<ListFormat>(&["oci", "v2s2"]))]
        format: ListFormat,
        /// Replace an existing LIST
        #[arg(long)]
        amend: bool,
        #[command(flatten)]
        remote: RemoteFlags,
    },
    /// Add an image (local name or any transport) to LIST
    Add {
        list: String,
        image: String,
        /// From an index, add every image instead of the one for this platform
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        entry: EntryFlags,
        #[command(flatten)]
        remote: RemoteFlags,
    },
    /// Remove the entry with DIGEST from LIST
    Remove { list: String, digest: String },
    /// Change the platform or annotations of the entry with DIGEST
    Annotate {
        list: String,
        digest: String,
        #[command(flatten)]
        entry: EntryFlags,
        /// An annotation `KEY=value` on the index itself; repeatable
        #[arg(long)]
        index_annotation: Vec<String>,
    },
    /// Print LIST's index
    Inspect {
        list: String,
        /// Output format: json (the default) or a Go template over the index (.manifests, .annotations, ...)
        #[arg(long, default_value = "json", value_parser = super::template::check)]
        format: String,
    },
    /// Push LIST to DEST (default: its own name), with --all every image first
    Push {
        list: String,
        destination: Option<String>,
        /// Push every image in the list, then the index (otherwise the images must already be there)
        #[arg(long)]
        all: bool,
        /// Manifest format to push
        #[arg(long, value_parser = choice::<ListFormat>(&["oci", "v2s2"]))]
        format: Option<ListFormat>,
        /// Remove the local list after a successful push
        #[arg(long)]
        rm: bool,
        /// Write the pushed index digest to this file
        #[arg(long, value_name = "FILE")]
        digestfile: Option<PathBuf>,
        #[command(flatten)]
        remote: RemoteFlags,
    },
    /// Remove local lists
    Rm { lists: Vec<String> },
    /// Exit 0 if LIST exists locally, 1 if not
    Exists { list: String },
    /// Merge images already in a registry (single images or indexes) into one index at TARGET, without
    /// pulling their layers (buildx's `imagetools create -t TARGET SRC...`)
    Merge(MergeArgs),
}

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// Where the index goes (TRANSPORT:REF; no transport means docker://)
    pub target: String,
    /// The images to merge (TRANSPORT:REF; no transport means docker://)
    #[arg(required = true)]
    pub sources: Vec<String>,
    /// Index format
    #[arg(long, default_value = "oci", value_parser = choice::<ListFormat>(&["oci", "v2s2"]))]
    pub format: ListFormat,
    #[command(flatten)]
    pub remote: RemoteFlags,
    #[command(flatten)]
    pub progress: super::progress::ProgressFlag,
}

/// `lade manifest merge`: print the index digest on stdout (events instead with `--progress=json`).
fn merge(g: &Global, a: MergeArgs) -> Result<()> {
    let shown = a.progress.progress.resolve();
    let ctx = a.remote.context(g);
    let tmp = g.root().join("lade").join("tmp");
    let rep = super::runtime()?.block_on(manifest::merge::merge(
        &a.target,
        &a.sources,
        &ctx,
        a.format,
        super::progress::sink(shown, false),
        tmp,
    ))?;
    if shown != super::progress::Shown::Json {
        eprintln!(
            "Merged {} images into {}: {} blobs copied, {} mounted, {} already there",
            rep.images, rep.destination, rep.blobs_copied, rep.blobs_mounted, rep.blobs_skipped
        );
        crate::stdout::outln!("{}", rep.digest);
    }
    Ok(())
}

impl From<&EntryFlags> for EntryFields {
    fn from(f: &EntryFlags) -> Self {
        EntryFields {
            arch: f.arch.clone(),
            os: f.os.clone(),
            variant: f.variant.clone(),
            os_version: f.os_version.clone(),
            os_features: f.os_features.clone(),
            features: f.features.clone(),
            annotation: f.annotation.clone(),
        }
    }
}

pub fn run(g: &Global, c: ManifestCommand) -> Result<()> {
    let store = match c {
        ManifestCommand::Merge(a) => return merge(g, a),
        _ => Store::open(&g.root())?,
    };
    match c {
        ManifestCommand::Merge(_) => unreachable!("handled above"),
        ManifestCommand::Create {
            list,
            images,
            format,
            amend,
            remote,
        } => {
            if !amend && store.resolve(&list).is_ok() {
                bail!(
                    "{list} already exists in the local store; use --amend to replace it, or `lade manifest rm {list}`"
                );
            }
            let name = crate::store::names::qualify_local(&list);
            let mut l = List {
                name,
                index: empty_index(format),
            };
            for img in &images {
                let ctx = remote.context(g);
                let e = super::runtime()?.block_on(entries_for(
                    &store,
                    img,
                    false,
                    &EntryFields::default(),
                    &ctx,
                ))?;
                add_entries(&mut l, e);
            }
            let d = save(&store, &l)?;
            crate::stdout::outln!("{}", d.digest().digest());
        }
        ManifestCommand::Add {
            list,
            image,
            all,
            entry,
            remote,
        } => {
            let mut l = load(&store, &list)?;
            let ctx = remote.context(g);
            let e = super::runtime()?.block_on(entries_for(
                &store,
                &image,
                all,
                &EntryFields::from(&entry),
                &ctx,
            ))?;
            let digests: Vec<String> = e.iter().map(|m| m.digest.clone()).collect();
            add_entries(&mut l, e);
            save(&store, &l)?;
            for d in digests {
                crate::stdout::outln!("{d}");
            }
        }
        ManifestCommand::Remove { list, digest } => {
            let mut l = load(&store, &list)?;
            find_entry(&mut l, &digest)?;
            l.index.manifests.retain(|m| m.digest != digest);
            save(&store, &l)?;
        }
        ManifestCommand::Annotate {
            list,
            digest,
            entry,
            index_annotation,
        } => {
            let mut l = load(&store, &list)?;
            apply_entry(find_entry(&mut l, &digest)?, &EntryFields::from(&entry))?;
            for (k, v) in key_values(&index_annotation, "index-annotation")? {
                l.index.annotations.get_or_insert_default().insert(k, v);
            }
            save(&store, &l)?;
        }
        ManifestCommand::Inspect { list, format } => {
            let l = load(&store, &list)?;
            let pretty = crate::oci::document::to_vec_pretty(&l.index)?;
            if !super::template::print_doc(&format, &serde_json::from_slice(&pretty)?)? {
                crate::stdout::outln!("{}", String::from_utf8_lossy(&pretty));
            }
        }
        ManifestCommand::Push {
            list,
            destination,
            all,
            format,
            rm,
            digestfile,
            remote,
        } => {
            let l = load(&store, &list)?;
            let dest = destination.unwrap_or_else(|| l.name.clone());
            let dest = if manifest::has_transport(&dest) {
                dest
            } else {
                format!("docker://{dest}")
            };
            let ctx = remote.context(g);
            let rep =
                super::runtime()?.block_on(manifest::push(&store, &l, &dest, &ctx, all, format))?;
            if let Some(f) = digestfile {
                std::fs::write(&f, &rep.digest)
                    .with_context(|| format!("writing {}", f.display()))?;
            }
            if rm {
                store.untag(&l.name)?;
            }
            crate::stdout::outln!("{}", rep.digest);
        }
        ManifestCommand::Rm { lists } => {
            for list in lists {
                let l = load(&store, &list)?;
                store.untag(&l.name)?;
                crate::stdout::outln!("{}", l.name);
            }
        }
        ManifestCommand::Exists { list } => {
            if load(&store, &list).is_err() {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
