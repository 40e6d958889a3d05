//! `--cache-to` registries get each layer a step makes while it is being written: an upload beside the build
//! follows the blob's file (see [`crate::layer::Tee`]), so it overlaps the work that makes the layer and the
//! steps after it, never holding the build up, and exporting the cache at the end waits only for uploads still
//! in flight. The export checks every blob again, so an upload that failed here is retried there and its
//! error reported.

use super::remote_cache::{CacheSpec, Target};
use crate::layer::Tee;
use crate::registry::{Repo, SystemContext, open_repo};
use std::sync::Mutex;

pub struct EarlyUploads {
    /// Each registry cache's repository, and whether it takes every stage's layers (`mode=max`).
    repos: Vec<(Repo, bool)>,
    rt: tokio::runtime::Handle,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl EarlyUploads {
    /// Uploads to the registry caches among `specs`; `None` when there is none (a repository that cannot
    /// be opened is left to the export, which reports why).
    pub fn new(
        specs: &[CacheSpec],
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
            rt: rt.clone(),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// The tee for a layer a step is about to write, each cache that takes it uploading as it comes;
    /// `in_image`: the step's stage is one the image holds (other stages go only to `mode=max` caches).
    pub fn tee(&self, in_image: bool) -> Tee {
        let mut senders = Vec::new();
        for (repo, max) in &self.repos {
            if !(in_image || *max) {
                continue;
            }
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let repo = repo.clone();
            let task = self.rt.spawn(async move {
                if let Err(e) = repo.put_blob_as_written(&mut rx).await {
                    tracing::debug!(
                        "a layer was not uploaded as it was written (the export tries again): {e:#}"
                    );
                }
            });
            self.tasks.lock().expect("lock").push(task);
            senders.push(tx);
        }
        Tee::new(senders)
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
