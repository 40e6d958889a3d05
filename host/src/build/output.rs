//! `--output` and `--push`: a built image copied out of the store through the copy engine (an OCI layout, an
//! oci-archive, a docker-archive, a registry), or its root filesystem written to a directory (`type=local`).
//!
//! Spec syntax, as buildx/buildah write it: `type=oci,dest=DIR[,name=REF]`, `type=oci-archive,dest=FILE`,
//! `type=docker-archive,dest=FILE[,name=NAME:TAG]`, `type=registry,name=HOST/REPO:TAG` (`dest=` is accepted
//! for the name too), `type=local,dest=DIR`.

use crate::copy::{CopyOptions, CopyReport, MultiArch, copy_image};
use crate::layer::{UnpackOptions, WhiteoutMode, unpack};
use crate::store::Store;
use crate::transport::docker_archive::DockerArchiveDestination;
use crate::transport::local::LocalSource;
use crate::transport::oci::OciDestination;
use crate::transport::oci_archive::OciArchiveDestination;
use crate::transport::{ImageDestination, ImageSource, SystemContext, docker};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::fmt;
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
}

impl std::str::FromStr for OutputSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<OutputSpec> {
        const HELP: &str = "expected type=oci|oci-archive|docker-archive|registry|local,dest=… \
                            (e.g. type=oci,dest=out or type=registry,name=HOST/REPO:TAG)";
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
            "local" => {
                no_name()?;
                OutputSpec::Local(need_dest("DIR")?)
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
) -> Result<()> {
    if let OutputSpec::Local(dir) = spec {
        return export_rootfs(store, image, dir);
    }
    let src = LocalSource::open(store.root(), image)?;
    let opts = CopyOptions {
        multi_arch: MultiArch::All,
        retry_times: sys.retry_times,
        tmp_dir: store.root().join("lade").join("tmp"),
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
            OutputSpec::Local(_) => unreachable!("handled above"),
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

/// `type=local`: the image's layers applied in order into a temp dir beside `dir`, renamed into place
/// (`dir` must not exist, or be empty).
fn export_rootfs(store: &Store, image: &str, dir: &Path) -> Result<()> {
    let img = store.image(image)?;
    let manifest: Value = serde_json::from_slice(&img.manifest)
        .with_context(|| format!("`{image}`: the manifest is not JSON"))?;
    if let Ok(mut rd) = std::fs::read_dir(dir) {
        if rd.next().is_some() {
            bail!(
                "{} is not empty; type=local writes into a new or empty directory",
                dir.display()
            );
        }
        std::fs::remove_dir(dir).with_context(|| format!("replacing {}", dir.display()))?;
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".lade-rootfs-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temp dir in {}", parent.display()))?;
    let opts = UnpackOptions {
        whiteouts: WhiteoutMode::Apply,
        ..Default::default()
    };
    for l in manifest
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let d: crate::transport::Digest = l
            .get("digest")
            .and_then(Value::as_str)
            .with_context(|| format!("`{image}`: a layer has no digest"))?
            .parse()?;
        let path = store.layout().blob_path(&d);
        let f = std::fs::File::open(&path)
            .with_context(|| format!("layer {d} is missing from the store"))?;
        unpack(std::io::BufReader::new(f), tmp.path(), &opts)
            .with_context(|| format!("applying layer {d} of `{image}`"))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        anyhow::Error::new(e).context(format!("moving the root filesystem to {}", dir.display()))
    })
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
    }

    #[test]
    fn refuses_bad_specs() {
        for (s, want) in [
            ("out", "not KEY=VALUE"),
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
        ] {
            assert_eq!(p(s).unwrap().to_string(), s);
        }
    }
}
