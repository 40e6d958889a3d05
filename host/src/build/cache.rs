//! The layer cache: what a step's key is made of, where its result is recorded, and why a step missed.
//!
//! A key is the sha256 of the step's [`Parts`]: the parent key, the instruction, the build args it sees and
//! the digest of every input it reads (context files, mounted stages). Records live in
//! `<root>/lade/build-cache/<key>.json`, with the parts that made the key beside it (`<key>.parts.json`,
//! written once, when the step runs). For `--explain-cache`, each step position (file, stage, step number)
//! points at the key its last build had (`.../slots/`), so a miss can name the input that changed.

use crate::fsutil::write_atomic;
use crate::layer::sha256_hex;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The labelled inputs of one step, in order: `("parent", key)`, `("instruction", text)`, `("arg FOO", v)`,
/// `("file app/x.js", digest)`, ...
pub type Parts = Vec<(String, String)>;

/// The cache key of `parts`.
pub fn key(parts: &Parts) -> String {
    let mut text = String::new();
    for (label, value) in parts {
        // Length-prefixed so no two part lists serialise alike.
        text.push_str(&format!("{}:{label}{}:{value}\n", label.len(), value.len()));
    }
    sha256_hex(text.as_bytes())
}

/// The layer a cached step produced.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerRecord {
    pub diff_id: String,
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

/// One cached step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub key: String,
    /// Seconds since the epoch when the step ran.
    pub created: u64,
    /// None for a step that changed only the config.
    pub layer: Option<LayerRecord>,
}

/// The cache of one store.
#[derive(Clone, Debug)]
pub struct BuildCache {
    dir: PathBuf,
    ttl: Option<Duration>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl BuildCache {
    /// The cache under `<store root>/lade/build-cache`; records older than `ttl` count as misses.
    pub fn new(store_root: &Path, ttl: Option<Duration>) -> Self {
        BuildCache {
            dir: store_root.join("lade").join("build-cache"),
            ttl,
        }
    }

    fn record_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The record for `key`, if there is a usable one. A damaged record is a miss, not an error.
    pub fn get(&self, key: &str) -> Option<Record> {
        let bytes = std::fs::read(self.record_path(key)).ok()?;
        let rec: Record = serde_json::from_slice(&bytes).ok()?;
        if rec.key != key {
            return None;
        }
        if let Some(ttl) = self.ttl
            && now().saturating_sub(rec.created) > ttl.as_secs()
        {
            return None;
        }
        Some(rec)
    }

    /// Record a step's result (atomically; a concurrent writer of the same key writes the same thing).
    pub fn put(&self, key: &str, layer: Option<LayerRecord>) -> Result<Record> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let rec = Record {
            key: key.to_string(),
            created: now(),
            layer,
        };
        write_atomic(&self.record_path(key), &serde_json::to_vec(&rec)?)?;
        Ok(rec)
    }

    fn slot_path(&self, slot: &str) -> PathBuf {
        self.dir.join("slots").join(sha256_hex(slot.as_bytes()))
    }

    /// Keep the parts that made `key` (once: they never change for a key), for later explanations.
    pub fn put_parts(&self, key: &str, parts: &Parts) -> Result<()> {
        let p = self.dir.join(format!("{key}.parts.json"));
        if p.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        write_atomic(&p, &serde_json::to_vec(parts)?)
    }

    /// Remember that the step at `slot` (e.g. `Containerfile|stage 1|step 3`) last had `key`: a tiny
    /// write, so a cache hit costs no rewrite of the step's inputs.
    pub fn remember(&self, slot: &str, key: &str) -> Result<()> {
        let p = self.slot_path(slot);
        if std::fs::read(&p).is_ok_and(|old| old == key.as_bytes()) {
            return Ok(());
        }
        std::fs::create_dir_all(p.parent().expect("slot dir"))?;
        write_atomic(&p, key.as_bytes())
    }

    /// Why the step at `slot` missed: the inputs that differ from the last build of that step.
    pub fn explain(&self, slot: &str, parts: &Parts) -> String {
        let Some(old) = std::fs::read_to_string(self.slot_path(slot))
            .ok()
            .and_then(|key| std::fs::read(self.dir.join(format!("{key}.parts.json"))).ok())
            .and_then(|b| serde_json::from_slice::<Parts>(&b).ok())
        else {
            return "no earlier build of this step".into();
        };
        let changes = diff_parts(&old, parts);
        if changes.is_empty() {
            // Same inputs, but the record is gone (pruned, expired, or the layer was removed).
            "the cached result expired or was removed".into()
        } else {
            changes.join("; ")
        }
    }
}

/// Human descriptions of how `new` differs from `old`, at most a handful.
pub fn diff_parts(old: &Parts, new: &Parts) -> Vec<String> {
    use std::collections::BTreeMap;
    let o: BTreeMap<&str, &str> = old.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let n: BTreeMap<&str, &str> = new.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut out = Vec::new();
    for (k, v) in &n {
        match o.get(k) {
            None => out.push(format!("{k} added")),
            Some(ov) if ov != v => out.push(match *k {
                "parent" => "the previous step changed".to_string(),
                _ => format!("{k} changed"),
            }),
            _ => {}
        }
    }
    for k in o.keys() {
        if !n.contains_key(k) {
            out.push(format!("{k} removed"));
        }
    }
    let total = out.len();
    if total > 5 {
        out.truncate(5);
        out.push(format!("and {} more", total - 5));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(v: &[(&str, &str)]) -> Parts {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn keys_change_with_any_part_and_do_not_collide_on_joins() {
        let a = parts(&[("parent", "x"), ("instruction", "RUN a")]);
        let b = parts(&[("parent", "x"), ("instruction", "RUN b")]);
        assert_ne!(key(&a), key(&b));
        let c = parts(&[("ab", "c")]);
        let d = parts(&[("a", "bc")]);
        assert_ne!(key(&c), key(&d));
        assert_eq!(key(&a), key(&a.clone()));
    }

    #[test]
    fn explains_changed_added_and_removed_inputs() {
        let old = parts(&[("parent", "k1"), ("file a", "1"), ("file b", "2")]);
        let new = parts(&[("parent", "k1"), ("file a", "9"), ("file c", "3")]);
        assert_eq!(
            diff_parts(&old, &new),
            vec!["file a changed", "file c added", "file b removed"]
        );
    }

    #[test]
    fn records_round_trip_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let c = BuildCache::new(dir.path(), None);
        assert!(c.get("k").is_none());
        c.put("k", None).unwrap();
        assert!(c.get("k").is_some());
        let expired = BuildCache::new(dir.path(), Some(Duration::from_secs(0)));
        let mut rec = c.get("k").unwrap();
        rec.created -= 10;
        write_atomic(&c.record_path("k"), &serde_json::to_vec(&rec).unwrap()).unwrap();
        assert!(expired.get("k").is_none());
        std::fs::write(c.record_path("bad"), b"{").unwrap();
        assert!(c.get("bad").is_none());
    }
}
