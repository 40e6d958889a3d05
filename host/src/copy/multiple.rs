//! Copying an index (manifest list), nested indexes included.
//!
//! `--multi-arch system` picks one image from the index's platforms, with nested indexes flattened (an
//! entry that is itself an index contributes its images, which inherit its platform when they have none).
//! `--multi-arch all` copies every image and every nested index, children before their parent, and
//! rewrites an entry whose manifest changed digest (format conversion, recompression). `index-only`
//! writes the top index alone.

use super::{Copier, MultiArch, Written, convert, fetch_child, once, target_format};
use crate::oci::document::{self, Desc, Index, Parsed};
use crate::oci::verify::sha256_digest;
use crate::transport::{Descriptor, Digest, ImageSource, media};
use anyhow::{Context, Result, bail};

/// Indexes nested deeper than this are refused (content addressing rules out cycles; this bounds work).
const MAX_DEPTH: usize = 8;

fn descriptor(entry: &Desc, i: usize) -> Result<Descriptor> {
    entry
        .spec()
        .with_context(|| format!("index entry {i} is not a valid descriptor"))
}

/// The index and the bytes it was read from (its digest is theirs while nothing changes).
fn parse_index(src: &dyn ImageSource, bytes: Vec<u8>) -> Result<Parsed<Index>> {
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: an index is not valid JSON", src.name()))?;
    if !v.get("manifests").is_some_and(serde_json::Value::is_array) {
        bail!("{}: an index has no `manifests` list", src.name());
    }
    let doc = serde_json::from_value(v)
        .with_context(|| format!("{}: an index is not valid", src.name()))?;
    Ok(Parsed { raw: bytes, doc })
}

/// Copy the index `bytes` (of type `mt`, the top manifest of `src`); returns what was written under the
/// destination reference.
impl Copier<'_> {
    pub(crate) async fn copy_index(&self, bytes: Vec<u8>, mt: &str) -> Result<Written> {
        let Copier { src, dst, opts, .. } = *self;
        let index = parse_index(src, bytes)?;
        let mode = if dst.supports_index() {
            opts.multi_arch
        } else {
            MultiArch::System
        };
        if mode == MultiArch::System {
            let flat = flatten(src, &index.doc, 0).await?;
            let flat = Index {
                manifests: flat,
                ..Index::default()
            };
            let i =
                crate::oci::platform::choose(&flat, &opts.platform).with_context(|| src.name())?;
            let flat = flat.manifests;
            let d = descriptor(&flat[i], i)?;
            let (child, child_mt) = fetch_child(src, &d).await?;
            if !media::is_manifest(&child_mt) {
                bail!(
                    "{}: the image chosen for this platform ({}) is a `{child_mt}`, not an image manifest",
                    src.name(),
                    d.digest()
                );
            }
            let w = self.copy_single(&child, &child_mt, None).await?;
            if opts.referrers {
                self.copy_referrers(d.digest(), d.size(), &child_mt, &w, 0)
                    .await?;
            }
            return Ok(w);
        }
        let w = self.copy_tree(&index, mt, mode, None, 0).await?;
        if opts.referrers {
            self.copy_referrers(&index.digest(), index.raw.len() as u64, mt, &w, 0)
                .await?;
        }
        Ok(w)
    }
}

/// The image entries of `index` with nested indexes expanded, depth first, in order. An image without a
/// platform takes the platform of the nested index entry that holds it.
async fn flatten(src: &dyn ImageSource, index: &Index, depth: usize) -> Result<Vec<Desc>> {
    let mut out = vec![];
    for (i, e) in index.manifests.iter().enumerate() {
        let d = descriptor(e, i)?;
        if !media::is_index(d.media_type().as_ref()) {
            out.push(e.clone());
            continue;
        }
        if depth + 1 >= MAX_DEPTH {
            bail!(
                "{}: indexes nested more than {MAX_DEPTH} deep (at {})",
                src.name(),
                d.digest()
            );
        }
        let (b, _) = fetch_child(src, &d).await?;
        let nested = parse_index(src, b)?;
        for mut leaf in Box::pin(flatten(src, &nested.doc, depth + 1)).await? {
            if leaf.platform.is_none() {
                leaf.platform = e.platform.clone();
            }
            out.push(leaf);
        }
    }
    Ok(out)
}

/// Copy `index` (of type `mt`) and, in `All` mode, everything under it; write it with
/// `instance` (Some for a nested index, by digest). Referrers of each child follow here; the caller copies
/// those of `index` itself.
impl Copier<'_> {
    pub(crate) async fn copy_tree(
        &self,
        index: &Parsed<Index>,
        mt: &str,
        mode: MultiArch,
        instance: Option<&Digest>,
        depth: usize,
    ) -> Result<Written> {
        let Copier { src, dst, opts, .. } = *self;
        let mut new_index = index.doc.clone();
        let mut changed = false;
        if mode == MultiArch::All {
            for (i, e) in index.doc.manifests.iter().enumerate() {
                let d = descriptor(e, i)?;
                let (child, child_mt) = fetch_child(src, &d).await?;
                let w = if media::is_index(&child_mt) {
                    if depth + 1 >= MAX_DEPTH {
                        bail!(
                            "{}: indexes nested more than {MAX_DEPTH} deep (at {})",
                            src.name(),
                            d.digest()
                        );
                    }
                    let nested = parse_index(src, child)?;
                    Box::pin(self.copy_tree(&nested, &child_mt, mode, Some(d.digest()), depth + 1))
                        .await?
                } else if media::is_manifest(&child_mt) {
                    self.copy_single(&child, &child_mt, Some(d.digest()))
                        .await?
                } else {
                    bail!(
                        "{}: index entry {} is a `{child_mt}`, neither an image manifest nor an index",
                        src.name(),
                        d.digest()
                    );
                };
                if w.digest != *d.digest() {
                    changed = true;
                    let entry = &mut new_index.manifests[i];
                    entry.digest = w.digest.to_string();
                    entry.size = w.size;
                    entry.media_type = Some(w.media_type.clone());
                }
                if opts.referrers {
                    self.copy_referrers(d.digest(), d.size(), &child_mt, &w, 0)
                        .await?;
                }
            }
        }
        let target = target_format(opts, dst, mt, true)?;
        if let Some(f) = target
            && convert::ManifestFormat::of(mt) != Some(f)
        {
            new_index = convert::convert_index(&new_index, f)?;
            changed = true;
        }
        let (out, out_mt) = if changed {
            if opts.preserve_digests {
                bail!(
                    "--preserve-digests: copying {} would change the index digest (format or layer changes)",
                    src.name()
                );
            }
            let mt = new_index.media_type.as_deref().unwrap_or(mt).to_string();
            (document::to_vec(&new_index)?, mt)
        } else {
            (index.raw.clone(), mt.to_string())
        };
        let digest = sha256_digest(&out);
        // A nested index is written by its (new) digest, once per destination (see `once`).
        let inst = instance.map(|_| &digest);
        let mut slot = match inst {
            Some(d) => once::acquire(dst.manifest_namespace(), &format!("manifest {d}")).await,
            None => None,
        };
        if !slot.as_ref().is_some_and(|s| s.done()) {
            dst.put_manifest(&out, &out_mt, inst)
                .await
                .with_context(|| format!("writing index {digest} to {}", dst.name()))?;
            if let Some(s) = &mut slot {
                s.mark_done();
            }
            self.opts
                .events
                .emit(crate::events::Event::ManifestWritten {
                    digest: digest.to_string(),
                    media_type: out_mt.clone(),
                    destination: dst.name(),
                });
        }
        Ok(Written {
            digest,
            size: out.len() as u64,
            media_type: out_mt,
            bytes: out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use serde_json::{Value, json};
    use std::collections::HashMap;

    fn index(v: Value) -> Index {
        serde_json::from_value(v).unwrap()
    }

    /// A source holding manifests by digest.
    struct Mem(HashMap<String, (Vec<u8>, String)>);

    #[async_trait]
    impl ImageSource for Mem {
        fn name(&self) -> String {
            "mem:".into()
        }
        async fn manifest(&self, instance: Option<&Digest>) -> Result<(Vec<u8>, String)> {
            let d = instance.context("only children")?;
            self.0.get(d.as_ref()).cloned().context("no such manifest")
        }
        async fn blob(&self, _: &Descriptor) -> Result<crate::transport::BlobStream> {
            bail!("no blobs")
        }
    }

    fn put(m: &mut HashMap<String, (Vec<u8>, String)>, v: Value, mt: &str) -> Value {
        let b = serde_json::to_vec(&v).unwrap();
        let d = sha256_digest(&b).to_string();
        let desc = json!({"mediaType": mt, "digest": d, "size": b.len()});
        m.insert(d, (b, mt.to_string()));
        desc
    }

    #[tokio::test]
    async fn flattening_expands_nested_indexes_and_inherits_platforms() {
        let mut m = HashMap::new();
        let img = |n: u8| json!({"schemaVersion": 2, "n": n});
        let a = put(&mut m, img(1), media::OCI_MANIFEST);
        let b = put(&mut m, img(2), media::OCI_MANIFEST);
        let c = put(&mut m, img(3), media::OCI_MANIFEST);
        let mut a_p = a.clone();
        a_p["platform"] = json!({"os": "linux", "architecture": "amd64"});
        let inner = put(
            &mut m,
            json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [a_p, b]}),
            media::OCI_INDEX,
        );
        let mut inner_p = inner.clone();
        inner_p["platform"] = json!({"os": "linux", "architecture": "arm64"});
        let mut c_p = c.clone();
        c_p["platform"] = json!({"os": "linux", "architecture": "s390x"});
        let top = json!({"manifests": [inner_p, c_p]});
        let flat = flatten(&Mem(m), &index(top), 0).await.unwrap();
        let arch: Vec<_> = flat
            .iter()
            .map(|e| {
                e.platform
                    .as_ref()
                    .unwrap()
                    .architecture
                    .as_deref()
                    .unwrap()
            })
            .collect();
        assert_eq!(arch, ["amd64", "arm64", "s390x"]);
        assert_eq!(json!(flat[1].digest), b["digest"]);
    }

    #[tokio::test]
    async fn nesting_is_bounded() {
        let mut m = HashMap::new();
        let mut d = put(&mut m, json!({"schemaVersion": 2}), media::OCI_MANIFEST);
        for _ in 0..MAX_DEPTH + 1 {
            d = put(
                &mut m,
                json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [d]}),
                media::OCI_INDEX,
            );
        }
        let err = flatten(&Mem(m), &index(json!({"manifests": [d]})), 0)
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("nested more than"), "{err:#}");
    }
}
