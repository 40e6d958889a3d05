//! What a component imports and exports, which kind of plugin it is, and the import check: each kind may
//! import a fixed set of interfaces and nothing else, checked before anything is instantiated.

use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The three kinds of plugin, decided by what a component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Frontend,
    Scanner,
    Signer,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Frontend => "frontend",
            Kind::Scanner => "scanner",
            Kind::Signer => "signer",
        }
    }

    /// The `lade:plugin` interfaces this kind may import (besides WASI) in contract `version`.
    fn lade_imports(self, version: &str) -> &'static [&'static str] {
        match (self, version) {
            (Kind::Frontend, _) => &["types", "context", "images"],
            (Kind::Scanner, "0.1.0") => &["types", "image-files"],
            (Kind::Scanner, _) => &["types", "image-files", "data-dirs"],
            (Kind::Signer, _) => &["types"],
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WASI 0.2 interfaces any plugin may import; the host links them with an empty context. Filesystem,
/// sockets, http and everything else are refused.
const WASI_ALLOWED: &[(&str, &[&str])] = &[
    ("wasi:io", &["poll", "error", "streams"]),
    (
        "wasi:cli",
        &[
            "environment",
            "exit",
            "stdin",
            "stdout",
            "stderr",
            "terminal-input",
            "terminal-output",
            "terminal-stdin",
            "terminal-stdout",
            "terminal-stderr",
        ],
    ),
    ("wasi:clocks", &["monotonic-clock", "wall-clock"]),
    ("wasi:random", &["random", "insecure", "insecure-seed"]),
];

/// The names a component imports and exports, in its own order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Surface {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

impl Surface {
    pub fn of(component: &Component, engine: &Engine) -> Surface {
        let ty = component.component_type();
        Surface {
            imports: ty
                .imports(engine)
                .map(|(name, _)| name.to_string())
                .collect(),
            exports: ty
                .exports(engine)
                .map(|(name, _)| name.to_string())
                .collect(),
        }
    }
}

/// `wasi:io/streams@0.2.6` → (`wasi:io`, `streams`, `Some("0.2.6")`).
pub(crate) fn split(name: &str) -> Option<(&str, &str, Option<&str>)> {
    let (path, version) = match name.split_once('@') {
        Some((p, v)) => (p, Some(v)),
        None => (name, None),
    };
    let (package, interface) = path.split_once('/')?;
    package
        .contains(':')
        .then_some((package, interface, version))
}

/// The contract version a component was built against: the version of its `lade:plugin/metadata` export.
pub(crate) fn contract_version(plugin: &str, surface: &Surface) -> anyhow::Result<String> {
    let versions: Vec<&str> = surface
        .exports
        .iter()
        .filter_map(|e| split(e))
        .filter(|(p, i, _)| *p == "lade:plugin" && *i == "metadata")
        .map(|(_, _, v)| v.unwrap_or(""))
        .collect();
    match versions.as_slice() {
        [v] if !v.is_empty() => Ok(v.to_string()),
        [] => anyhow::bail!(
            "plugin `{plugin}` is not a lade plugin: it does not export lade:plugin/metadata (it exports: {})",
            list(&surface.exports)
        ),
        _ => anyhow::bail!(
            "plugin `{plugin}` exports lade:plugin/metadata {} times or without a version; it must export it once",
            versions.len()
        ),
    }
}

/// The kind, from the exports: metadata plus exactly one of frontend, scanner, signer, all at `version`.
pub(crate) fn kind(plugin: &str, surface: &Surface, version: &str) -> anyhow::Result<Kind> {
    let mut kinds = Vec::new();
    for e in &surface.exports {
        let Some(("lade:plugin", interface, v)) = split(e) else {
            continue;
        };
        if v != Some(version) {
            anyhow::bail!(
                "plugin `{plugin}` mixes contract versions: it exports `{e}` next to lade:plugin/metadata@{version}"
            );
        }
        match interface {
            "frontend" => kinds.push(Kind::Frontend),
            "scanner" => kinds.push(Kind::Scanner),
            "signer" => kinds.push(Kind::Signer),
            _ => {}
        }
    }
    match kinds.as_slice() {
        [k] => Ok(*k),
        [] => anyhow::bail!(
            "plugin `{plugin}` exports none of lade:plugin/frontend, scanner or signer, so it is no kind of plugin"
        ),
        _ => anyhow::bail!(
            "plugin `{plugin}` exports more than one of frontend, scanner and signer; one only"
        ),
    }
}

/// Refuse every import the kind may not have, naming the first one and listing them all.
pub(crate) fn check(
    plugin: &str,
    kind: Kind,
    version: &str,
    surface: &Surface,
) -> anyhow::Result<()> {
    let refused: Vec<&String> = surface
        .imports
        .iter()
        .filter(|i| !allowed(kind, version, i))
        .collect();
    if let Some(first) = refused.first() {
        let all = if refused.len() > 1 {
            format!(" (refused imports: {})", list(&refused))
        } else {
            String::new()
        };
        anyhow::bail!(
            "plugin `{plugin}` imports `{first}`, which a {kind} plugin may not use{all}; \
             a plugin gets no filesystem, network or other ambient authority, only the lade:plugin interfaces \
             of its kind ({}) and WASI io, cli, clocks and random",
            kind.lade_imports(version).join(", ")
        );
    }
    Ok(())
}

fn allowed(kind: Kind, version: &str, import: &str) -> bool {
    let Some((package, interface, v)) = split(import) else {
        return false;
    };
    if package == "lade:plugin" {
        return v == Some(version) && kind.lade_imports(version).contains(&interface);
    }
    let wasi_02 = v.is_some_and(|v| v.starts_with("0.2."));
    wasi_02
        && WASI_ALLOWED
            .iter()
            .any(|(p, ifaces)| *p == package && ifaces.contains(&interface))
}

fn list<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return "nothing".into();
    }
    items
        .iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn surface(imports: &[&str], exports: &[&str]) -> Surface {
        Surface {
            imports: imports.iter().map(|s| s.to_string()).collect(),
            exports: exports.iter().map(|s| s.to_string()).collect(),
        }
    }

    const FRONTEND: &[&str] = &["lade:plugin/metadata@0.1.0", "lade:plugin/frontend@0.1.0"];

    #[test]
    fn frontend_with_wasi_basics_passes() {
        let s = surface(
            &[
                "lade:plugin/types@0.1.0",
                "lade:plugin/context@0.1.0",
                "wasi:io/streams@0.2.6",
                "wasi:cli/stderr@0.2.0",
                "wasi:random/insecure-seed@0.2.3",
            ],
            FRONTEND,
        );
        let v = contract_version("x", &s).unwrap();
        assert_eq!(v, "0.1.0");
        assert_eq!(kind("x", &s, &v).unwrap(), Kind::Frontend);
        check("x", Kind::Frontend, &v, &s).unwrap();
    }

    #[test]
    fn filesystem_sockets_and_foreign_imports_are_refused() {
        for bad in [
            "wasi:filesystem/preopens@0.2.6",
            "wasi:filesystem/types@0.2.6",
            "wasi:sockets/tcp@0.2.6",
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:io/streams@0.3.0",
            "wasi:cli/run@0.2.0",
            "lade:plugin/image-files@0.1.0",
            "lade:plugin/context@0.2.0",
            "acme:spy/phone-home",
            "bare-function",
        ] {
            let s = surface(&["wasi:io/streams@0.2.6", bad], FRONTEND);
            let err = check("spy", Kind::Frontend, "0.1.0", &s)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("plugin `spy` imports") && err.contains(bad),
                "{err}"
            );
        }
    }

    #[test]
    fn scanner_and_signer_get_their_own_sets() {
        let s = surface(&["lade:plugin/image-files@0.1.0"], &[]);
        check("s", Kind::Scanner, "0.1.0", &s).unwrap();
        assert!(check("s", Kind::Signer, "0.1.0", &s).is_err());
        let s = surface(&["lade:plugin/context@0.1.0"], &[]);
        assert!(check("s", Kind::Scanner, "0.1.0", &s).is_err());
    }

    #[test]
    fn data_dirs_are_for_0_2_0_scanners_only() {
        let s = surface(&["lade:plugin/data-dirs@0.2.0"], &[]);
        check("s", Kind::Scanner, "0.2.0", &s).unwrap();
        assert!(check("s", Kind::Frontend, "0.2.0", &s).is_err());
        assert!(check("s", Kind::Signer, "0.2.0", &s).is_err());
        let s = surface(&["lade:plugin/data-dirs@0.1.0"], &[]);
        assert!(check("s", Kind::Scanner, "0.1.0", &s).is_err());
    }

    #[test]
    fn kind_and_version_come_from_exports() {
        let s = surface(
            &[],
            &["lade:plugin/metadata@0.9.0", "lade:plugin/signer@0.9.0"],
        );
        assert_eq!(contract_version("p", &s).unwrap(), "0.9.0");
        assert_eq!(kind("p", &s, "0.9.0").unwrap(), Kind::Signer);
        let none = surface(&[], &["wasi:cli/run@0.2.0"]);
        assert!(
            contract_version("p", &none)
                .unwrap_err()
                .to_string()
                .contains("not a lade plugin")
        );
        let two = surface(
            &[],
            &[
                "lade:plugin/metadata@0.1.0",
                "lade:plugin/signer@0.1.0",
                "lade:plugin/scanner@0.1.0",
            ],
        );
        assert!(kind("p", &two, "0.1.0").is_err());
        let mixed = surface(
            &[],
            &["lade:plugin/metadata@0.1.0", "lade:plugin/signer@0.2.0"],
        );
        assert!(
            kind("p", &mixed, "0.1.0")
                .unwrap_err()
                .to_string()
                .contains("mixes")
        );
    }
}
