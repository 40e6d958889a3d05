//! lade images, tag, rmi, prune: the local store's names and garbage.

use super::template::{self, Format};
use super::{Global, OutputFormat};
use crate::oci::config::set;
use crate::oci::document::{self, Index, Manifest};
use crate::oci::{Descriptor, Digest, ImageConfig, media};
use crate::store::{Store, layout::ref_of, names};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

#[derive(clap::Args, Debug)]
pub struct ImagesArgs {
    /// Only images whose name matches this (a name or short name; `*` allowed at the end)
    pub filter: Option<String>,
    /// Output format: text, json, table, `table TEMPLATE` or a Go template, with podman's fields:
    /// .Repository .Tag .ID .Id .Digest .Created .CreatedSince .CreatedAt .Size .VirtualSize .Names
    /// .Labels .Dangling .RepoTags .RepoDigests
    #[arg(long, default_value = "text", value_parser = template::check)]
    pub format: String,
    /// Print image IDs only
    #[arg(short, long)]
    pub quiet: bool,
    /// Show full image IDs
    #[arg(long)]
    pub no_trunc: bool,
    /// Also list images without a name (builds given no tag) as `<none>`; artifacts attached to an image
    /// (signatures, SBOMs: manifests with a subject) are not images and never listed
    #[arg(short, long)]
    pub all: bool,
}

/// Seconds since the epoch, now.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn matches(filter: &str, name: &str) -> bool {
    if let Some(prefix) = filter.strip_suffix('*') {
        return name.contains(prefix);
    }
    names::candidates(filter).iter().any(|c| c == name)
        || names::repository(name).ends_with(&format!("/{filter}"))
        || names::repository(name) == filter
}

/// One image as the template sees it: its top descriptor, names, config and sizes.
struct Entry {
    names: Vec<String>,
    id: String,
    digest: String,
    config: ImageConfig,
    /// Counted as containers-storage counts an image's size: every layer uncompressed, the config, and
    /// the manifest twice (kept by digest and as the default), plus the index a multi-arch image came in.
    size: u64,
}

/// The bytes a layer blob holds once decompressed: decompressed once, then remembered in the store.
fn uncompressed_size(store: &Store, l: &Descriptor) -> Result<u64> {
    let mt = l.media_type().to_string();
    if mt.ends_with(".tar") || mt.ends_with("tar") {
        return Ok(l.size());
    }
    if let Some(size) = store.uncompressed_size_of(l.digest()) {
        return Ok(size);
    }
    let path = store.layout().blob_path(l.digest());
    let f = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut r = crate::layer::decompressor(f)?;
    let size = std::io::copy(&mut r, &mut std::io::sink())
        .with_context(|| format!("decompressing layer {}", l.digest()))?;
    // Listing works in a store it cannot write to (another user's); it just decompresses again next time.
    if let Err(e) = store.record_uncompressed_size(l.digest(), size) {
        tracing::debug!("not remembering the size of layer {}: {e:#}", l.digest());
    }
    Ok(size)
}

/// The entry for a top descriptor (an index stands for the host platform's image), or None for an
/// artifact attached to an image (a manifest with a subject).
fn entry(
    store: &Store,
    names: Vec<String>,
    top: &Descriptor,
    sizes: bool,
) -> Result<Option<Entry>> {
    let l = store.layout();
    let mut bytes = l.read_blob(top.digest())?;
    let mut size = 0;
    if media::is_index(&media::sniff(&bytes)) {
        let idx: Index = document::parse(&bytes)?;
        size += bytes.len() as u64;
        // A list with no image for this host (or none yet) is still listed, as only its index.
        let Ok(i) = crate::oci::platform::choose(&idx, &Default::default()) else {
            return Ok(Some(Entry {
                names,
                id: store.image_id(top)?,
                digest: top.digest().to_string(),
                config: ImageConfig::default(),
                size,
            }));
        };
        bytes = l.read_blob(idx.manifests[i].spec()?.digest())?;
    }
    let m: Manifest = document::parse(&bytes)?;
    if m.subject.is_some() && names.is_empty() {
        return Ok(None);
    }
    let cfg: Digest = m.config.digest.parse()?;
    let config_bytes = l.read_blob(&cfg)?;
    size += config_bytes.len() as u64 + 2 * bytes.len() as u64;
    if sizes {
        for layer in &m.layers {
            size += uncompressed_size(store, &layer.spec()?)?;
        }
    }
    Ok(Some(Entry {
        names,
        id: store.image_id(top)?,
        digest: top.digest().to_string(),
        config: document::parse(&config_bytes).unwrap_or_default(),
        size,
    }))
}

/// The template's rows: one per name (one `<none>` row for an image without), with podman's fields.
fn rows(e: &Entry, no_trunc: bool) -> Vec<Value> {
    let created = e
        .config
        .created
        .as_deref()
        .and_then(template::parse_rfc3339);
    let id = if no_trunc {
        format!("sha256:{}", e.id)
    } else {
        e.id.chars().take(12).collect()
    };
    let labels = e.config.container().and_then(|c| set(&c.labels));
    let since = created.map_or_else(|| "unknown".into(), |t| template::go_since(now() - t));
    let repo_digests: Vec<String> = e
        .names
        .iter()
        .map(|n| format!("{}@{}", names::repository(n), e.digest))
        .collect();
    let one = |repo: &str, tag: &str| {
        json!({
            "Repository": repo, "Tag": tag, "ID": id, "Id": e.id, "Digest": e.digest,
            "Created": since, "CreatedSince": since,
            "CreatedAt": created.map_or_else(|| "unknown".into(), template::go_time),
            "Size": template::go_size(e.size), "VirtualSize": e.size, "SharedSize": 0,
            "Names": e.names, "RepoTags": e.names, "RepoDigests": repo_digests, "History": e.names,
            "Labels": labels.cloned().unwrap_or_default(), "Dangling": e.names.is_empty(), "Containers": 0, "ReadOnly": false,
        })
    };
    if e.names.is_empty() {
        return vec![one("<none>", "<none>")];
    }
    e.names
        .iter()
        .map(|n| {
            let (repo, tag, _) = names::split(n);
            one(repo, tag.unwrap_or("<none>"))
        })
        .collect()
}

/// The fields `rows` gives every image (the header row names each).
const FIELDS: &[&str] = &[
    "Repository",
    "Tag",
    "ID",
    "Id",
    "Digest",
    "Created",
    "CreatedSince",
    "CreatedAt",
    "Size",
    "VirtualSize",
    "SharedSize",
    "Names",
    "RepoTags",
    "RepoDigests",
    "History",
    "Labels",
    "Dangling",
    "Containers",
    "ReadOnly",
];

const DEFAULT_TABLE: &str = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

pub fn images(g: &Global, a: ImagesArgs) -> Result<()> {
    let store = Store::open(&g.root())?;
    let mut list = store.list()?;
    if let Some(f) = &a.filter {
        list.retain(|i| i.names.iter().any(|n| matches(f, n)));
    }
    let format = Format::parse(&a.format)?;
    if matches!(format, Format::Json) {
        crate::stdout::outln!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if a.quiet {
        for i in &list {
            let id = &i.id;
            match a.no_trunc {
                true => crate::stdout::outln!("sha256:{id}"),
                false => crate::stdout::outln!("{}", &id[..id.len().min(12)]),
            }
        }
        return Ok(());
    }
    let is_table = matches!(format, Format::Default | Format::Table(_));
    let t = match format {
        Format::Default | Format::Table(None) => template::Tmpl::parse(DEFAULT_TABLE)?,
        Format::Table(Some(t)) | Format::Template(t) => t,
        Format::Json => unreachable!("handled above"),
    };
    let sizes = is_table || a.format.contains("Size") || a.format.contains("json");
    let mut entries = vec![];
    for i in &list {
        let top = store.resolve(&i.names[0])?.1;
        entries.extend(entry(&store, i.names.clone(), &top, sizes)?);
    }
    if a.all && a.filter.is_none() {
        for d in store.layout().entries()? {
            if ref_of(&d).is_none() && !list.iter().any(|i| i.digest == d.digest().to_string()) {
                entries.extend(entry(&store, vec![], &d, sizes)?);
            }
        }
    }
    let rows: Vec<Value> = entries.iter().flat_map(|e| rows(e, a.no_trunc)).collect();
    let header = template::header(
        FIELDS,
        &[
            ("ID", "IMAGE ID"),
            ("Id", "IMAGE ID"),
            ("Created", "CREATED"),
            ("CreatedSince", "CREATED"),
            ("ReadOnly", "R/O"),
        ],
    );
    template::print(&t, is_table.then_some(&header), &rows)
}

#[derive(clap::Args, Debug)]
pub struct TagArgs {
    /// The image to name (name, short name or ID)
    pub source: String,
    /// New names (`app:2` becomes `localhost/app:2`)
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub fn tag(g: &Global, a: TagArgs) -> Result<()> {
    let store = Store::open(&g.root())?;
    let (_, desc) = store.resolve(&a.source)?;
    for n in &a.names {
        store.tag(n, &desc)?;
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct RmiArgs {
    /// Images to remove: a name removes that name; an ID removes the image (every name needs -f)
    #[arg(required_unless_present = "all")]
    pub images: Vec<String>,
    /// Remove an image by ID even when several names point at it
    #[arg(short, long)]
    pub force: bool,
    /// Remove every image
    #[arg(short, long)]
    pub all: bool,
}

pub fn rmi(g: &Global, a: RmiArgs) -> Result<()> {
    let store = Store::open(&g.root())?;
    let mut targets: Vec<String> = vec![];
    if a.all {
        targets.extend(store.refs()?.into_iter().map(|(n, _)| n));
    }
    for want in &a.images {
        let (full, desc) = store.resolve(want)?;
        let hex = want.trim_start_matches("sha256:");
        let looks_like_id = hex.len() >= 3 && hex.chars().all(|c| c.is_ascii_hexdigit());
        let by_id = looks_like_id && !names::candidates(want).contains(&full);
        if by_id {
            let all: Vec<String> = store
                .refs()?
                .into_iter()
                .filter(|(_, d)| d.digest() == desc.digest())
                .map(|(n, _)| n)
                .collect();
            if all.len() > 1 && !a.force {
                bail!(
                    "image {want} has {} names ({}); remove them one by one or use -f",
                    all.len(),
                    all.join(", ")
                );
            }
            targets.extend(all);
        } else {
            targets.push(full);
        }
    }
    for t in &targets {
        if store.untag(t)?.is_some() {
            crate::stdout::outln!("Untagged: {t}");
        }
    }
    let c = store.gc()?;
    tracing::info!(
        "removed {} unreferenced blobs and {} unpacked layers ({} bytes)",
        c.blobs,
        c.layer_dirs,
        c.bytes
    );
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Output format: text or json
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

pub fn prune(g: &Global, a: PruneArgs) -> Result<()> {
    let store = Store::open(&g.root())?;
    let c = store.gc()?;
    if a.format == OutputFormat::Json {
        crate::stdout::outln!(
            "{}",
            serde_json::json!({"blobs_removed": c.blobs, "layers_removed": c.layer_dirs, "bytes_freed": c.bytes})
        );
    } else {
        crate::stdout::outln!(
            "Removed {} unreferenced blobs and {} unpacked layers, freed {}",
            c.blobs,
            c.layer_dirs,
            super::flags::human_size(c.bytes)
        );
    }
    Ok(())
}
