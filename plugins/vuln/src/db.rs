//! Reading the database `lade db import` writes (host/src/vulndb/layout.rs): one JSON-lines file of OSV
//! records per ecosystem and package, at `ecosystems/<escaped ecosystem>/<escaped package>.jsonl`.

use lade_plugin_sdk::Tree;
use serde_json::Value;

/// The data directory this plugin is granted.
pub const DATA_DIR: &str = "vuln-db";
const SCHEMA: u64 = 1;

/// The same escaping as the host's: every byte but ASCII letters, digits, `-`, `_` and a non-leading `.`
/// is percent-encoded.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Checks the database's metadata: present, and a layout this plugin reads.
pub fn check(db: &impl Tree) -> Result<(), String> {
    let meta = db.read("metadata.json").map_err(|e| {
        format!("the {DATA_DIR} data directory has no metadata.json ({e}): run `lade db import`")
    })?;
    let meta: Value =
        serde_json::from_slice(&meta).map_err(|e| format!("{DATA_DIR}/metadata.json: {e}"))?;
    match meta.get("schema").and_then(Value::as_u64) {
        Some(SCHEMA) => Ok(()),
        other => Err(format!(
            "{DATA_DIR} has database schema {other:?}, this plugin reads {SCHEMA}: import again"
        )),
    }
}

/// The records of one package; none when the database has no file for it. A file that is there but cannot
/// be read is an error: taking it for "no vulnerabilities" would hide them.
pub fn records(db: &impl Tree, ecosystem: &str, package: &str) -> Result<Vec<Value>, String> {
    let path = format!("ecosystems/{}/{}.jsonl", escape(ecosystem), escape(package));
    let Some(bytes) = db
        .read_if_exists(&path)
        .map_err(|e| format!("{DATA_DIR}/{path}: {e}"))?
    else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{DATA_DIR}/{path}:{}: {e}", i + 1))
        })
        .collect()
}
