//! What leaves a working container: `commit` (its changes as one new layer over the image's, or with
//! `--squash` the whole tree as the only layer), `export` (the tree as a plain tar) and `diff` (A/C/D against
//! the image below, as `podman diff` computes them for overlay).

use super::{Container, Containers, rootfs};
use crate::build::config;
use crate::build::executor::layer_media_type;
use crate::layer::{DiffOptions, DiffSource, write_diff, write_tar};
use crate::oci::document::{self, Desc, Manifest};
use crate::transport::{Descriptor, Digest};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// How to commit.
#[derive(Clone, Debug, Default)]
pub struct CommitOptions {
    /// Names for the image (none: unnamed, listed by id).
    pub names: Vec<String>,
    /// One layer holding the whole tree instead of the image's layers plus one.
    pub squash: bool,
    /// Docker v2s2 instead of OCI.
    pub docker: bool,
    pub layer: DiffOptions,
}

/// A committed image.
#[derive(Debug)]
pub struct Committed {
    /// `sha256:<hex>` of the config (the image id).
    pub config_digest: String,
    pub manifest: Descriptor,
}

fn now() -> String {
    config::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    )
}

/// Commit `c` into the store. The caller holds the container's lock.
pub fn commit(cs: &Containers, c: &Container, opts: &CommitOptions) -> Result<Committed> {
    let store = cs.store();
    let _guard = store.writer_guard()?;
    let tmp = store.root().join("lade").join("tmp");
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let blob = if opts.squash {
        rootfs::with_mounted(cs, c, |root| {
            write_diff(DiffSource::Tree(root), &tmp, &opts.layer)
        })?
    } else {
        write_diff(
            DiffSource::OverlayUpper(&rootfs::upper(cs, c)),
            &tmp,
            &opts.layer,
        )?
    };
    let (digest, diff_id): (Digest, Digest) = (blob.digest.parse()?, blob.diff_id.parse()?);
    let (size, media_type) = (blob.size, blob.media_type());
    store.layout().adopt_blob(&digest, blob.file)?;
    store.record_diff_id(&digest, &diff_id)?;

    let created = now();
    let mut cfg = c.config.clone();
    let mut layers: Vec<(String, String, u64)> = Vec::new();
    if opts.squash {
        cfg.rootfs
            .get_or_insert_default()
            .get_or_insert_default()
            .diff_ids
            .clear();
        cfg.history = Some(Some(vec![]));
    } else {
        for l in &c.layers {
            layers.push((l.media_type.clone(), l.digest.clone(), l.size));
        }
    }
    layers.push((media_type.to_string(), digest.to_string(), size));
    config::add_layer(&mut cfg, diff_id.as_ref());
    let created_by = c.created_by.clone().unwrap_or_else(|| "/bin/sh".into());
    config::add_history(&mut cfg, &created, &created_by, false);
    if let Some(comment) = &c.history_comment
        && let Some(Some(h)) = cfg.history.as_mut()
        && let Some(last) = h.last_mut()
    {
        last.comment = Some(comment.clone());
    }
    cfg.created = Some(created);
    write_image(cs.store(), &cfg, &layers, &c.annotations, opts)
}

/// `lade import`: an image whose one layer is the filesystem in `tarball` (plain, gzip or zstd; unpacked
/// through the safe unpacker first, so nothing in it escapes), with `cfg` as its config.
pub fn import(
    store: &crate::store::Store,
    tarball: &Path,
    mut cfg: crate::oci::ImageConfig,
    comment: Option<String>,
    opts: &CommitOptions,
) -> Result<Committed> {
    let _guard = store.writer_guard()?;
    let tmp = store.root().join("lade").join("tmp");
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let work = tempfile::Builder::new()
        .prefix("import-")
        .tempdir_in(&tmp)
        .context("creating a dir for the import")?;
    let file =
        std::fs::File::open(tarball).with_context(|| format!("opening {}", tarball.display()))?;
    crate::layer::unpack(
        std::io::BufReader::new(file),
        work.path(),
        &crate::layer::UnpackOptions::default(),
    )
    .with_context(|| format!("reading {} as a tar", tarball.display()))?;
    let blob = write_diff(DiffSource::Tree(work.path()), &tmp, &opts.layer)?;
    let (digest, diff_id): (Digest, Digest) = (blob.digest.parse()?, blob.diff_id.parse()?);
    let (size, media_type) = (blob.size, blob.media_type().to_string());
    store.layout().adopt_blob(&digest, blob.file)?;
    store.record_diff_id(&digest, &diff_id)?;
    let created = now();
    config::add_layer(&mut cfg, diff_id.as_ref());
    config::add_history(
        &mut cfg,
        &created,
        "/bin/sh -c #(nop) ADD file in / ",
        false,
    );
    if let Some(comment) = comment
        && let Some(Some(h)) = cfg.history.as_mut()
        && let Some(last) = h.last_mut()
    {
        last.comment = Some(comment);
    }
    cfg.created = Some(created);
    let layers = [(media_type, digest.to_string(), size)];
    write_image(store, &cfg, &layers, &BTreeMap::new(), opts)
}

/// Config and manifest of the committed image into the store, named.
fn write_image(
    store: &crate::store::Store,
    cfg: &crate::oci::ImageConfig,
    layers: &[(String, String, u64)],
    annotations: &BTreeMap<String, String>,
    opts: &CommitOptions,
) -> Result<Committed> {
    let (manifest_mt, config_mt) = if opts.docker {
        (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
        )
    } else {
        (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
        )
    };
    let config_bytes = document::to_vec(cfg)?;
    let config_digest = store.layout().put_bytes(&config_bytes)?;
    let mut descs = Vec::new();
    for (mt, digest, size) in layers {
        let digest: Digest = digest.parse()?;
        descs.push(Desc::new(
            layer_media_type(mt, opts.docker)?,
            &digest,
            *size,
        ));
    }
    let mut manifest = Manifest {
        schema_version: 2,
        media_type: Some(manifest_mt.into()),
        config: Desc::new(config_mt, &config_digest, config_bytes.len() as u64),
        layers: descs,
        ..Manifest::default()
    };
    if !annotations.is_empty() {
        if opts.docker {
            bail!(
                "the image has annotations (`lade config --annotation`), which Docker manifests cannot hold: \
                 commit with --format oci"
            );
        }
        manifest.annotations = Some(annotations.clone());
    }
    let bytes = document::to_vec(&manifest)?;
    let desc = store.put_manifest(&bytes, manifest_mt)?;
    if opts.names.is_empty() {
        store.layout().add_untagged(&desc)?;
    }
    for n in &opts.names {
        store
            .tag(n, &desc)
            .with_context(|| format!("naming the image {n}"))?;
    }
    Ok(Committed {
        config_digest: config_digest.to_string(),
        manifest: desc,
    })
}

/// Write the container's whole tree as a plain tar to `out` (a temp file beside it, renamed into place),
/// or to stdout when `out` is None.
pub fn export(cs: &Containers, c: &Container, out: Option<&Path>) -> Result<()> {
    rootfs::with_mounted(cs, c, |root| match out {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let mut f = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("creating a temp file in {}", dir.display()))?;
            let mut w = write_tar(
                DiffSource::Tree(root),
                std::io::BufWriter::new(f.as_file_mut()),
                None,
            )?;
            w.flush()?;
            drop(w);
            f.as_file().sync_all()?;
            f.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(())
        }
        None => {
            let stdout = std::io::stdout().lock();
            let mut w = write_tar(
                DiffSource::Tree(root),
                std::io::BufWriter::new(stdout),
                None,
            )?;
            w.flush()?;
            Ok(())
        }
    })
}

/// One change, as podman prints it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// `A`, `C` or `D`.
    pub kind: char,
    pub path: String,
}

/// The changes of the overlay-form layer dir `rw` over `lowers` (base first), as containers/storage's
/// overlay changes: a whiteout is a deletion; an entry that exists in a lower (plain stat) is a change,
/// except a directory whose size, mode and mtime are unchanged; else an addition; the parent of an
/// addition or deletion is a change too. In walk (path) order.
pub fn changes(rw: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    let mut changed_dirs = std::collections::HashSet::new();
    walk(rw, rw, lowers, &mut out, &mut changed_dirs)?;
    Ok(out)
}

fn walk(
    rw: &Path,
    dir: &Path,
    lowers: &[PathBuf],
    out: &mut Vec<Change>,
    changed_dirs: &mut std::collections::HashSet<String>,
) -> Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        let full = dir.join(&name);
        let rel = full.strip_prefix(rw).unwrap_or(&full);
        let path = format!("/{}", rel.display());
        let md = std::fs::symlink_metadata(&full)?;
        let ft = md.file_type();
        let deleted = (ft.is_char_device() && md.rdev() == 0)
            || (ft.is_dir() && opaque(&full) && lowers.iter().any(|l| exists(l, &path)));
        let mut kind = 'A';
        if deleted {
            kind = 'D';
        } else {
            for l in lowers.iter().rev() {
                if let Ok(st) = std::fs::metadata(l.join(rel)) {
                    if st.is_dir()
                        && md.is_dir()
                        && st.len() == md.len()
                        && st.mode() == md.mode()
                        && same_fs_time(
                            (st.mtime(), st.mtime_nsec()),
                            (md.mtime(), md.mtime_nsec()),
                        )
                    {
                        kind = ' ';
                    } else {
                        kind = 'C';
                    }
                    break;
                }
            }
        }
        // An unchanged directory is not recorded (containers/storage returns before it does), so an addition
        // or deletion inside it reports it as changed below.
        if md.is_dir() && kind != ' ' {
            changed_dirs.insert(path.clone());
        }
        if kind != ' ' {
            if kind == 'A' || kind == 'D' {
                let parent = Path::new(&path)
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                if parent != "/" && changed_dirs.insert(parent.clone()) {
                    out.push(Change {
                        kind: 'C',
                        path: parent,
                    });
                }
            }
            out.push(Change {
                kind,
                path: path.clone(),
            });
        }
        if md.is_dir() && !deleted {
            walk(rw, &full, lowers, out, changed_dirs)?;
        }
    }
    Ok(())
}

/// containers/storage's sameFsTime: equal, or the same second where either side has no nanoseconds (a
/// tar header without them).
fn same_fs_time(a: (i64, i64), b: (i64, i64)) -> bool {
    a == b || (a.0 == b.0 && (a.1 == 0 || b.1 == 0))
}

fn exists(layer: &Path, path: &str) -> bool {
    layer.join(path.trim_start_matches('/')).exists()
}

fn opaque(dir: &Path) -> bool {
    [
        crate::layer::OVERLAY_OPAQUE_XATTR,
        crate::layer::OVERLAY_OPAQUE_USER_XATTR,
    ]
    .iter()
    .any(|x| {
        let mut buf = [0u8; 4];
        rustix::fs::lgetxattr(dir, *x, &mut buf).is_ok_and(|n| n == 1 && buf[0] == b'y')
    })
}
