//! A step's root filesystem: an overlay (lower = cached layer dirs, upper = the step's changes) or, where overlay
//! is unavailable, a copy of the merged lowers, diffed against a pristine copy afterwards.

use crate::layer::{
    DiffOptions, DiffSource, LayerBlob, LayerCache, UnpackOptions, WhiteoutMode, unpack_tar,
    write_diff, write_tar,
};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which rootfs to build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RootfsMode {
    /// overlay when the kernel has it, else copy.
    #[default]
    Auto,
    Overlay,
    Copy,
}

/// How the step runner mounts a rootfs (made by [`Snapshot`]; opaque to callers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootfsSpec {
    /// lowers top-most first, as overlayfs wants them.
    Overlay {
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
        merged: PathBuf,
        user_xattr: bool,
    },
    /// A plain directory (copy mode).
    Dir { path: PathBuf },
}

/// Where a snapshot lives: a temporary dir (a build step's, removed when dropped) or a kept one (a working
/// container's, which outlives the process).
enum SnapDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

/// One step's rootfs; removed when dropped (unless made by [`Snapshot::kept_overlay`]/[`Snapshot::kept_dir`]).
pub struct Snapshot {
    dir: SnapDir,
    spec: RootfsSpec,
    /// Copy mode: the merged lowers as they were before the step.
    base: Option<PathBuf>,
}

fn overlay_available() -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .is_ok_and(|f| f.lines().any(|l| l.trim_end().ends_with("\toverlay")))
}

impl Snapshot {
    /// Prepare a rootfs over `lowers` (unpacked layer dirs in overlay form, base first) in a new directory
    /// under `steps_dir`, which must be on the same filesystem as the layer cache.
    pub fn prepare(steps_dir: &Path, lowers: &[PathBuf], mode: RootfsMode) -> Result<Snapshot> {
        std::fs::create_dir_all(steps_dir)
            .with_context(|| format!("creating {}", steps_dir.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("step-")
            .tempdir_in(steps_dir)
            .context("creating a step dir")?;
        let overlay = match mode {
            RootfsMode::Overlay => true,
            RootfsMode::Copy => false,
            RootfsMode::Auto => {
                overlay_available() && std::env::var_os("LADE_NO_OVERLAY").is_none()
            }
        };
        let d = dir.path();
        if overlay {
            let (upper, work, merged, empty) = (
                d.join("upper"),
                d.join("work"),
                d.join("merged"),
                d.join("empty"),
            );
            for p in [&upper, &work, &merged, &empty] {
                std::fs::create_dir(p).with_context(|| format!("creating {}", p.display()))?;
            }
            let mut l: Vec<PathBuf> = Self::distinct_lowers(lowers).into_iter().rev().collect();
            if l.is_empty() {
                l.push(empty); // overlay needs at least one lower
            }
            let user_xattr = crate::paths::rootless();
            Ok(Snapshot {
                spec: RootfsSpec::Overlay {
                    lowers: l,
                    upper,
                    work,
                    merged,
                    user_xattr,
                },
                dir: SnapDir::Temp(dir),
                base: None,
            })
        } else {
            let base = d.join("base");
            let rootfs = d.join("rootfs");
            std::fs::create_dir(&base)?;
            std::fs::create_dir(&rootfs)?;
            // Every layer applied in order, repeats included: the literal meaning of a layer list.
            for lower in lowers {
                merge_lower(lower, &base).with_context(|| {
                    format!("copying layer {} into the rootfs", lower.display())
                })?;
            }
            copy_tree(&base, &rootfs)?;
            Ok(Snapshot {
                spec: RootfsSpec::Dir { path: rootfs },
                dir: SnapDir::Temp(dir),
                base: Some(base),
            })
        }
    }

    /// `lowers` (base first) with every repeated dir kept only at its top-most place: overlayfs refuses the same
    /// lower twice (ELOOP), which a layer listed twice or two steps with the same diff_id (say two `RUN` that
    /// change nothing) would give it.
    ///
    /// This is the same tree as applying every layer in order. Overlay resolves a path top-down: the first layer
    /// that has an entry for it (or a whiteout, an opaque dir or a non-directory above it) decides; a plain
    /// directory only adds its children, each resolved the same way. Take a dir that occurs at places i < j.
    /// Every path that reaches place i on the way down went through place j first without being decided
    /// there, i.e. the same dir had nothing that decides it; so place i decides nothing either, and a directory
    /// it holds was already found at j (and a higher directory's metadata wins). Dropping place i changes no
    /// lookup: A, B, A resolves as B, A, not as A, B. tests/tests/repeated_layers.rs checks it against buildah
    /// with whiteouts and opaque dirs in B.
    pub fn distinct_lowers(lowers: &[PathBuf]) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::with_capacity(lowers.len());
        for (i, l) in lowers.iter().enumerate() {
            if !lowers[i + 1..].contains(l) {
                out.push(l.clone());
            }
        }
        out
    }

    /// A working container's overlay rootfs: `dir/upper`, `dir/work` and `dir/merged` (created when missing)
    /// over `lowers` (base first). Nothing is removed when it is dropped. The overlay's own work dir is
    /// emptied first: a mount made `volatile` leaves a marker there that refuses the next mount.
    pub fn kept_overlay(dir: &Path, lowers: &[PathBuf]) -> Result<Snapshot> {
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
        for p in [&upper, &merged] {
            std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
        }
        if work.exists() {
            std::fs::remove_dir_all(&work)
                .with_context(|| format!("clearing the overlay work dir {}", work.display()))?;
        }
        std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        let mut l: Vec<PathBuf> = Self::distinct_lowers(lowers).into_iter().rev().collect();
        if l.is_empty() {
            let empty = dir.join("empty");
            std::fs::create_dir_all(&empty)?;
            l.push(empty);
        }
        Ok(Snapshot {
            spec: RootfsSpec::Overlay {
                lowers: l,
                upper,
                work,
                merged,
                user_xattr: crate::paths::rootless(),
            },
            dir: SnapDir::Kept(dir.to_path_buf()),
            base: None,
        })
    }

    /// A rootfs that is already there (a working container's mounted overlay at `rootfs`); `dir` holds the
    /// step's scratch files. Nothing is removed when it is dropped, and it cannot be committed.
    pub fn kept_dir(dir: &Path, rootfs: &Path) -> Snapshot {
        Snapshot {
            spec: RootfsSpec::Dir {
                path: rootfs.to_path_buf(),
            },
            dir: SnapDir::Kept(dir.to_path_buf()),
            base: None,
        }
    }

    /// Mount this rootfs at its merged dir in the current mount namespace (overlay only) and return that
    /// dir; the caller unmounts it.
    pub fn mount(&self) -> Result<PathBuf> {
        super::child::mount_rootfs(&self.spec)
    }

    /// The step's directory (scratch files live here too).
    pub fn dir(&self) -> &Path {
        match &self.dir {
            SnapDir::Temp(t) => t.path(),
            SnapDir::Kept(p) => p,
        }
    }

    /// Whether this snapshot uses overlayfs.
    pub fn is_overlay(&self) -> bool {
        matches!(self.spec, RootfsSpec::Overlay { .. })
    }

    /// Where the step's changes are: the overlay upper dir, or the whole rootfs in copy mode.
    pub fn upper(&self) -> &Path {
        match &self.spec {
            RootfsSpec::Overlay { upper, .. } => upper,
            RootfsSpec::Dir { path } => path,
        }
    }

    pub(crate) fn rootfs_spec(&self) -> RootfsSpec {
        self.spec.clone()
    }

    /// Remove the mountpoints a step's setup created (empty files and directories only), deepest first. Paths
    /// are resolved without following any symlink the step may have put in their way.
    pub(crate) fn remove_artifacts(&self, artifacts: &[PathBuf]) -> Result<()> {
        use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
        let mut list: Vec<&PathBuf> = artifacts.iter().collect();
        list.sort();
        list.dedup();
        let upper = rustix::fs::open(
            self.upper(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening {}", self.upper().display()))?;
        for rel in list.iter().rev() {
            let (Some(name), parent) = (rel.file_name(), rel.parent().unwrap_or(Path::new("")))
            else {
                continue;
            };
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            let flags =
                ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            let Ok(dir) = rustix::fs::openat2(
                &upper,
                parent,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                flags,
            ) else {
                continue;
            };
            let Ok(st) = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    let _ = rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR); // only when empty
                }
                FileType::RegularFile if st.st_size == 0 => {
                    rustix::fs::unlinkat(&dir, name, AtFlags::empty())
                        .with_context(|| format!("removing mountpoint {}", rel.display()))?
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Turn the step's changes into a layer blob (a temp file in `tmp_dir`) and put its unpacked form into
    /// `cache`, returning the blob and the cached dir (the next step's top lower).
    pub fn commit(
        self,
        cache: &LayerCache,
        tmp_dir: &Path,
        opts: &DiffOptions,
    ) -> Result<(LayerBlob, PathBuf)> {
        match (&self.spec, &self.base) {
            (RootfsSpec::Overlay { upper, .. }, _) => {
                let blob = write_diff(DiffSource::OverlayUpper(upper), tmp_dir, opts)?;
                let dir = cache.adopt(&blob.diff_id, upper)?;
                Ok((blob, dir))
            }
            (RootfsSpec::Dir { path }, Some(base)) => {
                let blob = write_diff(
                    DiffSource::Compare {
                        lower: base,
                        upper: path,
                    },
                    tmp_dir,
                    opts,
                )?;
                let file = blob.path().to_path_buf();
                let dir = cache
                    .get_or_unpack(&blob.diff_id, || Ok(Box::new(std::fs::File::open(&file)?)))?;
                Ok((blob, dir))
            }
            (RootfsSpec::Dir { .. }, None) => {
                anyhow::bail!("a rootfs that is already mounted cannot be committed as a step")
            }
        }
    }
}

/// Apply one lower dir in overlay form onto `dest` (char 0/0 removes, opaque dirs are emptied first), or copy a
/// plain tree: through the layer writer and the safe unpacker, so whiteouts and metadata follow one code path.
fn merge_lower(lower: &Path, dest: &Path) -> Result<()> {
    through_tar(DiffSource::OverlayUpper(lower), dest)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    through_tar(DiffSource::Tree(from), to)
}

fn through_tar(source: DiffSource<'_>, dest: &Path) -> Result<()> {
    use std::io::Seek;
    let mut file =
        tempfile::tempfile_in(dest.parent().unwrap_or(dest)).context("creating a temp file")?;
    write_tar(source, &mut file, None)?;
    file.seek(std::io::SeekFrom::Start(0))?;
    unpack_tar(
        file,
        dest,
        &UnpackOptions {
            whiteouts: WhiteoutMode::Apply,
            ..Default::default()
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_lowers_keep_their_top_most_place() {
        let p = |s: &str| PathBuf::from(s);
        let got = Snapshot::distinct_lowers(&[p("a"), p("b"), p("a"), p("c"), p("c")]);
        assert_eq!(got, vec![p("b"), p("a"), p("c")]);
        assert!(Snapshot::distinct_lowers(&[]).is_empty());
    }
}
