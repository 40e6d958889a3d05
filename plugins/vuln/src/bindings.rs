//! The component's exports: the only wasm-specific file.

use crate::{db, inventory};
use lade_plugin_sdk::scanner::{
    self, DataNeed, FileSelection, FileStream, Guest, Metadata, Needs, PluginError, PluginInfo,
    ScanRequest, ScanResult, data_dirs,
};

struct Plugin;

impl Metadata for Plugin {
    fn info() -> PluginInfo {
        let needs = Needs {
            data_dirs: vec![DataNeed {
                name: db::DATA_DIR.into(),
                description: "the OSV database `lade db import` writes".into(),
                required: true,
            }],
            documents: vec![inventory::SBOM_MEDIA_TYPE.into()],
        };
        scanner::info(
            "vuln",
            env!("CARGO_PKG_VERSION"),
            "Known vulnerabilities (OSV) of the packages the sbom scanner found",
            needs,
        )
    }
}

impl Guest for Plugin {
    fn wants() -> FileSelection {
        // Everything comes from the sbom document; no image file is read.
        FileSelection {
            globs: Vec::new(),
            executables: false,
            all_layers: false,
        }
    }

    fn scan(request: ScanRequest, _files: &FileStream) -> Result<ScanResult, PluginError> {
        let dir = data_dirs::open(db::DATA_DIR)?;
        let documents: Vec<Vec<u8>> = request
            .inputs
            .into_iter()
            .filter(|i| i.document.media_type == inventory::SBOM_MEDIA_TYPE)
            .map(|i| i.document.content)
            .collect();
        crate::scan::scan(&documents, &dir).map_err(PluginError::Failed)
    }
}

lade_plugin_sdk::export_scanner!(Plugin);
