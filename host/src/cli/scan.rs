//! lade scan: run a scanner plugin over an image (any transport, or the local store) or a root filesystem
//! directory, and print its findings; trivy's `--severity` and `--exit-code`.

use super::Global;
use super::flags::RemoteFlags;
use crate::plugin::PluginSource;
use crate::plugin::scanner::{Finding, FindingSeverity, KeyValue, ScanResult};
use crate::scan::Target;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// A local image (name, short name or ID), TRANSPORT:REFERENCE, or a root filesystem directory
    pub target: String,
    /// The scanner: an installed or built-in plugin's name, or a component file
    #[arg(long, value_name = "NAME|FILE")]
    pub plugin: Option<String>,
    /// An option for the scanner (repeatable), handed over as given
    #[arg(long = "option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// Output format
    #[arg(short = 'f', long, value_enum, default_value_t)]
    pub format: ScanFormat,
    /// Report only findings of these severities (comma-separated: UNKNOWN, NEGLIGIBLE, LOW, MEDIUM, HIGH,
    /// CRITICAL)
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub severity: Vec<String>,
    /// Exit with this code when a finding is reported (after --severity), as trivy does
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub exit_code: u8,
    /// Leave out findings with no fixed version (trivy's --ignore-unfixed)
    #[arg(long)]
    pub ignore_unfixed: bool,
    /// Finding ids to leave out, one per line, `#` comments (trivy's --ignorefile; default .trivyignore
    /// when the current directory has one). An alias of the finding (a CVE id) matches too.
    #[arg(long, value_name = "FILE")]
    pub ignorefile: Option<std::path::PathBuf>,
    /// Exit with code 2 when a reported finding is at least this severe (grype's --fail-on)
    #[arg(long, value_name = "SEVERITY")]
    pub fail_on: Option<String>,
    #[command(flatten)]
    pub remote: RemoteFlags,
}

/// The ids an ignore file lists (trivy's .trivyignore format, without expiry dates).
fn read_ignorefile(path: Option<&std::path::Path>) -> Result<Vec<String>> {
    let default = std::path::Path::new(".trivyignore");
    let path = match path {
        Some(p) => p,
        None if default.is_file() => default,
        None => return Ok(Vec::new()),
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the ignore file {}", path.display()))?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.split_whitespace().next().unwrap_or(l).to_string())
        .collect())
}

fn ignored(f: &Finding, ids: &[String]) -> bool {
    let aliases = f
        .details
        .iter()
        .filter(|kv| kv.key == "aliases")
        .flat_map(|kv| kv.value.split(','));
    ids.contains(&f.id) || aliases.into_iter().any(|a| ids.iter().any(|id| id == a))
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanFormat {
    #[default]
    Table,
    Json,
    /// SARIF 2.1.0, as trivy's `-f sarif`
    Sarif,
    /// CycloneDX 1.6 JSON: the packages as components and the findings as vulnerabilities, as trivy's
    /// `-f cyclonedx`
    Cyclonedx,
}

/// The findings as a SARIF 2.1.0 log: one rule per finding id, levels as trivy maps severities.
fn sarif(target: &str, plugin: &str, findings: &[&Finding]) -> Value {
    let mut rules: Vec<Value> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for f in findings {
        if seen.insert(f.id.clone()) {
            rules.push(json!({"id": f.id, "shortDescription": {"text": f.message}}));
        }
    }
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let level = match f.severity {
                FindingSeverity::Critical | FindingSeverity::High => "error",
                FindingSeverity::Medium => "warning",
                _ => "note",
            };
            let uri = f.location.clone().unwrap_or_else(|| target.to_string());
            json!({
                "ruleId": f.id,
                "level": level,
                "message": {"text": f.message},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}}}],
                "properties": {"severity": severity_name(f.severity), "package": f.package, "version": f.version,
                               "fixedVersion": f.fixed_version, "layer": f.layer},
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": format!("lade ({plugin})"), "informationUri": "https://github.com/lade", "rules": rules}},
                  "results": results}],
    })
}

/// Load `plugin` and run it over `target` (what the user typed) with `options`.
pub(super) fn run_scanner(
    g: &Global,
    remote: &RemoteFlags,
    target: &str,
    plugin: &str,
    options: Vec<KeyValue>,
) -> Result<ScanResult> {
    run_scanner_keeping_sbom(g, remote, target, plugin, options).map(|(r, _)| r)
}

/// [`run_scanner`], also giving back the SBOM (lade's JSON) the scanner was handed, if it took one.
fn run_scanner_keeping_sbom(
    g: &Global,
    remote: &RemoteFlags,
    target: &str,
    plugin: &str,
    options: Vec<KeyValue>,
) -> Result<(ScanResult, Option<Vec<u8>>)> {
    let mut grants = super::plugin::data_grants(g)?;
    // The vulnerability database is granted by default when it exists (`lade db import` writes it).
    let db = crate::vulndb::default_dir();
    if !grants.names().contains(&crate::vulndb::DATA_DIR_NAME) && db.is_dir() {
        grants.grant(crate::vulndb::DATA_DIR_NAME, &db)?;
    }
    let rt = super::plugin::runtime(g)?;
    let plugin = rt.load(&PluginSource::find(plugin, &super::plugin::plugins_dir(g))?)?;
    // A file (not a directory) is an SBOM in lade's JSON, handed to the scanner as its input document; a
    // scanner that takes that document (vuln) over an image or directory gets it from the sbom plugin first.
    let is_file = std::path::Path::new(target).is_file();
    let takes_sbom = plugin
        .info()
        .needs
        .documents
        .iter()
        .any(|d| d == super::sbom::LADE_SBOM_JSON);
    if is_file || takes_sbom {
        let content = if is_file {
            std::fs::read(target).with_context(|| format!("reading {target}"))?
        } else {
            super::sbom::make(g, remote, target, super::sbom::SbomFormat::Json)?
        };
        let input = crate::plugin::scanner::InputDocument {
            producer: "file".into(),
            document: crate::plugin::scanner::Document {
                media_type: super::sbom::LADE_SBOM_JSON.into(),
                content: content.clone(),
            },
        };
        let result = crate::scan::scan_documents(&plugin, vec![input], options, &grants)?;
        return Ok((result, Some(content)));
    }
    let ctx = remote.context(g);
    let opened = super::runtime()?
        .block_on(Target::open(target, &ctx))
        .with_context(|| format!("opening {target} for scanning"))?;
    Ok((crate::scan::scan(&plugin, &opened, options, &grants)?, None))
}

fn parse_options(options: &[String]) -> Result<Vec<KeyValue>> {
    options
        .iter()
        .map(|o| match o.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok(KeyValue {
                key: k.into(),
                value: v.into(),
            }),
            _ => bail!("--option {o:?}: expected KEY=VALUE"),
        })
        .collect()
}

/// Severities in order, least first.
fn rank(s: FindingSeverity) -> u8 {
    match s {
        FindingSeverity::Unknown => 0,
        FindingSeverity::Negligible => 1,
        FindingSeverity::Low => 2,
        FindingSeverity::Medium => 3,
        FindingSeverity::High => 4,
        FindingSeverity::Critical => 5,
    }
}

pub fn severity_name(s: FindingSeverity) -> &'static str {
    match s {
        FindingSeverity::Unknown => "UNKNOWN",
        FindingSeverity::Negligible => "NEGLIGIBLE",
        FindingSeverity::Low => "LOW",
        FindingSeverity::Medium => "MEDIUM",
        FindingSeverity::High => "HIGH",
        FindingSeverity::Critical => "CRITICAL",
    }
}

fn parse_severities(list: &[String]) -> Result<Vec<FindingSeverity>> {
    use FindingSeverity::*;
    list.iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            [Unknown, Negligible, Low, Medium, High, Critical]
                .into_iter()
                .find(|k| severity_name(*k).eq_ignore_ascii_case(s.trim()))
                .with_context(|| {
                    format!("--severity {s:?}: expected UNKNOWN, NEGLIGIBLE, LOW, MEDIUM, HIGH or CRITICAL")
                })
        })
        .collect()
}

pub fn run(g: &Global, a: ScanArgs) -> Result<ExitCode> {
    // The default scanner: known vulnerabilities (it runs the sbom scanner first).
    let plugin = a.plugin.as_deref().unwrap_or("vuln");
    let wanted = parse_severities(&a.severity)?;
    let options = parse_options(&a.options)?;
    let fail_on = match &a.fail_on {
        Some(s) => Some(
            parse_severities(std::slice::from_ref(s))
                .map_err(|e| anyhow::anyhow!("--fail-on: {e}"))?[0],
        ),
        None => None,
    };
    let ignore = read_ignorefile(a.ignorefile.as_deref())?;
    let (result, sbom) = run_scanner_keeping_sbom(g, &a.remote, &a.target, plugin, options)?;
    let findings: Vec<&Finding> = result
        .findings
        .iter()
        .filter(|f| wanted.is_empty() || wanted.contains(&f.severity))
        .filter(|f| !a.ignore_unfixed || f.fixed_version.is_some())
        .filter(|f| !ignored(f, &ignore))
        .collect();
    match a.format {
        ScanFormat::Json => {
            let out = json!({
                "target": a.target,
                "plugin": plugin,
                "findings": findings.iter().map(|f| finding_json(f)).collect::<Vec<_>>(),
                "documents": result.documents.iter().map(|d| json!({
                    "mediaType": d.media_type,
                    "content": serde_json::from_slice::<Value>(&d.content)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&d.content).into_owned())),
                })).collect::<Vec<_>>(),
            });
            crate::stdout::outln!("{}", serde_json::to_string_pretty(&out)?);
        }
        ScanFormat::Sarif => crate::stdout::outln!(
            "{}",
            serde_json::to_string_pretty(&sarif(&a.target, plugin, &findings))?
        ),
        ScanFormat::Cyclonedx => {
            let sbom: Option<Value> = match &sbom {
                Some(b) => Some(serde_json::from_slice(b).context("reading the SBOM as JSON")?),
                None => None,
            };
            let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
            let doc = cyclonedx(&a.target, sbom.as_ref(), &findings, &now);
            crate::stdout::outln!("{}", serde_json::to_string_pretty(&doc)?);
        }
        ScanFormat::Table => print_table(&findings),
    }
    if let Some(min) = fail_on
        && findings.iter().any(|f| rank(f.severity) >= rank(min))
    {
        eprintln!(
            "findings at or above {} were reported (--fail-on)",
            severity_name(min)
        );
        return Ok(ExitCode::from(2));
    }
    Ok(if !findings.is_empty() && a.exit_code != 0 {
        ExitCode::from(a.exit_code)
    } else {
        ExitCode::SUCCESS
    })
}

/// The CycloneDX 1.6 severity word of a finding (CycloneDX has no "negligible": trivy's `info`).
fn cyclonedx_severity(s: FindingSeverity) -> &'static str {
    match s {
        FindingSeverity::Unknown => "unknown",
        FindingSeverity::Negligible => "info",
        FindingSeverity::Low => "low",
        FindingSeverity::Medium => "medium",
        FindingSeverity::High => "high",
        FindingSeverity::Critical => "critical",
    }
}

/// A CycloneDX 1.6 BOM of the scan, as trivy's `--format cyclonedx`: the SBOM's packages (lade's JSON) as
/// components, each finding a vulnerability that affects the component it was found in (matched by name,
/// version and location), with its CVSS score, fixed version and aliases.
fn cyclonedx(target: &str, sbom: Option<&Value>, findings: &[&Finding], now: &str) -> Value {
    let packages = sbom
        .and_then(|s| s.get("packages"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let text = |p: &Value, k: &str| p.get(k).and_then(Value::as_str).map(String::from);
    let mut refs = std::collections::HashMap::new();
    let components: Vec<Value> = packages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let bom_ref = format!("pkg-{i}");
            refs.entry((text(p, "name"), text(p, "version"), text(p, "location")))
                .or_insert_with(|| bom_ref.clone());
            let mut c = json!({"bom-ref": bom_ref, "type": "library", "name": text(p, "name").unwrap_or_default()});
            for (from, to) in [("version", "version"), ("purl", "purl"), ("cpe", "cpe"), ("namespace", "group")] {
                if let Some(v) = text(p, from) {
                    c[to] = json!(v);
                }
            }
            if let Some(l) = text(p, "licenses") {
                c["licenses"] = json!([{"expression": l}]);
            }
            let props: Vec<Value> = ["layer", "location", "type", "arch", "sourceName"]
                .iter()
                .filter_map(|k| text(p, k).map(|v| json!({"name": format!("lade:{k}"), "value": v})))
                .collect();
            c["properties"] = json!(props);
            c
        })
        .collect();
    let vulnerabilities: Vec<Value> = findings
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let detail = |k: &str| f.details.iter().find(|kv| kv.key == k).map(|kv| kv.value.as_str());
            let affected = refs
                .get(&(f.package.clone(), f.version.clone(), f.location.clone()))
                .cloned()
                .unwrap_or_else(|| "image".into());
            let mut rating = json!({"severity": cyclonedx_severity(f.severity)});
            if let Some(score) = detail("cvss-score").and_then(|s| s.parse::<f64>().ok()) {
                rating["score"] = json!(score);
            }
            let mut affects = json!({"ref": affected});
            if let Some(v) = &f.version {
                affects["versions"] = json!([{"version": v, "status": "affected"}]);
            }
            let mut v = json!({
                "bom-ref": format!("vuln-{i}"),
                "id": f.id,
                "ratings": [rating],
                "description": f.message,
                "affects": [affects],
            });
            if let Some(eco) = detail("ecosystem") {
                v["source"] = json!({"name": format!("OSV ({eco})")});
            }
            if let (Some(p), Some(fixed)) = (&f.package, &f.fixed_version) {
                v["recommendation"] = json!(format!("Upgrade {p} to version {fixed}"));
            }
            let aliases: Vec<Value> = detail("aliases")
                .into_iter()
                .flat_map(|a| a.split(','))
                .map(|a| json!({"id": a, "source": {"name": if a.starts_with("CVE-") { "NVD" } else { "OSV" }}}))
                .collect();
            if !aliases.is_empty() {
                v["references"] = json!(aliases);
            }
            let mut props = Vec::new();
            if let Some(fixed) = &f.fixed_version {
                props.push(json!({"name": "lade:fixedVersion", "value": fixed}));
            }
            if let Some(layer) = &f.layer {
                props.push(json!({"name": "lade:layer", "value": layer}));
            }
            if !props.is_empty() {
                v["properties"] = json!(props);
            }
            v
        })
        .collect();
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {
            "timestamp": now,
            "tools": {"components": [{"type": "application", "name": "lade", "version": env!("CARGO_PKG_VERSION")}]},
            "component": {"type": "container", "bom-ref": "image", "name": target},
        },
        "components": components,
        "vulnerabilities": vulnerabilities,
    })
}

fn finding_json(f: &Finding) -> Value {
    json!({
        "id": f.id,
        "severity": severity_name(f.severity),
        "package": f.package,
        "version": f.version,
        "fixedVersion": f.fixed_version,
        "location": f.location,
        "layer": f.layer,
        "message": f.message,
        "details": f.details.iter().map(|kv| (kv.key.clone(), Value::String(kv.value.clone())))
            .collect::<serde_json::Map<_, _>>(),
    })
}

fn print_table(findings: &[&Finding]) {
    if findings.is_empty() {
        crate::stdout::outln!("no findings");
        return;
    }
    let rows: Vec<[String; 6]> = findings
        .iter()
        .map(|f| {
            [
                severity_name(f.severity).to_string(),
                f.id.clone(),
                match (&f.package, &f.version) {
                    (Some(p), Some(v)) => format!("{p} {v}"),
                    (Some(p), None) => p.clone(),
                    _ => String::new(),
                },
                f.fixed_version.clone().unwrap_or_default(),
                f.location.clone().unwrap_or_default(),
                f.layer.as_deref().map(short_layer).unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["SEVERITY", "ID", "PACKAGE", "FIXED", "LOCATION", "LAYER"];
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    crate::stdout::outln!("{}", line(&header));
    for (r, f) in rows.iter().zip(findings) {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        crate::stdout::outln!("{}", line(&cells));
        if !f.message.is_empty() {
            crate::stdout::outln!("    {}", f.message.lines().next().unwrap_or_default());
        }
    }
}

/// `sha256:abcdef…` shortened to 12 hex digits.
pub fn short_layer(d: &str) -> String {
    let hex = d.split_once(':').map_or(d, |(_, h)| h);
    hex.chars().take(12).collect()
}
