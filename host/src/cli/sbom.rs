//! lade sbom: the built-in `sbom` scanner over an image (any transport, or the local store) or a root
//! filesystem directory, written as SPDX 2.3 JSON, CycloneDX 1.6 JSON, the plugin's own JSON or a table.

use super::Global;
use super::flags::RemoteFlags;
use crate::plugin::scanner::KeyValue;
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;

/// The built-in cataloguer.
const PLUGIN: &str = "sbom";
/// The media type of the plugin's own JSON (the package list `table` and `json` are made from).
pub const LADE_SBOM_JSON: &str = "application/vnd.lade.sbom+json";

#[derive(clap::Args, Debug)]
pub struct SbomArgs {
    /// A local image (name, short name or ID), TRANSPORT:REFERENCE, or a root filesystem directory
    pub target: String,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub format: SbomFormat,
    /// Write to FILE (atomically) instead of standard output
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub remote: RemoteFlags,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SbomFormat {
    #[default]
    Table,
    Json,
    SpdxJson,
    CyclonedxJson,
}

impl SbomFormat {
    fn plugin_format(self) -> &'static str {
        match self {
            SbomFormat::Table | SbomFormat::Json => "json",
            SbomFormat::SpdxJson => "spdx-json",
            SbomFormat::CyclonedxJson => "cyclonedx-json",
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            SbomFormat::Table | SbomFormat::Json => LADE_SBOM_JSON,
            SbomFormat::SpdxJson => "application/spdx+json",
            SbomFormat::CyclonedxJson => "application/vnd.cyclonedx+json",
        }
    }
}

/// The SBOM of `target` in `format`, as bytes.
pub fn make(g: &Global, remote: &RemoteFlags, target: &str, format: SbomFormat) -> Result<Vec<u8>> {
    let options = vec![KeyValue {
        key: "format".into(),
        value: format.plugin_format().into(),
    }];
    let result = super::scan::run_scanner(g, remote, target, PLUGIN, options)?;
    let doc = result
        .documents
        .into_iter()
        .find(|d| d.media_type == format.media_type())
        .with_context(|| {
            format!(
                "the `{PLUGIN}` plugin returned no {} document",
                format.media_type()
            )
        })?;
    Ok(match format {
        SbomFormat::Table => table(&doc.content)?.into_bytes(),
        _ => doc.content,
    })
}

pub fn run(g: &Global, a: SbomArgs) -> Result<()> {
    let mut out = make(g, &a.remote, &a.target, a.format)?;
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    match &a.output {
        Some(file) => crate::fsutil::write_atomic(file, &out)
            .with_context(|| format!("writing the SBOM to {}", file.display())),
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&out)?;
            Ok(())
        }
    }
}

/// NAME VERSION TYPE LAYER, one package a line, from the plugin's JSON.
fn table(json: &[u8]) -> Result<String> {
    let v: Value = serde_json::from_slice(json).context("the sbom plugin's JSON")?;
    let text = |p: &Value, k: &str| p[k].as_str().unwrap_or_default().to_string();
    let rows: Vec<[String; 4]> = v["packages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            [
                text(p, "name"),
                text(p, "version"),
                text(p, "type"),
                super::scan::short_layer(&text(p, "layer")),
            ]
        })
        .collect();
    let header = ["NAME", "VERSION", "TYPE", "LAYER"];
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 4]| {
        let s: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        s.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3]]));
    }
    if rows.is_empty() {
        out.push_str("(no packages found)\n");
    }
    Ok(out)
}

/// `lade build --sbom`: buildah's flags where they fit (the SBOM is made by the built-in plugin, not by a
/// scanner image).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BuildSbomFlags {
    /// After the build, make an SBOM of the image: spdx or cyclonedx (buildah's presets syft-spdx, syft-cyclonedx,
    /// trivy-spdx, trivy-cyclonedx, syft and trivy are accepted and mean the same document kinds)
    #[arg(long, value_name = "PRESET")]
    pub sbom: Option<String>,
    /// Write the SBOM to FILE
    #[arg(long, value_name = "FILE")]
    pub sbom_output: Option<PathBuf>,
    /// Write the image's package URLs to FILE, one a line
    #[arg(long, value_name = "FILE")]
    pub sbom_purl_output: Option<PathBuf>,
}

impl BuildSbomFlags {
    /// The document format, checked before the build starts.
    pub fn format(&self) -> Result<Option<SbomFormat>> {
        let Some(preset) = self.sbom.as_deref() else {
            if self.sbom_output.is_some() || self.sbom_purl_output.is_some() {
                anyhow::bail!("--sbom-output and --sbom-purl-output need --sbom spdx|cyclonedx");
            }
            return Ok(None);
        };
        let format = match preset {
            "spdx" | "syft-spdx" | "trivy-spdx" => SbomFormat::SpdxJson,
            "cyclonedx" | "syft-cyclonedx" | "trivy-cyclonedx" | "syft" | "trivy" => {
                SbomFormat::CyclonedxJson
            }
            other => anyhow::bail!("--sbom {other:?}: expected spdx or cyclonedx"),
        };
        Ok(Some(format))
    }

    /// The flags checked before the build starts: an SBOM goes to a file or, with `--push`, to the pushed
    /// image as a referrer.
    pub fn check(&self, push: bool) -> Result<()> {
        if self.format()?.is_some()
            && !push
            && self.sbom_output.is_none()
            && self.sbom_purl_output.is_none()
        {
            anyhow::bail!(
                "--sbom needs --sbom-output FILE, --sbom-purl-output FILE or --push (the SBOM is attached to the pushed image)"
            );
        }
        Ok(())
    }

    /// Make the SBOM of the built image `id` (once), write the files asked for, and give the document back
    /// when `push` will attach it.
    pub fn write(
        &self,
        g: &Global,
        remote: &RemoteFlags,
        id: &str,
        push: bool,
    ) -> Result<Option<(Vec<u8>, SbomFormat)>> {
        let Some(format) = self.format()? else {
            return Ok(None);
        };
        let target = format!("lade:{}", id.trim_start_matches("sha256:"));
        let doc = match self.sbom_output.is_some() || push {
            true => Some(make(g, remote, &target, format)?),
            false => None,
        };
        if let (Some(file), Some(doc)) = (&self.sbom_output, &doc) {
            crate::fsutil::write_atomic(file, doc)
                .with_context(|| format!("writing the SBOM to {}", file.display()))?;
        }
        if let Some(file) = &self.sbom_purl_output {
            let json = make(g, remote, &target, SbomFormat::Json)?;
            let v: Value = serde_json::from_slice(&json).context("the sbom plugin's JSON")?;
            let mut purls: String = v["packages"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|p| p["purl"].as_str())
                .map(|p| format!("{p}\n"))
                .collect();
            if purls.is_empty() {
                purls.push('\n');
            }
            crate::fsutil::write_atomic(file, purls.as_bytes())
                .with_context(|| format!("writing the package URLs to {}", file.display()))?;
        }
        Ok(doc.filter(|_| push).map(|d| (d, format)))
    }
}
