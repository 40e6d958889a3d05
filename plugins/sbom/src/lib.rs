//! The built-in `sbom` scanner: catalogues the packages of an image (Debian dpkg, Alpine apk, RPM sqlite, Berkeley DB and ndb,
//! Python, npm, Go and Rust binaries, Java jars) in one pass over its files and returns SPDX 2.3 JSON,
//! CycloneDX 1.6 JSON and lade's own JSON. Option `format` (`spdx-json`, `cyclonedx-json`, `json`) asks for one document only.
//!
//! Everything but `bindings.rs` is plain Rust over [`source::Source`], so it tests natively.

pub mod apk;
pub mod bdb;
pub mod binaries;
pub mod catalog;
pub mod control;
pub mod documents;
pub mod dpkg;
pub mod java;
pub mod licenses;
pub mod model;
pub mod ndb;
pub mod npm;
pub mod python;
pub mod rpm;
pub mod source;
pub mod sqlite;

#[cfg(target_arch = "wasm32")]
mod bindings;

/// The media types of the documents.
pub const SPDX_JSON: &str = "application/spdx+json";
pub const CYCLONEDX_JSON: &str = "application/vnd.cyclonedx+json";
pub const LADE_JSON: &str = "application/vnd.lade.sbom+json";

/// The documents for `format` (None: all three), as (media type, bytes).
pub fn documents(
    c: &catalog::Catalog,
    subject: &documents::Subject,
    format: Option<&str>,
    now_secs: u64,
) -> Result<Vec<(&'static str, Vec<u8>)>, String> {
    let now = documents::rfc3339(now_secs);
    let all = format.is_none();
    let mut out = Vec::new();
    let want = |f: &str| all || format == Some(f);
    if want("spdx-json") {
        out.push((SPDX_JSON, documents::spdx(c, subject, &now)));
    }
    if want("cyclonedx-json") {
        out.push((CYCLONEDX_JSON, documents::cyclonedx(c, subject, &now)));
    }
    if want("json") {
        out.push((LADE_JSON, documents::lade_json(c, subject)));
    }
    if out.is_empty() {
        return Err(format!(
            "unknown format {:?}: use spdx-json, cyclonedx-json or json",
            format.unwrap_or_default()
        ));
    }
    out.into_iter()
        .map(|(mt, v)| {
            serde_json::to_vec_pretty(&v)
                .map(|b| (mt, b))
                .map_err(|e| e.to_string())
        })
        .collect()
}
