//! The tar-split format containers/storage keeps beside each layer (`overlay-layers/<id>.tar-split.gz`), so
//! the exact layer tar can be rebuilt from the unpacked files: gzip'd newline-delimited JSON, one entry per
//! line, `position` counting up from 0. A segment (`"type":2`) holds raw bytes (headers, padding, the end of
//! the archive) in `payload`; a file (`"type":1`) names an entry (`name`, or `name_raw` when not UTF-8) and,
//! when it has content, its `size` and the CRC-64 (ISO) of that content in `payload`. The content itself
//! is read back from the layer's diff directory.
//!
//! There is no Rust crate for it; this follows vbatts/tar-split's `storage` and `asm` packages.

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_GO_ISO);

#[derive(Serialize, Deserialize, Debug)]
struct Entry {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name_raw: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    size: u64,
    payload: Option<String>,
    position: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a pass over a layer tar learned besides its tar-split: the owners containers/storage lists.
#[derive(Default, Debug)]
pub struct TarFacts {
    pub uids: std::collections::BTreeSet<u32>,
    pub gids: std::collections::BTreeSet<u32>,
}

/// Write the tar-split of the uncompressed tar `tar` (a seekable file) as gzip'd JSON lines to `out`.
pub fn write(tar: &mut File, out: impl Write) -> Result<TarFacts> {
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut facts = TarFacts::default();
    // The entries, read first: (data position, size, name bytes).
    let mut files = vec![];
    {
        tar.seek(SeekFrom::Start(0))?;
        let mut ar = tar::Archive::new(BufReader::new(&mut *tar));
        for e in ar.entries().context("reading the layer tar")? {
            let mut e = e.context("reading the layer tar")?;
            let h = e.header();
            facts.uids.insert(h.uid().unwrap_or(0) as u32);
            facts.gids.insert(h.gid().unwrap_or(0) as u32);
            let name = e.path_bytes().into_owned();
            let size = e.size();
            let pos = e.raw_file_position();
            // Links, directories and devices carry no content in the archive, whatever their header says.
            use tar::EntryType as T;
            let content = !matches!(
                h.entry_type(),
                T::Link | T::Symlink | T::Directory | T::Char | T::Block | T::Fifo
            );
            let crc = if size > 0 && content {
                let mut d = CRC64.digest();
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = e.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    d.update(&buf[..n]);
                }
                Some(d.finalize())
            } else {
                None
            };
            files.push((pos, if crc.is_some() { size } else { 0 }, name, crc));
        }
    }
    let total = tar.seek(SeekFrom::End(0))?;
    let mut position = 0u64;
    let mut at = 0u64;
    let line = |e: &Entry, gz: &mut dyn Write| -> Result<()> {
        serde_json::to_writer(&mut *gz, e)?;
        gz.write_all(b"\n")?;
        Ok(())
    };
    for (pos, size, name, crc) in files {
        line(&segment(read_range(tar, at, pos)?, position), &mut gz)?;
        position += 1;
        let (name, name_raw) = match String::from_utf8(name) {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(B64.encode(e.into_bytes()))),
        };
        line(
            &Entry {
                kind: 1,
                name,
                name_raw,
                size,
                payload: crc.map(|c| B64.encode(c.to_be_bytes())),
                position,
            },
            &mut gz,
        )?;
        position += 1;
        at = pos + size;
    }
    line(&segment(read_range(tar, at, total)?, position), &mut gz)?;
    gz.finish()?.flush()?;
    Ok(facts)
}

/// A tar-split segment entry: raw archive bytes between file contents (headers, padding, the end).
fn segment(bytes: Vec<u8>, position: u64) -> Entry {
    Entry {
        kind: 2,
        name: None,
        name_raw: None,
        size: 0,
        payload: Some(B64.encode(bytes)),
        position,
    }
}

fn read_range(f: &mut File, from: u64, to: u64) -> Result<Vec<u8>> {
    if to < from {
        bail!("layer tar entries overlap at byte {from}");
    }
    let mut buf = vec![0u8; (to - from) as usize];
    f.seek(SeekFrom::Start(from))?;
    f.read_exact(&mut buf)?;
    Ok(buf)
}

/// Rebuild the layer tar from the tar-split `split` (gzip'd), reading file contents with `open`, into `out`.
/// Every file's CRC-64 is checked, as tar-split's assembler does.
pub fn assemble(
    split: impl Read,
    mut open: impl FnMut(&[u8]) -> Result<File>,
    mut out: impl Write,
) -> Result<u64> {
    let lines = BufReader::new(flate2::read::GzDecoder::new(split));
    let mut written = 0u64;
    for (i, l) in lines.lines().enumerate() {
        let l = l.context("reading the tar-split")?;
        if l.is_empty() {
            continue;
        }
        let e: Entry =
            serde_json::from_str(&l).with_context(|| format!("tar-split line {}", i + 1))?;
        match e.kind {
            2 => {
                let raw = B64.decode(e.payload.unwrap_or_default())?;
                out.write_all(&raw)?;
                written += raw.len() as u64;
            }
            1 if e.size > 0 => {
                let name = match (e.name, e.name_raw) {
                    (Some(n), _) => n.into_bytes(),
                    (None, Some(r)) => B64.decode(r)?,
                    (None, None) => bail!("tar-split line {}: a file entry without a name", i + 1),
                };
                let shown = String::from_utf8_lossy(&name).into_owned();
                let f = open(&name).with_context(|| format!("opening {shown}"))?;
                let mut d = CRC64.digest();
                let mut r = f.take(e.size);
                let mut buf = vec![0u8; 256 * 1024];
                let mut n_total = 0u64;
                loop {
                    let n = r.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    d.update(&buf[..n]);
                    out.write_all(&buf[..n])?;
                    n_total += n as u64;
                }
                if n_total != e.size {
                    bail!(
                        "{shown}: {n_total} bytes on disk, the layer recorded {}",
                        e.size
                    );
                }
                let want = B64.decode(e.payload.unwrap_or_default())?;
                if want != d.finalize().to_be_bytes() {
                    bail!(
                        "{shown}: its content changed since the layer was stored (CRC-64 differs)"
                    );
                }
                written += e.size;
            }
            1 => {}
            k => bail!("tar-split line {}: unknown entry type {k}", i + 1),
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_tar() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(vec![]);
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "./a", &b"hello"[..]).unwrap();
        let long = format!("./{}", "x".repeat(150));
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        std::fs::write(dir.path().join("a"), "hello").unwrap();
        std::fs::write(dir.path().join("x".repeat(150)), "abc").unwrap();
        let tp = dir.path().join("t.tar");
        std::fs::write(&tp, &bytes).unwrap();
        let mut split = vec![];
        write(&mut File::open(&tp).unwrap(), &mut split).unwrap();
        let mut out = vec![];
        let root = dir.path().to_path_buf();
        assemble(
            &split[..],
            |n| {
                Ok(File::open(root.join(
                    String::from_utf8_lossy(n).trim_start_matches("./"),
                ))?)
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(out, bytes);
        std::fs::write(dir.path().join("a"), "jello").unwrap();
        let err = assemble(
            &split[..],
            |n| {
                Ok(File::open(root.join(
                    String::from_utf8_lossy(n).trim_start_matches("./"),
                ))?)
            },
            vec![],
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("CRC-64"), "{err:#}");
    }
}
