//! Working containers, as buildah's `from`/`run`/`mount`/`config`/`commit`: an image's layers plus a kept
//! overlay upper, with an editable config, living in the store at `<root>/lade/containers/<id>/`.
//!
//! * this file: the record (`container.json`, written atomically), create/list/find/rename/remove, and the
//!   locks: `containers/.lock` (exclusive while a container is created, renamed or removed, so names stay
//!   unique) and each container's `lock`, held exclusively for the whole of a `run`, `cp`/`add`, `commit`,
//!   `rm` or `mount`; a second user is refused at once with a message naming the container (never waits).
//! * [`rootfs`]: the overlay (`upper`, `work`, `merged`) over the unpacked layers; mount, umount, run.
//! * [`commit`]: the upper (or, `--squash`, the whole tree) as a layer, the image written into the store;
//!   `export`; `diff`.
//!
//! Crash safety: a container is made in `.new-<id>` and renamed into place with its record; removal renames
//! it to `.rm-<id>` first; both leftovers are swept by the next create. A killed `lade run` releases the
//! lock with its process (flock), and its step dies with it (the runner's parent-death signal), so the
//! container stays listed and usable. While a container exists, its image's blobs and layers are kept by
//! `lade prune`/`rmi` through a pin file the store reads (`store::pinned`).

pub mod commit;
pub mod ops;
pub mod rootfs;

use crate::build::{ImageState, Layer};
use crate::layer::LayerCache;
use crate::oci::ImageConfig;
use crate::store::Store;
use crate::transport::{Descriptor, Digest};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// One layer of the container's image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerRef {
    pub diff_id: String,
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

/// A working container's record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Container {
    /// 64 hex digits.
    pub id: String,
    pub name: String,
    /// The image it was made from, as named (`scratch` for none).
    pub image: String,
    /// The image's config digest (`sha256:...`), empty for scratch.
    pub image_id: String,
    /// The image's manifest (kept by prune while the container exists), empty for scratch.
    #[serde(default)]
    pub manifest: String,
    /// RFC 3339.
    pub created: String,
    /// The config the next commit writes (history and rootfs of the image included).
    pub config: ImageConfig,
    pub layers: Vec<LayerRef>,
    /// Manifest annotations of the next commit (`lade config --annotation`).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// `lade config --history-comment`, for the next commit's history entry.
    #[serde(default)]
    pub history_comment: Option<String>,
    /// `lade config --created-by`, for the next commit's history entry.
    #[serde(default)]
    pub created_by: Option<String>,
}

/// The containers of one store.
#[derive(Clone)]
pub struct Containers {
    store: Store,
    dir: PathBuf,
}

/// A held container lock (released on drop, or when the process dies).
pub struct Held {
    _file: File,
}

const RECORD: &str = "container.json";

fn flock(path: &Path, wait: bool) -> Result<Option<File>> {
    use rustix::fs::FlockOperation as Op;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening the lock {}", path.display()))?;
    let op = if wait {
        Op::LockExclusive
    } else {
        Op::NonBlockingLockExclusive
    };
    match rustix::fs::flock(&f, op) {
        Ok(()) => Ok(Some(f)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// A new random id: 64 hex digits.
fn new_id() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom for a container id")?;
    Ok(hex::encode(b))
}

/// buildah's default name: `<image base name>-working-container`.
fn default_name(image: &str) -> String {
    if image == "scratch" {
        return "working-container".into();
    }
    let base = image.rsplit('/').next().unwrap_or(image);
    let base = base.split(['@', ':']).next().unwrap_or(base);
    format!("{base}-working-container")
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok {
        bail!(
            "{name:?} is not a valid container name: use letters, digits, `_`, `.` and `-`, starting with a \
             letter or digit"
        );
    }
    Ok(())
}

impl Containers {
    pub fn open(store: &Store) -> Result<Containers> {
        let dir = store.root().join("lade").join("containers");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Containers {
            store: store.clone(),
            dir,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The container's directory.
    pub fn dir_of(&self, c: &Container) -> PathBuf {
        self.dir.join(&c.id)
    }

    fn registry_lock(&self) -> Result<File> {
        flock(&self.dir.join(".lock"), true)?.context("locking the containers directory")
    }

    /// Every container, by name.
    pub fn list(&self) -> Result<Vec<Container>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)
            .with_context(|| format!("reading {}", self.dir.display()))?
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let p = e.path().join(RECORD);
            match std::fs::read(&p) {
                Ok(b) => match serde_json::from_slice::<Container>(&b) {
                    Ok(c) => out.push(c),
                    Err(err) => tracing::warn!("skipping {}: {err}", p.display()),
                },
                Err(err) => tracing::debug!("skipping {}: {err}", p.display()),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The container named `what`, or whose id is or starts with it (at least 3 digits).
    pub fn find(&self, what: &str) -> Result<Container> {
        let all = self.list()?;
        if let Some(c) = all.iter().find(|c| c.name == what || c.id == what) {
            return Ok(c.clone());
        }
        let by_id: Vec<&Container> = all
            .iter()
            .filter(|c| what.len() >= 3 && c.id.starts_with(what))
            .collect();
        match by_id.as_slice() {
            [c] => Ok((*c).clone()),
            [] => bail!("no working container named {what:?} (`lade containers` lists them)"),
            _ => bail!("{what:?} is the start of several container ids: give more of it"),
        }
    }

    /// Write the container's record (atomically).
    pub fn save(&self, c: &Container) -> Result<()> {
        let p = self.dir_of(c).join(RECORD);
        crate::fsutil::write_atomic(&p, &serde_json::to_vec_pretty(c)?)
            .with_context(|| format!("writing {}", p.display()))
    }

    /// Lock the container for one command; refused at once when another lade process holds it.
    pub fn lock(&self, c: &Container) -> Result<Held> {
        match flock(&self.dir_of(c).join("lock"), false)? {
            Some(f) => Ok(Held { _file: f }),
            None => bail!(
                "working container {} is in use by another lade command (a `lade run`, `commit`, `cp` or `rm` \
                 of it is still running); try again when that has finished",
                c.name
            ),
        }
    }

    /// A new container over `state` (its layers already unpacked), named `name` or buildah's default.
    pub fn create(
        &self,
        name: Option<&str>,
        image: &str,
        image_id: &str,
        manifest: Option<&Descriptor>,
        state: &ImageState,
    ) -> Result<Container> {
        let _reg = self.registry_lock()?;
        self.sweep();
        let existing: Vec<String> = self.list()?.into_iter().map(|c| c.name).collect();
        let name = match name {
            Some(n) => {
                check_name(n)?;
                if existing.iter().any(|e| e == n) {
                    bail!(
                        "a working container named {n:?} already exists: choose another --name, or `lade rm {n}`"
                    );
                }
                n.to_string()
            }
            None => {
                let base = default_name(image);
                (0..)
                    .map(|i| {
                        if i == 0 {
                            base.clone()
                        } else {
                            format!("{base}-{i}")
                        }
                    })
                    .find(|n| !existing.contains(n))
                    .expect("an unused name")
            }
        };
        let c = Container {
            id: new_id()?,
            name,
            image: image.to_string(),
            image_id: image_id.to_string(),
            manifest: manifest.map(|m| m.digest().to_string()).unwrap_or_default(),
            created: crate::build::config::rfc3339(now_secs()),
            config: state.config.clone(),
            layers: state
                .layers
                .iter()
                .map(|l| LayerRef {
                    diff_id: l.diff_id.clone(),
                    digest: l.blob.digest().to_string(),
                    size: l.blob.size(),
                    media_type: l.blob.media_type().to_string(),
                })
                .collect(),
            annotations: BTreeMap::new(),
            history_comment: None,
            created_by: None,
        };
        let tmp = self.dir.join(format!(".new-{}", c.id));
        std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        for d in ["upper", "work", "merged"] {
            std::fs::create_dir(tmp.join(d))?;
        }
        File::create(tmp.join("lock"))?;
        let record = serde_json::to_vec_pretty(&c)?;
        crate::fsutil::write_atomic(&tmp.join(RECORD), &record)?;
        if let Some(m) = manifest {
            crate::fsutil::write_atomic(
                &tmp.join(crate::store::PIN_FILE),
                &serde_json::to_vec(m)?,
            )?;
        }
        std::fs::rename(&tmp, self.dir_of(&c))
            .with_context(|| format!("moving {} into place", tmp.display()))?;
        crate::fsutil::sync_dir(&self.dir);
        Ok(c)
    }

    /// Remove leftovers of killed creates and removals (under the registry lock).
    fn sweep(&self) {
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if (n.starts_with(".new-") || n.starts_with(".rm-"))
                && let Err(err) = std::fs::remove_dir_all(e.path())
            {
                tracing::debug!("could not remove {}: {err}", e.path().display());
            }
        }
    }

    /// Remove `c` (unmounted first when mounted here). Refused while another lade command uses it.
    pub fn remove(&self, c: &Container) -> Result<()> {
        let _reg = self.registry_lock()?;
        let _held = self.lock(c)?;
        rootfs::unmount(self, c)?;
        rootfs::check_not_mounted_elsewhere(self, c)?;
        let gone = self.dir.join(format!(".rm-{}", c.id));
        std::fs::rename(self.dir_of(c), &gone)
            .with_context(|| format!("removing working container {}", c.name))?;
        crate::fsutil::sync_dir(&self.dir);
        std::fs::remove_dir_all(&gone).with_context(|| format!("removing {}", gone.display()))?;
        Ok(())
    }

    /// Give `c` the name `new`.
    pub fn rename(&self, c: &Container, new: &str) -> Result<()> {
        check_name(new)?;
        let _reg = self.registry_lock()?;
        if self.list()?.iter().any(|o| o.name == new) {
            bail!("a working container named {new:?} already exists");
        }
        let _held = self.lock(c)?;
        let mut c = self.find(&c.id)?;
        c.name = new.to_string();
        self.save(&c)
    }

    /// The container's layers as an [`ImageState`] with its config (each layer unpacked when its dir is
    /// missing or from before a reboot).
    pub fn state(&self, c: &Container) -> Result<ImageState> {
        let cache = LayerCache::new(self.store.root());
        let mut layers = Vec::new();
        for l in &c.layers {
            let digest: Digest = l.digest.parse()?;
            let path = self.store.layout().blob_path(&digest);
            let dir = cache.get_or_unpack(&l.diff_id, || {
                let f = File::open(&path).with_context(|| {
                    format!(
                        "layer {} of working container {} is missing from the store",
                        l.digest, c.name
                    )
                })?;
                Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, f)))
            })?;
            layers.push(Layer {
                diff_id: l.diff_id.clone(),
                blob: Descriptor::new(l.media_type.as_str().into(), l.size, digest),
                dir,
            });
        }
        Ok(ImageState {
            layers,
            config: c.config.clone(),
        })
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_follow_buildah() {
        assert_eq!(
            default_name("docker.io/library/busybox:latest"),
            "busybox-working-container"
        );
        assert_eq!(default_name("oci:/x/y:1"), "y-working-container");
        assert_eq!(default_name("scratch"), "working-container");
        assert!(check_name("a.b-c_1").is_ok());
        assert!(check_name("-x").is_err() && check_name("a/b").is_err());
    }

    #[test]
    fn records_names_locks_and_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cs = Containers::open(&store).unwrap();
        let state = ImageState::default();
        let a = cs.create(None, "scratch", "", None, &state).unwrap();
        let b = cs.create(None, "scratch", "", None, &state).unwrap();
        assert_eq!(
            (a.name.as_str(), b.name.as_str()),
            ("working-container", "working-container-1")
        );
        assert!(
            cs.create(Some("working-container"), "scratch", "", None, &state)
                .is_err()
        );
        assert_eq!(cs.find(&a.id[..8]).unwrap().name, a.name);
        // A second user of one container is refused while the first holds it.
        let held = cs.lock(&a).unwrap();
        let err = cs.remove(&a).unwrap_err().to_string();
        assert!(err.contains("in use") && err.contains(&a.name), "{err}");
        drop(held);
        cs.rename(&a, "renamed").unwrap();
        assert!(cs.rename(&b, "renamed").is_err());
        assert_eq!(cs.find("renamed").unwrap().id, a.id);
        // What a killed create or removal left is swept by the next create, never listed.
        std::fs::create_dir(cs.dir.join(".new-x")).unwrap();
        std::fs::create_dir(cs.dir.join(".rm-y")).unwrap();
        assert_eq!(cs.list().unwrap().len(), 2);
        cs.remove(&cs.find("renamed").unwrap()).unwrap();
        let c = cs.create(Some("c"), "scratch", "", None, &state).unwrap();
        assert!(!cs.dir.join(".new-x").exists() && !cs.dir.join(".rm-y").exists());
        let names: Vec<String> = cs.list().unwrap().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["c", "working-container-1"]);
        assert!(cs.find("gone").is_err());
        drop(c);
    }
}
