//! A catalogued package, and the identifiers made from it: purl (package-url spec) and CPE 2.3.

use serde_json::{Value, json};

/// The kind of package, as the purl type names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Deb,
    Apk,
    Python,
    Npm,
    Go,
    Cargo,
    Maven,
    Rpm,
}

impl Kind {
    pub fn purl_type(self) -> &'static str {
        match self {
            Kind::Deb => "deb",
            Kind::Apk => "apk",
            Kind::Python => "pypi",
            Kind::Npm => "npm",
            Kind::Go => "golang",
            Kind::Cargo => "cargo",
            Kind::Maven => "maven",
            Kind::Rpm => "rpm",
        }
    }

    /// Packages of the operating system (they get the distro in their purl).
    pub fn is_os(self) -> bool {
        matches!(self, Kind::Deb | Kind::Apk | Kind::Rpm)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub kind: Kind,
    pub name: String,
    pub version: String,
    /// Maven group, npm scope (`@scope`): the purl namespace.
    pub namespace: Option<String>,
    /// The source package (dpkg `Source`, apk origin) and its version when it differs.
    pub source_name: Option<String>,
    pub source_version: Option<String>,
    pub arch: Option<String>,
    /// An SPDX license expression (ids not on the SPDX list as `LicenseRef-...`).
    pub licenses: Option<String>,
    /// Files the package owns (absolute paths).
    pub files: Vec<String>,
    /// diff_id of the layer that added it.
    pub layer: String,
    /// The file it was found in (a database, a METADATA, a binary, a jar).
    pub location: String,
}

impl Package {
    pub fn new(kind: Kind, name: &str, version: &str, layer: &str, location: &str) -> Package {
        Package {
            kind,
            name: name.into(),
            version: version.into(),
            namespace: None,
            source_name: None,
            source_version: None,
            arch: None,
            licenses: None,
            files: vec![],
            layer: layer.into(),
            location: location.into(),
        }
    }

    /// `pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS` per the package-url spec; OS packages are namespaced by
    /// the distro id and qualified with `distro=ID-VERSION_ID`.
    pub fn purl(&self, distro: Option<&Distro>) -> String {
        let mut s = format!("pkg:{}/", self.kind.purl_type());
        let (go_ns, go_name) = match self.name.rsplit_once('/') {
            Some((ns, n)) if self.kind == Kind::Go => (Some(ns), n.to_string()),
            _ => (None, self.purl_name()),
        };
        let namespace = match self.kind {
            k if k.is_os() => Some(distro.map_or(
                match k {
                    Kind::Deb => "debian",
                    Kind::Apk => "alpine",
                    _ => "redhat",
                },
                |d| d.id.as_str(),
            )),
            Kind::Go => go_ns,
            _ => self.namespace.as_deref(),
        };
        if let Some(ns) = namespace {
            for seg in ns.split('/') {
                s.push_str(&encode(seg));
                s.push('/');
            }
        }
        s.push_str(&encode(&go_name));
        let mut q: Vec<(String, String)> = vec![];
        // An rpm epoch is a qualifier, not part of the version.
        let version = match self.version.split_once(':') {
            Some((epoch, v)) if self.kind == Kind::Rpm => {
                q.push(("epoch".into(), epoch.into()));
                v
            }
            _ => self.version.as_str(),
        };
        if !version.is_empty() {
            s.push('@');
            s.push_str(&encode(version));
        }
        if let Some(a) = &self.arch {
            q.push(("arch".into(), a.clone()));
        }
        if self.kind.is_os() {
            if let Some(d) = distro.filter(|d| !d.version_id.is_empty()) {
                q.push(("distro".into(), format!("{}-{}", d.id, d.version_id)));
            }
            if let Some(src) = &self.source_name {
                let up = match &self.source_version {
                    Some(v) => format!("{src}@{v}"),
                    None => src.clone(),
                };
                q.push(("upstream".into(), up));
            }
        }
        q.sort();
        for (i, (k, v)) in q.iter().enumerate() {
            s.push(if i == 0 { '?' } else { '&' });
            s.push_str(k);
            s.push('=');
            s.push_str(&encode(v));
        }
        s
    }

    /// The name as the purl type wants it: PyPI names lowercased with `-`; a Go module's last segment.
    fn purl_name(&self) -> String {
        match self.kind {
            Kind::Python => self.name.to_lowercase().replace(['_', '.'], "-"),
            _ => self.name.clone(),
        }
    }

    /// A CPE 2.3 name for OS packages, where vendor and product are the package name (as syft guesses).
    pub fn cpe(&self) -> Option<String> {
        if !self.kind.is_os() || self.version.is_empty() {
            return None;
        }
        let n = cpe_escape(&self.name);
        Some(format!(
            "cpe:2.3:a:{n}:{n}:{}:*:*:*:*:*:*:*",
            cpe_escape(&self.version)
        ))
    }

    pub fn json(&self, distro: Option<&Distro>) -> Value {
        json!({
            "name": self.name,
            "version": self.version,
            "type": self.kind.purl_type(),
            "namespace": self.namespace,
            "sourceName": self.source_name,
            "sourceVersion": self.source_version,
            "arch": self.arch,
            "licenses": self.licenses,
            "purl": self.purl(distro),
            "cpe": self.cpe(),
            "layer": self.layer,
            "location": self.location,
            "files": self.files,
        })
    }
}

/// The operating system, from `/etc/os-release`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distro {
    pub id: String,
    pub version_id: String,
    pub pretty_name: String,
}

impl Distro {
    pub fn parse(text: &str) -> Option<Distro> {
        let mut d = Distro::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
            match k.trim() {
                "ID" => d.id = v,
                "VERSION_ID" => d.version_id = v,
                "PRETTY_NAME" => d.pretty_name = v,
                _ => {}
            }
        }
        (!d.id.is_empty()).then_some(d)
    }
}

/// Percent-encode for a purl component: everything but ASCII letters, digits and `.-_~+`.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b".-_~+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Quote a CPE 2.3 formatted-string component: letters, digits, `_`, `-` and `.` as they are, the rest
/// behind a backslash.
fn cpe_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || "_-.".contains(c) {
            out.push(c);
        } else {
            out.push('\\');
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_follow_the_spec() {
        let debian = Distro {
            id: "debian".into(),
            version_id: "12".into(),
            pretty_name: String::new(),
        };
        let mut p = Package::new(Kind::Deb, "libc6", "2.36-9+deb12u4", "l", "x");
        p.arch = Some("amd64".into());
        p.source_name = Some("glibc".into());
        assert_eq!(
            p.purl(Some(&debian)),
            "pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64&distro=debian-12&upstream=glibc"
        );
        let e = Package::new(Kind::Deb, "perl-base", "1:5.36.0-7", "l", "x");
        assert_eq!(
            e.purl(Some(&debian)),
            "pkg:deb/debian/perl-base@1%3A5.36.0-7?distro=debian-12"
        );
        let mut n = Package::new(Kind::Npm, "core", "7.1.0", "l", "x");
        n.namespace = Some("@babel".into());
        assert_eq!(n.purl(None), "pkg:npm/%40babel/core@7.1.0");
        let g = Package::new(Kind::Go, "golang.org/x/text", "v0.3.7", "l", "x");
        assert_eq!(g.purl(None), "pkg:golang/golang.org/x/text@v0.3.7");
        let py = Package::new(Kind::Python, "Foo_Bar", "1.0", "l", "x");
        assert_eq!(py.purl(None), "pkg:pypi/foo-bar@1.0");
        assert_eq!(
            e.cpe().unwrap(),
            "cpe:2.3:a:perl-base:perl-base:1\\:5.36.0-7:*:*:*:*:*:*:*"
        );
    }
}
