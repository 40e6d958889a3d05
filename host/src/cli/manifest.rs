//! `lade manifest`: image indexes (manifest lists) in the local store — create, add from any transport,
//! remove, annotate, inspect, push (with `--all`, every image first), rm and exists.

use super::Global;
use super::copy::RemoteFlags;
use crate::copy::{CopyOptions, ManifestFormat, MultiArch, copy_image};
use crate::store::Store;
use crate::transport::{self, Descriptor, PlatformOverride, SystemContext, media};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::PathBuf;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Oci,
    V2s2,
}

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
        #[arg(long, value_enum, default_value_t = ListFormat::Oci)]
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
    Inspect { list: String },
    /// Push LIST to DEST (default: its own name), with --all every image first
    Push {
        list: String,
        destination: Option<String>,
        /// Push every image in the list, then the index (otherwise the images must already be there)
        #[arg(long)]
        all: bool,
        /// Manifest format to push
        #[arg(long, value_enum)]
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
}

fn sys(g: &Global, r: &RemoteFlags) -> SystemContext {
    r.context(g)
}

/// Whether `name` starts with a transport (`docker://`, `oci:`, ...).
fn has_transport(name: &str) -> bool {
    [
        "docker://",
        "oci:",
        "oci-archive:",
        "docker-archive:",
        "dir:",
        "lade:",
        "containers-storage:",
    ]
    .iter()
    .any(|t| name.starts_with(t))
}

/// A list in the store: its name and parsed index.
struct List {
    name: String,
    index: Value,
}

fn load(store: &Store, name: &str) -> Result<List> {
    let (full, desc) = store
        .resolve(name)
        .with_context(|| format!("no manifest list {name} in the local store (create it with `lade manifest create {name}`)"))?;
    if !media::is_index(desc.media_type().as_ref()) {
        bail!("{full} is an image, not a manifest list");
    }
    let index: Value = serde_json::from_slice(&store.layout().read_blob(desc.digest())?)
        .with_context(|| format!("{full}: the index is not JSON"))?;
    Ok(List { name: full, index })
}

fn save(store: &Store, list: &List) -> Result<Descriptor> {
    let mt = list.index["mediaType"]
        .as_str()
        .unwrap_or(OCI_INDEX)
        .to_string();
    let bytes = serde_json::to_vec_pretty(&list.index)?;
    let desc = store.put_manifest(&bytes, &mt)?;
    store.tag(&list.name, &desc)?;
    Ok(desc)
}

fn key_values(list: &[String], flag: &str) -> Result<Vec<(String, String)>> {
    list.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.into(), v.into())),
            _ => bail!("--{flag} {s:?}: expected KEY=value"),
        })
        .collect()
}

/// Apply the entry flags to one index entry.
fn apply_entry(entry: &mut Value, f: &EntryFlags) -> Result<()> {
    if !entry["platform"].is_object() {
        entry["platform"] = json!({});
    }
    let p = &mut entry["platform"];
    for (k, v) in [
        ("architecture", &f.arch),
        ("os", &f.os),
        ("variant", &f.variant),
        ("os.version", &f.os_version),
    ] {
        if let Some(v) = v {
            p[k] = json!(v);
        }
    }
    if !f.os_features.is_empty() {
        p["os.features"] = json!(f.os_features);
    }
    if !f.features.is_empty() {
        p["features"] = json!(f.features);
    }
    for (k, v) in key_values(&f.annotation, "annotation")? {
        if !entry["annotations"].is_object() {
            entry["annotations"] = json!({});
        }
        entry["annotations"][k] = json!(v);
    }
    Ok(())
}

fn find_entry<'a>(list: &'a mut List, digest: &str) -> Result<&'a mut Value> {
    let name = list.name.clone();
    list.index["manifests"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .find(|m| m["digest"].as_str() == Some(digest))
        .with_context(|| {
            format!("{name} has no entry {digest} (see `lade manifest inspect {name}`)")
        })
}

/// The platform of a single-image manifest in the store, from its config.
fn platform_of(store: &Store, manifest: &[u8]) -> Result<Value> {
    let m: Value = serde_json::from_slice(manifest)?;
    let cfg_digest = m["config"]["digest"]
        .as_str()
        .context("the manifest has no config")?
        .parse()?;
    let cfg: Value = serde_json::from_slice(&store.layout().read_blob(&cfg_digest)?)?;
    let mut p = json!({
        "architecture": cfg["architecture"].as_str().unwrap_or("amd64"),
        "os": cfg["os"].as_str().unwrap_or("linux"),
    });
    for (from, to) in [("variant", "variant"), ("os.version", "os.version")] {
        if let Some(v) = cfg[from].as_str() {
            p[to] = json!(v);
        }
    }
    if let Some(f) = cfg["os.features"].as_array() {
        p["os.features"] = json!(f);
    }
    Ok(p)
}

/// Bring `image` into the store (from the store itself, or any transport) and return the index entries for
/// it: one, or with `all` every entry of an index it names.
fn entries_for(
    g: &Global,
    store: &Store,
    image: &str,
    all: bool,
    entry: &EntryFlags,
    remote: &RemoteFlags,
) -> Result<Vec<Value>> {
    let has_transport = has_transport(image);
    let local = if has_transport {
        None
    } else {
        store.resolve(image).ok()
    };
    let desc = match local {
        Some((_, d)) => d,
        None => {
            // Copy it in under a temporary name; the list's own reference keeps the blobs alive afterwards.
            let src = if has_transport {
                image.to_string()
            } else {
                format!("docker://{image}")
            };
            let mut ctx = sys(g, remote);
            ctx.platform = PlatformOverride {
                os: entry.os.clone(),
                arch: entry.arch.clone(),
                variant: entry.variant.clone(),
            };
            let opts = CopyOptions {
                multi_arch: if all {
                    MultiArch::All
                } else {
                    MultiArch::System
                },
                platform: ctx.platform.clone(),
                referrers: false,
                tmp_dir: store.root().join("lade").join("tmp"),
                ..Default::default()
            };
            std::fs::create_dir_all(&opts.tmp_dir)?;
            let tmp_name = format!("localhost/lade-manifest-add/{}:tmp", std::process::id());
            let rep = super::runtime()?.block_on(async {
                let s = transport::open_source(&src, &ctx)
                    .await
                    .with_context(|| format!("opening {src}"))?;
                let d =
                    transport::local::LocalDestination::open_named(store.root(), &tmp_name, false)?;
                copy_image(s.as_ref(), &d, &opts).await
            })?;
            let (_, d) = store.resolve(&tmp_name)?;
            store.untag(&tmp_name)?;
            let _ = rep;
            d
        }
    };
    let bytes = store.layout().read_blob(desc.digest())?;
    let mut out = Vec::new();
    if media::is_index(desc.media_type().as_ref()) {
        let idx: Value = serde_json::from_slice(&bytes)?;
        let entries = idx["manifests"].as_array().cloned().unwrap_or_default();
        if all {
            out = entries;
        } else {
            let o = PlatformOverride {
                os: entry.os.clone(),
                arch: entry.arch.clone(),
                variant: entry.variant.clone(),
            };
            let i = crate::copy::platform::choose(&idx, &o).with_context(|| image.to_string())?;
            out.push(entries[i].clone());
        }
    } else {
        out.push(json!({
            "mediaType": desc.media_type().to_string(),
            "digest": desc.digest().to_string(),
            "size": bytes.len(),
            "platform": platform_of(store, &bytes)?,
        }));
    }
    for e in &mut out {
        apply_entry(e, entry)?;
    }
    Ok(out)
}

fn empty_index(format: ListFormat) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": if format == ListFormat::V2s2 { DOCKER_LIST } else { OCI_INDEX },
        "manifests": [],
    })
}

fn add_entries(list: &mut List, entries: Vec<Value>) {
    let manifests = list.index["manifests"]
        .as_array_mut()
        .expect("manifests array");
    for e in entries {
        manifests.retain(|m| m["digest"] != e["digest"]);
        manifests.push(e);
    }
}

pub fn run(g: &Global, c: ManifestCommand) -> Result<()> {
    let store = Store::open(&g.root())?;
    match c {
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
                let e = entries_for(g, &store, img, false, &EntryFlags::default(), &remote)?;
                add_entries(&mut l, e);
            }
            let d = save(&store, &l)?;
            println!("{}", d.digest().digest());
        }
        ManifestCommand::Add {
            list,
            image,
            all,
            entry,
            remote,
        } => {
            let mut l = load(&store, &list)?;
            let e = entries_for(g, &store, &image, all, &entry, &remote)?;
            let digests: Vec<String> = e
                .iter()
                .filter_map(|m| m["digest"].as_str().map(String::from))
                .collect();
            add_entries(&mut l, e);
            save(&store, &l)?;
            for d in digests {
                println!("{d}");
            }
        }
        ManifestCommand::Remove { list, digest } => {
            let mut l = load(&store, &list)?;
            find_entry(&mut l, &digest)?;
            l.index["manifests"]
                .as_array_mut()
                .expect("manifests")
                .retain(|m| m["digest"].as_str() != Some(&digest));
            save(&store, &l)?;
        }
        ManifestCommand::Annotate {
            list,
            digest,
            entry,
            index_annotation,
        } => {
            let mut l = load(&store, &list)?;
            apply_entry(find_entry(&mut l, &digest)?, &entry)?;
            for (k, v) in key_values(&index_annotation, "index-annotation")? {
                if !l.index["annotations"].is_object() {
                    l.index["annotations"] = json!({});
                }
                l.index["annotations"][k] = json!(v);
            }
            save(&store, &l)?;
        }
        ManifestCommand::Inspect { list } => {
            let l = load(&store, &list)?;
            println!("{}", serde_json::to_string_pretty(&l.index)?);
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
            let dest = if has_transport(&dest) {
                dest
            } else {
                format!("docker://{dest}")
            };
            let ctx = sys(g, &remote);
            let opts = CopyOptions {
                multi_arch: if all {
                    MultiArch::All
                } else {
                    MultiArch::IndexOnly
                },
                format: format.map(|f| match f {
                    ListFormat::Oci => ManifestFormat::Oci,
                    ListFormat::V2s2 => ManifestFormat::V2s2,
                }),
                tmp_dir: store.root().join("lade").join("tmp"),
                ..Default::default()
            };
            std::fs::create_dir_all(&opts.tmp_dir)?;
            let src_ctx = sys(g, &RemoteFlags::default());
            let rep = super::runtime()?.block_on(async {
                let d = transport::open_destination(&dest, &ctx)
                    .await
                    .with_context(|| format!("opening {dest}"))?;
                let s = transport::open_source(&format!("lade:{}", l.name), &src_ctx).await?;
                copy_image(s.as_ref(), d.as_ref(), &opts).await
            })?;
            if let Some(f) = digestfile {
                std::fs::write(&f, &rep.digest)
                    .with_context(|| format!("writing {}", f.display()))?;
            }
            if rm {
                store.untag(&l.name)?;
            }
            println!("{}", rep.digest);
        }
        ManifestCommand::Rm { lists } => {
            for list in lists {
                let l = load(&store, &list)?;
                store.untag(&l.name)?;
                println!("{}", l.name);
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
