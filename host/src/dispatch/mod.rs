//! Platforms, binfmt_misc detection through procfs, step runners and RUN isolation.
//!
//! # API for the build executor
//!
//! ```ignore
//! use lade::dispatch::isolation::{Snapshot, RootfsMode, StepSpec, StepMount, Network, Isolation, run_step};
//! use lade::layer::{LayerCache, DiffOptions};
//!
//! // 1. the step's rootfs: lower = cached unpacked layers (base first), a fresh upper in `steps_dir`
//! //    (same filesystem as the store root, e.g. <root>/lade/steps)
//! let snap = Snapshot::prepare(&steps_dir, &lower_dirs, RootfsMode::Auto)?;
//! // 2. run the command in it
//! let mut spec = StepSpec::new(vec!["/bin/sh".into(), "-c".into(), "make".into()]);
//! spec.env = vec!["PATH=/usr/bin:/bin".into()];
//! spec.user = "app".into();              // name, uid, uid:gid, name:group; "" = root
//! spec.workdir = "/src".into();          // created if missing
//! spec.network = Network::None;          // default Network::Host, as buildah
//! spec.mounts.push(StepMount::secret("/path/on/host", "mytoken")); // /run/secrets/mytoken, never committed
//! let out = run_step(&snap, &spec)?;     // Err only when the step could not be set up
//! if !out.success() { /* out.exit_code, out.signal, out.stderr_tail */ }
//! // 3. commit: the diff as a layer blob (temp file in tmp_dir) and its unpacked dir moved into the cache
//! let (blob, lower_dir) = snap.commit(&LayerCache::new(root), &tmp_dir, &DiffOptions::default())?;
//! ```
//! The process running a step is the `lade` binary itself (`lade __run-step SPEC`), so namespaces are set up
//! in a fresh single-threaded process; `StepSpec::helper` overrides which binary that is.
//!
//! Platforms: [`platform::Platform`] (`"linux/arm64/v8".parse()`, [`platform::Platform::host`]).
//! binfmt_misc: [`binfmt::BinfmtInfo::read`], [`binfmt::BinfmtInfo::handler_for`]. Runner choice:
//! [`runner::choose_runner`].

pub mod binfmt;
pub mod isolation;
pub mod platform;
pub mod runner;
pub mod userns;

pub use platform::Platform;
pub use runner::Runner;
