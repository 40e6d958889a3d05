//! Response bodies read into memory, each kind with a cap checked while streaming, so a registry (or
//! anything in between) cannot make lade grow without bound by sending an endless or huge body. The caps
//! follow containers/image (`internal/iolimits`); blob bodies are streamed to disk, digest-verified, and not
//! read through here.

use reqwest::Response;

/// Manifests and indexes (referrers answers are indexes): 4 MiB, as containers/image and docker-registry.
pub const MAX_MANIFEST: usize = 4 << 20;
/// One page of a tag list: 4 MiB (tens of thousands of tags; longer lists are paged with `Link`).
pub const MAX_TAG_LIST: usize = 4 << 20;
/// A token server's answer: 1 MiB, as containers/image's `MaxAuthTokenBodySize`.
pub const MAX_TOKEN: usize = 1 << 20;
/// An error answer: 1 MiB, as containers/image's `MaxErrorBodySize`.
pub const MAX_ERROR: usize = 1 << 20;

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// More than `limit` bytes (announced by `Content-Length`, or sent): nothing more is read.
    TooLarge {
        url: String,
        limit: usize,
        kind: &'static str,
    },
    /// The connection failed mid-body (worth a retry).
    Read(reqwest::Error),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge { url, limit, kind } => write!(
                f,
                "the {kind} from {url} is larger than the limit of {limit} bytes; not reading more of it"
            ),
            BodyError::Read(e) => {
                write!(f, "reading the answer: {}", super::client::error_chain(e))
            }
        }
    }
}

impl std::error::Error for BodyError {}

/// Read `r`'s body, at most `limit` bytes: past that (or when `Content-Length` says so) it fails at once
/// with [`BodyError::TooLarge`], naming the URL, `kind` (what the body is: "manifest", "tag list", ...)
/// and the limit.
pub async fn read(mut r: Response, limit: usize, kind: &'static str) -> Result<Vec<u8>, BodyError> {
    let too_large = |r: &Response| BodyError::TooLarge {
        url: r.url().to_string(),
        limit,
        kind,
    };
    if r.content_length().is_some_and(|l| l > limit as u64) {
        return Err(too_large(&r));
    }
    let mut out = Vec::with_capacity(r.content_length().map_or(0, |l| l as usize).min(limit));
    while let Some(chunk) = r.chunk().await.map_err(BodyError::Read)? {
        if out.len() + chunk.len() > limit {
            return Err(too_large(&r));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
