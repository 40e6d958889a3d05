//! `oci:DIR[:REF]`: an OCI image layout directory, read and written (the local store reuses both sides with
//! fully qualified names as refs).

use super::{BlobStream, Descriptor, Digest, ImageDestination, ImageSource, media};
use crate::oci::document::{self, Desc, Manifest};
use crate::oci::manifest_descriptor;
use crate::store::layout::{Layout, REF_NAME, ref_of};
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use std::path::Path;
use std::sync::Mutex;

/// Read side of a layout: one top manifest, chosen by ref name.
pub struct OciSource {
    layout: Layout,
    top: Descriptor,
    name: String,
    /// When set, other tags are looked up as `REPOSITORY:TAG` (the local store); else as bare `TAG`.
    repository: Option<String>,
}

impl OciSource {
    /// Open `dir` and pick `reference` (or the only image when there is one and no reference was given).
    pub fn open(dir: &Path, reference: Option<&str>) -> Result<OciSource> {
        let layout = Layout::open(dir)?;
        let name = match reference {
            Some(r) => format!("oci:{}:{r}", dir.display()),
            None => format!("oci:{}", dir.display()),
        };
        let entries = layout.entries()?;
        let top = match reference {
            Some(r) => entries
                .into_iter()
                .find(|d| ref_of(d) == Some(r))
                .with_context(|| {
                    format!(
                        "{name}: no image named `{r}` in {}/index.json",
                        dir.display()
                    )
                })?,
            None => {
                if entries.len() != 1 {
                    let names: Vec<_> = entries.iter().filter_map(ref_of).collect();
                    bail!(
                        "{name}: the layout holds {} images; name one as oci:{}:REF (refs: {})",
                        entries.len(),
                        dir.display(),
                        names.join(", ")
                    );
                }
                entries.into_iter().next().expect("one entry")
            }
        };
        Ok(OciSource {
            layout,
            top,
            name,
            repository: None,
        })
    }

    /// A source over an already resolved descriptor (the local store).
    pub fn from_parts(
        layout: Layout,
        top: Descriptor,
        name: String,
        repository: Option<String>,
    ) -> OciSource {
        OciSource {
            layout,
            top,
            name,
            repository,
        }
    }

    pub fn top(&self) -> &Descriptor {
        &self.top
    }
}

/// The referrers of `subject` among a layout's `index.json` entries (manifests whose `subject` names it).
pub fn layout_referrers(layout: &Layout, subject: &Digest) -> Result<Vec<Descriptor>> {
    let mut out = vec![];
    for d in layout.entries()? {
        let mt = d.media_type().to_string();
        if !media::is_manifest(&mt) || d.size() > 4 << 20 {
            continue;
        }
        let Ok(bytes) = layout.read_blob(d.digest()) else {
            continue;
        };
        let Ok(v) = document::parse::<Manifest>(&bytes) else {
            continue;
        };
        if v.subject.as_ref().map(|s| s.digest.as_str()) == Some(subject.as_ref()) {
            let mut d = d.clone();
            if let Some(at) = (v.artifact_type.as_deref()).or(v.config.media_type.as_deref()) {
                d.set_artifact_type(Some(oci_spec::image::MediaType::from(at)));
            }
            if let Some(a) = d.annotations().clone() {
                let rest: std::collections::HashMap<_, _> =
                    a.into_iter().filter(|(k, _)| k != REF_NAME).collect();
                d.set_annotations(if rest.is_empty() { None } else { Some(rest) });
            }
            if !out.iter().any(|o: &Descriptor| o.digest() == d.digest()) {
                out.push(d);
            }
        }
    }
    Ok(out)
}

#[async_trait]
impl ImageSource for OciSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn manifest(&self, instance: Option<&Digest>) -> Result<(Vec<u8>, String)> {
        match instance {
            None => {
                let bytes = self.layout.read_blob(self.top.digest())?;
                let mt = self.top.media_type().to_string();
                let mt = if mt.is_empty() {
                    media::sniff(&bytes)
                } else {
                    mt
                };
                Ok((bytes, mt))
            }
            Some(d) => {
                let bytes = self.layout.read_blob(d)?;
                let mt = media::sniff(&bytes);
                Ok((bytes, mt))
            }
        }
    }

    async fn blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        self.layout.open_blob(desc.digest()).await
    }

    fn blob_file(&self, desc: &Descriptor) -> Option<std::path::PathBuf> {
        let p = self.layout.blob_path(desc.digest());
        p.symlink_metadata().is_ok_and(|m| m.is_file()).then_some(p)
    }

    async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        layout_referrers(&self.layout, subject.digest())
    }

    async fn tagged_manifest(&self, tag: &str) -> Result<Option<(Vec<u8>, String)>> {
        let full = match &self.repository {
            Some(r) => format!("{r}:{tag}"),
            None => tag.to_string(),
        };
        let Some(d) = self.layout.find_ref(&full)? else {
            return Ok(None);
        };
        let bytes = self.layout.read_blob(d.digest())?;
        Ok(Some((bytes, d.media_type().to_string())))
    }
}

/// Write side of a layout. Blobs land at once (content-addressed, harmless); refs only at `commit`.
pub struct OciDestination {
    layout: Layout,
    reference: Option<String>,
    repository: Option<String>,
    name: String,
    top: Mutex<Option<Descriptor>>,
    untagged: Mutex<Vec<Descriptor>>,
    tagged: Mutex<Vec<(String, Descriptor)>>,
}

impl OciDestination {
    /// Open (creating when missing) the layout at `dir`; the image will be named `reference` when given.
    pub fn open(dir: &Path, reference: Option<&str>) -> Result<OciDestination> {
        let layout = Layout::create(dir)?;
        let name = match reference {
            Some(r) => format!("oci:{}:{r}", dir.display()),
            None => format!("oci:{}", dir.display()),
        };
        Ok(Self::from_parts(
            layout,
            reference.map(str::to_string),
            None,
            name,
        ))
    }

    /// A destination into an opened layout with a ready-made ref (the local store).
    pub fn from_parts(
        layout: Layout,
        reference: Option<String>,
        repository: Option<String>,
        name: String,
    ) -> OciDestination {
        OciDestination {
            layout,
            reference,
            repository,
            name,
            top: Mutex::new(None),
            untagged: Mutex::new(vec![]),
            tagged: Mutex::new(vec![]),
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The top manifest written so far.
    pub fn top(&self) -> Option<Descriptor> {
        self.top.lock().expect("lock").clone()
    }
}

fn with_ref(desc: &Descriptor, name: &str) -> Result<Desc> {
    let mut v = Desc::from_spec(desc)?;
    (v.annotations.get_or_insert_default()).insert(REF_NAME.into(), name.into());
    Ok(v)
}

fn ref_name(d: &Desc) -> Option<&str> {
    d.annotations.as_ref()?.get(REF_NAME).map(String::as_str)
}

#[async_trait]
impl ImageDestination for OciDestination {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn blob_namespace(&self) -> Option<String> {
        let root = self.layout.root();
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        Some(format!("oci:{}", root.display()))
    }

    /// OCI types only: skopeo and umoci skip index.json entries of other media types.
    fn supported_manifest_types(&self) -> Vec<&'static str> {
        vec![media::OCI_MANIFEST, media::OCI_INDEX]
    }

    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self.layout.has_blob(desc.digest(), Some(desc.size())))
    }

    async fn put_blob(&self, desc: &Descriptor, data: BlobStream) -> Result<()> {
        self.layout
            .put_blob(desc.digest(), Some(desc.size()), data, false)
            .await
    }

    async fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        instance: Option<&Digest>,
    ) -> Result<()> {
        let digest = self.layout.put_bytes(bytes)?;
        if let Some(want) = instance
            && want != &digest
        {
            bail!(
                "{}: manifest bytes hash to {digest}, not the expected {want}",
                self.name
            );
        }
        let desc = manifest_descriptor(digest, bytes.len() as u64, media_type)?;
        match instance {
            None => *self.top.lock().expect("lock") = Some(desc),
            Some(_) => {
                let v = document::parse::<document::Subject>(bytes);
                if v.is_ok_and(|v| v.subject.is_some()) {
                    self.untagged.lock().expect("lock").push(desc);
                }
            }
        }
        Ok(())
    }

    async fn put_tagged_manifest(&self, bytes: &[u8], media_type: &str, tag: &str) -> Result<bool> {
        let digest = self.layout.put_bytes(bytes)?;
        let desc = manifest_descriptor(digest, bytes.len() as u64, media_type)?;
        let full = match &self.repository {
            Some(r) => format!("{r}:{tag}"),
            None => tag.to_string(),
        };
        self.tagged.lock().expect("lock").push((full, desc));
        Ok(true)
    }

    async fn commit(&self) -> Result<()> {
        let top = self.top.lock().expect("lock").clone();
        let untagged = std::mem::take(&mut *self.untagged.lock().expect("lock"));
        let tagged = std::mem::take(&mut *self.tagged.lock().expect("lock"));
        let mut named: Vec<(String, Desc)> = vec![];
        let mut plain: Vec<Desc> = vec![];
        for (n, d) in &tagged {
            named.push((n.clone(), with_ref(d, n)?));
        }
        match (&top, &self.reference) {
            (Some(d), Some(r)) => named.push((r.clone(), with_ref(d, r)?)),
            (Some(d), None) => plain.push(Desc::from_spec(d)?),
            (None, _) => {}
        }
        for d in &untagged {
            plain.push(Desc::from_spec(d)?);
        }
        if named.is_empty() && plain.is_empty() {
            return Ok(());
        }
        self.layout
            .update_index(|list| {
                for (n, v) in named {
                    list.retain(|e| ref_name(e) != Some(&n));
                    list.push(v);
                }
                for v in plain {
                    if !(list.iter()).any(|e| e.digest == v.digest && ref_name(e).is_none()) {
                        list.push(v);
                    }
                }
                Ok(())
            })
            .with_context(|| format!("updating the index of {}", self.name))
    }
}
