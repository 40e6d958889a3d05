//! npm packages: every `node_modules/NAME/package.json` and `node_modules/@SCOPE/NAME/package.json`.

use crate::licenses;
use crate::model::{Kind, Package};
use serde_json::Value;

pub const GLOBS: &[&str] = &[
    "/**/node_modules/*/package.json",
    "/**/node_modules/@*/*/package.json",
];

pub fn wants(path: &str) -> bool {
    let Some((_, rest)) = path.rsplit_once("/node_modules/") else {
        return false;
    };
    let Some(dir) = rest.strip_suffix("/package.json") else {
        return false;
    };
    match dir.split_once('/') {
        None => true,
        Some((scope, name)) => scope.starts_with('@') && !name.contains('/'),
    }
}

pub fn read(path: &str, layer: &str, text: &str) -> Option<Package> {
    let v: Value = serde_json::from_str(text).ok()?;
    let full = v["name"].as_str()?;
    let version = v["version"].as_str()?;
    let (namespace, name) = match full.split_once('/') {
        Some((scope, n)) if scope.starts_with('@') => (Some(scope.to_string()), n),
        _ => (None, full),
    };
    let mut pkg = Package::new(Kind::Npm, name, version, layer, path);
    pkg.namespace = namespace;
    let license = match &v["license"] {
        Value::String(s) => licenses::expression(s.trim_matches(|c| c == '(' || c == ')')),
        Value::Object(o) => o
            .get("type")
            .and_then(Value::as_str)
            .and_then(licenses::expression),
        _ => None,
    };
    pkg.licenses = license.or_else(|| {
        let old: Vec<String> = v["licenses"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|l| l["type"].as_str().or(l.as_str()))
            .filter_map(licenses::expression)
            .collect();
        licenses::all_of(&old)
    });
    Some(pkg)
}

/// The name npm shows (`@scope/name`).
pub fn full_name(p: &Package) -> String {
    match &p.namespace {
        Some(ns) => format!("{ns}/{}", p.name),
        None => p.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_roots_only() {
        assert!(wants("/app/node_modules/left-pad/package.json"));
        assert!(wants("/app/node_modules/@babel/core/package.json"));
        assert!(wants("/app/node_modules/a/node_modules/b/package.json"));
        assert!(!wants("/app/node_modules/a/lib/package.json"));
        let p = read(
            "/x/node_modules/@s/n/package.json",
            "l",
            r#"{"name":"@s/n","version":"1.0.0","license":"(MIT OR Apache-2.0)"}"#,
        )
        .unwrap();
        assert_eq!(full_name(&p), "@s/n");
        assert_eq!(p.licenses.as_deref(), Some("MIT OR Apache-2.0"));
    }
}
