//! Debian packages: `/var/lib/dpkg/status` (and `status.d/`, distroless's one file per package), the file
//! lists in `info/*.list` (`status.d/*.md5sums` for distroless), licenses from DEP-5 machine-readable
//! `/usr/share/doc/*/copyright` files. The layer of a package is the lowest layer from which every later
//! version of the status file lists it with the same version.

use crate::control::{field, paragraphs};
use crate::licenses;
use crate::model::{Kind, Package};
use std::collections::HashMap;

pub const STATUS: &str = "/var/lib/dpkg/status";
pub const STATUS_D: &str = "/var/lib/dpkg/status.d/";
pub const INFO: &str = "/var/lib/dpkg/info/";
pub const DOC: &str = "/usr/share/doc/";

#[derive(Default)]
pub struct Dpkg {
    /// From the newest status file read: (name, arch) → package.
    status: HashMap<(String, String), Package>,
    status_visible: bool,
    /// distroless: one entry per file in status.d.
    status_d: Vec<Package>,
    /// (package, arch or "") → files.
    lists: HashMap<(String, String), Vec<String>>,
    /// package → license expression.
    copyrights: HashMap<String, String>,
}

/// Whether this cataloguer wants `path`.
pub fn wants(path: &str) -> bool {
    path == STATUS
        || path.starts_with(STATUS_D)
        || (path.starts_with(INFO) && path.ends_with(".list"))
        || (path.starts_with(DOC)
            && path.ends_with("/copyright")
            && path[DOC.len()..].matches('/').count() == 1)
}

pub const GLOBS: &[&str] = &[
    "/var/lib/dpkg/status",
    "/var/lib/dpkg/status.d/*",
    "/var/lib/dpkg/info/*.list",
    "/usr/share/doc/*/copyright",
];

impl Dpkg {
    pub fn add(&mut self, path: &str, layer: &str, visible: bool, text: &str) {
        if path == STATUS {
            self.read_status(layer, visible, text);
        } else if let Some(name) = path.strip_prefix(STATUS_D) {
            if !visible {
                return;
            }
            if let Some(pkg) = name.strip_suffix(".md5sums") {
                let files = text
                    .lines()
                    .filter_map(|l| {
                        l.split_once("  ")
                            .map(|(_, p)| format!("/{}", p.trim_start_matches('/')))
                    })
                    .collect();
                self.lists.insert((pkg.to_string(), String::new()), files);
            } else if !name.contains('/') {
                for p in paragraphs(text) {
                    if let Some(pkg) = package(&p, layer, path) {
                        self.status_d.push(pkg);
                    }
                }
            }
        } else if let Some(list) = path
            .strip_prefix(INFO)
            .and_then(|n| n.strip_suffix(".list"))
        {
            if visible {
                let (name, arch) = list.split_once(':').unwrap_or((list, ""));
                let files = text
                    .lines()
                    .filter(|l| !l.is_empty() && *l != "/.")
                    .map(String::from)
                    .collect();
                self.lists
                    .insert((name.to_string(), arch.to_string()), files);
            }
        } else if let Some(rest) = path.strip_prefix(DOC)
            && visible
            && let Some(expr) = dep5_licenses(text)
        {
            let pkg = rest.trim_end_matches("/copyright");
            self.copyrights.insert(pkg.to_string(), expr);
        }
    }

    fn read_status(&mut self, layer: &str, visible: bool, text: &str) {
        let mut next = HashMap::new();
        for p in paragraphs(text) {
            let Some(mut pkg) = package(&p, layer, STATUS) else {
                continue;
            };
            let key = (pkg.name.clone(), pkg.arch.clone().unwrap_or_default());
            if let Some(old) = self.status.get(&key)
                && old.version == pkg.version
            {
                pkg.layer = old.layer.clone();
            }
            next.insert(key, pkg);
        }
        self.status = next;
        self.status_visible = visible;
    }

    pub fn finish(mut self) -> Vec<Package> {
        let mut out: Vec<Package> = if self.status_visible {
            self.status.into_values().collect()
        } else {
            vec![]
        };
        out.append(&mut self.status_d);
        for p in &mut out {
            let arch = p.arch.clone().unwrap_or_default();
            p.files = self
                .lists
                .remove(&(p.name.clone(), arch))
                .or_else(|| self.lists.remove(&(p.name.clone(), String::new())))
                .unwrap_or_default();
            p.licenses = self.copyrights.get(&p.name).cloned();
        }
        out.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
        out
    }
}

/// A status paragraph as a package, when it is installed (not purged, not only config files left).
fn package(p: &[(String, String)], layer: &str, location: &str) -> Option<Package> {
    let name = field(p, "Package")?;
    let version = field(p, "Version")?;
    if let Some(status) = field(p, "Status") {
        let state = status.split_whitespace().last().unwrap_or_default();
        if state == "not-installed" || state == "config-files" {
            return None;
        }
    }
    let mut pkg = Package::new(Kind::Deb, name, version, layer, location);
    pkg.arch = field(p, "Architecture").map(String::from);
    if let Some(src) = field(p, "Source") {
        match src.split_once(' ') {
            Some((n, v)) => {
                pkg.source_name = Some(n.to_string());
                pkg.source_version =
                    Some(v.trim().trim_matches(|c| c == '(' || c == ')').to_string());
            }
            None => pkg.source_name = Some(src.to_string()),
        }
    }
    Some(pkg)
}

/// The licenses of a DEP-5 machine-readable copyright file (None for a free-form one): every `License:`
/// short name, all applying.
pub fn dep5_licenses(text: &str) -> Option<String> {
    let paras = paragraphs(text);
    let header = paras.first()?;
    let format = field(header, "Format").or_else(|| field(header, "Format-Specification"))?;
    if !format.contains("copyright-format") && !format.contains("dep5") && !format.contains("DEP-5")
    {
        return None;
    }
    let exprs: Vec<String> = paras
        .iter()
        .filter(|p| field(p, "Files").is_some() || std::ptr::eq(*p, header))
        .filter_map(|p| field(p, "License"))
        .filter_map(licenses::expression)
        .collect();
    licenses::all_of(&exprs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS1: &str = "Package: base-files\nStatus: install ok installed\nVersion: 12.4\nArchitecture: amd64\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: amd64\n";
    const STATUS2: &str = "Package: base-files\nStatus: install ok installed\nVersion: 12.4\nArchitecture: amd64\n\nPackage: libc6\nStatus: install ok installed\nSource: glibc (2.36-9)\nVersion: 2.36-9+deb12u4\nArchitecture: amd64\nDescription: x\n more\n";

    #[test]
    fn packages_keep_the_layer_that_added_them() {
        let mut d = Dpkg::default();
        d.add(STATUS, "l0", false, STATUS1);
        d.add(STATUS, "l1", true, STATUS2);
        d.add(
            "/var/lib/dpkg/info/libc6:amd64.list",
            "l1",
            true,
            "/.\n/lib\n/lib/libc.so.6\n",
        );
        d.add(
            "/usr/share/doc/libc6/copyright",
            "l1",
            true,
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: LGPL-2.1+\n\nFiles: x\nLicense: GPL-2+ or Artistic\n",
        );
        let p = d.finish();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].name.as_str(), p[0].layer.as_str()),
            ("base-files", "l0")
        );
        assert_eq!((p[1].name.as_str(), p[1].layer.as_str()), ("libc6", "l1"));
        assert_eq!(p[1].source_name.as_deref(), Some("glibc"));
        assert_eq!(p[1].source_version.as_deref(), Some("2.36-9"));
        assert_eq!(p[1].files, ["/lib", "/lib/libc.so.6"]);
        assert_eq!(
            p[1].licenses.as_deref(),
            Some("LGPL-2.1-or-later AND (GPL-2.0-or-later OR Artistic-1.0-Perl)")
        );
    }

    #[test]
    fn distroless_status_d() {
        let mut d = Dpkg::default();
        let para = "Package: python3.11\nVersion: 3.11.2-6\nArchitecture: amd64\n";
        d.add("/var/lib/dpkg/status.d/python3.11", "l0", true, para);
        d.add(
            "/var/lib/dpkg/status.d/python3.11.md5sums",
            "l0",
            true,
            "abc  usr/bin/python3.11\n",
        );
        let p = d.finish();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "python3.11");
        assert_eq!(p[0].files, ["/usr/bin/python3.11"]);
    }

    #[test]
    fn free_form_copyright_gives_no_license() {
        assert_eq!(
            dep5_licenses("This is free software.\nLicense: GPL\n"),
            None
        );
    }
}
