//! Progress events shared by build, copy, push, pull and sync: one type, one sink. `--progress=json` writes
//! them as NDJSON on stdout, each with `"version"` (the schema in `docs/events.schema.json`); the plain and
//! terminal renderers (cli/progress.rs) draw the same events.

use serde::Serialize;
use std::sync::Arc;

/// The version of the event schema; bumped on any incompatible change (`docs/events.schema.json`).
pub const SCHEMA_VERSION: u32 = 1;

/// One thing that happened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A build step began.
    StepStarted {
        stage: String,
        step: usize,
        steps: usize,
        instruction: String,
    },
    /// A build step's result came from the layer cache.
    StepCached {
        stage: String,
        step: usize,
        key: String,
    },
    /// A build step was not in the cache (`reason`: which input changed, with `--explain-cache`).
    CacheMiss {
        stage: String,
        step: usize,
        key: String,
        reason: Option<String>,
    },
    /// A build step ended.
    StepFinished {
        stage: String,
        step: usize,
        seconds: f64,
        layer: Option<String>,
    },
    /// A free-form note.
    Message { text: String },
    /// A build's result.
    Image {
        id: String,
        names: Vec<String>,
        seconds: f64,
    },
    /// A blob began to move.
    BlobStarted {
        digest: String,
        size: u64,
        #[serde(rename = "mediaType")]
        media_type: String,
    },
    /// A blob is at the destination: `copied` (bytes moved), `skipped` (already there) or `mounted`.
    BlobDone {
        digest: String,
        size: u64,
        how: BlobHow,
    },
    /// A manifest was written to the destination.
    ManifestWritten {
        digest: String,
        #[serde(rename = "mediaType")]
        media_type: String,
        destination: String,
    },
    /// A copy (pull, push, copy, one image of a sync) finished.
    Done {
        source: String,
        destination: String,
        digest: String,
        blobs_copied: usize,
        blobs_skipped: usize,
        blobs_mounted: usize,
        bytes_copied: u64,
    },
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BlobHow {
    Copied,
    Skipped,
    Mounted,
}

/// Where events go.
pub trait Sink: Send + Sync {
    fn event(&self, e: &Event);
    /// `n` more bytes of blob `digest` moved (for live byte counts; not an event of its own).
    fn bytes(&self, _digest: &str, _n: u64) {}
}

/// An optional shared sink, cheap to clone into options structs.
#[derive(Clone, Default)]
pub struct Events(pub Option<Arc<dyn Sink>>);

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Events(on)"
        } else {
            "Events(off)"
        })
    }
}

impl Events {
    pub fn new(s: Arc<dyn Sink>) -> Self {
        Events(Some(s))
    }
    pub fn emit(&self, e: Event) {
        if let Some(s) = &self.0 {
            s.event(&e);
        }
    }
    pub fn bytes(&self, digest: &str, n: u64) {
        if let Some(s) = &self.0 {
            s.bytes(digest, n);
        }
    }
    pub fn on(&self) -> bool {
        self.0.is_some()
    }
}

/// The JSON form of an event: `{"version":1,"event":...,...}`.
pub fn to_json(e: &Event) -> serde_json::Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("version".into(), SCHEMA_VERSION.into());
    }
    v
}

/// NDJSON on stdout, one event a line, flushed at once (stdout is line-buffered). A reader that went away
/// ends lade as any other stdout write does (see [`crate::stdout`]): a build piped into `head` stops.
#[derive(Default)]
pub struct JsonSink;

impl Sink for JsonSink {
    fn event(&self, e: &Event) {
        crate::stdout::outln!("{}", to_json(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_carries_the_version_and_its_name() {
        let v = to_json(&Event::BlobDone {
            digest: "sha256:ab".into(),
            size: 3,
            how: BlobHow::Mounted,
        });
        assert_eq!(v["version"], SCHEMA_VERSION);
        assert_eq!(v["event"], "blob-done");
        assert_eq!(v["how"], "mounted");
    }
}
