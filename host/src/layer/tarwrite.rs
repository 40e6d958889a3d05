//! Deterministic tar entries: USTAR headers, PAX records for long names, big ids and xattrs, no user or group
//! names, timestamps clamped to an epoch when one is given.

use anyhow::{Context, Result};
use std::io::{Read, Write};

/// What kind of entry to write.
pub enum Kind<'a> {
    Dir,
    File { size: u64, data: &'a mut dyn Read },
    Symlink(&'a [u8]),
    Hardlink(&'a [u8]),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

/// Metadata recorded for an entry.
pub struct EntryMeta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    /// Sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A tar stream with a fixed layout, so the same tree always gives the same bytes.
pub struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
    epoch: Option<i64>,
}

const MAX_OCTAL_ID: u64 = 0o7777777;
const MAX_OCTAL_SIZE: u64 = 0o77777777777;

impl<W: Write> TarWriter<W> {
    pub fn new(out: W, epoch: Option<i64>) -> Self {
        TarWriter {
            builder: tar::Builder::new(out),
            epoch,
        }
    }

    /// Append one entry; `path` is relative, without a leading `/` (a trailing `/` is added for directories).
    pub fn append(&mut self, path: &[u8], kind: Kind<'_>, meta: &EntryMeta) -> Result<()> {
        let mut name = path.to_vec();
        if matches!(kind, Kind::Dir) && !name.ends_with(b"/") {
            name.push(b'/');
        }
        let mut h = tar::Header::new_ustar();
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let mtime = match self.epoch {
            Some(e) if meta.mtime > e => e,
            _ => meta.mtime,
        }
        .max(0) as u64;
        h.set_mode(meta.mode & 0o7777);
        h.set_size(0);
        h.set_device_major(0).context("device field")?;
        h.set_device_minor(0).context("device field")?;
        h.set_mtime(mtime);
        if meta.uid > MAX_OCTAL_ID {
            pax.push(("uid".into(), meta.uid.to_string().into_bytes()));
            h.set_uid(0);
        } else {
            h.set_uid(meta.uid);
        }
        if meta.gid > MAX_OCTAL_ID {
            pax.push(("gid".into(), meta.gid.to_string().into_bytes()));
            h.set_gid(0);
        } else {
            h.set_gid(meta.gid);
        }
        set_name(&mut h, &name, &mut pax);
        let mut data: Option<(&mut dyn Read, u64)> = None;
        match kind {
            Kind::Dir => h.set_entry_type(tar::EntryType::Directory),
            Kind::File { size, data: d } => {
                h.set_entry_type(tar::EntryType::Regular);
                if size > MAX_OCTAL_SIZE {
                    pax.push(("size".into(), size.to_string().into_bytes()));
                    h.set_size(0);
                } else {
                    h.set_size(size);
                }
                data = Some((d, size));
            }
            Kind::Symlink(t) | Kind::Hardlink(t) => {
                h.set_entry_type(if matches!(kind, Kind::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                if t.len() > 100 {
                    pax.push(("linkpath".into(), t.to_vec()));
                    let ustar = h.as_ustar_mut().expect("ustar header");
                    ustar.linkname.copy_from_slice(&t[..100]);
                } else {
                    let ustar = h.as_ustar_mut().expect("ustar header");
                    ustar.linkname[..t.len()].copy_from_slice(t);
                }
            }
            Kind::Char(ma, mi) | Kind::Block(ma, mi) => {
                h.set_entry_type(if matches!(kind, Kind::Char(..)) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                h.set_device_major(ma).context("device major number")?;
                h.set_device_minor(mi).context("device minor number")?;
            }
            Kind::Fifo => h.set_entry_type(tar::EntryType::Fifo),
        }
        for (k, v) in &meta.xattrs {
            pax.push((
                format!("SCHILY.xattr.{}", String::from_utf8_lossy(k)),
                v.clone(),
            ));
        }
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .context("writing PAX header")?;
        }
        h.set_cksum();
        match data {
            Some((d, size)) => {
                // A file that changes size while it is read must not corrupt the stream: take exactly `size`.
                let mut limited = d.take(size);
                let mut reader = ExactReader {
                    inner: &mut limited,
                    left: size,
                };
                self.builder
                    .append(&h, &mut reader)
                    .context("writing file contents into the layer")?;
                if reader.left != 0 {
                    anyhow::bail!(
                        "{} shrank while it was being read",
                        String::from_utf8_lossy(path)
                    );
                }
            }
            None => self
                .builder
                .append(&h, std::io::empty())
                .context("writing tar header")?,
        }
        Ok(())
    }

    /// Write the end-of-archive marker and return the writer.
    pub fn finish(self) -> Result<W> {
        self.builder.into_inner().context("finishing the layer tar")
    }
}

struct ExactReader<'a> {
    inner: &'a mut dyn Read,
    left: u64,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// USTAR name (with the prefix split when it fits), else a PAX `path` record and a truncated name.
fn set_name(h: &mut tar::Header, name: &[u8], pax: &mut Vec<(String, Vec<u8>)>) {
    let u = h.as_ustar_mut().expect("ustar header");
    if name.len() <= 100 && name.is_ascii() {
        u.name[..name.len()].copy_from_slice(name);
        return;
    }
    if name.is_ascii() && name.len() <= 256 {
        // split at a '/' so that prefix <= 155 and name <= 100 (trailing '/' of a dir stays in name)
        let body = name.strip_suffix(b"/").unwrap_or(name);
        for i in (0..body.len()).rev() {
            if body[i] == b'/' && i <= 155 && name.len() - i - 1 <= 100 && i > 0 {
                u.prefix[..i].copy_from_slice(&name[..i]);
                u.name[..name.len() - i - 1].copy_from_slice(&name[i + 1..]);
                return;
            }
        }
    }
    pax.push(("path".into(), name.to_vec()));
    let n = name.len().min(100);
    u.name[..n].copy_from_slice(&name[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(path: &[u8], kind: Kind<'_>, epoch: Option<i64>) -> Vec<u8> {
        let mut w = TarWriter::new(Vec::new(), epoch);
        let meta = EntryMeta {
            mode: 0o755,
            uid: 1 << 30,
            gid: 7,
            mtime: 2_000_000_000,
            xattrs: vec![],
        };
        w.append(path, kind, &meta).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn names_ids_and_times_survive_a_reader() {
        let long = [b'x'; 300];
        for (path, epoch) in [
            (&b"short"[..], None),
            (&long[..], Some(1_000)),
            (&[b'a'; 99][..], None),
        ] {
            let tar = one(
                path,
                Kind::File {
                    size: 3,
                    data: &mut &b"abc"[..],
                },
                epoch,
            );
            let mut a = tar::Archive::new(&tar[..]);
            let mut e = a.entries().unwrap().next().unwrap().unwrap();
            assert_eq!(&*e.path_bytes(), path);
            let pax: Vec<_> = e
                .pax_extensions()
                .unwrap()
                .unwrap()
                .map(|x| x.unwrap().key().unwrap().to_string())
                .collect();
            assert!(pax.contains(&"uid".to_string()), "{pax:?}");
            assert_eq!(
                e.header().mtime().unwrap(),
                epoch.map_or(2_000_000_000, |e| e as u64)
            );
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            assert_eq!(s, "abc");
        }
        // A path that fits USTAR with the prefix split needs no PAX record.
        let split = [&[b'p'; 120][..], b"/", &[b'n'; 90][..]].concat();
        let tar = one(&split, Kind::Dir, None);
        let mut a = tar::Archive::new(&tar[..]);
        let e = a.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(&*e.path_bytes(), [&split[..], b"/"].concat().as_slice());
    }

    #[test]
    fn a_file_that_shrinks_is_an_error_not_a_corrupt_tar() {
        let mut w = TarWriter::new(Vec::new(), None);
        let meta = EntryMeta {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: vec![],
        };
        assert!(
            w.append(
                b"f",
                Kind::File {
                    size: 10,
                    data: &mut &b"abc"[..]
                },
                &meta
            )
            .is_err()
        );
    }
}
