//! A lade scanner to start from: it flags text files in the image that contain a marker word (`TODO` by
//! default, or the `marker` option), in every layer, including files a later layer deleted.

use lade_plugin_sdk::scanner::{
    self, FileSelection, FileStream, FindingSeverity, Guest, Metadata, Needs, PluginError, PluginInfo,
    ScanRequest, ScanResult,
};
use lade_plugin_sdk::Files;

// Used by the export, which only the wasm build has.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Plugin;

impl Metadata for Plugin {
    fn info() -> PluginInfo {
        // Declare here the data directories you read (`scanner::DataNeed`); the user grants them with
        // `--plugin-data NAME=DIR` and you open them with `scanner::data_dirs::open(NAME)`.
        scanner::info("__NAME__", env!("CARGO_PKG_VERSION"), "__DESCRIPTION__", Needs { data_dirs: vec![], documents: vec![] })
    }
}

impl Guest for Plugin {
    fn wants() -> FileSelection {
        FileSelection { globs: vec!["/etc/**".into(), "/app/**".into()], executables: false, all_layers: true }
    }

    fn scan(request: ScanRequest, files: &FileStream) -> Result<ScanResult, PluginError> {
        let marker = request.options.iter().find(|o| o.key == "marker").map_or("TODO", |o| o.value.as_str());
        let mut stream = files;
        Ok(scan_files(&mut stream, marker))
    }
}

/// The scan over any [`Files`]: the host's stream, or `MemoryFiles` in a test.
pub fn scan_files(files: &mut impl Files, marker: &str) -> ScanResult {
    let mut findings = Vec::new();
    while let Some(file) = files.next_file() {
        if !file.is_file {
            continue;
        }
        let text = String::from_utf8_lossy(&files.read_to_end(1 << 20)).into_owned();
        if text.contains(marker) {
            let mut f = scanner::finding("__NAME__/marker", FindingSeverity::Low, format!("{} contains {marker}", file.path));
            f.location = Some(file.path);
            f.layer = Some(file.layer);
            findings.push(f);
        }
    }
    ScanResult { documents: Vec::new(), findings }
}

// The component's exports exist in the wasm build only; natively, `cargo test` tests the logic.
#[cfg(target_arch = "wasm32")]
lade_plugin_sdk::export_scanner!(Plugin);

#[cfg(test)]
mod tests {
    use lade_plugin_sdk::MemoryFiles;

    #[test]
    fn markers_are_found_in_every_layer() {
        let mut files = MemoryFiles::new([("/app/a.txt", 0, false, &b"TODO: fix"[..]), ("/app/b.txt", 1, true, &b"done"[..])]);
        let result = super::scan_files(&mut files, "TODO");
        assert_eq!(result.findings.len(), 1);
        assert_eq!(result.findings[0].layer.as_deref(), Some("sha256:layer0"));
    }
}
