//! Python distributions: `*.dist-info/METADATA` (wheels, pip) and `*.egg-info/PKG-INFO` (or an `*.egg-info`
//! file); `RECORD` and `installed-files.txt` list the files.

use crate::licenses;
use crate::model::{Kind, Package};

pub const GLOBS: &[&str] = &[
    "/**/*.dist-info/METADATA",
    "/**/*.dist-info/RECORD",
    "/**/*.egg-info/PKG-INFO",
    "/**/*.egg-info",
    "/**/*.egg-info/installed-files.txt",
];

pub enum Found {
    Package(Package),
    /// The files of the distribution in `dir` (the `.dist-info` or `.egg-info` directory).
    Files {
        dir: String,
        files: Vec<String>,
    },
}

pub fn wants(path: &str) -> bool {
    path.ends_with(".dist-info/METADATA")
        || path.ends_with(".dist-info/RECORD")
        || path.ends_with(".egg-info/PKG-INFO")
        || path.ends_with(".egg-info")
        || path.ends_with(".egg-info/installed-files.txt")
}

/// The metadata directory of a file (`/x/foo-1.0.dist-info`); an `.egg-info` file is its own.
pub fn meta_dir(path: &str) -> &str {
    if path.ends_with(".egg-info") {
        return path;
    }
    path.rsplit_once('/').map_or(path, |(d, _)| d)
}

pub fn read(path: &str, layer: &str, text: &str) -> Option<Found> {
    let dir = meta_dir(path);
    let site = dir.rsplit_once('/').map_or("", |(s, _)| s);
    if path.ends_with("/RECORD") {
        let files = text
            .lines()
            .filter_map(|l| l.split(',').next())
            .filter(|f| !f.is_empty())
            .map(|f| normalize(&format!("{site}/{f}")))
            .collect();
        return Some(Found::Files {
            dir: dir.into(),
            files,
        });
    }
    if path.ends_with("/installed-files.txt") {
        let files = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|f| normalize(&format!("{dir}/{f}")))
            .collect();
        return Some(Found::Files {
            dir: dir.into(),
            files,
        });
    }
    metadata(text, layer, path).map(Found::Package)
}

/// Parse an email-style METADATA/PKG-INFO header (the body after the first blank line is the description).
fn metadata(text: &str, layer: &str, path: &str) -> Option<Package> {
    let mut name = None;
    let mut version = None;
    let mut expression = None;
    let mut license = None;
    let mut classifiers = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.to_ascii_lowercase().as_str() {
            "name" => name = Some(v.to_string()),
            "version" => version = Some(v.to_string()),
            "license-expression" => expression = Some(v.to_string()),
            "license" => license = Some(v.to_string()),
            "classifier" => {
                if let Some(l) = v
                    .strip_prefix("License :: OSI Approved :: ")
                    .or(v.strip_prefix("License :: "))
                {
                    classifiers.push(l.to_string());
                }
            }
            _ => {}
        }
    }
    let mut pkg = Package::new(Kind::Python, &name?, &version?, layer, path);
    pkg.licenses = expression
        .as_deref()
        .and_then(licenses::expression)
        .or_else(|| {
            license
                .as_deref()
                .filter(|l| l.len() < 80)
                .and_then(licenses::expression)
        })
        .or_else(|| {
            licenses::all_of(
                &classifiers
                    .iter()
                    .map(|c| licenses::id(c))
                    .collect::<Vec<_>>(),
            )
        });
    Some(pkg)
}

fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_record() {
        let m = "Metadata-Version: 2.1\nName: tiny_pkg\nVersion: 0.1.0\nLicense: MIT\n\nbody: x\n";
        let Some(Found::Package(p)) = read(
            "/v/lib/python3.11/site-packages/tiny_pkg-0.1.0.dist-info/METADATA",
            "l",
            m,
        ) else {
            panic!()
        };
        assert_eq!(
            (p.name.as_str(), p.version.as_str(), p.licenses.as_deref()),
            ("tiny_pkg", "0.1.0", Some("MIT"))
        );
        let Some(Found::Files { files, .. }) = read(
            "/v/lib/site-packages/t-0.1.dist-info/RECORD",
            "l",
            "t/__init__.py,sha256=x,0\n../../bin/t,,\n",
        ) else {
            panic!()
        };
        assert_eq!(files, ["/v/lib/site-packages/t/__init__.py", "/v/bin/t"]);
    }
}
