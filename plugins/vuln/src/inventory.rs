//! The packages to check, from the sbom plugin's own JSON (`application/vnd.lade.sbom+json`): each gets the
//! OSV ecosystem and name its advisories use. Distribution packages are looked up by their source package
//! (`openssl` for `libssl3`) in the release's ecosystem, `Debian:12` or `Alpine:v3.20`, from os-release.

use serde_json::Value;

pub const SBOM_MEDIA_TYPE: &str = "application/vnd.lade.sbom+json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The installed package's own name and version (what a finding reports).
    pub name: String,
    pub version: String,
    /// The OSV ecosystem, package name and version to match.
    pub ecosystem: String,
    pub osv_name: String,
    pub osv_version: String,
    pub layer: Option<String>,
    pub location: Option<String>,
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The OSV ecosystem of a distribution release: Debian by major version, Ubuntu by `YY.MM`, Alpine by
/// `vMAJOR.MINOR`, Rocky and Alma by major version.
pub fn distro_ecosystem(id: &str, version_id: &str) -> Option<String> {
    let major = version_id.split('.').next().unwrap_or(version_id);
    let major_minor: Vec<&str> = version_id.split('.').take(2).collect();
    Some(match id {
        "debian" if !major.is_empty() => format!("Debian:{major}"),
        "ubuntu" => format!("Ubuntu:{version_id}"),
        "alpine" if major_minor.len() == 2 => format!("Alpine:v{}", major_minor.join(".")),
        "rocky" => format!("Rocky Linux:{major}"),
        "almalinux" => format!("AlmaLinux:{major}"),
        _ => return None,
    })
}

/// The packages of an sbom document; those lade cannot place in an OSV ecosystem are counted in `skipped`.
pub fn packages(doc: &Value) -> Result<(Vec<Package>, usize), String> {
    let list = doc
        .get("packages")
        .and_then(Value::as_array)
        .ok_or("the sbom document has no \"packages\" list")?;
    let distro = doc.get("distro").filter(|d| !d.is_null());
    let release =
        distro.and_then(|d| distro_ecosystem(text(d, "id")?, text(d, "versionId").unwrap_or("")));
    let mut out = Vec::new();
    let mut skipped = 0;
    for p in list {
        let (Some(name), Some(version), Some(kind)) =
            (text(p, "name"), text(p, "version"), text(p, "type"))
        else {
            skipped += 1;
            continue;
        };
        let namespace = text(p, "namespace");
        let (ecosystem, osv_name, osv_version) = match kind {
            "deb" | "apk" | "rpm" => {
                let Some(release) = &release else {
                    skipped += 1;
                    continue;
                };
                let source = text(p, "sourceName").unwrap_or(name);
                (
                    release.clone(),
                    source.to_string(),
                    text(p, "sourceVersion").unwrap_or(version).to_string(),
                )
            }
            "pypi" => ("PyPI".into(), name.to_string(), version.to_string()),
            "npm" => (
                "npm".into(),
                namespace.map_or(name.to_string(), |ns| format!("{ns}/{name}")),
                version.to_string(),
            ),
            "golang" => ("Go".into(), name.to_string(), version.to_string()),
            "cargo" => ("crates.io".into(), name.to_string(), version.to_string()),
            "maven" => (
                "Maven".into(),
                namespace.map_or(name.to_string(), |g| format!("{g}:{name}")),
                version.to_string(),
            ),
            _ => {
                skipped += 1;
                continue;
            }
        };
        out.push(Package {
            name: name.to_string(),
            version: version.to_string(),
            ecosystem,
            osv_name,
            osv_version,
            layer: text(p, "layer").map(str::to_string),
            location: text(p, "location").map(str::to_string),
        });
    }
    Ok((out, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn distro_packages_use_their_source_and_release() {
        let doc = json!({
            "distro": {"id": "debian", "versionId": "12"},
            "packages": [
                {"name": "libssl3", "version": "3.0.11-1~deb12u2", "type": "deb", "sourceName": "openssl", "layer": "sha256:aa"},
                {"name": "requests", "version": "2.31.0", "type": "pypi"},
                {"name": "core", "version": "7.0.0", "type": "npm", "namespace": "@angular"},
                {"name": "weird", "version": "1", "type": "nix"}
            ]
        });
        let (p, skipped) = packages(&doc).unwrap();
        assert_eq!(skipped, 1);
        assert_eq!(
            (p[0].ecosystem.as_str(), p[0].osv_name.as_str()),
            ("Debian:12", "openssl")
        );
        assert_eq!(p[0].layer.as_deref(), Some("sha256:aa"));
        assert_eq!(p[2].osv_name, "@angular/core");
        assert_eq!(
            distro_ecosystem("alpine", "3.20.3").as_deref(),
            Some("Alpine:v3.20")
        );
    }
}
