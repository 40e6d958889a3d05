//! `--output` and `--push`: a built image copied out of the store through the copy engine (an OCI layout, an
//! oci-archive, a docker-archive, a registry), or its root filesystem written to a directory (`type=local`)
//! or a tar file (`type=tar`), or podman's store (`type=containers-storage[,name=REF]`).
//!
//! Spec syntax, as buildx/buildah write it: `type=oci,dest=DIR[,name=REF]`, `type=oci-archive,dest=FILE`,
//! `type=docker-archive,dest=FILE[,name=NAME:TAG]`, `type=registry,name=HOST/REPO:TAG` (`dest=` is accepted
//! for the name too), `type=local,dest=DIR`, `type=tar,dest=FILE` (`-`: stdout). As buildah, a bare `DIR`
//! means `type=local,dest=DIR` and a bare `-` a tar on stdout.

use crate::copy::{CopyOptions, CopyReport, MultiArch, copy_image};
use crate::layer::{DiffSource, UnpackOptions, WhiteoutMode, unpack, write_tar};
use crate::oci::document::{self, Manifest};
use crate::store::Store;
use crate::transport::containers_storage::CsDestination;
use crate::transport::docker_archive::DockerArchiveDestination;
use crate::transport::local::LocalSource;
use crate::transport::oci::OciDestination;
use crate::transport::oci_archive::OciArchiveDestination;
use crate::transport::{ImageDestination, ImageSource, SystemContext, docker};
use anyhow::{Context, Result, bail};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The reference an OCI layout or archive names the image by when `name=` is not given (what
/// `umoci unpack --image DIR` and `skopeo … oci:DIR:latest` look for).
pub const DEFAULT_OCI_REF: &str = "latest";

/// One `--output` destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputSpec {
    /// An OCI image layout directory (created, or added to), the image named `name` in its index.
    Oci { dest: PathBuf, name: String },
    /// An OCI layout in a tar file.
    OciArchive { dest: PathBuf, name: String },
    /// A `docker save` tar; `name` becomes its RepoTags entry.
    DockerArchive { dest: PathBuf, name: Option<String> },
    /// A registry reference (`HOST/REPO:TAG`); what `--push` uses.
    Registry(String),
    /// The image's root filesystem, layers applied, in a new (or empty) directory.
    Local(PathBuf),
    /// The image's root filesystem as one tar file (`-`: stdout).
    Tar(PathBuf),
    /// podman's store: `name=` is a `containers-storage:` reference (`[overlay@ROOT+RUNROOT]NAME:TAG` or
    /// `NAME:TAG`); without it, the image's own name in the default store.
    ContainersStorage(Option<String>),
}

impl std::str::FromStr for OutputSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<OutputSpec> {
        const HELP: &str = "expected type=oci|oci-archive|docker-archive|registry|containers-storage|local|tar,dest=… \
                            (e.g. type=oci,dest=out or type=registry,name=HOST/REPO:TAG)";
        if s.is_empty() {
            bail!("--output is empty; {HELP}");
        }
        if s == "-" {
            return Ok(OutputSpec::Tar(PathBuf::from("-")));
        }
        if !s.contains('=') && !s.contains(',') {
            return Ok(OutputSpec::Local(PathBuf::from(s)));
        }
        let (mut kind, mut dest, mut name) = (None, None, None);
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                bail!("--output {s:?}: `{part}` is not KEY=VALUE; {HELP}");
            };
            if v.is_empty() {
                bail!("--output {s:?}: `{k}` has no value; {HELP}");
            }
            let slot = match k {
                "type" => &mut kind,
                "dest" => &mut dest,
                "name" => &mut name,
                other => bail!("--output {s:?}: unknown key `{other}` (known: type, dest, name)"),
            };
            if slot.replace(v.to_string()).is_some() {
                bail!("--output {s:?}: `{k}` is given twice");
            }
        }
        let Some(kind) = kind else {
            bail!("--output {s:?}: no type; {HELP}");
        };
        let need_dest = |what: &str| -> Result<PathBuf> {
            match &dest {
                Some(d) => Ok(PathBuf::from(d)),
                None => bail!("--output {s:?}: type={kind} needs dest={what}"),
            }
        };
        let no_name = || -> Result<()> {
            if name.is_some() {
                bail!("--output {s:?}: type={kind} takes no name");
            }
            Ok(())
        };
        Ok(match kind.as_str() {
            "oci" => OutputSpec::Oci {
                dest: need_dest("DIR")?,
                name: name.clone().unwrap_or_else(|| DEFAULT_OCI_REF.into()),
            },
            "oci-archive" => OutputSpec::OciArchive {
                dest: need_dest("FILE")?,
                name: name.clone().unwrap_or_else(|| DEFAULT_OCI_REF.into()),
            },
            "docker-archive" => {
                if let Some(n) = &name {
                    crate::reference::parse(n)
                        .with_context(|| format!("--output {s:?}: name={n}"))?;
                }
                OutputSpec::DockerArchive {
                    dest: need_dest("FILE")?,
                    name: name.clone(),
                }
            }
            "registry" | "image" => {
                let r = match (&name, &dest) {
                    (Some(_), Some(_)) => {
                        bail!("--output {s:?}: give the registry reference once, as name=")
                    }
                    (Some(r), None) | (None, Some(r)) => r.clone(),
                    (None, None) => {
                        bail!("--output {s:?}: type=registry needs name=HOST/REPO:TAG")
                    }
                };
                let r = r.strip_prefix("docker://").unwrap_or(&r).to_string();
                crate::reference::parse(&r).with_context(|| format!("--output {s:?}"))?;
                OutputSpec::Registry(r)
            }
            "containers-storage" => {
                let n = match (&name, &dest) {
                    (Some(_), Some(_)) => {
                        bail!("--output {s:?}: give the image name once, as name=")
                    }
                    (Some(n), None) | (None, Some(n)) => Some(
                        n.strip_prefix("containers-storage:")
                            .unwrap_or(n)
                            .to_string(),
                    ),
                    (None, None) => None,
                };
                if let Some(n) = &n {
                    crate::transport::containers_storage::CsRef::parse(n)
                        .with_context(|| format!("--output {s:?}"))?;
                }
                OutputSpec::ContainersStorage(n)
            }
            "local" => {
                no_name()?;
                OutputSpec::Local(need_dest("DIR")?)
            }
            "tar" => {
                no_name()?;
                OutputSpec::Tar(need_dest("FILE")?)
            }
            other => bail!("--output {s:?}: unknown type `{other}`; {HELP}"),
        })
    }
}

impl fmt::Display for OutputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputSpec::Oci { dest, name } => {
                write!(f, "type=oci,dest={},name={name}", dest.display())
            }
            OutputSpec::OciArchive { dest, name } => {
                write!(f, "type=oci-archive,dest={},name={name}", dest.display())
            }
            OutputSpec::DockerArchive { dest, name } => {
                write!(f, "type=docker-archive,dest={}", dest.display())?;
                match name {
                    Some(n) => write!(f, ",name={n}"),
                    None => Ok(()),
                }
            }
            OutputSpec::Registry(r) => write!(f, "type=registry,name={r}"),
            OutputSpec::Local(d) => write!(f, "type=local,dest={}", d.display()),
            OutputSpec::Tar(d) => write!(f, "type=tar,dest={}", d.display()),
            OutputSpec::ContainersStorage(None) => write!(f, "type=containers-storage"),
            OutputSpec::ContainersStorage(Some(n)) => {
                write!(f, "type=containers-storage,name={n}")
            }
        }
    }
}

/// Write the store image `image` (a name, or an image ID) to `spec`.
pub fn export(
    store: &Store,
    image: &str,
    spec: &OutputSpec,
    sys: &SystemContext,
    handle: &tokio::runtime::Handle,
    events: &crate::events::Events,
) -> Result<()> {
    match spec {
        OutputSpec::Local(dir) => {
            return export_rootfs(store, image, dir)
                .with_context(|| format!("writing `{image}` to {spec}"));
        }
        OutputSpec::Tar(file) => {
            return export_tar(store, image, file)
                .with_context(|| format!("writing `{image}` to {spec}"));
        }
        _ => {}
    }
    let src = LocalSource::open(store.root(), image)?;
    let opts = CopyOptions {
        multi_arch: MultiArch::All,
        retry_times: sys.retry_times,
        tmp_dir: store.root().join("lade").join("tmp"),
        events: events.clone(),
        ..CopyOptions::default()
    };
    let report = block_on(handle, async {
        let dst: Box<dyn ImageDestination> = match spec {
            OutputSpec::Oci { dest, name } => Box::new(OciDestination::open(dest, Some(name))?),
            OutputSpec::OciArchive { dest, name } => {
                Box::new(OciArchiveDestination::create(dest, Some(name))?)
            }
            OutputSpec::DockerArchive { dest, name } => {
                Box::new(DockerArchiveDestination::create(dest, name.as_deref())?)
            }
            OutputSpec::Registry(r) => docker::open_destination(r, sys).await?,
            OutputSpec::ContainersStorage(n) => {
                Box::new(CsDestination::open(n.as_deref().unwrap_or(image))?)
            }
            OutputSpec::Local(_) | OutputSpec::Tar(_) => unreachable!("handled above"),
        };
        copy_image(&src as &dyn ImageSource, dst.as_ref(), &opts).await
    })
    .with_context(|| format!("writing `{image}` to {spec}"))?;
    log_report(&report);
    Ok(())
}

fn log_report(r: &CopyReport) {
    tracing::info!(
        "wrote {} to {}: manifest {}, {} blobs written, {} already there",
        r.source,
        r.destination,
        r.digest,
        r.blobs_copied,
        r.blobs_skipped
    );
}

/// Run `fut` to completion from a plain thread, or from a helper thread when already inside a runtime.
fn block_on<F>(handle: &tokio::runtime::Handle, fut: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| match s.spawn(|| handle.block_on(fut)).join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        })
    } else {
        handle.block_on(fut)
    }
}

/// Apply the layers of store image `image`, in order, onto the empty directory `into`.
fn apply_layers(store: &Store, image: &str, into: &Path) -> Result<()> {
    let img = store.image(image)?;
    let manifest: Manifest = document::parse(&img.manifest)
        .with_context(|| format!("`{image}`: the manifest is not valid"))?;
    let opts = UnpackOptions {
        whiteouts: WhiteoutMode::Apply,
        ..Default::default()
    };
    for l in &manifest.layers {
        let d: crate::transport::Digest = l.digest.parse()?;
        let path = store.layout().blob_path(&d);
        let f = std::fs::File::open(&path)
            .with_context(|| format!("layer {d} is missing from the store"))?;
        unpack(std::io::BufReader::with_capacity(1 << 20, f), into, &opts)
            .with_context(|| format!("applying layer {d} of `{image}`"))?;
    }
    Ok(())
}

/// The directory holding `path` (`.` for a bare name), created when missing.
fn parent_of(path: &Path) -> Result<PathBuf> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    Ok(parent)
}

/// `type=local`: the root filesystem made in a temp dir beside `dir`, renamed into place (`dir` must not
/// exist, or be empty).
fn export_rootfs(store: &Store, image: &str, dir: &Path) -> Result<()> {
    if let Ok(mut rd) = std::fs::read_dir(dir) {
        if rd.next().is_some() {
            bail!(
                "{} is not empty; type=local writes into a new or empty directory",
                dir.display()
            );
        }
    } else if dir.exists() {
        bail!("{} exists and is not a directory", dir.display());
    }
    let parent = parent_of(dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(".lade-rootfs-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temp dir in {}", parent.display()))?;
    apply_layers(store, image, tmp.path())?;
    if dir.exists() {
        std::fs::remove_dir(dir).with_context(|| format!("replacing {}", dir.display()))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        anyhow::Error::new(e).context(format!("moving the root filesystem to {}", dir.display()))
    })
}

/// `type=tar`: the root filesystem as one tar (sorted, ownership as recorded), written to a temp file
/// beside `file` and renamed into place, or streamed to stdout for `-`.
fn export_tar(store: &Store, image: &str, file: &Path) -> Result<()> {
    let work_dir = store.root().join("lade").join("tmp");
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    let tree = tempfile::Builder::new()
        .prefix(".rootfs-")
        .tempdir_in(&work_dir)
        .with_context(|| format!("creating a temp dir in {}", work_dir.display()))?;
    apply_layers(store, image, tree.path())?;
    if file == Path::new("-") {
        let out = std::io::BufWriter::new(std::io::stdout().lock());
        let mut out = write_tar(DiffSource::Tree(tree.path()), out, None)?;
        out.flush().context("writing the tar to stdout")?;
        return Ok(());
    }
    let parent = parent_of(file)?;
    let tmp = tempfile::Builder::new()
        .prefix(".lade-tar-")
        .tempfile_in(&parent)
        .with_context(|| format!("creating a temp file in {}", parent.display()))?;
    let out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file().try_clone()?);
    let mut out = write_tar(DiffSource::Tree(tree.path()), out, None)?;
    out.flush()?;
    tmp.as_file().sync_all()?;
    tmp.persist(file)
        .with_context(|| format!("moving the tar to {}", file.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<OutputSpec> {
        s.parse()
    }

    #[test]
    fn parses_output_specs() {
        assert_eq!(
            p("type=oci,dest=out").unwrap(),
            OutputSpec::Oci {
                dest: "out".into(),
                name: "latest".into()
            }
        );
        assert_eq!(
            p("type=oci-archive,dest=/t/a.tar,name=v1").unwrap(),
            OutputSpec::OciArchive {
                dest: "/t/a.tar".into(),
                name: "v1".into()
            }
        );
        assert_eq!(
            p("dest=a.tar, type=docker-archive").unwrap(),
            OutputSpec::DockerArchive {
                dest: "a.tar".into(),
                name: None
            }
        );
        assert_eq!(
            p("type=docker-archive,dest=a.tar,name=localhost/app:1").unwrap(),
            OutputSpec::DockerArchive {
                dest: "a.tar".into(),
                name: Some("localhost/app:1".into())
            }
        );
        assert_eq!(
            p("type=registry,name=127.0.0.1:5000/app:1").unwrap(),
            OutputSpec::Registry("127.0.0.1:5000/app:1".into())
        );
        assert_eq!(
            p("type=registry,dest=docker://127.0.0.1:5000/app").unwrap(),
            OutputSpec::Registry("127.0.0.1:5000/app".into())
        );
        assert_eq!(
            p("type=local,dest=root").unwrap(),
            OutputSpec::Local("root".into())
        );
        assert_eq!(p("root").unwrap(), OutputSpec::Local("root".into()));
        assert_eq!(p("-").unwrap(), OutputSpec::Tar("-".into()));
        assert_eq!(
            p("type=tar,dest=r.tar").unwrap(),
            OutputSpec::Tar("r.tar".into())
        );
    }

    #[test]
    fn refuses_bad_specs() {
        for (s, want) in [
            ("type=oci,out", "not KEY=VALUE"),
            ("", "is empty"),
            ("dest=out", "no type"),
            ("type=oci", "needs dest=DIR"),
            ("type=tarball,dest=x", "unknown type `tarball`"),
            ("type=oci,dest=a,dest=b", "given twice"),
            ("type=oci,dest=a,push=true", "unknown key `push`"),
            ("type=registry", "needs name="),
            ("type=registry,name=UPPER/Case:1", "--output"),
            ("type=local,dest=a,name=x", "takes no name"),
            ("type=oci,dest=", "has no value"),
        ] {
            let e = format!("{:#}", p(s).unwrap_err());
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn displays_round_trip() {
        for s in [
            "type=oci,dest=out,name=latest",
            "type=oci-archive,dest=a.tar,name=v1",
            "type=docker-archive,dest=a.tar",
            "type=docker-archive,dest=a.tar,name=localhost/app:1",
            "type=registry,name=127.0.0.1:5000/app:1",
            "type=local,dest=root",
            "type=tar,dest=r.tar",
        ] {
            assert_eq!(p(s).unwrap().to_string(), s);
        }
    }

    fn layer(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, path, *data).unwrap();
        }
        tar.into_inner().unwrap()
    }

    /// An image of two layers, the second deleting `a` with a whiteout, tagged `app:1`.
    fn two_layer_store(root: &Path) -> Store {
        use crate::transport::media;
        use serde_json::json;
        let store = Store::open(root).unwrap();
        let layers = [
            layer(&[("a", b"A"), ("keep/b", b"B")]),
            layer(&[(".wh.a", b""), ("c", b"C")]),
        ];
        let mut descs = vec![];
        let mut diffs = vec![];
        for l in &layers {
            diffs.push(crate::oci::verify::sha256_digest(l).to_string());
            descs.push(store.put_manifest(l, media::OCI_LAYER).unwrap());
        }
        let cfg = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diffs}}))
        .unwrap();
        let c = store.put_manifest(&cfg, media::OCI_CONFIG).unwrap();
        let m = serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": c, "layers": descs}),
        )
        .unwrap();
        let md = store.put_manifest(&m, media::OCI_MANIFEST).unwrap();
        store.tag("app:1", &md).unwrap();
        store
    }

    #[test]
    fn exports_the_root_filesystem_with_whiteouts_applied() {
        let t = tempfile::tempdir().unwrap();
        let store = two_layer_store(&t.path().join("store"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sys = SystemContext::default();
        let dir = t.path().join("out/rootfs");
        export(
            &store,
            "app:1",
            &OutputSpec::Local(dir.clone()),
            &sys,
            rt.handle(),
            &Default::default(),
        )
        .unwrap();
        assert!(!dir.join("a").exists());
        assert_eq!(std::fs::read(dir.join("keep/b")).unwrap(), b"B");
        assert_eq!(std::fs::read(dir.join("c")).unwrap(), b"C");
        let e = export(
            &store,
            "app:1",
            &OutputSpec::Local(dir.clone()),
            &sys,
            rt.handle(),
            &Default::default(),
        );
        assert!(format!("{:#}", e.unwrap_err()).contains("not empty"));

        let file = t.path().join("rootfs.tar");
        export(
            &store,
            "app:1",
            &OutputSpec::Tar(file.clone()),
            &sys,
            rt.handle(),
            &Default::default(),
        )
        .unwrap();
        let mut names: Vec<String> = tar::Archive::new(std::fs::File::open(&file).unwrap())
            .entries()
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_string()
            })
            .collect();
        names.sort();
        assert_eq!(names, vec!["c", "keep", "keep/b"]);
        let leftovers: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".lade-"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
        let e = export(
            &store,
            "nothere:1",
            &OutputSpec::Tar(file),
            &sys,
            rt.handle(),
            &Default::default(),
        );
        assert!(format!("{:#}", e.unwrap_err()).contains("nothere:1"));
    }
}
