//! File trees compared as an image records them: type, mode, owner, size, content, symlink target, device
//! numbers, xattrs, hardlink groups, and mtimes where they were carried over from an input. The comparer
//! of tests/tests/build_compat.rs (buildah against lade), shared with the other tests that compare trees.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Below this (2001-09-09), an mtime was carried over from an input, so both builders must agree on it.
pub const CARRIED_MTIME: i64 = 1_000_000_000;

/// One file of an unpacked image, as far as an image can say.
#[derive(Debug, PartialEq, Clone)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Content (files up to 1 MiB) or a hash of it (larger files).
    pub content: Content,
    pub link: Option<String>,
    pub rdev: u64,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// For a file with several links: the first of its paths (sorted), so link groups compare.
    pub hardlink_group: Option<String>,
    pub mtime: i64,
}

#[derive(Debug, PartialEq, Clone)]
pub enum Content {
    None,
    Bytes(Vec<u8>),
    Hash(u64),
}

fn kind_of(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_file() {
        "file"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_char_device() {
        "char-device"
    } else if ft.is_block_device() {
        "block-device"
    } else {
        "socket"
    }
}

fn xattrs_of(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut list = vec![0u8; 64 * 1024];
    let n = match rustix::fs::llistxattr(path, &mut list[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::OPNOTSUPP) => return BTreeMap::new(),
        Err(e) => panic!("listing xattrs of {}: {e}", path.display()),
    };
    let mut out = BTreeMap::new();
    for name in list[..n].split(|b| *b == 0).filter(|k| !k.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let mut val = vec![0u8; 64 * 1024];
        let len = rustix::fs::lgetxattr(path, name.as_str(), &mut val[..])
            .unwrap_or_else(|e| panic!("reading xattr {name} of {}: {e}", path.display()));
        out.insert(name, val[..len].to_vec());
    }
    out
}

/// Every path under `root` (relative, "." for the root itself) with what the image records of it.
pub fn scan(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<u64, String> = HashMap::new();
    let mut stack = vec![(root.to_path_buf(), ".".to_string())];
    while let Some((path, rel)) = stack.pop() {
        let md = std::fs::symlink_metadata(&path).unwrap();
        let kind = kind_of(md.file_type());
        let content = if kind != "file" {
            Content::None
        } else {
            let bytes = std::fs::read(&path).unwrap();
            if bytes.len() <= 1 << 20 {
                Content::Bytes(bytes)
            } else {
                use std::hash::{Hash, Hasher};
                let mut h = std::hash::DefaultHasher::new();
                bytes.hash(&mut h);
                Content::Hash(h.finish())
            }
        };
        let hardlink_group = (kind == "file" && md.nlink() > 1).then(|| {
            // Paths are visited in sorted order per directory, not globally; keep the smallest.
            let first = inodes.entry(md.ino()).or_insert_with(|| rel.clone());
            if rel < *first {
                *first = rel.clone();
            }
            md.ino().to_string()
        });
        let link = (kind == "symlink").then(|| {
            std::fs::read_link(&path)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        });
        out.insert(
            rel.clone(),
            Entry {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                size: if kind == "file" { md.len() } else { 0 },
                content,
                link,
                rdev: md.rdev(),
                xattrs: xattrs_of(&path),
                hardlink_group,
                mtime: md.mtime(),
            },
        );
        if kind == "dir" {
            let mut names: Vec<_> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for n in names.into_iter().rev() {
                let child_rel = if rel == "." {
                    n.clone()
                } else {
                    format!("{rel}/{n}")
                };
                stack.push((path.join(&n), child_rel));
            }
        }
    }
    // Replace inode numbers by the group's first path.
    for e in out.values_mut() {
        if let Some(ino) = &e.hardlink_group {
            e.hardlink_group = inodes.get(&ino.parse::<u64>().unwrap()).cloned();
        }
    }
    out
}

fn show_content(c: &Content) -> String {
    match c {
        Content::None => "-".into(),
        Content::Bytes(b) if b.len() <= 80 => format!("{:?}", String::from_utf8_lossy(b)),
        Content::Bytes(b) => format!(
            "{} bytes starting {:?}",
            b.len(),
            String::from_utf8_lossy(&b[..80])
        ),
        Content::Hash(h) => format!("hash {h:016x}"),
    }
}

fn show_xattrs(x: &BTreeMap<String, Vec<u8>>) -> String {
    let parts: Vec<String> = x
        .iter()
        .map(|(k, v)| format!("{k}={:?}", String::from_utf8_lossy(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

pub fn describe(e: &Entry) -> String {
    let mut s = format!("{} {:04o} {}:{}", e.kind, e.mode, e.uid, e.gid);
    if let Some(l) = &e.link {
        s.push_str(&format!(" -> {l}"));
    }
    if e.kind == "file" {
        s.push_str(&format!(" {} bytes", e.size));
    }
    s
}

/// One difference: `item` names what differs (`/path field` or `config.Field`), `lade` is lade's side of it
/// as shown in `text`.
#[derive(Debug, PartialEq)]
pub struct Diff {
    pub item: String,
    pub lade: String,
    pub text: String,
}

/// Every difference between two scanned trees; a = buildah, b = lade.
pub fn diff_trees(a: &BTreeMap<String, Entry>, b: &BTreeMap<String, Entry>) -> Vec<Diff> {
    let mut out = Vec::new();
    let paths: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for p in paths {
        let (x, y) = match (a.get(p), b.get(p)) {
            (Some(x), Some(y)) => (x, y),
            (Some(x), None) => {
                out.push(Diff {
                    item: format!("/{p} presence"),
                    lade: "absent".into(),
                    text: format!("/{p}: only in buildah's image ({})", describe(x)),
                });
                continue;
            }
            (None, Some(y)) => {
                out.push(Diff {
                    item: format!("/{p} presence"),
                    lade: describe(y),
                    text: format!("/{p}: only in lade's image ({})", describe(y)),
                });
                continue;
            }
            (None, None) => unreachable!(),
        };
        let mut field = |name: &str, l: String, r: String| {
            if l != r {
                out.push(Diff {
                    item: format!("/{p} {name}"),
                    text: format!("/{p}: {name} {l} (buildah) vs {r} (lade)"),
                    lade: r,
                });
            }
        };
        field("type", x.kind.into(), y.kind.into());
        field("mode", format!("{:04o}", x.mode), format!("{:04o}", y.mode));
        field(
            "owner",
            format!("{}:{}", x.uid, x.gid),
            format!("{}:{}", y.uid, y.gid),
        );
        field("size", x.size.to_string(), y.size.to_string());
        if x.size == y.size {
            field(
                "content",
                show_content(&x.content),
                show_content(&y.content),
            );
        }
        field(
            "symlink target",
            format!("{:?}", x.link),
            format!("{:?}", y.link),
        );
        field("rdev", x.rdev.to_string(), y.rdev.to_string());
        field("xattrs", show_xattrs(&x.xattrs), show_xattrs(&y.xattrs));
        field(
            "hardlinked with",
            format!("{:?}", x.hardlink_group),
            format!("{:?}", y.hardlink_group),
        );
        if x.kind != "dir" && (x.mtime < CARRIED_MTIME || y.mtime < CARRIED_MTIME) {
            field("mtime", x.mtime.to_string(), y.mtime.to_string());
        }
    }
    out
}
