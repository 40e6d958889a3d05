//! Image indexes (manifest lists) in the local store: create, add entries from the store or any transport
//! (copied in through the copy engine), remove, annotate, and push.

pub mod merge;

use crate::copy::{CopyOptions, CopyReport, ManifestFormat, MultiArch, copy_image};
use crate::oci::document::{self, Desc, Index, Manifest, Platform};
use crate::oci::{Descriptor, ImageConfig, PlatformOverride, media};
use crate::registry::SystemContext;
use crate::store::Store;
use crate::transport;
use anyhow::{Context, Result, bail};

const OCI_INDEX: &str = media::OCI_INDEX;
const DOCKER_LIST: &str = media::DOCKER_LIST;

/// The format of a new or pushed list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Oci,
    V2s2,
}

impl std::str::FromStr for ListFormat {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "oci" => ListFormat::Oci,
            "v2s2" => ListFormat::V2s2,
            _ => bail!("unknown list format {s:?}: use oci or v2s2"),
        })
    }
}

/// Platform and annotation fields of one index entry (what `manifest add` and `annotate` set).
#[derive(Debug, Clone, Default)]
pub struct EntryFields {
    pub arch: Option<String>,
    pub os: Option<String>,
    pub variant: Option<String>,
    pub os_version: Option<String>,
    pub os_features: Vec<String>,
    pub features: Vec<String>,
    /// `KEY=value` annotations.
    pub annotation: Vec<String>,
}

/// Push `list` to the transport string `dest`: the index alone, or with `all` every image first.
pub async fn push(
    store: &Store,
    list: &List,
    dest: &str,
    ctx: &SystemContext,
    all: bool,
    format: Option<ListFormat>,
) -> Result<CopyReport> {
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
    let src_ctx = SystemContext {
        store_root: ctx.store_root.clone(),
        ..Default::default()
    };
    let d = transport::open_destination(dest, ctx)
        .await
        .with_context(|| format!("opening {dest}"))?;
    let s = transport::open_source(&format!("lade:{}", list.name), &src_ctx).await?;
    copy_image(s.as_ref(), d.as_ref(), &opts).await
}

/// Whether `name` starts with a transport (`docker://`, `oci:`, ...).
pub fn has_transport(name: &str) -> bool {
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
pub struct List {
    /// The full name in the store.
    pub name: String,
    /// The index document.
    pub index: Index,
}

/// The list `name` from the store (an error when it is missing or an image).
pub fn load(store: &Store, name: &str) -> Result<List> {
    let (full, desc) = store
        .resolve(name)
        .with_context(|| format!("no manifest list {name} in the local store (create it with `lade manifest create {name}`)"))?;
    if !media::is_index(desc.media_type().as_ref()) {
        bail!("{full} is an image, not a manifest list");
    }
    let index: Index = document::parse(&store.layout().read_blob(desc.digest())?)
        .with_context(|| format!("{full}: the index is not valid"))?;
    Ok(List { name: full, index })
}

/// Store the list's index and point its name at it.
pub fn save(store: &Store, list: &List) -> Result<Descriptor> {
    let mt = list
        .index
        .media_type
        .as_deref()
        .unwrap_or(OCI_INDEX)
        .to_string();
    let bytes = document::to_vec_pretty(&list.index)?;
    let desc = store.put_manifest(&bytes, &mt)?;
    store.tag(&list.name, &desc)?;
    Ok(desc)
}

/// `KEY=value` pairs of a repeatable flag.
pub fn key_values(list: &[String], flag: &str) -> Result<Vec<(String, String)>> {
    list.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.into(), v.into())),
            _ => bail!("--{flag} {s:?}: expected KEY=value"),
        })
        .collect()
}

/// Apply the entry flags to one index entry.
pub fn apply_entry(entry: &mut Desc, f: &EntryFields) -> Result<()> {
    let p = entry.platform.get_or_insert_default();
    for (field, v) in [
        (&mut p.architecture, &f.arch),
        (&mut p.os, &f.os),
        (&mut p.variant, &f.variant),
        (&mut p.os_version, &f.os_version),
    ] {
        if let Some(v) = v {
            *field = Some(v.clone());
        }
    }
    if !f.os_features.is_empty() {
        p.os_features = Some(f.os_features.clone());
    }
    if !f.features.is_empty() {
        p.features = Some(f.features.clone());
    }
    for (k, v) in key_values(&f.annotation, "annotation")? {
        entry.annotations.get_or_insert_default().insert(k, v);
    }
    Ok(())
}

/// The entry with `digest`.
pub fn find_entry<'a>(list: &'a mut List, digest: &str) -> Result<&'a mut Desc> {
    let name = list.name.clone();
    (list.index.manifests.iter_mut())
        .find(|m| m.digest == digest)
        .with_context(|| {
            format!("{name} has no entry {digest} (see `lade manifest inspect {name}`)")
        })
}

/// The platform of a single-image manifest in the store, from its config.
fn platform_of(store: &Store, manifest: &[u8]) -> Result<Platform> {
    let m: Manifest = document::parse(manifest).context("the manifest is not valid")?;
    let cfg_digest = m.config.digest.parse()?;
    let cfg: ImageConfig = document::parse(&store.layout().read_blob(&cfg_digest)?)?;
    Ok(Platform {
        architecture: Some(cfg.architecture.unwrap_or_else(|| "amd64".into())),
        os: Some(cfg.os.unwrap_or_else(|| "linux".into())),
        variant: cfg.variant,
        os_version: cfg.os_version,
        os_features: cfg.os_features,
        ..Platform::default()
    })
}

/// Bring `image` into the store (from the store itself, or any transport) and return the index entries for
/// it: one, or with `all` every entry of an index it names.
pub async fn entries_for(
    store: &Store,
    image: &str,
    all: bool,
    entry: &EntryFields,
    ctx: &SystemContext,
) -> Result<Vec<Desc>> {
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
            let mut ctx = ctx.clone();
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
            let s = transport::open_source(&src, &ctx)
                .await
                .with_context(|| format!("opening {src}"))?;
            let s = crate::policy::check(&src, s, &ctx).await?;
            let d = transport::local::LocalDestination::open_named(store.root(), &tmp_name, false)?;
            copy_image(s.as_ref(), &d, &opts).await?;
            let (_, d) = store.resolve(&tmp_name)?;
            store.untag(&tmp_name)?;
            d
        }
    };
    let bytes = store.layout().read_blob(desc.digest())?;
    let mut out = Vec::new();
    if media::is_index(desc.media_type().as_ref()) {
        let idx: Index = document::parse(&bytes)?;
        if all {
            out = idx.manifests;
        } else {
            let o = PlatformOverride {
                os: entry.os.clone(),
                arch: entry.arch.clone(),
                variant: entry.variant.clone(),
            };
            let i = crate::oci::platform::choose(&idx, &o).with_context(|| image.to_string())?;
            out.push(idx.manifests[i].clone());
        }
    } else {
        out.push(Desc {
            platform: Some(platform_of(store, &bytes)?),
            ..Desc::new(
                desc.media_type().as_ref(),
                desc.digest(),
                bytes.len() as u64,
            )
        });
    }
    for e in &mut out {
        apply_entry(e, entry)?;
    }
    Ok(out)
}

/// A new, empty index of `format`.
pub fn empty_index(format: ListFormat) -> Index {
    Index::empty(Some(if format == ListFormat::V2s2 {
        DOCKER_LIST
    } else {
        OCI_INDEX
    }))
}

/// Add entries, replacing any with the same digest.
pub fn add_entries(list: &mut List, entries: Vec<Desc>) {
    let manifests = &mut list.index.manifests;
    for e in entries {
        manifests.retain(|m| m.digest != e.digest);
        manifests.push(e);
    }
}
