//! Layers: safe unpacking, an unpacked-layer cache, and deterministic tar diffs with whiteouts.
//!
//! # API for the build executor
//!
//! Unpacking a layer blob (gzip, zstd or plain tar, detected by magic):
//! ```ignore
//! use lade::layer::{LayerCache, UnpackOptions, WhiteoutMode, unpack};
//! // Cached, in overlay form (usable as an overlay lower dir), verified against the diff_id:
//! let cache = LayerCache::new(store_root);                      // <root>/lade/layers/<hex>
//! let dir = cache.get_or_unpack("sha256:…diff_id", || Ok(Box::new(std::fs::File::open(blob)?)))?;
//! // Or straight onto existing content (copy mode), whiteouts applied:
//! unpack(reader, &rootfs, &UnpackOptions { whiteouts: WhiteoutMode::Apply, ..Default::default() })?;
//! ```
//!
//! Producing a layer (tar → compression → both digests in one pass → temp file):
//! ```ignore
//! use lade::layer::{DiffSource, DiffOptions, Compression, write_diff};
//! let blob = write_diff(DiffSource::OverlayUpper(&upper), &tmp_dir,
//!                       &DiffOptions { compression: Compression::Gzip, epoch: Some(0), ..Default::default() })?;
//! // blob.path (temp file inside tmp_dir, yours to rename into the store), blob.diff_id, blob.digest,
//! // blob.size, blob.media_type()
//! ```
//! `DiffSource::Tree(dir)` makes a layer of every file under `dir` (COPY layers);
//! `DiffSource::Compare { lower, upper }` diffs two plain trees (the copy-mode fallback).
//!
//! Step snapshots (overlay or copy fallback) live in the dispatch module's `isolation`.

mod beneath;
mod cache;
mod compress;
mod diff;
mod digest;
mod pargzip;
mod tarwrite;
mod unpack;

pub(crate) use beneath::{Within, beneath_error, chmod_nofollow, open_beneath};
pub use cache::LayerCache;
pub use compress::{Compressor, decoder, decompressor};
pub use diff::{DiffOptions, DiffSource, LayerBlob, Tee, write_diff, write_tar};
pub use digest::{HashHandle, HashingReader, HashingWriter, sha256_hex};
pub use unpack::{UnpackOptions, UnpackStats, WhiteoutMode, unpack, unpack_tar};
pub(crate) use unpack::{remove_all_at, unpack_tar_at};

/// Overlay whiteout/opaque markers in tar form (OCI image spec, "Whiteouts").
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The opaque-directory marker file name.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The overlayfs opaque xattr (root) and its unprivileged form (`userxattr` mounts).
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
pub const OVERLAY_OPAQUE_USER_XATTR: &str = "user.overlay.opaque";
