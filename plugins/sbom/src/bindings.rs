//! The component's exports: the only wasm-specific file.

use crate::source::{Meta, Source};
use lade_plugin_sdk::scanner::{
    self, Document, EntryKind, FileSelection, FileStream, Guest, Metadata, Needs, PluginError,
    PluginInfo, ScanRequest, ScanResult,
};

struct Plugin;

impl Metadata for Plugin {
    fn info() -> PluginInfo {
        scanner::info(
            "sbom",
            env!("CARGO_PKG_VERSION"),
            "Software bill of materials: dpkg, apk, Python, npm, Go and Rust binaries, Java jars; SPDX 2.3 and CycloneDX 1.6",
            Needs {
                data_dirs: vec![],
                documents: vec![],
            },
        )
    }
}

struct Host<'a>(&'a FileStream);

impl Source for Host<'_> {
    fn next(&mut self) -> Option<Meta> {
        self.0.next_entry().map(|e| Meta {
            is_file: matches!(e.kind, EntryKind::File),
            path: e.path,
            layer: e.layer,
            layer_index: e.layer_index,
            visible: e.visible,
            size: e.size,
        })
    }

    fn read(&mut self, max: u32) -> Vec<u8> {
        self.0.read(max)
    }
}

impl Guest for Plugin {
    fn wants() -> FileSelection {
        FileSelection {
            globs: crate::catalog::globs(),
            executables: true,
            all_layers: true,
        }
    }

    fn scan(request: ScanRequest, files: &FileStream) -> Result<ScanResult, PluginError> {
        let image = request.image.ok_or_else(|| {
            PluginError::Unsupported("the sbom plugin catalogues images, not documents".into())
        })?;
        let format = request
            .options
            .iter()
            .find(|o| o.key == "format")
            .map(|o| o.value.as_str());
        let catalog = crate::catalog::catalog(&mut Host(files));
        for note in &catalog.notes {
            eprintln!("{note}");
        }
        let subject = crate::documents::Subject {
            reference: image.reference,
            digest: image.digest,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let documents = crate::documents(&catalog, &subject, format, now)
            .map_err(PluginError::Failed)?
            .into_iter()
            .map(|(media_type, content)| Document {
                media_type: media_type.into(),
                content,
            })
            .collect();
        Ok(ScanResult {
            documents,
            findings: vec![],
        })
    }
}

lade_plugin_sdk::export_scanner!(Plugin);
