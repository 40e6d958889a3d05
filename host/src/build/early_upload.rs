//! `--cache-to` registries get each layer a step makes as soon as it is made, while the build goes on (a
//! later step's work hides the upload), so exporting the cache at the end waits only for the uploads still
//! in flight. The export checks every blob again, so an upload that failed here is retried there and its
//! error reported.

use super::cache::LayerRecord;
use super::remote_cache::{CacheSpec, Target};
use crate::registry::{Repo, SystemContext, open_repo};
use crate::store::Store;
use crate::store::layout::Layout;
use crate::transport::{Descriptor, Digest};
use anyhow::Result;
use std::collections::HashSet;
use std::sync::Mutex;

pub struct EarlyUploads {
    /// Each registry cache's repository, and whether it takes every stage's layers (`mode=max`).
    repos: Vec<(Repo, bool)>,
    layout: Layout,
    rt: tokio::runtime::Handle,
    /// (repository index, digest) of every upload started.
    started: Mutex<HashSet<(usize, String)>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl EarlyUploads {
    /// Uploads to the registry caches among `specs`; `None` when there is none (a repository that cannot
    /// be opened is left to the export, which reports why).
    pub fn new(
        specs: &[CacheSpec],
        store: &Store,
        sys: &SystemContext,
        rt: &tokio::runtime::Handle,
    ) -> Option<EarlyUploads> {
        let repos: Vec<(Repo, bool)> = specs
            .iter()
            .filter_map(|s| match &s.target {
                Target::Registry(r) | Target::PerStep(r) => {
                    open_repo(r, sys, true).ok().map(|(repo, _)| (repo, s.max))
                }
                Target::Oci { .. } => None,
            })
            .collect();
        (!repos.is_empty()).then(|| EarlyUploads {
            repos,
            layout: store.layout().clone(),
            rt: rt.clone(),
            started: Mutex::new(HashSet::new()),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// A step made the layer `rec` (its blob is in the store); `in_image`: its stage is one the image holds
    /// (the layers of other stages go only to `mode=max` caches).
    pub fn layer_made(&self, rec: &LayerRecord, in_image: bool) {
        let Ok(digest) = rec.digest.parse::<Digest>() else {
            return;
        };
        for (i, (repo, max)) in self.repos.iter().enumerate() {
            if !(in_image || *max)
                || !self
                    .started
                    .lock()
                    .expect("lock")
                    .insert((i, rec.digest.clone()))
            {
                continue;
            }
            let (repo, layout, d) = (repo.clone(), self.layout.clone(), digest.clone());
            let desc = Descriptor::new(rec.media_type.as_str().into(), rec.size, digest.clone());
            let task = self.rt.spawn(async move {
                let r: Result<()> = async {
                    if !repo.has_blob(&d).await? {
                        repo.put_blob(&desc, layout.open_blob(&d).await?).await?;
                    }
                    Ok(())
                }
                .await;
                if let Err(e) = r {
                    tracing::debug!(
                        "uploading {d} during the build failed (the export tries again): {e:#}"
                    );
                }
            });
            self.tasks.lock().expect("lock").push(task);
        }
    }

    /// Wait for every upload started.
    pub fn finish(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("lock"));
        self.rt.block_on(async {
            for t in tasks {
                let _ = t.await;
            }
        });
    }
}
