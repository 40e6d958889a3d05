//! The entries a scanner reads: a producer thread walks the layers (or a directory) and sends each selected
//! entry and its content in chunks through a bounded channel; [`Stream`] is the scanner's end. When the
//! scanner stops early the channel closes and the producer ends at its next send.

use super::image::OpenedImage;
use super::select::{Selection, clean};
use super::visibility::{Masks, entry_path, for_each_entry, is_exec_file, whiteout};
use crate::plugin::scanner::{Entry, EntryKind, ImageFiles};
use anyhow::{Context, Result, anyhow};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

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

/// The selected entries of an image's layers, lowest first, each visible or not as `masks` says.
pub fn layers(img: &OpenedImage, selection: Selection, masks: Masks) -> Stream {
    let (tx, stream) = channel();
    let layers: Vec<(String, PathBuf)> = img
        .layers
        .iter()
        .map(|l| (l.diff_id.clone(), l.file.clone()))
        .collect();
    std::thread::spawn(move || {
        for (index, (diff_id, file)) in layers.iter().enumerate() {
            let r = for_each_entry(file, |_, entry| {
                let Some(path) = entry_path(entry)? else {
                    return Ok(());
                };
                let h = entry.header();
                let exec = is_exec_file(h.entry_type(), h.mode().unwrap_or(0));
                if whiteout(&path).is_some() || !selection.wants(&path, exec) {
                    return Ok(());
                }
                let visible = !masks.hidden(index, &path);
                if !visible && !selection.all_layers {
                    return Ok(());
                }
                let kind = kind_of(h.entry_type());
                let link_target = entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .map(|l| match kind {
                        EntryKind::Hardlink => format!("/{}", clean(&l).unwrap_or_default()),
                        _ => l,
                    });
                let e = Entry {
                    path: format!("/{path}"),
                    kind,
                    size: h.size().unwrap_or(0),
                    mode: h.mode().unwrap_or(0),
                    uid: h.uid().unwrap_or(0) as u32,
                    gid: h.gid().unwrap_or(0) as u32,
                    link_target,
                    layer: diff_id.clone(),
                    layer_index: index as u32,
                    visible,
                };
                send(&tx, Msg::Entry(e))?;
                if kind == EntryKind::File {
                    send_content(&tx, entry)?;
                }
                Ok(())
            })
            .with_context(|| format!("reading layer {diff_id}"));
            if let Err(e) = r {
                if !e.is::<Closed>() {
                    let _ = tx.send(Msg::Failed(e));
                }
                return;
            }
        }
    });
    stream
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

fn send_content(tx: &SyncSender<Msg>, mut r: impl Read) -> Result<()> {
    loop {
        let mut buf = vec![0; CHUNK];
        let n = read_full(&mut r, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        buf.truncate(n);
        send(tx, Msg::Chunk(buf))?;
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
                send_content(tx, f).with_context(|| format!("reading {}", full.display()))?;
            }
        }
        if ft.is_dir() {
            walk(root, &path, selection, tx)?;
        }
    }
    Ok(())
}
