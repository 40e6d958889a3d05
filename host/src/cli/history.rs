//! `lade history IMAGE`: the config's history, newest first, as `podman history` shows it: created,
//! created-by, size (the layer's uncompressed size; 0 for an empty layer), comment. IMAGE is a local image
//! or any TRANSPORT:REFERENCE (`containers-storage:…` reads podman's store).

use super::Global;
use super::flags::RemoteFlags;
use super::template::{self, Format};
use crate::oci::document::{self, Manifest};
use crate::oci::{ImageConfig, media};
use crate::transport::{self, ImageSource};
use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    /// A local image (name, short name or ID) or TRANSPORT:REFERENCE
    pub image: String,
    /// Do not truncate IDs and CREATED BY
    #[arg(long)]
    pub no_trunc: bool,
    /// Show times and sizes as numbers (RFC 3339, bytes) rather than for people
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    /// Print only the IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// `json`, `table`, `table TEMPLATE` or a Go template over each row ({{.ID}} {{.Created}} {{.CreatedBy}}
    /// {{.Size}} {{.Comment}} {{.CreatedAt}} {{.Tags}})
    #[arg(long, default_value = "text", value_parser = template::check)]
    pub format: String,
    #[command(flatten)]
    pub remote: RemoteFlags,
}

/// One history row as lade computes it.
struct Row {
    id: String,
    created: Option<String>,
    created_by: String,
    size: u64,
    comment: String,
}

const DEFAULT_TABLE: &str = "{{.ID}}\t{{.Created}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

pub fn run(g: &Global, a: HistoryArgs) -> Result<()> {
    let format = Format::parse(&a.format)?;
    let name = if transport::parse(&a.image).is_ok() {
        a.image.clone()
    } else {
        format!("lade:{}", a.image)
    };
    let ctx = a.remote.context(g);
    let rows = super::runtime()?.block_on(async {
        let src = transport::open_source(&name, &ctx)
            .await
            .with_context(|| format!("opening {name}"))?;
        history(src.as_ref()).await
    })?;
    if matches!(format, Format::Json) {
        let v: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut o = json!({"id": r.id, "CreatedBy": r.created_by, "size": r.size});
                if let Some(c) = &r.created {
                    o["created"] = json!(c);
                }
                if !r.comment.is_empty() {
                    o["comment"] = json!(r.comment);
                }
                o
            })
            .collect();
        crate::stdout::outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if a.quiet {
        for r in &rows {
            crate::stdout::outln!("{}", shown_id(&r.id, a.no_trunc));
        }
        return Ok(());
    }
    let is_table = matches!(format, Format::Default | Format::Table(_));
    let t = match format {
        Format::Default | Format::Table(None) => template::Tmpl::parse(DEFAULT_TABLE)?,
        Format::Table(Some(t)) | Format::Template(t) => t,
        Format::Json => unreachable!("handled above"),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let values: Vec<Value> = rows
        .iter()
        .map(|r| {
            let secs = r.created.as_deref().and_then(template::parse_rfc3339);
            let created = match (secs, a.human) {
                (Some(s), true) => template::go_since(now - s),
                (Some(_), false) => r.created.clone().unwrap_or_default(),
                (None, _) => "<unknown>".into(),
            };
            let by = if a.no_trunc || r.created_by.chars().count() <= 45 {
                r.created_by.clone()
            } else {
                format!("{}...", r.created_by.chars().take(42).collect::<String>())
            };
            let size = if a.human {
                template::go_size(r.size)
            } else {
                r.size.to_string()
            };
            json!({
                "ID": shown_id(&r.id, a.no_trunc), "Created": created, "CreatedBy": by,
                "Size": size, "Comment": r.comment, "CreatedSince": created,
                "CreatedAt": secs.map_or_else(|| "<unknown>".into(), template::go_time),
                "Tags": "",
            })
        })
        .collect();
    let header = template::header(
        &[
            "ID",
            "Created",
            "CreatedBy",
            "Size",
            "Comment",
            "CreatedSince",
            "CreatedAt",
            "Tags",
        ],
        &[
            ("CreatedBy", "CREATED BY"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
        ],
    );
    template::print(&t, is_table.then_some(&header), &values)
}

fn shown_id(id: &str, no_trunc: bool) -> String {
    if no_trunc || id.starts_with('<') {
        id.to_string()
    } else {
        id.chars().take(12).collect()
    }
}

/// The rows, newest first: the top one carries the image ID, the others `<missing>`, as podman shows an
/// image whose lower history entries are not images of their own.
async fn history(src: &dyn ImageSource) -> Result<Vec<Row>> {
    let (top, mt) = src.manifest(None).await?;
    let manifest = if media::is_index(&mt) {
        let idx: crate::oci::Index = document::parse(&top)?;
        let i = crate::oci::platform::choose(&idx, &Default::default())?;
        let d = idx.manifests[i].spec()?;
        src.manifest(Some(d.digest())).await?.0
    } else {
        top
    };
    let m: Manifest = document::parse(&manifest).context("the manifest is not valid")?;
    let cdesc = m.config.spec()?;
    let mut config = vec![];
    src.blob(&cdesc).await?.read_to_end(&mut config).await?;
    let c: ImageConfig = document::parse(&config).context("the config is not valid")?;
    let image_id = cdesc.digest().digest().to_string();
    let mut sizes = vec![];
    for l in &m.layers {
        sizes.push(uncompressed_size(src, &l.spec()?).await?);
    }
    let raw: Value = serde_json::from_slice(&config)?;
    let entries = raw
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut rows = vec![];
    let mut layer = 0usize;
    let text = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    if entries.is_empty() {
        for s in &sizes {
            rows.push(Row {
                id: String::new(),
                created: c.created.clone(),
                created_by: String::new(),
                size: *s,
                comment: String::new(),
            });
        }
    }
    for e in &entries {
        let empty = e
            .get("empty_layer")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let size = if empty {
            0
        } else {
            layer += 1;
            sizes.get(layer - 1).copied().unwrap_or(0)
        };
        rows.push(Row {
            id: String::new(),
            created: e.get("created").and_then(Value::as_str).map(String::from),
            created_by: text(e, "created_by"),
            size,
            comment: text(e, "comment"),
        });
    }
    rows.reverse();
    for (i, r) in rows.iter_mut().enumerate() {
        r.id = if i == 0 {
            image_id.clone()
        } else {
            "<missing>".into()
        };
    }
    Ok(rows)
}

/// A layer's uncompressed size: its descriptor's for an uncompressed layer, else counted by decompressing.
async fn uncompressed_size(src: &dyn ImageSource, d: &crate::oci::Descriptor) -> Result<u64> {
    let mt = d.media_type().to_string();
    if mt == media::OCI_LAYER || mt == media::DOCKER_LAYER {
        return Ok(d.size());
    }
    let stream = src.blob(d).await?;
    let bridge = tokio_util::io::SyncIoBridge::new(stream);
    tokio::task::spawn_blocking(move || -> Result<u64> {
        let mut r = crate::layer::decompressor(bridge)?;
        Ok(std::io::copy(&mut r, &mut std::io::sink())?)
    })
    .await?
    .with_context(|| format!("reading layer {}", d.digest()))
}
