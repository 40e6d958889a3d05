//! Where blobs were last seen in registries (digest → `host/repository`), kept in lade's cache directory
//! (`blob-locations.json`), like containers/image's blob-info cache. A push to a new repository asks it for
//! repositories on the same registry that hold a blob, and mounts from there instead of uploading.
//! It is only a hint: a stale entry costs one refused mount request. Losing an update is harmless.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

/// At most this many locations per digest (the most recent first).
const PER_DIGEST: usize = 8;
/// At most this many digests kept.
const MAX_DIGESTS: usize = 20_000;

type Map = HashMap<String, Vec<String>>;

struct Cache {
    path: PathBuf,
    map: Option<Map>,
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(|| {
    Mutex::new(Cache {
        path: crate::paths::cache_dir().join("blob-locations.json"),
        map: None,
    })
});

fn load(path: &PathBuf) -> Map {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Repositories (`repo` paths) on `host` known to hold `digest`, most recent first.
pub fn candidates(digest: &str, host: &str) -> Vec<String> {
    let mut c = CACHE.lock().expect("lock");
    if c.map.is_none() {
        c.map = Some(load(&c.path));
    }
    let prefix = format!("{host}/");
    c.map
        .as_ref()
        .and_then(|m| m.get(digest))
        .map(|v| {
            v.iter()
                .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Remember that `host/repo` holds `digest` (merged into the file, written atomically).
pub fn record(digest: &str, host: &str, repo: &str) {
    let loc = format!("{host}/{repo}");
    let mut c = CACHE.lock().expect("lock");
    if c.map
        .as_ref()
        .and_then(|m| m.get(digest))
        .is_some_and(|v| v.first() == Some(&loc))
    {
        return;
    }
    // Merge with what other processes wrote meanwhile.
    let mut map = load(&c.path);
    if let Some(mine) = c.map.take() {
        for (d, locs) in mine {
            let e = map.entry(d).or_default();
            for l in locs {
                if !e.contains(&l) {
                    e.push(l);
                }
            }
        }
    }
    let e = map.entry(digest.to_string()).or_default();
    e.retain(|l| l != &loc);
    e.insert(0, loc);
    e.truncate(PER_DIGEST);
    if map.len() > MAX_DIGESTS {
        let extra: Vec<String> = map
            .keys()
            .filter(|k| k.as_str() != digest)
            .take(map.len() - MAX_DIGESTS)
            .cloned()
            .collect();
        for k in extra {
            map.remove(&k);
        }
    }
    if let Some(dir) = c.path.parent() {
        let _ = std::fs::create_dir_all(dir);
        if let Ok(bytes) = serde_json::to_vec(&map)
            && let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir)
        {
            use std::io::Write;
            if tmp.write_all(&bytes).is_ok() {
                let _ = tmp.persist(&c.path);
            }
        }
    }
    c.map = Some(map);
}
