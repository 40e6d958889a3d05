//! The catalogue as documents: SPDX 2.3 JSON, CycloneDX 1.6 JSON, and lade's own JSON (the package list the
//! host renders as a table).

use crate::catalog::Catalog;
use crate::licenses;
use crate::model::Package;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// What the documents say about the scanned image.
pub struct Subject {
    pub reference: String,
    pub digest: String,
}

const TOOL: &str = concat!("lade-sbom-", env!("CARGO_PKG_VERSION"));

pub fn lade_json(c: &Catalog, s: &Subject) -> Value {
    json!({
        "source": { "reference": s.reference, "digest": s.digest },
        "distro": c.distro.as_ref().map(|d| json!({"id": d.id, "versionId": d.version_id, "prettyName": d.pretty_name})),
        "packages": c.packages.iter().map(|p| p.json(c.distro.as_ref())).collect::<Vec<_>>(),
        "notes": c.notes,
    })
}

/// A stable id for the catalogue's content: the documents' namespace and serial number.
fn content_hash(c: &Catalog, s: &Subject) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(s.reference.as_bytes());
    h.update(s.digest.as_bytes());
    for p in &c.packages {
        h.update(p.purl(c.distro.as_ref()).as_bytes());
        h.update(p.layer.as_bytes());
    }
    h.finalize().into()
}

fn spdx_id(i: usize, p: &Package) -> String {
    let clean: String = p
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("SPDXRef-Package-{}-{clean}-{i}", p.kind.purl_type())
}

pub fn spdx(c: &Catalog, s: &Subject, now: &str) -> Value {
    let hash = hex(&content_hash(c, s));
    let mut refs: Vec<String> = Vec::new();
    let mut image = json!({
        "name": s.reference,
        "SPDXID": "SPDXRef-Image",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
    });
    if !s.digest.is_empty() {
        image["versionInfo"] = json!(s.digest);
    }
    let mut packages = vec![image];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-Image",
    })];
    for (i, p) in c.packages.iter().enumerate() {
        let id = spdx_id(i, p);
        let mut external = vec![json!({
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": p.purl(c.distro.as_ref()),
        })];
        if let Some(cpe) = p.cpe() {
            external.push(json!({"referenceCategory": "SECURITY", "referenceType": "cpe23Type", "referenceLocator": cpe}));
        }
        if let Some(l) = &p.licenses {
            refs.extend(licenses::refs(l));
        }
        let mut pkg = json!({
            "name": p.name,
            "SPDXID": id,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": p.licenses.clone().unwrap_or_else(|| "NOASSERTION".into()),
            "copyrightText": "NOASSERTION",
            "externalRefs": external,
            "comment": format!("layer {}; found in {}", p.layer, p.location),
        });
        if let Some(src) = &p.source_name {
            let v = p.source_version.as_deref().unwrap_or(&p.version);
            pkg["sourceInfo"] = json!(format!("built from source package {src} {v}"));
        }
        packages.push(pkg);
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    refs.sort();
    refs.dedup();
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": s.reference,
        "documentNamespace": format!("https://lade.invalid/spdx/{hash}"),
        "creationInfo": { "created": now, "creators": [format!("Tool: {TOOL}")] },
        "packages": packages,
        "relationships": relationships,
    });
    if !refs.is_empty() {
        doc["hasExtractedLicensingInfos"] = refs
            .iter()
            .map(|r| {
                json!({
                    "licenseId": r,
                    "name": r.trim_start_matches("LicenseRef-"),
                    "extractedText": format!("The package names this license `{}`.", r.trim_start_matches("LicenseRef-")),
                })
            })
            .collect();
    }
    doc
}

pub fn cyclonedx(c: &Catalog, s: &Subject, now: &str) -> Value {
    let h = content_hash(c, s);
    // A version-4-shaped UUID from the content hash.
    let mut u = [0u8; 16];
    u.copy_from_slice(&h[..16]);
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    let x = hex(&u);
    let serial = format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    );
    let components: Vec<Value> = c
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut comp = json!({
                "bom-ref": format!("pkg-{i}"),
                "type": "library",
                "name": p.name,
                "version": p.version,
                "purl": p.purl(c.distro.as_ref()),
                "properties": properties(p),
            });
            if let Some(ns) = &p.namespace {
                comp["group"] = json!(ns);
            }
            if let Some(cpe) = p.cpe() {
                comp["cpe"] = json!(cpe);
            }
            if let Some(l) = &p.licenses {
                comp["licenses"] = json!([{ "expression": l }]);
            }
            if !p.files.is_empty() {
                comp["evidence"] = json!({
                    "occurrences": p.files.iter().map(|f| json!({"location": f})).collect::<Vec<_>>(),
                });
            }
            comp
        })
        .collect();
    let mut meta_component =
        json!({ "type": "container", "bom-ref": "image", "name": s.reference });
    if !s.digest.is_empty() {
        meta_component["version"] = json!(s.digest);
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial,
        "version": 1,
        "metadata": {
            "timestamp": now,
            "tools": { "components": [{ "type": "application", "name": "lade-sbom", "version": env!("CARGO_PKG_VERSION") }] },
            "component": meta_component,
        },
        "components": components,
        "dependencies": [{
            "ref": "image",
            "dependsOn": (0..c.packages.len()).map(|i| format!("pkg-{i}")).collect::<Vec<_>>(),
        }],
    })
}

fn properties(p: &Package) -> Vec<Value> {
    let mut v = vec![
        json!({"name": "lade:package:type", "value": p.kind.purl_type()}),
        json!({"name": "lade:layer", "value": p.layer}),
        json!({"name": "lade:location", "value": p.location}),
    ];
    if let Some(a) = &p.arch {
        v.push(json!({"name": "lade:package:arch", "value": a}));
    }
    if let Some(s) = &p.source_name {
        v.push(json!({"name": "lade:package:sourceName", "value": s}));
    }
    if let Some(s) = &p.source_version {
        v.push(json!({"name": "lade:package:sourceVersion", "value": s}));
    }
    v
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `secs` since the epoch as RFC 3339 UTC (`2024-05-01T12:00:00Z`).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_714_564_800), "2024-05-01T12:00:00Z");
    }
}
