//! lade images, tag, rmi, prune: the local store's names and garbage.

use super::{Global, OutputFormat};
use crate::store::{Store, names};
use anyhow::{Result, bail};

#[derive(clap::Args, Debug)]
pub struct ImagesArgs {
    /// Only images whose name matches this (a name or short name; `*` allowed at the end)
    pub filter: Option<String>,
    /// Output format: text or json
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
    /// Print image IDs only
    #[arg(short, long)]
    pub quiet: bool,
    /// Show full image IDs
    #[arg(long)]
    pub no_trunc: bool,
}

/// "5 minutes ago", from an RFC 3339 timestamp.
fn ago(created: &str) -> String {
    let Some(t) = parse_rfc3339(created) else {
        return created.to_string();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let s = (now - t).max(0);
    let (n, unit) = match s {
        0..60 => return "Less than a minute ago".into(),
        60..3600 => (s / 60, "minute"),
        3600..86400 => (s / 3600, "hour"),
        86400..2_592_000 => (s / 86400, "day"),
        2_592_000..31_536_000 => (s / 2_592_000, "month"),
        _ => (s / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// Seconds since the epoch for `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let off = match rest {
        "Z" | "z" | "" => 0,
        r if r.len() == 6 => {
            let sign = if r.starts_with('-') { -1 } else { 1 };
            sign * (r[1..3].parse::<i64>().ok()? * 3600 + r[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86400 + h * 3600 + mi * 60 + se - off)
}

fn human_size(n: u64) -> String {
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
        // Up to three decimals, trailing zeros dropped ("5.06 MB", "5 MB"), as buildah prints sizes.
        let digits = format!("{v:.3}");
        format!(
            "{} {}",
            digits.trim_end_matches('0').trim_end_matches('.'),
            units[u]
        )
    }
}

fn matches(filter: &str, name: &str) -> bool {
    if let Some(prefix) = filter.strip_suffix('*') {
        return name.contains(prefix);
    }
    names::candidates(filter).iter().any(|c| c == name)
        || names::repository(name).ends_with(&format!("/{filter}"))
        || names::repository(name) == filter
}

pub fn images(g: &Global, a: ImagesArgs) -> Result<()> {
    let store = Store::open(&g.root())?;
    let mut list = store.list()?;
    if let Some(f) = &a.filter {
        list.retain(|i| i.names.iter().any(|n| matches(f, n)));
    }
    if a.format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let short = |id: &str| {
        if a.no_trunc {
            format!("sha256:{id}")
        } else {
            id.chars().take(12).collect()
        }
    };
    if a.quiet {
        for i in &list {
            println!("{}", short(&i.id));
        }
        return Ok(());
    }
    let mut rows = vec![[
        "REPOSITORY".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
    ]];
    for i in &list {
        for n in &i.names {
            let (repo, tag, _) = names::split(n);
            rows.push([
                repo.to_string(),
                tag.unwrap_or("<none>").to_string(),
                short(&i.id),
                i.created
                    .as_deref()
                    .map(ago)
                    .unwrap_or_else(|| "unknown".into()),
                human_size(i.size),
            ]);
        }
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, v)| format!("{v:<w$}", w = widths[c]))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(())
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
            println!("Untagged: {t}");
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
        println!(
            "{}",
            serde_json::json!({"blobs_removed": c.blobs, "layers_removed": c.layer_dirs, "bytes_freed": c.bytes})
        );
    } else {
        println!(
            "Removed {} unreferenced blobs and {} unpacked layers, freed {}",
            c.blobs,
            c.layer_dirs,
            human_size(c.bytes)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(
            parse_rfc3339("2000-03-01T01:00:00.5+01:00"),
            Some(951_868_800)
        );
        assert_eq!(human_size(5_060_000), "5.06 MB");
    }
}
