//! A lade scanner for secrets: private keys, cloud access keys and tokens, in every layer of an image,
//! including files that a later layer deletes or replaces (they are still in the image for anyone who pulls
//! it). Each finding names its rule and severity, the file and line, and the layer (diff_id) it is in.
//!
//! An allowlist may be granted as the data directory `secrets-allowlist` (see [`allowlist`]). Binary files
//! and files over the size cap (option `max-file-size`, bytes; 1 MiB by default) are skipped; memory stays
//! bounded by that cap.

pub mod allowlist;
pub mod rules;

use allowlist::Allowlist;
use lade_plugin_sdk::Files;
use lade_plugin_sdk::scanner::{self, Finding, KeyValue, ScanResult};
use rules::Rule;

/// The data directory the allowlist is read from.
pub const ALLOWLIST_DIR: &str = "secrets-allowlist";
/// Files larger than this are skipped unless the `max-file-size` option says otherwise.
pub const DEFAULT_MAX_FILE_SIZE: usize = 1 << 20;
/// Bytes looked at to tell a binary file (one with a NUL byte) from text.
const SNIFF: usize = 8000;

/// How a scan went besides its findings.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub scanned: u64,
    pub binary: u64,
    pub too_large: u64,
    pub allowlisted: u64,
}

/// Scan every file of `files`.
pub fn scan_files(
    files: &mut impl Files,
    allow: &Allowlist,
    max_file_size: usize,
) -> (ScanResult, Counts) {
    let rules = rules::Rules::new();
    let mut findings = Vec::new();
    let mut counts = Counts::default();
    while let Some(file) = files.next_file() {
        if !file.is_file {
            continue;
        }
        if allow.skips_path(&file.path) {
            counts.allowlisted += 1;
            continue;
        }
        let Some(content) = read_text(files, max_file_size, &mut counts) else {
            continue;
        };
        counts.scanned += 1;
        let text = String::from_utf8_lossy(&content);
        for hit in rules::find(&rules, &text) {
            let line = line_at(&text, hit.start);
            if allow.allows_line(line) {
                counts.allowlisted += 1;
                continue;
            }
            findings.push(finding(
                &rules.rules[hit.rule],
                &file,
                &text[hit.start..hit.end],
                hit.line,
            ));
        }
    }
    let result = ScanResult {
        documents: Vec::new(),
        findings,
    };
    (result, counts)
}

/// The current file's content when it is text of at most `max` bytes; reads no more than that.
fn read_text(files: &mut impl Files, max: usize, counts: &mut Counts) -> Option<Vec<u8>> {
    let mut content = Vec::new();
    loop {
        let chunk = files.read_chunk(64 << 10);
        if chunk.is_empty() {
            return Some(content);
        }
        let sniffed = content.len() < SNIFF;
        content.extend_from_slice(&chunk);
        if sniffed && content[..content.len().min(SNIFF)].contains(&0) {
            counts.binary += 1;
            return None;
        }
        if content.len() > max {
            counts.too_large += 1;
            return None;
        }
    }
}

/// The whole line around byte `at`.
fn line_at(text: &str, at: usize) -> &str {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    &text[start..end]
}

fn finding(rule: &Rule, file: &lade_plugin_sdk::FileInfo, secret: &str, line: u32) -> Finding {
    let place = format!("{}:{line}", file.path);
    let deleted = if file.visible {
        ""
    } else {
        ", deleted or replaced by a later layer"
    };
    let shown = rules::redact(secret);
    let mut f = scanner::finding(
        &format!("secrets/{}", rule.id),
        rule.severity,
        format!(
            "{} in {place} (layer {}{deleted}): {shown}",
            rule.description, file.layer_index
        ),
    );
    f.location = Some(place);
    f.layer = Some(file.layer.clone());
    let kv = |key: &str, value: String| KeyValue {
        key: key.into(),
        value,
    };
    f.details = vec![
        kv("rule", rule.id.into()),
        kv("path", file.path.clone()),
        kv("line", line.to_string()),
        kv("layer-index", file.layer_index.to_string()),
        kv("visible", file.visible.to_string()),
        kv("match", shown),
    ];
    f
}

/// The `max-file-size` option, or the default.
pub fn max_file_size(options: &[KeyValue]) -> Result<usize, String> {
    match options.iter().rev().find(|o| o.key == "max-file-size") {
        None => Ok(DEFAULT_MAX_FILE_SIZE),
        Some(o) => o.value.parse().map_err(|_| {
            format!(
                "option max-file-size={}: expected a number of bytes",
                o.value
            )
        }),
    }
}

/// The component: metadata with the allowlist directory as an optional need, and `scan` over the host's
/// file stream.
#[cfg(target_arch = "wasm32")]
mod component {
    use super::*;
    use lade_plugin_sdk::Tree;
    use lade_plugin_sdk::scanner::{
        DataNeed, FileSelection, FileStream, Guest, Metadata, Needs, PluginError, PluginInfo,
        ScanRequest, data_dirs,
    };

    struct Secrets;

    impl Metadata for Secrets {
        fn info() -> PluginInfo {
            let needs = Needs {
                data_dirs: vec![DataNeed {
                    name: ALLOWLIST_DIR.into(),
                    description: format!(
                        "{}: path globs and regular expressions of accepted secrets",
                        allowlist::FILE
                    ),
                    required: false,
                }],
                documents: Vec::new(),
            };
            scanner::info(
                "secrets",
                env!("CARGO_PKG_VERSION"),
                "Private keys, cloud access keys and tokens in every layer",
                needs,
            )
        }
    }

    impl Guest for Secrets {
        fn wants() -> FileSelection {
            FileSelection {
                globs: vec!["/**".into()],
                executables: false,
                all_layers: true,
            }
        }

        fn scan(request: ScanRequest, files: &FileStream) -> Result<ScanResult, PluginError> {
            if request.image.is_none() {
                return Err(PluginError::Unsupported(
                    "the secrets scanner reads image files; give it an image".into(),
                ));
            }
            let max = max_file_size(&request.options).map_err(PluginError::Failed)?;
            let allow = read_allowlist()?;
            let mut stream = files;
            Ok(scan_files(&mut stream, &allow, max).0)
        }
    }

    /// The granted allowlist, or an empty one when the user granted none.
    fn read_allowlist() -> Result<Allowlist, PluginError> {
        let Ok(dir) = data_dirs::open(ALLOWLIST_DIR) else {
            return Ok(Allowlist::default());
        };
        match dir.stat(allowlist::FILE)? {
            None => {
                return Err(PluginError::Failed(format!(
                    "the data directory {ALLOWLIST_DIR} has no {}: put the allowlist there",
                    allowlist::FILE
                )));
            }
            Some(s) if s.size > allowlist::MAX_BYTES as u64 => {
                return Err(PluginError::Failed(format!(
                    "{ALLOWLIST_DIR}/{} is larger than {} bytes",
                    allowlist::FILE,
                    allowlist::MAX_BYTES
                )));
            }
            Some(_) => {}
        }
        let text = dir.read_text(allowlist::FILE).map_err(PluginError::Host)?;
        Allowlist::parse(&text).map_err(|e| PluginError::Failed(format!("{ALLOWLIST_DIR}/{e}")))
    }

    lade_plugin_sdk::export_scanner!(Secrets);
}

#[cfg(test)]
mod tests;
