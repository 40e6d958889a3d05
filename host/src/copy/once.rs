//! One write per blob (and per child manifest) per destination namespace in this process.
//!
//! Copies that run at once (sync's parallel images, tags of one image, a layer listed twice in one
//! manifest) can need the same blob in the same repository. Each takes the lock of
//! `(namespace, digest)`; the first one checks, mounts or uploads, and marks the slot done; the others
//! wait, then find it done and write nothing. Writing a blob twice is not just wasted bandwidth: a second
//! commit of a blob rewrites the repository's link to it, and docker-registry 2.8's filesystem driver
//! rewrites that file in place (truncate, then write), so a manifest PUT checked at that moment by another
//! copy reads an empty link and is refused with `DIGEST_INVALID` / `MANIFEST_BLOB_UNKNOWN`.
//!
//! A slot is only marked done after a successful write, so a failed copy leaves the next one to try again.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use tokio::sync::OwnedMutexGuard;

type Key = (String, String);

static SLOTS: LazyLock<Mutex<HashMap<Key, Arc<tokio::sync::Mutex<bool>>>>> =
    LazyLock::new(Default::default);

/// The exclusive right to write one blob or manifest into one namespace; held until dropped.
pub(crate) struct Slot(OwnedMutexGuard<bool>);

impl Slot {
    /// Whether a copy in this process already wrote it there.
    pub fn done(&self) -> bool {
        *self.0
    }

    /// Record that it is now there.
    pub fn mark_done(&mut self) {
        *self.0 = true;
    }
}

/// Wait for the slot of `what` (a digest, or any key naming one write) in `namespace`. None when the
/// destination names no namespace (writes are not shared then).
pub(crate) async fn acquire(namespace: Option<String>, what: &str) -> Option<Slot> {
    let key = (namespace?, what.to_string());
    let lock = SLOTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default()
        .clone();
    Some(Slot(lock.lock_owned().await))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_writer_then_done_for_the_others() {
        let ns = Some("test://once/one_writer".to_string());
        let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (ns, writes) = (ns.clone(), writes.clone());
            set.spawn(async move {
                let mut slot = acquire(ns, "sha256:x").await.expect("a namespace");
                if !slot.done() {
                    tokio::task::yield_now().await;
                    writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    slot.mark_done();
                }
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
        assert_eq!(writes.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Another namespace or another digest is a different slot; no namespace, no slot.
        assert!(!acquire(ns.clone(), "sha256:y").await.unwrap().done());
        assert!(
            !acquire(Some("other".into()), "sha256:x")
                .await
                .unwrap()
                .done()
        );
        assert!(acquire(None, "sha256:x").await.is_none());
    }

    #[tokio::test]
    async fn a_failed_write_leaves_the_slot_open() {
        let ns = Some("test://once/failed".to_string());
        {
            let _slot = acquire(ns.clone(), "sha256:z").await.unwrap();
            // The write failed: not marked.
        }
        assert!(!acquire(ns, "sha256:z").await.unwrap().done());
    }
}
