//! The one place that decides which contract version a component speaks and hands it to that version's
//! bindings: `v0_1_0` (frozen, adapted up) and `v0_2_0` (the newest, which the engine works on). A new
//! contract version adds a module beside them, a `wit/vX.Y.Z` folder and an arm here; old plugins keep
//! working.

use super::imports::Kind;
use super::{v0_1_0, v0_2_0};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Every `lade:plugin` version this lade can load, oldest first.
pub const KNOWN_VERSIONS: &[&str] = &[v0_1_0::VERSION, v0_2_0::VERSION];

/// The linkers of every known version.
pub(crate) struct Linkers {
    v0_1_0: v0_1_0::Linkers,
    v0_2_0: v0_2_0::Linkers,
}

impl Linkers {
    pub fn new(engine: &Engine) -> anyhow::Result<Linkers> {
        Ok(Linkers {
            v0_1_0: v0_1_0::Linkers::new(engine)?,
            v0_2_0: v0_2_0::Linkers::new(engine)?,
        })
    }
}

/// A prepared plugin, in the bindings of the version it was built against.
pub(crate) enum Loaded {
    V0_1_0(v0_1_0::Pre),
    V0_2_0(v0_2_0::Pre),
}

/// Refuse a version lade does not know, naming what it does know.
pub(crate) fn check_known(plugin: &str, version: &str) -> anyhow::Result<()> {
    if KNOWN_VERSIONS.contains(&version) {
        return Ok(());
    }
    anyhow::bail!(
        "plugin `{plugin}` was built against lade:plugin@{version}, a contract version this lade does not know \
         (it knows {}); rebuild the plugin against one of those, or use a lade that knows {version}",
        KNOWN_VERSIONS
            .iter()
            .map(|v| format!("lade:plugin@{v}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Link and type-check `component` against the bindings of `version` for `kind`.
pub(crate) fn prepare(
    linkers: &Linkers,
    plugin: &str,
    version: &str,
    kind: Kind,
    component: &Component,
) -> anyhow::Result<Loaded> {
    check_known(plugin, version)?;
    let loaded = match version {
        v0_1_0::VERSION => v0_1_0::Pre::new(&linkers.v0_1_0, component, kind).map(Loaded::V0_1_0),
        v0_2_0::VERSION => v0_2_0::Pre::new(&linkers.v0_2_0, component, kind).map(Loaded::V0_2_0),
        _ => unreachable!("check_known accepted only known versions"),
    };
    loaded.map_err(|e| {
        anyhow::Error::from(e).context(format!(
            "plugin `{plugin}` does not link as a {kind} plugin of lade:plugin@{version}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};
    use std::collections::BTreeMap;
    use std::path::Path;

    const HOW_TO_CHANGE: &str = "a published lade:plugin version never changes, or plugins built against it \
        break. Revert the change. To change the contract, copy the newest version's folder to wit/vX.Y.Z, edit \
        it there, add host/src/plugin/vX_Y_Z.rs (its bindings, adapting the older versions up) and an arm in \
        host/src/plugin/version.rs; when the new version is published, add its hashes to wit/frozen.sha256 \
        (`cd wit && sha256sum vX.Y.Z/*`). See PLUGINS.md, Versioning.";

    /// Every file of every version listed in wit/frozen.sha256 is there, unchanged, and nothing was added.
    #[test]
    fn frozen_contract_versions_do_not_change() {
        let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        let lock = std::fs::read_to_string(wit.join("frozen.sha256")).unwrap();
        let mut listed: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for line in lock
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (hash, path) = line.split_once("  ").expect("sha256sum format");
            let (version, file) = path.split_once('/').expect("vX.Y.Z/file");
            listed
                .entry(version.into())
                .or_default()
                .insert(file.into(), hash.into());
        }
        assert!(
            listed.contains_key("v0.1.0"),
            "lade:plugin@0.1.0 is published and must be listed"
        );
        for (version, files) in &listed {
            let mut present: Vec<String> = std::fs::read_dir(wit.join(version))
                .unwrap_or_else(|e| {
                    panic!("wit/{version} is frozen but cannot be read ({e}); {HOW_TO_CHANGE}")
                })
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            present.sort();
            let expected: Vec<String> = files.keys().cloned().collect();
            assert_eq!(
                present, expected,
                "the files of frozen wit/{version} changed: {HOW_TO_CHANGE}"
            );
            for (file, hash) in files {
                let bytes = std::fs::read(wit.join(version).join(file)).unwrap();
                assert_eq!(
                    &hex::encode(Sha256::digest(&bytes)),
                    hash,
                    "wit/{version}/{file} changed: {HOW_TO_CHANGE}"
                );
            }
        }
        // Every version but the newest is published, and each has its bindings.
        let mut versions: Vec<String> = std::fs::read_dir(&wit)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('v'))
            .collect();
        versions.sort();
        let known: Vec<String> = super::KNOWN_VERSIONS
            .iter()
            .map(|v| format!("v{v}"))
            .collect();
        assert_eq!(
            versions, known,
            "every wit/vX.Y.Z folder needs bindings and an arm in version.rs"
        );
        for v in &versions[..versions.len() - 1] {
            assert!(
                listed.contains_key(v),
                "wit/{v} is older than the newest version but not frozen in wit/frozen.sha256"
            );
        }
    }

    /// 0.1.0 frontends are adapted up through serde (v0_1_0::adapt), which holds only while the frontend's
    /// own interfaces keep their shape. A change there needs hand-written conversions in v0_1_0.rs.
    #[test]
    fn the_frontend_interfaces_kept_their_shape_in_0_2_0() {
        let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        for file in ["frontend.wit", "images.wit"] {
            let old = std::fs::read_to_string(wit.join("v0.1.0").join(file)).unwrap();
            let new = std::fs::read_to_string(wit.join("v0.2.0").join(file)).unwrap();
            assert_eq!(
                old.replace("lade:plugin@0.1.0", "lade:plugin@0.2.0"),
                new,
                "wit/v0.2.0/{file} changed shape: adapt 0.1.0 plugins by hand in host/src/plugin/v0_1_0.rs"
            );
        }
    }

    #[test]
    fn unknown_version_names_plugin_and_known_versions() {
        let e = super::check_known("future", "0.9.0")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("plugin `future`")
                && e.contains("lade:plugin@0.9.0")
                && e.contains("lade:plugin@0.1.0, lade:plugin@0.2.0"),
            "{e}"
        );
        super::check_known("x", "0.1.0").unwrap();
        super::check_known("x", "0.2.0").unwrap();
    }
}
