//! The `image-files` import: the `file-stream` resource a scanner reads an image through. The host hands
//! over a [`ImageFiles`] source that yields only the entries the scanner asked for; the scanner never sees
//! the rest of the image.

use super::state::State;
use super::v0_1_0::scanner_world::lade::plugin::image_files as wit_0_1;
use super::v0_2_0::scanner_world::lade::plugin::image_files as wit;
use std::collections::VecDeque;
use wasmtime::component::Resource;

pub use wit::{Entry, EntryKind};

/// Largest chunk handed over by one `read`, whatever the scanner asks for.
const MAX_CHUNK: usize = 1 << 20;

/// The files of an image for one scan, one entry at a time. An error stops the scan (the plugin call fails
/// with it); it is for the host's own failures (a layer that cannot be read), never for the plugin's.
pub trait ImageFiles: Send {
    /// The next entry, or None at the end.
    fn next_entry(&mut self) -> anyhow::Result<Option<Entry>>;
    /// Up to `max` bytes of the current entry's content; empty at its end (and for non-files).
    fn read(&mut self, max: usize) -> anyhow::Result<Vec<u8>>;
}

/// The host value behind a `file-stream` handle.
pub struct FileStreamHandle(pub Box<dyn ImageFiles>);

/// Entries held in memory: for small images, tests and benchmarks.
#[derive(Default)]
pub struct MemoryFiles {
    pending: VecDeque<(Entry, Vec<u8>)>,
    current: Vec<u8>,
    offset: usize,
}

impl MemoryFiles {
    pub fn new(entries: impl IntoIterator<Item = (Entry, Vec<u8>)>) -> Self {
        MemoryFiles {
            pending: entries.into_iter().collect(),
            ..Default::default()
        }
    }
}

impl ImageFiles for MemoryFiles {
    fn next_entry(&mut self) -> anyhow::Result<Option<Entry>> {
        Ok(self.pending.pop_front().map(|(entry, content)| {
            self.current = content;
            self.offset = 0;
            entry
        }))
    }

    fn read(&mut self, max: usize) -> anyhow::Result<Vec<u8>> {
        let end = self.current.len().min(self.offset.saturating_add(max));
        let chunk = self.current[self.offset..end].to_vec();
        self.offset = end;
        Ok(chunk)
    }
}

impl wit::HostFileStream for State {
    fn next_entry(&mut self, this: Resource<FileStreamHandle>) -> wasmtime::Result<Option<Entry>> {
        let files = self.table.get_mut(&this)?;
        files
            .0
            .next_entry()
            .map_err(|e| wasmtime::Error::from_anyhow(e.context("listing the image's files")))
    }

    fn read(
        &mut self,
        this: Resource<FileStreamHandle>,
        max_bytes: u32,
    ) -> wasmtime::Result<Vec<u8>> {
        let files = self.table.get_mut(&this)?;
        let max = usize::try_from(max_bytes)
            .unwrap_or(MAX_CHUNK)
            .min(MAX_CHUNK);
        files
            .0
            .read(max)
            .map_err(|e| wasmtime::Error::from_anyhow(e.context("reading the image's files")))
    }

    fn drop(&mut self, this: Resource<FileStreamHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl wit::Host for State {}

/// 0.1.0: the same stream; an entry loses what 0.2.0 added (its layer index and visibility: a 0.1.0
/// scanner only ever selects the final filesystem, where every entry is visible).
impl wit_0_1::HostFileStream for State {
    fn next_entry(
        &mut self,
        this: Resource<FileStreamHandle>,
    ) -> wasmtime::Result<Option<wit_0_1::Entry>> {
        let entry = wit::HostFileStream::next_entry(self, Resource::new_borrow(this.rep()))?;
        Ok(entry.map(|e| wit_0_1::Entry {
            path: e.path,
            kind: match e.kind {
                EntryKind::File => wit_0_1::EntryKind::File,
                EntryKind::Directory => wit_0_1::EntryKind::Directory,
                EntryKind::Symlink => wit_0_1::EntryKind::Symlink,
                EntryKind::Hardlink => wit_0_1::EntryKind::Hardlink,
                EntryKind::Other => wit_0_1::EntryKind::Other,
            },
            size: e.size,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            link_target: e.link_target,
            layer: e.layer,
        }))
    }

    fn read(
        &mut self,
        this: Resource<FileStreamHandle>,
        max_bytes: u32,
    ) -> wasmtime::Result<Vec<u8>> {
        wit::HostFileStream::read(self, Resource::new_borrow(this.rep()), max_bytes)
    }

    fn drop(&mut self, this: Resource<FileStreamHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl wit_0_1::Host for State {}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File,
            size: 5,
            mode: 0o644,
            uid: 0,
            gid: 0,
            link_target: None,
            layer: "sha256:00".into(),
            layer_index: 0,
            visible: true,
        }
    }

    #[test]
    fn memory_files_stream_in_chunks() {
        let mut f = MemoryFiles::new([(entry("/a"), b"hello".to_vec()), (entry("/b"), vec![])]);
        assert_eq!(f.next_entry().unwrap().unwrap().path, "/a");
        assert_eq!(f.read(3).unwrap(), b"hel");
        assert_eq!(f.read(3).unwrap(), b"lo");
        assert!(f.read(3).unwrap().is_empty());
        assert_eq!(f.next_entry().unwrap().unwrap().path, "/b");
        assert!(f.read(3).unwrap().is_empty());
        assert!(f.next_entry().unwrap().is_none());
    }
}
