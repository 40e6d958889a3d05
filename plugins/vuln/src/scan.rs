//! The scan: every package of the sbom documents looked up in the database by ecosystem and name, each
//! record that is not withdrawn and affects the installed version a finding.

use crate::inventory::{self, Package};
use crate::version::Scheme;
use crate::{db, matching, severity};
use lade_plugin_sdk::Tree;
use lade_plugin_sdk::scanner::{self, Finding, KeyValue, ScanResult};
use serde_json::Value;

fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
    }
}

/// Findings for the packages of `documents` (each the sbom plugin's JSON) against the database `db`.
pub fn scan(documents: &[Vec<u8>], db: &impl Tree) -> Result<ScanResult, String> {
    db::check(db)?;
    if documents.is_empty() {
        return Err(format!(
            "no package list to check: run the sbom scanner first (lade scan does), or give an SBOM in lade's JSON ({})",
            inventory::SBOM_MEDIA_TYPE
        ));
    }
    let mut findings = Vec::new();
    for doc in documents {
        let doc: Value = serde_json::from_slice(doc)
            .map_err(|e| format!("the sbom document is not JSON: {e}"))?;
        let (packages, _skipped) = inventory::packages(&doc)?;
        for package in &packages {
            for record in db::records(db, &package.ecosystem, &package.osv_name)? {
                findings.extend(check_record(&record, package));
            }
        }
    }
    findings
        .sort_by(|a, b| (&a.package, &a.id, &a.location).cmp(&(&b.package, &b.id, &b.location)));
    findings.dedup_by(|a, b| {
        a.package == b.package && a.id == b.id && a.location == b.location && a.version == b.version
    });
    Ok(ScanResult {
        documents: Vec::new(),
        findings,
    })
}

/// A finding when `record` affects `package`.
fn check_record(record: &Value, package: &Package) -> Option<Finding> {
    if record.get("withdrawn").is_some_and(|w| !w.is_null()) {
        return None;
    }
    let id = record.get("id")?.as_str()?;
    let scheme = Scheme::for_ecosystem(&package.ecosystem);
    for entry in record.get("affected")?.as_array()? {
        let p = entry.get("package");
        let same = p.and_then(|p| p.get("ecosystem")).and_then(Value::as_str)
            == Some(package.ecosystem.as_str())
            && p.and_then(|p| p.get("name")).and_then(Value::as_str)
                == Some(package.osv_name.as_str());
        if !same {
            continue;
        }
        // A version this ecosystem's order cannot read is not a match (and not a failure of the scan).
        let Ok(Some(hit)) = matching::affected(entry, scheme, &package.osv_version) else {
            continue;
        };
        let (sev, score) = severity::of(record, entry);
        let summary = record
            .get("summary")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let message = match summary {
            Some(s) => format!("{id}: {} {}: {s}", package.name, package.version),
            None => format!("{id} affects {} {}", package.name, package.version),
        };
        let mut f = scanner::finding(id, sev, message);
        f.package = Some(package.name.clone());
        f.version = Some(package.version.clone());
        f.fixed_version = hit.fixed;
        f.layer = package.layer.clone();
        f.location = package.location.clone();
        f.details.push(kv("ecosystem", package.ecosystem.clone()));
        if package.osv_name != package.name {
            f.details
                .push(kv("source-package", package.osv_name.clone()));
        }
        if let Some(score) = score {
            f.details.push(kv("cvss-score", format!("{score:.1}")));
        }
        let aliases: Vec<&str> = record
            .get("aliases")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !aliases.is_empty() {
            f.details.push(kv("aliases", aliases.join(",")));
        }
        return Some(f);
    }
    None
}
