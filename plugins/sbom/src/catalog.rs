//! The cataloguers run over one pass of the image's files: each file goes to the cataloguer its path
//! belongs to. Files a later layer deleted are read only where the layer history matters (dpkg's status and
//! apk's database); every other package comes from the final filesystem.

use crate::apk::{self, Apk};
use crate::binaries;
use crate::dpkg::{self, Dpkg};
use crate::java;
use crate::model::{Distro, Package};
use crate::npm;
use crate::python::{self, Found};
use crate::rpm;
use crate::source::{Meta, Source};
use std::collections::HashMap;

/// Largest database or metadata file read (a big dpkg status is a few MiB).
const MAX_TEXT: usize = 64 << 20;
/// Largest binary or archive read whole (bigger ones are skipped, with a note).
const MAX_BINARY: usize = 256 << 20;

/// Everything found.
#[derive(Debug, Default)]
pub struct Catalog {
    pub distro: Option<Distro>,
    pub packages: Vec<Package>,
    /// What could not be read, for the user.
    pub notes: Vec<String>,
}

/// The globs the host should select (executables are asked for apart).
pub fn globs() -> Vec<String> {
    let mut g: Vec<&str> = vec!["/etc/os-release", "/usr/lib/os-release", apk::INSTALLED];
    g.extend(dpkg::GLOBS);
    g.extend(python::GLOBS);
    g.extend(npm::GLOBS);
    g.extend(java::GLOBS);
    g.extend(rpm::GLOBS);
    g.into_iter().map(String::from).collect()
}

pub fn catalog(src: &mut impl Source) -> Catalog {
    let mut c = Catalog::default();
    let mut dpkg = Dpkg::default();
    let mut apk = Apk::default();
    let mut py: Vec<Package> = Vec::new();
    let mut py_files: HashMap<String, Vec<String>> = HashMap::new();
    let mut os_release: Option<(bool, Distro)> = None;
    while let Some(m) = src.next() {
        if !m.is_file {
            continue;
        }
        let p = m.path.as_str();
        if p == apk::INSTALLED || p == dpkg::STATUS {
            // The layer history matters: every version, visible or not.
            let Some(text) = text(src, &m, &mut c) else {
                continue;
            };
            if p == apk::INSTALLED {
                apk.add(&m.layer, m.visible, &text);
            } else {
                dpkg.add(p, &m.layer, m.visible, &text);
            }
            continue;
        }
        if !m.visible {
            continue;
        }
        if p == "/etc/os-release" || p == "/usr/lib/os-release" {
            let Some(text) = text(src, &m, &mut c) else {
                continue;
            };
            // /etc/os-release wins over /usr/lib/os-release.
            if let Some(d) = Distro::parse(&text)
                && !os_release.as_ref().is_some_and(|(etc, _)| *etc)
            {
                os_release = Some((p == "/etc/os-release", d));
            }
        } else if dpkg::wants(p) {
            if let Some(text) = text(src, &m, &mut c) {
                dpkg.add(p, &m.layer, m.visible, &text);
            }
        } else if python::wants(p) {
            match text(src, &m, &mut c).and_then(|t| python::read(p, &m.layer, &t)) {
                Some(Found::Package(pkg)) => py.push(pkg),
                Some(Found::Files { dir, files }) => {
                    py_files.insert(dir, files);
                }
                None => {}
            }
        } else if npm::wants(p) {
            if let Some(pkg) = text(src, &m, &mut c).and_then(|t| npm::read(p, &m.layer, &t)) {
                c.packages.push(pkg);
            }
        } else if rpm::wants(p) {
            if let Some(data) = whole(src, &m, &mut c) {
                match rpm::read(p, &m.layer, &data) {
                    Ok((found, notes)) => {
                        c.packages.extend(found);
                        c.notes
                            .extend(notes.into_iter().map(|n| format!("{p}: {n}")));
                    }
                    Err(e) => c.notes.push(format!("{p}: {e}")),
                }
            }
        } else if java::wants(p) {
            if let Some(data) = whole(src, &m, &mut c) {
                c.packages.extend(java::read(p, &m.layer, &data));
            }
        } else {
            // An executable: only ELF files are read whole.
            let head = src.read(4);
            if binaries::is_elf(&head) {
                let mut data = head;
                match src.read_all(m.size.saturating_sub(4), MAX_BINARY - 4) {
                    Some(rest) => {
                        data.extend(rest);
                        c.packages.extend(binaries::read(p, &m.layer, &data));
                    }
                    None => c.notes.push(format!(
                        "{p}: larger than {} MiB, not read",
                        MAX_BINARY >> 20
                    )),
                }
            }
        }
    }
    for mut pkg in py {
        pkg.files = py_files
            .remove(python::meta_dir(&pkg.location))
            .unwrap_or_default();
        c.packages.push(pkg);
    }
    let mut os = dpkg.finish();
    os.extend(apk.finish());
    os.append(&mut c.packages);
    c.packages = os;
    c.distro = os_release.map(|(_, d)| d);
    c
}

fn text(src: &mut impl Source, m: &Meta, c: &mut Catalog) -> Option<String> {
    match src.read_all(m.size, MAX_TEXT) {
        Some(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        None => {
            c.notes.push(format!(
                "{}: larger than {} MiB, not read",
                m.path,
                MAX_TEXT >> 20
            ));
            None
        }
    }
}

fn whole(src: &mut impl Source, m: &Meta, c: &mut Catalog) -> Option<Vec<u8>> {
    let r = src.read_all(m.size, MAX_BINARY);
    if r.is_none() {
        c.notes.push(format!(
            "{}: larger than {} MiB, not read",
            m.path,
            MAX_BINARY >> 20
        ));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Memory;

    #[test]
    fn one_pass_over_every_cataloguer() {
        let status = b"Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n";
        let mut files = Memory::new([
            (
                "/etc/os-release",
                0,
                true,
                &b"ID=debian\nVERSION_ID=\"12\"\n"[..],
            ),
            ("/var/lib/dpkg/status", 0, false, &status[..]),
            ("/var/lib/dpkg/status", 1, true, &status[..]),
            (
                "/app/node_modules/x/package.json",
                1,
                true,
                &br#"{"name":"x","version":"2.0.0"}"#[..],
            ),
            (
                "/app/node_modules/gone/package.json",
                0,
                false,
                &br#"{"name":"gone","version":"1.0.0"}"#[..],
            ),
            ("/usr/bin/script", 1, true, &b"#!/bin/sh\n"[..]),
        ]);
        let c = catalog(&mut files);
        let names: Vec<(&str, &str)> = c
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.layer.as_str()))
            .collect();
        assert_eq!(names, [("a", "sha256:layer0"), ("x", "sha256:layer1")]);
        assert_eq!(c.distro.unwrap().version_id, "12");
    }
}
