//! The guest SDK for lade plugins, contract `lade:plugin@0.2.0`.
//!
//! Turn on the feature of your plugin's kind (`frontend`, `scanner` or `signer`), implement the traits of
//! its module, and export your type with that kind's macro:
//!
//! ```ignore
//! use lade_plugin_sdk::scanner::{self, Guest, ScanRequest, ScanResult};
//! struct Mine;
//! impl scanner::Metadata for Mine { fn info() -> scanner::PluginInfo { lade_plugin_sdk::scanner::info("mine", "0.1.0", "...") } }
//! impl Guest for Mine { /* wants, scan */ }
//! lade_plugin_sdk::export_scanner!(Mine);
//! ```
//!
//! Keep the plugin's logic in functions over the [`Files`] and [`Tree`] traits: in a build for
//! wasm32-wasip2 they are the host's resources, and in a native `cargo test` they are [`MemoryFiles`] and
//! [`MemoryTree`], so a plugin unit-tests without the host.

use std::collections::{BTreeMap, VecDeque};

#[cfg(feature = "frontend")]
pub use frontend::export_frontend;
#[cfg(feature = "scanner")]
pub use scanner::export_scanner;
#[cfg(feature = "signer")]
pub use signer::export_signer;

/// A plugin's frontend bindings (`export_frontend!`), with helpers.
#[cfg(feature = "frontend")]
pub mod frontend {
    wit_bindgen::generate!({
        world: "frontend-plugin",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_frontend",
        default_bindings_module: "lade_plugin_sdk::frontend",
    });
    pub use self::exports::lade::plugin::frontend::*;
    pub use self::exports::lade::plugin::metadata::Guest as Metadata;
    pub use self::lade::plugin::context::BuildContext;
    pub use self::lade::plugin::images;
    pub use self::lade::plugin::types::{
        self, Diagnostic, KeyValue, Location, Needs, Platform, PluginError, PluginInfo, PluginKind,
        Severity,
    };

    /// The metadata of a frontend.
    pub fn info(name: &str, version: &str, description: &str) -> PluginInfo {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            kind: PluginKind::Frontend,
            needs: Needs {
                data_dirs: Vec::new(),
                documents: Vec::new(),
            },
        }
    }

    /// The build context, as a [`super::Tree`].
    impl super::Tree for BuildContext {
        fn read(&self, path: &str) -> Result<Vec<u8>, String> {
            self.read_file(path).map_err(super::message)
        }
    }

    /// One `invalid-input` diagnostic at `file:line`, with a hint.
    pub fn invalid(file: &str, line: u32, message: &str, hint: Option<&str>) -> PluginError {
        PluginError::InvalidInput(vec![Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            location: Some(Location {
                file: file.into(),
                line,
                column: 1,
                end_line: line,
                end_column: 1,
            }),
            snippet: None,
            hint: hint.map(Into::into),
        }])
    }
}

/// A plugin's scanner bindings (`export_scanner!`), with helpers.
#[cfg(feature = "scanner")]
pub mod scanner {
    wit_bindgen::generate!({
        world: "scanner-plugin",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_scanner",
        default_bindings_module: "lade_plugin_sdk::scanner",
    });
    pub use self::exports::lade::plugin::metadata::Guest as Metadata;
    pub use self::exports::lade::plugin::scanner::*;
    pub use self::lade::plugin::data_dirs::{self, DataDir};
    pub use self::lade::plugin::image_files::{Entry, EntryKind, FileSelection, FileStream};
    pub use self::lade::plugin::types::{
        self, DataNeed, Diagnostic, DirEntry, FileKind, FileStat, KeyValue, Needs, Platform,
        PluginError, PluginInfo, PluginKind, Severity,
    };

    /// The metadata of a scanner that declares `needs`.
    pub fn info(name: &str, version: &str, description: &str, needs: Needs) -> PluginInfo {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            kind: PluginKind::Scanner,
            needs,
        }
    }

    /// A finding with only the essentials; set the rest on the result.
    pub fn finding(id: &str, severity: FindingSeverity, message: String) -> Finding {
        Finding {
            id: id.into(),
            severity,
            package: None,
            version: None,
            fixed_version: None,
            location: None,
            layer: None,
            message,
            details: Vec::new(),
        }
    }

    /// The host's file stream, as [`super::Files`].
    impl super::Files for &FileStream {
        fn next_file(&mut self) -> Option<super::FileInfo> {
            self.next_entry().map(|e| super::FileInfo {
                path: e.path,
                layer: e.layer,
                layer_index: e.layer_index,
                visible: e.visible,
                is_file: matches!(e.kind, EntryKind::File),
            })
        }

        fn read_chunk(&mut self, max: u32) -> Vec<u8> {
            self.read(max)
        }
    }

    /// A granted data directory, as a [`super::Tree`].
    impl super::Tree for DataDir {
        fn read(&self, path: &str) -> Result<Vec<u8>, String> {
            self.read_file(path).map_err(super::message)
        }

        /// Files over `read-file`'s 64 MiB are read with `read-at`, a MiB at a time.
        fn read_if_exists(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
            let Some(stat) = self.stat(path).map_err(super::message)? else {
                return Ok(None);
            };
            if stat.size <= 64 << 20 {
                return self.read(path).map(Some);
            }
            let mut out = Vec::with_capacity(stat.size as usize);
            loop {
                let chunk = self
                    .read_at(path, out.len() as u64, 1 << 20)
                    .map_err(super::message)?;
                if chunk.is_empty() {
                    return Ok(Some(out));
                }
                out.extend_from_slice(&chunk);
            }
        }
    }
}

/// A plugin's signer bindings (`export_signer!`), with helpers.
#[cfg(feature = "signer")]
pub mod signer {
    wit_bindgen::generate!({
        world: "signer-plugin",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_signer",
        default_bindings_module: "lade_plugin_sdk::signer",
    });
    pub use self::exports::lade::plugin::metadata::Guest as Metadata;
    pub use self::exports::lade::plugin::signer::*;
    pub use self::lade::plugin::types::{
        self, Diagnostic, KeyValue, Needs, PluginError, PluginInfo, PluginKind, Severity,
    };

    /// A `failed` plugin error with `message`.
    pub fn failed(message: impl Into<String>) -> PluginError {
        PluginError::Failed(message.into())
    }

    /// The last value of option `key` (a later `--option` wins), if given.
    pub fn option<'a>(options: &'a [KeyValue], key: &str) -> Option<&'a str> {
        options
            .iter()
            .rev()
            .find(|kv| kv.key == key)
            .map(|kv| kv.value.as_str())
    }

    /// A key-value pair, for details and annotations.
    pub fn kv(key: &str, value: impl Into<String>) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }

    /// The metadata of a signer.
    pub fn info(name: &str, version: &str, description: &str) -> PluginInfo {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            kind: PluginKind::Signer,
            needs: Needs {
                data_dirs: Vec::new(),
                documents: Vec::new(),
            },
        }
    }
}

/// The text of a plugin error, for messages.
#[allow(dead_code)]
fn message<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// What a scanner learns about one image file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Absolute path in the image.
    pub path: String,
    /// diff_id of its layer.
    pub layer: String,
    /// Its layer's index, 0 for the lowest.
    pub layer_index: u32,
    /// False when a later layer deletes or replaces it.
    pub visible: bool,
    /// A regular file (the only kind with content).
    pub is_file: bool,
}

/// The files a scanner is handed, one at a time: the host's stream, or [`MemoryFiles`] in a test.
pub trait Files {
    /// The next file, or None at the end.
    fn next_file(&mut self) -> Option<FileInfo>;
    /// Up to `max` bytes of the current file; empty at its end.
    fn read_chunk(&mut self, max: u32) -> Vec<u8>;

    /// The whole content of the current file, up to `limit` bytes (the rest is skipped).
    fn read_to_end(&mut self, limit: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let chunk = self.read_chunk(64 << 10);
            if chunk.is_empty() {
                return out;
            }
            let room = limit.saturating_sub(out.len()).min(chunk.len());
            out.extend_from_slice(&chunk[..room]);
        }
    }
}

/// Files held in memory, for native tests.
#[derive(Default)]
pub struct MemoryFiles {
    pending: VecDeque<(FileInfo, Vec<u8>)>,
    current: Vec<u8>,
    offset: usize,
}

impl MemoryFiles {
    /// `(path, layer index, visible, content)` for each file, in order.
    pub fn new<'a>(files: impl IntoIterator<Item = (&'a str, u32, bool, &'a [u8])>) -> Self {
        MemoryFiles {
            pending: files
                .into_iter()
                .map(|(path, index, visible, content)| {
                    let info = FileInfo {
                        path: path.into(),
                        layer: format!("sha256:layer{index}"),
                        layer_index: index,
                        visible,
                        is_file: true,
                    };
                    (info, content.to_vec())
                })
                .collect(),
            ..Default::default()
        }
    }
}

impl Files for MemoryFiles {
    fn next_file(&mut self) -> Option<FileInfo> {
        let (info, content) = self.pending.pop_front()?;
        self.current = content;
        self.offset = 0;
        Some(info)
    }

    fn read_chunk(&mut self, max: u32) -> Vec<u8> {
        let end = self.current.len().min(self.offset + max as usize);
        let chunk = self.current[self.offset..end].to_vec();
        self.offset = end;
        chunk
    }
}

/// A read-only tree of files by relative path: the build context, a data directory, or [`MemoryTree`].
pub trait Tree {
    fn read(&self, path: &str) -> Result<Vec<u8>, String>;

    /// A file, or `None` when the tree has no such file; any other failure (unreadable, too large) is an
    /// error, never an absent file. The default cannot tell the two apart, so it reports every failure.
    fn read_if_exists(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        self.read(path).map(Some)
    }

    /// A file as text (lossily decoded).
    fn read_text(&self, path: &str) -> Result<String, String> {
        self.read(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }
}

/// A tree held in memory, for native tests.
#[derive(Default)]
pub struct MemoryTree(pub BTreeMap<String, Vec<u8>>);

impl MemoryTree {
    pub fn new<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        MemoryTree(
            files
                .into_iter()
                .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
                .collect(),
        )
    }
}

impl Tree for MemoryTree {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| format!("{path}: no such file"))
    }

    fn read_if_exists(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.0.get(path).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_files_stream_and_read_to_end_caps() {
        let mut f = MemoryFiles::new([("/a", 0, true, &b"hello"[..]), ("/b", 1, false, &b""[..])]);
        let a = f.next_file().unwrap();
        assert_eq!((a.path.as_str(), a.layer_index, a.visible), ("/a", 0, true));
        assert_eq!(f.read_to_end(3), b"hel");
        assert!(!f.next_file().unwrap().visible);
        assert!(f.read_to_end(10).is_empty());
        assert!(f.next_file().is_none());
        let t = MemoryTree::new([("x", "y")]);
        assert_eq!(t.read_text("x").unwrap(), "y");
        assert!(t.read("z").is_err());
    }
}
