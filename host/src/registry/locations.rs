//! Where blobs were last seen in registries (digest → `host/repository`), kept in lade's cache directory
//! (`blob-locations.json`), like containers/image's blob-info cache. A push to a new repository asks it for
//! repositories on the same registry that hold a blob, and mounts from there instead of uploading.
//! It is only a hint: a stale entry costs one refused mount request. Losing an update is harmless.
//!
//! Sightings are recorded in memory as blobs move and written out by [`flush`] (the copy engine calls it
//! once per image), merged with what other processes wrote meanwhile: the file is read and written once
//! per copy, not once per blob.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

/// At most this many locations per digest (the most recent first).
const PER_DIGEST: usize = 8;
/// At most this many digests kept.
const MAX_DIGESTS: usize = 20_000;

type Map = HashMap<String, Vec<String>>;

/// The cache file and what this process knows and has not written yet.
struct Cache {
    path: PathBuf,
    map: Option<Map>,
    /// `(digest, host/repo)` sightings not yet in the file, oldest first.
    pending: Vec<(String, String)>,
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(|| {
    Mutex::new(Cache::new(
        crate::paths::cache_dir().join("blob-locations.json"),
    ))
});

fn load(path: &Path) -> Map {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Put `loc` first in the list of `digest`.
fn put_first(map: &mut Map, digest: &str, loc: &str) {
    let e = map.entry(digest.to_string()).or_default();
    e.retain(|l| l != loc);
    e.insert(0, loc.to_string());
    e.truncate(PER_DIGEST);
}

impl Cache {
    fn new(path: PathBuf) -> Cache {
        Cache {
            path,
            map: None,
            pending: vec![],
        }
    }

    fn map(&mut self) -> &mut Map {
        let path = &self.path;
        self.map.get_or_insert_with(|| load(path))
    }

    fn candidates(&mut self, digest: &str, host: &str) -> Vec<String> {
        let prefix = format!("{host}/");
        self.map()
            .get(digest)
            .map(|v| {
                v.iter()
                    .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn record(&mut self, digest: &str, loc: String) {
        let map = self.map();
        if map.get(digest).is_some_and(|v| v.first() == Some(&loc)) {
            return;
        }
        put_first(map, digest, &loc);
        self.pending.push((digest.to_string(), loc));
    }

    /// Merge the pending sightings into the file (written atomically).
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut map = load(&self.path);
        let pending = std::mem::take(&mut self.pending);
        for (d, loc) in &pending {
            put_first(&mut map, d, loc);
        }
        if map.len() > MAX_DIGESTS {
            let keep: std::collections::HashSet<&str> =
                pending.iter().map(|(d, _)| d.as_str()).collect();
            let extra: Vec<String> = map
                .keys()
                .filter(|k| !keep.contains(k.as_str()))
                .take(map.len() - MAX_DIGESTS)
                .cloned()
                .collect();
            for k in extra {
                map.remove(&k);
            }
        }
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
            if let Ok(bytes) = serde_json::to_vec(&map)
                && let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir)
            {
                use std::io::Write;
                if tmp.write_all(&bytes).is_ok() {
                    let _ = tmp.persist(&self.path);
                }
            }
        }
        self.map = Some(map);
    }
}

fn cache() -> std::sync::MutexGuard<'static, Cache> {
    CACHE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Repositories (`repo` paths) on `host` known to hold `digest`, most recent first.
pub fn candidates(digest: &str, host: &str) -> Vec<String> {
    cache().candidates(digest, host)
}

/// Remember that `host/repo` holds `digest` (in memory until [`flush`]).
pub fn record(digest: &str, host: &str, repo: &str) {
    cache().record(digest, format!("{host}/{repo}"));
}

/// Write what [`record`] learnt since the last flush into the cache file.
pub fn flush() {
    cache().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_in_memory_written_once_merged_with_other_writers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob-locations.json");
        let mut c = Cache::new(path.clone());
        c.record("sha256:a", "reg:5000/one".into());
        c.record("sha256:a", "reg:5000/two".into());
        c.record("sha256:b", "other:443/x".into());
        assert_eq!(c.candidates("sha256:a", "reg:5000"), ["two", "one"]);
        assert!(c.candidates("sha256:b", "reg:5000").is_empty());
        assert!(!path.exists(), "nothing is written before a flush");
        // Another process writes meanwhile.
        std::fs::write(
            &path,
            r#"{"sha256:a": ["reg:5000/three"], "sha256:c": ["reg:5000/z"]}"#,
        )
        .unwrap();
        c.flush();
        let on_disk = load(&path);
        assert_eq!(
            on_disk["sha256:a"],
            ["reg:5000/two", "reg:5000/one", "reg:5000/three"]
        );
        assert_eq!(on_disk["sha256:b"], ["other:443/x"]);
        assert_eq!(on_disk["sha256:c"], ["reg:5000/z"]);
        // A new process sees it all; recording what it already knows first writes nothing.
        let mut d = Cache::new(path.clone());
        assert_eq!(d.candidates("sha256:c", "reg:5000"), ["z"]);
        d.record("sha256:a", "reg:5000/two".into());
        assert!(d.pending.is_empty());
    }
}
