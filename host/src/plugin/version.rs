//! The one place that decides which contract version a component speaks and hands it to that version's
//! bindings. A new contract version adds a module beside `v0_1_0` and an arm here; old plugins keep working.

use super::imports::Kind;
use super::v0_1_0;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Every `lade:plugin` version this lade can load, oldest first.
pub const KNOWN_VERSIONS: &[&str] = &[v0_1_0::VERSION];

/// The linkers of every known version.
pub(crate) struct Linkers {
    v0_1_0: v0_1_0::Linkers,
}

impl Linkers {
    pub fn new(engine: &Engine) -> anyhow::Result<Linkers> {
        Ok(Linkers {
            v0_1_0: v0_1_0::Linkers::new(engine)?,
        })
    }
}

/// A prepared plugin, in the bindings of the version it was built against.
pub(crate) enum Loaded {
    V0_1_0(v0_1_0::Pre),
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
    match version {
        v0_1_0::VERSION => v0_1_0::Pre::new(&linkers.v0_1_0, component, kind)
            .map(Loaded::V0_1_0)
            .map_err(|e| {
                anyhow::Error::from(e).context(format!(
                    "plugin `{plugin}` does not link as a {kind} plugin"
                ))
            }),
        _ => unreachable!("check_known accepted only known versions"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unknown_version_names_plugin_and_known_versions() {
        let e = super::check_known("future", "0.9.0")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("plugin `future`")
                && e.contains("lade:plugin@0.9.0")
                && e.contains("lade:plugin@0.1.0"),
            "{e}"
        );
        super::check_known("x", "0.1.0").unwrap();
    }
}
