//! `dir:DIR`: skopeo's directory format: `manifest.json`, index children as `<hex>.manifest.json`, blobs
//! as `<hex>` (sha256) or `<algo>-<hex>`, and a `version` file.

use super::{BlobStream, Descriptor, Digest, ImageDestination, ImageSource, media};
use crate::fsutil::write_atomic;
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use std::path::{Path, PathBuf};

const VERSION: &str = "Directory Transport Version: 1.1\n";

fn blob_file(dir: &Path, d: &Digest) -> PathBuf {
    match d.algorithm().as_ref() {
        "sha256" => dir.join(d.digest()),
        a => dir.join(format!("{a}-{}", d.digest())),
    }
}

fn manifest_file(dir: &Path, instance: Option<&Digest>) -> PathBuf {
    match instance {
        None => dir.join("manifest.json"),
        Some(d) => dir.join(format!("{}.manifest.json", d.digest())),
    }
}

/// Read side of `dir:`.
pub struct DirSource {
    dir: PathBuf,
}

impl DirSource {
    pub fn open(dir: &Path) -> Result<DirSource> {
        if !dir.join("manifest.json").is_file() {
            bail!(
                "dir:{}: no manifest.json there (not written by `skopeo copy ... dir:` or lade)",
                dir.display()
            );
        }
        Ok(DirSource {
            dir: dir.to_path_buf(),
        })
    }
}

#[async_trait]
impl ImageSource for DirSource {
    fn name(&self) -> String {
        format!("dir:{}", self.dir.display())
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Vec<u8>, String)> {
        let p = manifest_file(&self.dir, instance);
        let p = match instance {
            Some(d) if !p.exists() => blob_file(&self.dir, d),
            _ => p,
        };
        let bytes = tokio::fs::read(&p)
            .await
            .with_context(|| format!("reading {}", p.display()))?;
        let mt = media::sniff(&bytes);
        Ok((bytes, mt))
    }

    async fn blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        let p = blob_file(&self.dir, desc.digest());
        let f = tokio::fs::File::open(&p)
            .await
            .with_context(|| format!("blob {} is missing: {}", desc.digest(), p.display()))?;
        Ok(Box::new(f))
    }

    fn blob_file(&self, desc: &Descriptor) -> Option<PathBuf> {
        let p = blob_file(&self.dir, desc.digest());
        p.symlink_metadata().is_ok_and(|m| m.is_file()).then_some(p)
    }
}

/// Write side of `dir:` (the directory is created; an existing one is reused).
pub struct DirDestination {
    dir: PathBuf,
}

impl DirDestination {
    pub fn create(dir: &Path) -> Result<DirDestination> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_atomic(&dir.join("version"), VERSION.as_bytes())?;
        Ok(DirDestination {
            dir: dir.to_path_buf(),
        })
    }
}

#[async_trait]
impl ImageDestination for DirDestination {
    fn name(&self) -> String {
        format!("dir:{}", self.dir.display())
    }

    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(std::fs::metadata(blob_file(&self.dir, desc.digest()))
            .is_ok_and(|m| m.len() == desc.size()))
    }

    async fn put_blob(&self, desc: &Descriptor, mut data: BlobStream) -> Result<()> {
        let target = blob_file(&self.dir, desc.digest());
        let (f, tmp) = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)?
            .into_parts();
        let mut f = tokio::fs::File::from_std(f);
        tokio::io::copy(&mut data, &mut f)
            .await
            .with_context(|| format!("writing blob {} to {}", desc.digest(), self.name()))?;
        f.sync_all().await?;
        drop(f);
        tmp.persist(&target)
            .with_context(|| format!("publishing {}", target.display()))?;
        Ok(())
    }

    async fn put_manifest(
        &self,
        bytes: &[u8],
        _media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<()> {
        write_atomic(&manifest_file(&self.dir, instance), bytes)
    }

    async fn commit(&self) -> Result<()> {
        Ok(())
    }
}
