//! lade save, load: several local images through one oci-archive or docker-archive (air-gap transfers).

use super::Global;
use crate::copy::{CopyOptions, MultiArch, copy_image};
use crate::store::{Store, names};
use crate::transport::docker_archive::{
    DockerArchive, DockerArchiveDestination, DockerArchiveSource, DockerArchiveWriter,
};
use crate::transport::local::{LocalDestination, LocalSource};
use crate::transport::oci::{OciDestination, OciSource};
use crate::transport::oci_archive::{temp_dir_beside, unpack_tar, write_tar_of_dir};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The archive format of `lade save`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveFormat {
    /// `docker save` format, loadable by docker and podman
    #[default]
    DockerArchive,
    /// An OCI image layout in a tar
    OciArchive,
}

#[derive(clap::Args, Debug)]
pub struct SaveArgs {
    /// The archive to write
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Archive format
    #[arg(long, value_enum, default_value_t)]
    pub format: ArchiveFormat,
    /// Images to save (names, short names or IDs)
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Do not carry referrers (oci-archive only)
    #[arg(long)]
    pub no_referrers: bool,
}

fn options(g: &Global, multi_arch: MultiArch, referrers: bool) -> CopyOptions {
    CopyOptions {
        multi_arch,
        referrers,
        tmp_dir: g.root().join("lade").join("tmp"),
        ..CopyOptions::default()
    }
}

pub fn save(g: &Global, a: SaveArgs) -> Result<()> {
    let root = g.root();
    let store = Store::open(&root)?;
    let resolved: Vec<String> = a
        .images
        .iter()
        .map(|n| store.resolve(n).map(|(full, _)| full))
        .collect::<Result<_>>()?;
    super::runtime()?.block_on(async {
        match a.format {
            ArchiveFormat::DockerArchive => {
                let w = DockerArchiveWriter::create(&a.output)?;
                let opts = options(g, MultiArch::System, false);
                for full in &resolved {
                    let src = LocalSource::open(&root, full)?;
                    let dst = DockerArchiveDestination::for_writer(w.clone(), vec![full.clone()]);
                    copy_image(&src, &dst, &opts)
                        .await
                        .with_context(|| format!("saving {full}"))?;
                }
                let w2 = w.clone();
                tokio::task::spawn_blocking(move || w2.finish()).await??;
            }
            ArchiveFormat::OciArchive => {
                let tmp = temp_dir_beside(&a.output)?;
                let opts = options(g, MultiArch::All, !a.no_referrers);
                for full in &resolved {
                    let src = LocalSource::open(&root, full)?;
                    let dst = OciDestination::open(tmp.path(), Some(full))?;
                    copy_image(&src, &dst, &opts)
                        .await
                        .with_context(|| format!("saving {full}"))?;
                }
                let (dir, out) = (tmp.path().to_path_buf(), a.output.clone());
                tokio::task::spawn_blocking(move || write_tar_of_dir(&dir, &out)).await??;
            }
        }
        anyhow::Ok(())
    })?;
    eprintln!(
        "Saved {} image(s) to {}",
        resolved.len(),
        a.output.display()
    );
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// The archive to read (oci-archive or docker-archive; detected)
    #[arg(short, long, value_name = "FILE")]
    pub input: PathBuf,
    /// Print nothing but errors
    #[arg(short, long)]
    pub quiet: bool,
}

/// Whether a tar holds an OCI layout (an `oci-layout` file at the top).
fn is_oci_archive(file: &Path) -> Result<bool> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut a = tar::Archive::new(std::io::BufReader::new(f));
    for e in a
        .entries()
        .with_context(|| format!("{} is not a tar archive", file.display()))?
    {
        let e = e?;
        let p = e.path()?;
        let p = p.strip_prefix("./").unwrap_or(&p);
        if p == Path::new("oci-layout") {
            return Ok(true);
        }
        if p == Path::new("manifest.json") {
            return Ok(false);
        }
    }
    bail!(
        "{} is neither an oci-archive (no oci-layout) nor a docker-archive (no manifest.json)",
        file.display()
    )
}

fn stem(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_else(|| "image".into())
}

pub fn load(g: &Global, a: LoadArgs) -> Result<()> {
    let root = g.root();
    let store = Store::open(&root)?;
    let mut loaded: Vec<String> = vec![];
    let policy_ctx = crate::registry::SystemContext {
        store_root: root.clone(),
        ..Default::default()
    };
    super::runtime()?.block_on(async {
        if is_oci_archive(&a.input)? {
            let dir = tempfile::Builder::new().prefix("lade-load-").tempdir()?;
            unpack_tar(&a.input, dir.path())?;
            let layout = crate::store::layout::Layout::open(dir.path())?;
            let refs: Vec<String> = layout
                .entries()?
                .iter()
                .filter_map(|d| crate::store::layout::ref_of(d).map(str::to_string))
                .collect();
            if refs.is_empty() {
                bail!(
                    "{}: the archive names no image (no org.opencontainers.image.ref.name)",
                    a.input.display()
                );
            }
            let opts = options(g, MultiArch::All, true);
            for r in refs {
                let name = if r.contains('/') || r.contains(':') {
                    r.clone()
                } else {
                    format!("{}:{r}", stem(&a.input))
                };
                let src = OciSource::open(dir.path(), Some(&r))?;
                let src_name = format!("oci-archive:{}:{r}", a.input.display());
                let src = crate::policy::check(&src_name, Box::new(src), &policy_ctx).await?;
                let dst = LocalDestination::open_named(
                    &root,
                    &name,
                    names::has_domain(names::repository(&name)),
                )?;
                let rep = copy_image(src.as_ref(), &dst, &opts)
                    .await
                    .with_context(|| format!("loading {r}"))?;
                loaded.push(rep.destination.trim_start_matches("lade:").to_string());
            }
        } else {
            let archive = DockerArchive::open(&a.input)?;
            let opts = options(g, MultiArch::System, false);
            for i in 0..archive.entries.len() {
                let tags = archive.entries[i].repo_tags.clone().unwrap_or_default();
                let first = tags
                    .first()
                    .cloned()
                    .unwrap_or_else(|| format!("localhost/{}:image-{i}", stem(&a.input)));
                let src = DockerArchiveSource::from_archive(archive.clone(), i)?;
                let src_name = format!("docker-archive:{}:@{i}", a.input.display());
                let src = crate::policy::check(&src_name, Box::new(src), &policy_ctx).await?;
                let dst = LocalDestination::open_named(&root, &first, true)?;
                let rep = copy_image(src.as_ref(), &dst, &opts)
                    .await
                    .with_context(|| format!("loading {first}"))?;
                let full = rep.destination.trim_start_matches("lade:").to_string();
                let (_, desc) = store.resolve(&full)?;
                loaded.push(full);
                for t in tags.iter().skip(1) {
                    let q = names::qualify_remote(t);
                    store.layout().set_ref(&q, &desc)?;
                    loaded.push(q);
                }
            }
        }
        anyhow::Ok(())
    })?;
    if !a.quiet {
        for n in loaded {
            crate::stdout::outln!("Loaded image: {n}");
        }
    }
    Ok(())
}
