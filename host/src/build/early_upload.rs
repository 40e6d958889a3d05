//! `--cache-to` registries get each layer a step makes while it is being written: an upload beside the build
//! follows the blob's file (see [`crate::layer::Tee`]), so it overlaps the work that makes the layer and the
//! steps after it, never holding the build up, and exporting the cache at the end waits only for uploads still
//! in flight. The export checks every blob again, so an upload that failed here is retried there and its
//! error reported. While steps run, the uploads run on threads of their own at a lower priority (nice
//! [`UPLOAD_NICE`]): when the steps keep every core busy they still get the small share of CPU that sending
//! takes (about 4% of a build's), so the registry is fed as the layer is written rather than after the last
//! step, yet they barely slow the steps. (At `SCHED_IDLE`, which this replaced, they got no CPU at all while
//! the steps filled the cores, and the whole upload waited for the end: +22% on a one-core build, against +5%
//! now; see `scripts/bench-cache.sh`.) When the last step ends they go back to normal priority, so what is
//! left is not held back by other work on a shared machine; where that switch back is not allowed (an
//! unprivileged user without `RLIMIT_NICE`), they run at normal priority throughout.

use super::remote_cache::{CacheSpec, Target};
use crate::layer::Tee;
use crate::registry::{Repo, SystemContext, open_repo};
use rustix::process::{Pid, setpriority_process};
use std::sync::{Arc, Mutex};

pub struct EarlyUploads {
    /// Each registry cache's repository, and whether it takes every stage's layers (`mode=max`).
    repos: Vec<(Repo, bool)>,
    /// The uploads' own runtime, its threads at a lower priority; always `Some` until dropped.
    rt: Option<tokio::runtime::Runtime>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    niced: Arc<NicedThreads>,
}

/// The nice value of the upload threads while steps run: a share of about a tenth of a busy core each
/// (scheduler weight 110 against 1024 at nice 0).
const UPLOAD_NICE: i32 = 10;

/// The runtime's threads put at nice [`UPLOAD_NICE`]; `None` once `finish` has put them back (threads that
/// start then stay at normal priority), or from the start where they could not be put back.
struct NicedThreads(Mutex<Option<Vec<Pid>>>);

impl EarlyUploads {
    /// Uploads to the registry caches among `specs`; `None` when there is none (a repository that cannot
    /// be opened is left to the export, which reports why).
    pub fn new(specs: &[CacheSpec], sys: &SystemContext) -> Option<EarlyUploads> {
        let repos: Vec<(Repo, bool)> = specs
            .iter()
            .filter_map(|s| match &s.target {
                Target::Registry(r) | Target::PerStep(r) => {
                    open_repo(r, sys, true).ok().map(|(repo, _)| (repo, s.max))
                }
                Target::Oci { .. } => None,
            })
            .collect();
        if repos.is_empty() {
            return None;
        }
        let niced = Arc::new(NicedThreads(Mutex::new(can_renice_back().then(Vec::new))));
        let (on_start, on_stop) = (niced.clone(), niced.clone());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lade-upload")
            .on_thread_start(move || on_start.enter())
            .on_thread_stop(move || on_stop.exit())
            .enable_all()
            .build()
            .map_err(|e| tracing::debug!("no early uploads (the export uploads everything): {e}"))
            .ok()?;
        Some(EarlyUploads {
            repos,
            rt: Some(rt),
            tasks: Mutex::new(Vec::new()),
            niced,
        })
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("the runtime lives until drop")
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
            let task = self.rt().spawn(async move {
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

    /// Wait for every upload started, at normal priority.
    pub fn finish(&self) {
        self.niced.leave();
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("lock"));
        self.rt().block_on(async {
            for t in tasks {
                let _ = t.await;
            }
        });
    }
}

impl Drop for EarlyUploads {
    fn drop(&mut self) {
        // Uploads not waited for (a failed build) are dropped; the registry discards unfinished uploads.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl NicedThreads {
    /// Lower the calling thread's priority, unless that is over.
    fn enter(&self) {
        if let Some(tids) = self.0.lock().expect("lock").as_mut()
            && renice(None, UPLOAD_NICE)
        {
            tids.push(rustix::thread::gettid());
        }
    }

    /// Forget the calling thread, which is about to end (its id may then be reused by another thread).
    fn exit(&self) {
        let me = rustix::thread::gettid();
        if let Some(tids) = self.0.lock().expect("lock").as_mut() {
            tids.retain(|t| *t != me);
        }
    }

    /// Every thread whose priority was lowered back to normal priority.
    fn leave(&self) {
        let tids = self.0.lock().expect("lock").take();
        for tid in tids.into_iter().flatten() {
            if !renice(Some(tid), 0) {
                tracing::debug!(
                    "an upload thread stays at a lower priority (the switch back was refused)"
                );
            }
        }
    }
}

/// Whether a thread of this process may lower its priority and raise it back: going back to nice 0 takes
/// `CAP_SYS_NICE` or an `RLIMIT_NICE` that allows it. Tried on a thread that ends right after.
fn can_renice_back() -> bool {
    std::thread::spawn(|| renice(None, UPLOAD_NICE) && renice(None, 0))
        .join()
        .unwrap_or(false)
}

/// Set the nice value of thread `tid` (the calling thread if `None`): on Linux, `setpriority` on a thread id
/// changes that thread alone.
fn renice(tid: Option<Pid>, nice: i32) -> bool {
    let tid = tid.or_else(|| Some(rustix::thread::gettid()));
    setpriority_process(tid, nice).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread of the uploads' runtime is reniced when it starts, is forgotten when it ends, and `leave` (run
    /// by `finish`) puts the live ones back.
    #[test]
    fn upload_threads_niced_until_finish() {
        if !can_renice_back() {
            eprintln!(
                "SKIP: this user may not go back to nice 0 (no CAP_SYS_NICE, RLIMIT_NICE < 20)"
            );
            return;
        }
        let policy =
            || rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let idle = Arc::new(NicedThreads(Mutex::new(Some(Vec::new()))));
        let (seen_tx, seen) = std::sync::mpsc::channel();
        let (go, go_rx) = std::sync::mpsc::channel::<()>();
        let thread_idle = idle.clone();
        let t = std::thread::spawn(move || {
            thread_idle.enter();
            seen_tx.send(policy()).unwrap();
            go_rx.recv().unwrap();
            policy()
        });
        assert_eq!(seen.recv().unwrap(), UPLOAD_NICE);
        // A thread that ends is forgotten: its id may be another thread's by the time `leave` runs.
        let ended = idle.clone();
        std::thread::spawn(move || {
            ended.enter();
            ended.exit();
        })
        .join()
        .unwrap();
        assert_eq!(idle.0.lock().unwrap().as_ref().map(Vec::len), Some(1));
        idle.leave();
        go.send(()).unwrap();
        assert_eq!(t.join().unwrap(), 0);
        // A thread that starts after stays at normal priority.
        let late = idle.clone();
        let p = std::thread::spawn(move || {
            late.enter();
            policy()
        });
        assert_eq!(p.join().unwrap(), 0);
    }
}
