//! Version order per ecosystem, as pure functions: each module follows its package manager's own rules,
//! and the integration test `tests/tests/vuln_versions.rs` checks them against the real tools.

pub mod apk;
pub mod dpkg;
pub mod rpm;
pub mod semantic;

use std::cmp::Ordering;
use std::str::FromStr;

/// A version ordering scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Dpkg,
    Rpm,
    Apk,
    Pep440,
    SemVer,
    Npm,
    Go,
}

impl Scheme {
    /// The scheme of an OSV ecosystem (`Debian:12`, `Alpine:v3.20`, `PyPI`, ...); `None` when lade has no
    /// order for it (then only a record's `versions[]` list can match).
    pub fn for_ecosystem(ecosystem: &str) -> Option<Scheme> {
        let base = ecosystem.split(':').next().unwrap_or(ecosystem);
        Some(match base {
            "Debian" | "Ubuntu" => Scheme::Dpkg,
            "Alpine" | "Wolfi" | "Chainguard" => Scheme::Apk,
            "Red Hat" | "Rocky Linux" | "AlmaLinux" | "openSUSE" | "SUSE" | "Mageia"
            | "openEuler" => Scheme::Rpm,
            "PyPI" => Scheme::Pep440,
            "npm" => Scheme::Npm,
            "Go" => Scheme::Go,
            "crates.io" | "Hex" | "Pub" => Scheme::SemVer,
            _ => return None,
        })
    }

    /// Compares two versions; an error names a version that this scheme cannot parse.
    pub fn compare(self, a: &str, b: &str) -> Result<Ordering, String> {
        match self {
            Scheme::Dpkg => Ok(dpkg::compare(a, b)),
            Scheme::Rpm => Ok(rpm::compare_evr(a, b)),
            Scheme::Apk => Ok(apk::compare(a, b)),
            Scheme::Pep440 => compare_pep440(a, b),
            Scheme::SemVer => semantic::compare_semver(a, b),
            Scheme::Npm => semantic::compare_npm(a, b),
            Scheme::Go => semantic::compare_go(a, b),
        }
    }
}

/// PEP 440 order (the `pep440_rs` crate): epochs, release, pre/post/dev, local versions.
pub fn compare_pep440(a: &str, b: &str) -> Result<Ordering, String> {
    let parse = |v: &str| {
        pep440_rs::Version::from_str(v.trim())
            .map_err(|e| format!("{v:?} is not a PEP 440 version: {e}"))
    };
    Ok(parse(a)?.cmp(&parse(b)?))
}
