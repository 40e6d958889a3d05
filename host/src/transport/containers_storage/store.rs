//! The overlay driver's store as containers/storage lays it out: `overlay-layers/layers.json` (+
//! `volatile-layers.json`, read only) and `<id>.tar-split.gz`, `overlay-images/images.json` and each image's
//! big-data files, `overlay/<id>/{diff,link,lower,work,merged,empty}` and the `overlay/l/<short>` links.
//! Records are kept as JSON values, so fields lade does not know survive a rewrite.

use super::config::StoreConfig;
use super::{lock, tarsplit};
use crate::layer::{UnpackOptions, WhiteoutMode};
use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::{Value, json};
use std::fs::File;
use std::path::{Path, PathBuf};

pub struct Dirs {
    pub root: PathBuf,
}

impl Dirs {
    pub fn new(c: &StoreConfig) -> Dirs {
        Dirs {
            root: c.graphroot.clone(),
        }
    }
    pub fn layers_json(&self) -> PathBuf {
        self.root.join("overlay-layers/layers.json")
    }
    pub fn layers_lock(&self) -> PathBuf {
        self.root.join("overlay-layers/layers.lock")
    }
    pub fn images_json(&self) -> PathBuf {
        self.root.join("overlay-images/images.json")
    }
    pub fn images_lock(&self) -> PathBuf {
        self.root.join("overlay-images/images.lock")
    }
    pub fn tar_split(&self, id: &str) -> PathBuf {
        self.root.join(format!("overlay-layers/{id}.tar-split.gz"))
    }
    pub fn layer_dir(&self, id: &str) -> PathBuf {
        self.root.join("overlay").join(id)
    }
    pub fn image_dir(&self, id: &str) -> PathBuf {
        self.root.join("overlay-images").join(id)
    }
}

/// Read a JSON array file; absent means empty.
pub fn read_list(path: &Path) -> Result<Vec<Value>> {
    match std::fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(vec![]),
        Ok(b) => serde_json::from_slice(&b).with_context(|| format!("parsing {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_list(path: &Path, list: &[Value]) -> Result<()> {
    let dir = path.parent().expect("a store file has a directory");
    mkdir(dir, 0o700)?;
    crate::fsutil::write_atomic(path, &serde_json::to_vec(list)?)
        .with_context(|| format!("writing {}", path.display()))?;
    set_mode(path, 0o600)
}

fn mkdir(dir: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", dir.display())),
    }
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", p.display()))
}

pub fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn incomplete(v: &Value) -> bool {
    v.pointer("/flags/incomplete")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Every complete layer: layers.json and volatile-layers.json. Hold layers.lock.
pub fn layers(d: &Dirs) -> Result<Vec<Value>> {
    let mut all = read_list(&d.layers_json())?;
    all.extend(read_list(
        &d.root.join("overlay-layers/volatile-layers.json"),
    )?);
    all.retain(|l| !incomplete(l));
    Ok(all)
}

/// The file name containers/storage gives a big-data item: the key itself when it is only `[0-9a-z.]`,
/// else `=` and its base64.
pub fn big_data_file(key: &str) -> String {
    if !key.is_empty()
        && key
            .bytes()
            .all(|c| c == b'.' || c.is_ascii_digit() || c.is_ascii_lowercase())
    {
        key.to_string()
    } else {
        format!(
            "={}",
            base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
        )
    }
}

pub fn read_big_data(d: &Dirs, image: &Value, key: &str) -> Result<Vec<u8>> {
    let id = str_of(image, "id").unwrap_or_default();
    let p = d.image_dir(id).join(big_data_file(key));
    std::fs::read(&p).with_context(|| format!("reading image {id}'s `{key}` ({})", p.display()))
}

fn now() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

/// A random 26-character name for `overlay/l/` (base32 capitals and digits, as the overlay driver's).
fn short_link() -> String {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut raw = [0u8; 26];
    // SAFETY: valid buffer of its length.
    unsafe { libc::getrandom(raw.as_mut_ptr().cast(), raw.len(), 0) };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    raw.iter()
        .enumerate()
        .map(|(i, b)| ALPHA[((*b as u128 ^ (seed >> (i % 16))) % 32) as usize] as char)
        .collect()
}

/// One layer to add: its chain ID, parent, the uncompressed tar (a file), and the blob's facts.
pub struct NewLayer<'a> {
    pub id: String,
    pub parent: Option<String>,
    pub tar: &'a Path,
    pub diff_digest: String,
    pub diff_size: u64,
    pub compressed_digest: String,
    pub compressed_size: u64,
    /// containers/storage's `archive.Compression`: 0 none, 2 gzip, 4 zstd.
    pub compression: u8,
}

/// Add a layer, as containers/storage's `layerStore.create` does: the record first with the `incomplete`
/// flag (so a crash leaves something podman removes on its next load), then the overlay directories, the
/// unpacked diff and the tar-split, then the finished record. The caller holds layers.lock exclusive.
pub fn add_layer(d: &Dirs, held: &lock::Held, l: &NewLayer) -> Result<()> {
    let mut list = read_list(&d.layers_json())?;
    // An incomplete record of this very layer was left by a writer that died: podman would delete it on
    // its next load; so does this writer (its directory is replaced below).
    list.retain(|x| !(str_of(x, "id") == Some(&l.id) && incomplete(x)));
    if list.iter().any(|x| str_of(x, "id") == Some(&l.id)) {
        bail!("layer {} is already in {}", l.id, d.layers_json().display());
    }
    let mut rec = json!({
        "id": l.id,
        "created": now(),
        "flags": {"incomplete": true},
    });
    if let Some(p) = &l.parent {
        rec["parent"] = json!(p);
    }
    list.push(rec.clone());
    held.record_write()?;
    write_list(&d.layers_json(), &list)?;
    let facts = write_layer_dirs(d, l).with_context(|| format!("writing layer {}", l.id))?;
    let obj = rec.as_object_mut().expect("an object");
    obj.remove("flags");
    obj.insert("compressed-diff-digest".into(), json!(l.compressed_digest));
    obj.insert("compressed-size".into(), json!(l.compressed_size));
    obj.insert("diff-digest".into(), json!(l.diff_digest));
    obj.insert("diff-size".into(), json!(l.diff_size));
    if l.compression != 0 {
        obj.insert("compression".into(), json!(l.compression));
    }
    obj.insert("uidset".into(), json!(facts.uids));
    obj.insert("gidset".into(), json!(facts.gids));
    let last = list.last_mut().expect("just pushed");
    *last = rec;
    held.record_write()?;
    write_list(&d.layers_json(), &list)
}

fn write_layer_dirs(d: &Dirs, l: &NewLayer) -> Result<tarsplit::TarFacts> {
    let home = d.root.join("overlay");
    mkdir(&home.join("l"), 0o755)?;
    let dir = d.layer_dir(&l.id);
    if dir.symlink_metadata().is_ok() {
        // Left by a crash of a writer whose record was incomplete (podman's load removes such records).
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing stale {}", dir.display()))?;
    }
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    set_mode(&dir, 0o700)?;
    let diff = dir.join("diff");
    let diff_mode = match &l.parent {
        Some(p) => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(d.layer_dir(p).join("diff"))
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0o555)
        }
        None => 0o555,
    };
    std::fs::create_dir(&diff)?;
    set_mode(&diff, diff_mode)?;
    let short = short_link();
    std::os::unix::fs::symlink(
        Path::new("..").join(&l.id).join("diff"),
        home.join("l").join(&short),
    )
    .context("linking overlay/l")?;
    std::fs::write(dir.join("link"), &short)?;
    for sub in ["work", "merged"] {
        std::fs::create_dir(dir.join(sub))?;
        set_mode(&dir.join(sub), 0o700)?;
    }
    match &l.parent {
        None => {
            std::fs::create_dir(dir.join("empty"))?;
            set_mode(&dir.join("empty"), 0o700)?;
        }
        Some(p) => {
            let pdir = d.layer_dir(p);
            let plink = std::fs::read_to_string(pdir.join("link"))
                .with_context(|| format!("reading the link of parent layer {p}"))?;
            let mut lower = format!("l/{}", plink.trim());
            if let Ok(pl) = std::fs::read_to_string(pdir.join("lower")) {
                lower = format!("{lower}:{}", pl.trim());
            }
            std::fs::write(dir.join("lower"), lower)?;
        }
    }
    let opts = UnpackOptions {
        whiteouts: WhiteoutMode::Overlay {
            user_xattr: crate::paths::rootless(),
        },
        devices: !crate::paths::rootless(),
        chown: rustix::process::geteuid().is_root(),
    };
    crate::layer::unpack_tar(std::io::BufReader::new(File::open(l.tar)?), &diff, &opts)
        .context("unpacking the layer")?;
    let split = d.tar_split(&l.id);
    let tmp = split.with_extension("gz.lade-tmp");
    let facts = {
        let out = File::create(&tmp)?;
        let facts = tarsplit::write(&mut File::open(l.tar)?, std::io::BufWriter::new(&out))?;
        out.sync_all()?;
        facts
    };
    set_mode(&tmp, 0o600)?;
    std::fs::rename(&tmp, &split)?;
    Ok(facts)
}

/// The image record to write.
pub struct NewImage {
    pub id: String,
    pub top_layer: Option<String>,
    pub name: Option<String>,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub created: Option<String>,
}

/// Add (or update) an image and give it its name, taken from any image that had it, as
/// `CreateImage` + `AddNames` do. The caller holds images.lock exclusive (and layers.lock before it).
pub fn put_image(d: &Dirs, held: &lock::Held, im: &NewImage) -> Result<()> {
    let mut list = read_list(&d.images_json())?;
    let manifest_key = format!("manifest-{}", im.manifest_digest);
    let items: [(&str, &[u8], &str); 3] = [
        (&im.config_digest, &im.config, &im.config_digest),
        (&manifest_key, &im.manifest, &im.manifest_digest),
        ("manifest", &im.manifest, &im.manifest_digest),
    ];
    let dir = d.image_dir(&im.id);
    mkdir(&dir, 0o700)?;
    for (key, data, _) in &items {
        let p = dir.join(big_data_file(key));
        crate::fsutil::write_atomic(&p, data)
            .with_context(|| format!("writing {}", p.display()))?;
        set_mode(&p, 0o600)?;
    }
    let pos = list.iter().position(|x| str_of(x, "id") == Some(&im.id));
    let mut rec = match pos {
        Some(i) => {
            let old = &list[i];
            if str_of(old, "layer") != im.top_layer.as_deref() {
                bail!(
                    "image {} is already in the store with other layers; remove it first (podman rmi)",
                    im.id
                );
            }
            old.clone()
        }
        None => json!({
            "id": im.id,
            "digest": im.manifest_digest,
            "created": im.created.clone().unwrap_or_else(now),
            "metadata": "{}",
        }),
    };
    if let Some(t) = &im.top_layer {
        rec["layer"] = json!(t);
    }
    let obj = rec.as_object_mut().expect("an object");
    let mut names: Vec<Value> = obj
        .get("big-data-names")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (key, data, digest) in &items {
        if !names.iter().any(|n| n == key) {
            names.push(json!(key));
        }
        set_in(obj, "big-data-sizes", key, json!(data.len()));
        set_in(obj, "big-data-digests", key, json!(digest));
    }
    obj.insert("big-data-names".into(), Value::Array(names));
    if let Some(name) = &im.name {
        for other in list.iter_mut() {
            remove_name(other, name);
        }
        let mut n: Vec<Value> = obj
            .get("names")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !n.iter().any(|x| x == name) {
            n.push(json!(name));
        }
        obj.insert("names".into(), Value::Array(n));
        let mut h: Vec<Value> = vec![json!(name)];
        h.extend(
            obj.get("names-history")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|x| *x != name)
                .cloned(),
        );
        obj.insert("names-history".into(), Value::Array(h));
    }
    match pos {
        Some(i) => list[i] = rec,
        None => list.push(rec),
    }
    held.record_write()?;
    write_list(&d.images_json(), &list)
}

fn set_in(obj: &mut serde_json::Map<String, Value>, map: &str, key: &str, v: Value) {
    let m = obj.entry(map).or_insert_with(|| json!({}));
    if let Some(m) = m.as_object_mut() {
        m.insert(key.to_string(), v);
    }
}

fn remove_name(image: &mut Value, name: &str) {
    if let Some(a) = image.get_mut("names").and_then(Value::as_array_mut) {
        a.retain(|n| n != name);
        if a.is_empty() {
            image.as_object_mut().map(|o| o.remove("names"));
        }
    }
}

/// Rebuild a layer's tar from its tar-split and its diff directory into `out`. The caller holds layers.lock.
pub fn layer_tar(d: &Dirs, id: &str, out: impl std::io::Write) -> Result<u64> {
    let split = d.tar_split(id);
    let f = File::open(&split).with_context(|| {
        format!(
            "layer {id} has no tar-split ({}): its exact tar cannot be rebuilt",
            split.display()
        )
    })?;
    let diff = d.layer_dir(id).join("diff");
    let root = rustix::fs::open(
        &diff,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("opening {}", diff.display()))?;
    tarsplit::assemble(
        f,
        |name| {
            let rel = clean(name)?;
            let fd = crate::layer::open_beneath(
                &root,
                &rel,
                rustix::fs::OFlags::RDONLY,
                crate::layer::Within::Root,
            )
            .map_err(|e| crate::layer::beneath_error(e, &rel.to_string_lossy()))?;
            Ok(File::from(fd))
        },
        out,
    )
}

/// `./a/b` → `a/b`; `..` refused (tar-split names come from the store, but are never trusted to stay inside).
fn clean(raw: &[u8]) -> Result<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = PathBuf::new();
    for c in Path::new(std::ffi::OsStr::from_bytes(raw)).components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => bail!("refusing a tar-split name with `..`"),
            _ => {}
        }
    }
    Ok(out)
}
