//! The entries a scanner reads: a producer thread walks the layers (or a directory) and sends each selected
//! entry and its content in chunks through a bounded channel; [`Stream`] is the scanner's end. When the
//! scanner stops early the channel closes and the producer ends at its next send.

use super::extract::{Cache, Reader, Record, Writer, Written};
use super::image::OpenedImage;
use super::select::{Selection, clean};
use super::visibility::{Masks, entry_path, for_each_entry, is_exec_file, whiteout};
use crate::plugin::scanner::{Entry, EntryKind, ImageFiles};
use anyhow::{Context, Result, anyhow};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Content is sent in chunks of this size; with the channel's bound, at most a few MiB are in flight.
const CHUNK: usize = 256 * 1024;
const IN_FLIGHT: usize = 8;

enum Msg {
    Entry(Entry),
    Chunk(Vec<u8>),
    Failed(anyhow::Error),
}

/// The consumer side, handed to the plugin.
pub struct Stream {
    rx: Receiver<Msg>,
    /// A message read past the end of the current entry's content (the next entry, or a failure).
    pending: Option<Msg>,
    in_content: bool,
}

impl Stream {
    fn receive(&mut self) -> Option<Msg> {
        self.pending.take().or_else(|| self.rx.recv().ok())
    }
}

impl ImageFiles for Stream {
    fn next_entry(&mut self) -> Result<Option<Entry>> {
        loop {
            match self.receive() {
                None => return Ok(None),
                Some(Msg::Entry(e)) => {
                    self.in_content = true;
                    return Ok(Some(e));
                }
                Some(Msg::Chunk(_)) => {} // the rest of an entry the scanner did not read
                Some(Msg::Failed(e)) => return Err(e),
            }
        }
    }

    fn read(&mut self, max: usize) -> Result<Vec<u8>> {
        if !self.in_content {
            return Ok(vec![]);
        }
        match self.receive() {
            Some(Msg::Chunk(mut c)) => {
                if c.len() > max.max(1) {
                    self.pending = Some(Msg::Chunk(c.split_off(max.max(1))));
                }
                Ok(c)
            }
            other => {
                self.pending = other;
                self.in_content = false;
                Ok(vec![])
            }
        }
    }
}

fn channel() -> (SyncSender<Msg>, Stream) {
    let (tx, rx) = sync_channel(IN_FLIGHT);
    (
        tx,
        Stream {
            rx,
            pending: None,
            in_content: false,
        },
    )
}

/// The selected entries of an image's layers, lowest first, each visible or not as `masks` says. With a
/// scan `cache`, a layer whose extract is cached is streamed from it, and every other layer read whole is
/// extracted on the way: the producer's handle gives back those extracts, to be published once the scan
/// succeeded and the blobs proved sound.
pub fn layers(
    img: &OpenedImage,
    selection: Selection,
    masks: Masks,
    cache: Option<Cache>,
) -> (Stream, JoinHandle<Vec<Written>>) {
    let (tx, stream) = channel();
    let layers: Vec<(String, String, PathBuf)> = img
        .layers
        .iter()
        .map(|l| (l.diff_id.clone(), l.blob.clone(), l.file.clone()))
        .collect();
    let producer = std::thread::spawn(move || {
        let mut written = vec![];
        for (index, (diff_id, blob, file)) in layers.iter().enumerate() {
            let out = Out {
                tx: &tx,
                masks: &masks,
                selection: &selection,
                diff_id,
                index,
            };
            let r = match cache.as_ref().and_then(|c| c.hit(blob)) {
                Some(extract) => from_extract(&out, extract),
                None => {
                    let mut w = cache.as_ref().and_then(|c| c.writer(blob));
                    from_layer(&out, file, &mut w).map(|()| {
                        if let Some(done) = w.and_then(|w| w.finish().ok()) {
                            written.push(done);
                        }
                    })
                }
            }
            .with_context(|| format!("reading layer {diff_id}"));
            if let Err(e) = r {
                if !e.is::<Closed>() {
                    let _ = tx.send(Msg::Failed(e));
                }
                return vec![];
            }
        }
        written
    });
    (stream, producer)
}

/// Where one layer's entries go.
struct Out<'a> {
    tx: &'a SyncSender<Msg>,
    masks: &'a Masks,
    selection: &'a Selection,
    diff_id: &'a str,
    index: usize,
}

impl Out<'_> {
    /// Whether the scanner gets the selected entry at `path`, and whether it is visible.
    fn wanted(&self, path: &str) -> Option<bool> {
        let visible = !self.masks.hidden(self.index, path);
        (visible || self.selection.all_layers).then_some(visible)
    }

    fn entry(&self, r: &Record, visible: bool) -> Result<()> {
        let kind = kind_from(r.kind);
        let link_target = r.link_target.clone().map(|l| match kind {
            EntryKind::Hardlink => format!("/{}", clean(&l).unwrap_or_default()),
            _ => l,
        });
        send(
            self.tx,
            Msg::Entry(Entry {
                path: format!("/{}", r.path),
                kind,
                size: r.size,
                mode: r.mode,
                uid: r.uid,
                gid: r.gid,
                link_target,
                layer: self.diff_id.to_string(),
                layer_index: self.index as u32,
                visible,
            }),
        )
    }
}

/// A layer read whole: each selected entry goes to the scanner (when it wants it) and into the extract.
fn from_layer(out: &Out, file: &Path, extract: &mut Option<Writer>) -> Result<()> {
    for_each_entry(file, |_, entry| {
        let Some(path) = entry_path(entry)? else {
            return Ok(());
        };
        let h = entry.header();
        let exec = is_exec_file(h.entry_type(), h.mode().unwrap_or(0));
        if whiteout(&path).is_some() || !out.selection.wants(&path, exec) {
            return Ok(());
        }
        let kind = kind_of(h.entry_type());
        let r = Record {
            path,
            kind: kind_code(kind),
            size: if kind == EntryKind::File {
                h.size().unwrap_or(0)
            } else {
                0
            },
            mode: h.mode().unwrap_or(0),
            uid: h.uid().unwrap_or(0) as u32,
            gid: h.gid().unwrap_or(0) as u32,
            link_target: entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned()),
        };
        // A disk that refuses the extract costs the cache, never the scan.
        if extract.as_mut().is_some_and(|w| w.record(&r).is_err()) {
            *extract = None;
        }
        let wanted = out.wanted(&r.path);
        if let Some(visible) = wanted {
            out.entry(&r, visible)?;
        }
        if kind == EntryKind::File && (wanted.is_some() || extract.is_some()) {
            send_content(out.tx, entry, wanted.is_some(), extract)?;
        }
        Ok(())
    })
}

/// A layer from its cached extract.
fn from_extract(out: &Out, mut extract: Reader) -> Result<()> {
    while let Some(r) = extract.next_record()? {
        let Some(visible) = out.wanted(&r.path) else {
            continue;
        };
        out.entry(&r, visible)?;
        if kind_from(r.kind) == EntryKind::File {
            send_content(out.tx, extract.content(), true, &mut None)?;
        }
    }
    Ok(())
}

/// The scanner went away.
#[derive(Debug)]
struct Closed;
impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the scanner stopped reading")
    }
}
impl std::error::Error for Closed {}

fn send(tx: &SyncSender<Msg>, m: Msg) -> Result<()> {
    tx.send(m).map_err(|_| anyhow!(Closed))
}

/// Send an entry's content to the scanner (`to_scanner`) and copy it into `extract`.
fn send_content(
    tx: &SyncSender<Msg>,
    mut r: impl Read,
    to_scanner: bool,
    extract: &mut Option<Writer>,
) -> Result<()> {
    loop {
        let mut buf = vec![0; CHUNK];
        let n = read_full(&mut r, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        buf.truncate(n);
        if extract.as_mut().is_some_and(|w| w.content(&buf).is_err()) {
            *extract = None;
        }
        if to_scanner {
            send(tx, Msg::Chunk(buf))?;
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn kind_of(t: tar::EntryType) -> EntryKind {
    if t.is_file() || t == tar::EntryType::Continuous {
        EntryKind::File
    } else if t.is_dir() {
        EntryKind::Directory
    } else if t.is_symlink() {
        EntryKind::Symlink
    } else if t.is_hard_link() {
        EntryKind::Hardlink
    } else {
        EntryKind::Other
    }
}

/// An entry kind as the scan cache stores it.
fn kind_code(k: EntryKind) -> u8 {
    match k {
        EntryKind::File => 0,
        EntryKind::Directory => 1,
        EntryKind::Symlink => 2,
        EntryKind::Hardlink => 3,
        EntryKind::Other => 4,
    }
}

fn kind_from(code: u8) -> EntryKind {
    match code {
        0 => EntryKind::File,
        1 => EntryKind::Directory,
        2 => EntryKind::Symlink,
        3 => EntryKind::Hardlink,
        _ => EntryKind::Other,
    }
}

/// The selected entries of a root filesystem directory: one layer, everything visible. Symlinks are
/// reported, never followed.
pub fn directory(root: PathBuf, selection: Selection) -> Result<Stream> {
    std::fs::read_dir(&root).with_context(|| format!("reading {}", root.display()))?;
    let (tx, stream) = channel();
    std::thread::spawn(move || {
        if let Err(e) = walk(&root, "", &selection, &tx)
            && !e.is::<Closed>()
        {
            let _ = tx.send(Msg::Failed(e));
        }
    });
    Ok(stream)
}

fn walk(root: &Path, rel: &str, selection: &Selection, tx: &SyncSender<Msg>) -> Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    names.sort();
    for name in names {
        let name = name.to_string_lossy();
        let path = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let full = root.join(&path);
        let md = std::fs::symlink_metadata(&full)
            .with_context(|| format!("reading {}", full.display()))?;
        let ft = md.file_type();
        let exec = ft.is_file() && md.mode() & 0o111 != 0;
        if selection.wants(&path, exec) {
            let kind = if ft.is_file() {
                EntryKind::File
            } else if ft.is_dir() {
                EntryKind::Directory
            } else if ft.is_symlink() {
                EntryKind::Symlink
            } else {
                EntryKind::Other
            };
            let link_target = ft
                .is_symlink()
                .then(|| std::fs::read_link(&full).ok())
                .flatten()
                .map(|t| t.to_string_lossy().into_owned());
            send(
                tx,
                Msg::Entry(Entry {
                    path: format!("/{path}"),
                    kind,
                    size: if ft.is_file() { md.len() } else { 0 },
                    mode: md.mode() & 0o7777,
                    uid: md.uid(),
                    gid: md.gid(),
                    link_target,
                    layer: String::new(),
                    layer_index: 0,
                    visible: true,
                }),
            )?;
            if ft.is_file() {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&full)
                    .with_context(|| format!("opening {}", full.display()))?;
                send_content(tx, f, true, &mut None)
                    .with_context(|| format!("reading {}", full.display()))?;
            }
        }
        if ft.is_dir() {
            walk(root, &path, selection, tx)?;
        }
    }
    Ok(())
}
