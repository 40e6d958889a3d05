//! The image files, as the cataloguers read them: the host's stream in the wasm build, [`Memory`] in tests.

/// One entry the host hands over.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// Absolute path in the image.
    pub path: String,
    /// diff_id of the layer it comes from (empty for a directory).
    pub layer: String,
    pub layer_index: u32,
    /// False when a later layer deletes or replaces it.
    pub visible: bool,
    /// A regular file (the only kind with content).
    pub is_file: bool,
    pub size: u64,
}

pub trait Source {
    fn next(&mut self) -> Option<Meta>;
    /// Up to `max` bytes of the current entry; empty at its end.
    fn read(&mut self, max: u32) -> Vec<u8>;

    /// The whole content of the current entry, or None when it is larger than `limit` (the rest is then
    /// left unread; the host skips it).
    fn read_all(&mut self, size_hint: u64, limit: usize) -> Option<Vec<u8>> {
        if size_hint > limit as u64 {
            return None;
        }
        let mut out = Vec::with_capacity(size_hint as usize);
        loop {
            let chunk = self.read(1 << 20);
            if chunk.is_empty() {
                return Some(out);
            }
            if out.len() + chunk.len() > limit {
                return None;
            }
            out.extend_from_slice(&chunk);
        }
    }
}

/// Entries held in memory, for native tests.
#[derive(Default)]
pub struct Memory {
    pending: std::collections::VecDeque<(Meta, Vec<u8>)>,
    current: Vec<u8>,
    offset: usize,
}

impl Memory {
    /// `(path, layer index, visible, content)`, in order.
    pub fn new<'a>(files: impl IntoIterator<Item = (&'a str, u32, bool, &'a [u8])>) -> Memory {
        Memory {
            pending: files
                .into_iter()
                .map(|(path, index, visible, content)| {
                    let meta = Meta {
                        path: path.into(),
                        layer: format!("sha256:layer{index}"),
                        layer_index: index,
                        visible,
                        is_file: true,
                        size: content.len() as u64,
                    };
                    (meta, content.to_vec())
                })
                .collect(),
            ..Default::default()
        }
    }
}

impl Source for Memory {
    fn next(&mut self) -> Option<Meta> {
        let (meta, content) = self.pending.pop_front()?;
        self.current = content;
        self.offset = 0;
        Some(meta)
    }

    fn read(&mut self, max: u32) -> Vec<u8> {
        let end = self.current.len().min(self.offset + max as usize);
        let chunk = self.current[self.offset..end].to_vec();
        self.offset = end;
        chunk
    }
}
