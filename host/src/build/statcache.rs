//! A persistent (context file, stat) → content digest cache, so an unchanged build context reads no file.
//!
//! An entry is reused only when size, mtime (ns), ctime (ns), inode and device all match. A file changed in
//! the same clock tick as it was hashed could keep its stat, so entries whose ctime is within
//! [`RACY_NS`] of the moment they were hashed are used for this build but not saved.

use crate::context::BuildContext;
use anyhow::{Context, Result, anyhow, bail};
use cap_std::fs::MetadataExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Files changed this close (ns) to their hashing are not trusted across builds.
const RACY_NS: i128 = 1_000_000_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Key {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    key: Key,
    digest: String,
    /// False for a racily-clean entry: good for this process only.
    persist: bool,
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    version: u32,
    entries: HashMap<String, Entry>,
}

const VERSION: u32 = 1;

/// See the module docs. Thread-safe.
pub struct StatCache {
    path: PathBuf,
    entries: Mutex<HashMap<String, Entry>>,
    dirty: AtomicBool,
    reads: AtomicU64,
    /// Context dirs as named → canonical, so `ctx` and `/abs/ctx` share entries.
    roots: Mutex<HashMap<PathBuf, String>>,
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

impl StatCache {
    /// Load the cache at `path`; a missing or damaged file gives an empty cache.
    pub fn open(path: &Path) -> StatCache {
        let entries = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<File>(&b).ok())
            .filter(|f| f.version == VERSION)
            .map(|f| f.entries)
            .unwrap_or_default();
        StatCache {
            path: path.to_path_buf(),
            entries: Mutex::new(entries),
            dirty: AtomicBool::new(false),
            reads: AtomicU64::new(0),
            roots: Mutex::new(HashMap::new()),
        }
    }

    /// How many files this cache has read the content of since it was opened.
    pub fn content_reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// `sha256:<hex>` of the content of the regular file `rel` in `ctx` (symlinks followed inside the
    /// context), reused without reading when its stat is unchanged.
    pub fn digest(&self, ctx: &BuildContext, rel: &str) -> Result<String> {
        let clean = crate::context::confine(rel)?;
        let fs_path = if clean.is_empty() { "." } else { &clean };
        let md = ctx
            .dir()
            .metadata(fs_path)
            .with_context(|| format!("stat {rel} in the build context"))?;
        if !md.is_file() {
            bail!("{rel} in the build context is not a regular file");
        }
        let key = Key {
            size: md.len(),
            mtime_ns: md.mtime() as i128 * 1_000_000_000 + md.mtime_nsec() as i128,
            ctime_ns: md.ctime() as i128 * 1_000_000_000 + md.ctime_nsec() as i128,
            ino: md.ino(),
            dev: md.dev(),
        };
        let id = format!("{}\0{clean}", self.root_of(ctx)?);
        {
            let map = self
                .entries
                .lock()
                .map_err(|_| anyhow!("stat cache poisoned"))?;
            if let Some(e) = map.get(&id)
                && e.key == key
            {
                return Ok(e.digest.clone());
            }
        }
        let mut f = ctx.open_file(&clean)?.into_std();
        self.reads.fetch_add(1, Ordering::Relaxed);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f
                .read(&mut buf)
                .with_context(|| format!("reading {rel} in the build context"))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let digest = format!("sha256:{}", hex::encode(h.finalize()));
        let persist = now_ns() - key.ctime_ns.max(key.mtime_ns) > RACY_NS;
        let mut map = self
            .entries
            .lock()
            .map_err(|_| anyhow!("stat cache poisoned"))?;
        map.insert(
            id,
            Entry {
                key,
                digest: digest.clone(),
                persist,
            },
        );
        self.dirty.store(true, Ordering::Relaxed);
        Ok(digest)
    }

    fn root_of(&self, ctx: &BuildContext) -> Result<String> {
        let mut roots = self
            .roots
            .lock()
            .map_err(|_| anyhow!("stat cache poisoned"))?;
        if let Some(r) = roots.get(ctx.root_path()) {
            return Ok(r.clone());
        }
        let canon = std::fs::canonicalize(ctx.root_path())
            .with_context(|| format!("resolving {}", ctx.root_path().display()))?
            .display()
            .to_string();
        roots.insert(ctx.root_path().to_path_buf(), canon.clone());
        Ok(canon)
    }

    /// Write the cache (temp file, fsync, rename). Nothing is written when nothing changed.
    pub fn save(&self) -> Result<()> {
        if !self.dirty.load(Ordering::Relaxed) {
            return Ok(());
        }
        let file = {
            let map = self
                .entries
                .lock()
                .map_err(|_| anyhow!("stat cache poisoned"))?;
            File {
                version: VERSION,
                entries: map
                    .iter()
                    .filter(|(_, e)| e.persist)
                    .map(|(k, e)| (k.clone(), e.clone()))
                    .collect(),
            }
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("creating a temp file in {}", dir.display()))?;
        serde_json::to_writer(std::io::BufWriter::new(tmp.as_file_mut()), &file)?;
        tmp.as_file_mut().flush()?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.path)
            .with_context(|| format!("writing the stat cache {}", self.path.display()))?;
        self.dirty.store(false, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn ctx(dir: &Path) -> BuildContext {
        BuildContext::with_ignore(dir, crate::context::IgnoreMatcher::parse("", None).unwrap())
            .unwrap()
    }

    #[test]
    fn unchanged_file_is_not_read_again() {
        let t = tempfile::tempdir().unwrap();
        let c = t.path().join("ctx");
        std::fs::create_dir(&c).unwrap();
        std::fs::write(c.join("a"), "hello").unwrap();
        let cache = StatCache::open(&t.path().join("sc.json"));
        let d1 = cache.digest(&ctx(&c), "a").unwrap();
        assert_eq!(d1, crate::layer::sha256_hex(b"hello"));
        assert_eq!(cache.content_reads(), 1);
        assert_eq!(cache.digest(&ctx(&c), "a").unwrap(), d1);
        assert_eq!(
            cache.content_reads(),
            1,
            "an unchanged stat must not re-read"
        );
        // A mode change moves ctime: the cache misses and reads again (same content, same digest).
        std::fs::set_permissions(c.join("a"), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(cache.digest(&ctx(&c), "a").unwrap(), d1);
        assert_eq!(cache.content_reads(), 2, "a ctime change must re-read");
    }

    #[test]
    fn persisted_and_reused_across_opens_and_changes_detected() {
        let t = tempfile::tempdir().unwrap();
        let c = t.path().join("ctx");
        std::fs::create_dir(&c).unwrap();
        std::fs::write(c.join("a"), "one").unwrap();
        let sc = t.path().join("sc.json");
        let cache = StatCache::open(&sc);
        let d1 = cache.digest(&ctx(&c), "a").unwrap();
        // Force the entry to count as old (the file was just written, so it is racily clean).
        for e in cache.entries.lock().unwrap().values_mut() {
            e.persist = true;
        }
        cache.dirty.store(true, Ordering::Relaxed);
        cache.save().unwrap();
        let again = StatCache::open(&sc);
        assert_eq!(again.digest(&ctx(&c), "a").unwrap(), d1);
        assert_eq!(again.content_reads(), 0);
        // Same size, new content: the stat changes (mtime/ctime), so the digest does.
        std::fs::write(c.join("a"), "two").unwrap();
        let d2 = again.digest(&ctx(&c), "a").unwrap();
        assert_ne!(d1, d2);
        assert_eq!(d2, crate::layer::sha256_hex(b"two"));
    }

    #[test]
    fn damaged_file_starts_empty_and_racy_entries_are_not_saved() {
        let t = tempfile::tempdir().unwrap();
        let sc = t.path().join("sc.json");
        std::fs::write(&sc, "{not json").unwrap();
        let cache = StatCache::open(&sc);
        let c = t.path().join("ctx");
        std::fs::create_dir(&c).unwrap();
        std::fs::write(c.join("new"), "x").unwrap();
        cache.digest(&ctx(&c), "new").unwrap();
        cache.save().unwrap();
        let saved: File = serde_json::from_slice(&std::fs::read(&sc).unwrap()).unwrap();
        assert!(
            saved.entries.is_empty(),
            "a file changed just now is not trusted later"
        );
        assert!(cache.digest(&ctx(&c), "../x").is_err());
    }
}
