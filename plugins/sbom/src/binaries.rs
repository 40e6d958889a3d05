//! Packages compiled into ELF executables: Go modules from the Go build info (`\xff Go buildinf:`, both the
//! inline-string format of Go 1.18+ and the older pointer format) and Rust crates from cargo-auditable's
//! `.dep-v0` section (zlib-compressed JSON).

use crate::model::{Kind, Package};
use object::{Object, ObjectSection, ObjectSegment};
use std::io::Read;

const MAGIC: &[u8] = b"\xff Go buildinf:";
/// Largest decompressed cargo-auditable document read.
const MAX_AUDIT_JSON: u64 = 8 << 20;

/// Whether `head` (the first bytes of a file) starts an ELF file.
pub fn is_elf(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

/// Every package found in the binary `data` at `path`.
pub fn read(path: &str, layer: &str, data: &[u8]) -> Vec<Package> {
    let Ok(file) = object::File::parse(data) else {
        return vec![];
    };
    let mut out = go_modules(&file, path, layer);
    out.extend(rust_crates(&file, path, layer));
    out
}

fn go_modules(file: &object::File, path: &str, layer: &str) -> Vec<Package> {
    let Some((version, modinfo)) = go_buildinfo(file) else {
        return vec![];
    };
    let mut out: Vec<Package> = Vec::new();
    for line in modinfo.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["mod" | "dep", module, ver, ..] => {
                out.push(Package::new(Kind::Go, module, ver, layer, path));
            }
            // A replacement by another module (not a local directory) is what was compiled in.
            ["=>", module, ver, ..] if !ver.is_empty() && !module.starts_with(['.', '/']) => {
                if let Some(last) = out.last_mut() {
                    last.name = module.to_string();
                    last.version = ver.to_string();
                }
            }
            _ => {}
        }
    }
    if !version.is_empty() {
        out.push(Package::new(Kind::Go, "stdlib", &version, layer, path));
    }
    out
}

/// The Go version and module info of a Go binary.
pub fn go_buildinfo(file: &object::File) -> Option<(String, String)> {
    let data = match file.section_by_name(".go.buildinfo") {
        Some(s) => s.data().ok()?,
        None => file
            .segments()
            .filter_map(|s| s.data().ok())
            .find_map(|d| find_aligned(d, MAGIC).map(|i| &d[i..]))?,
    };
    let start = find_aligned(data, MAGIC)?;
    let data = &data[start..];
    if data.len() < 32 {
        return None;
    }
    let ptr_size = data[14] as usize;
    let flags = data[15];
    let (version, modinfo) = if flags & 2 != 0 {
        let (v, rest) = uvarint_string(&data[32..])?;
        let (m, _) = uvarint_string(rest)?;
        (v.to_vec(), m.to_vec())
    } else {
        let big = flags & 1 != 0;
        let ptr = |b: &[u8]| -> Option<u64> {
            Some(match (ptr_size, big) {
                (4, false) => u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as u64,
                (4, true) => u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as u64,
                (8, false) => u64::from_le_bytes(b.get(..8)?.try_into().ok()?),
                (8, true) => u64::from_be_bytes(b.get(..8)?.try_into().ok()?),
                _ => return None,
            })
        };
        let string = |addr: u64| -> Option<Vec<u8>> {
            let header = read_addr(file, addr, 2 * ptr_size as u64)?;
            let (at, len) = (ptr(header)?, ptr(&header[ptr_size..])?);
            read_addr(file, at, len).map(<[u8]>::to_vec)
        };
        (
            string(ptr(&data[16..])?)?,
            string(ptr(&data[16 + ptr_size..])?)?,
        )
    };
    let modinfo = if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
        modinfo[16..modinfo.len() - 16].to_vec()
    } else {
        vec![]
    };
    Some((
        String::from_utf8_lossy(&version).into_owned(),
        String::from_utf8_lossy(&modinfo).into_owned(),
    ))
}

/// `len` bytes at virtual address `addr`, from the segment that maps it.
fn read_addr<'a>(file: &object::File<'a>, addr: u64, len: u64) -> Option<&'a [u8]> {
    file.segments()
        .find_map(|s| s.data_range(addr, len).ok().flatten())
}

/// The first 16-byte-aligned occurrence of `needle`.
fn find_aligned(data: &[u8], needle: &[u8]) -> Option<usize> {
    (0..data.len().saturating_sub(needle.len()) + 1)
        .step_by(16)
        .find(|&i| data[i..].starts_with(needle))
}

/// A uvarint length followed by that many bytes.
fn uvarint_string(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut n: u64 = 0;
    for (i, byte) in b.iter().enumerate().take(10) {
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let rest = &b[i + 1..];
            let n = usize::try_from(n).ok().filter(|n| *n <= rest.len())?;
            return Some((&rest[..n], &rest[n..]));
        }
    }
    None
}

fn rust_crates(file: &object::File, path: &str, layer: &str) -> Vec<Package> {
    let Some(data) = file.section_by_name(".dep-v0").and_then(|s| s.data().ok()) else {
        return vec![];
    };
    let mut json = Vec::new();
    if flate2::read::ZlibDecoder::new(data)
        .take(MAX_AUDIT_JSON)
        .read_to_end(&mut json)
        .is_err()
    {
        return vec![];
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&json) else {
        return vec![];
    };
    v["packages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|p| p["kind"].as_str() != Some("build"))
        .filter_map(|p| {
            Some(Package::new(
                Kind::Cargo,
                p["name"].as_str()?,
                p["version"].as_str()?,
                layer,
                path,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_build_info_strings() {
        let mut s = vec![5u8];
        s.extend(b"go1.2");
        s.push(3);
        s.extend(b"abc");
        let (v, rest) = uvarint_string(&s).unwrap();
        assert_eq!(v, b"go1.2");
        assert_eq!(uvarint_string(rest).unwrap().0, b"abc");
        assert!(uvarint_string(&[9, 1]).is_none());
        let mut d = vec![0u8; 40];
        d.extend(MAGIC);
        assert_eq!(find_aligned(&d, MAGIC), None);
        d.splice(32..32, MAGIC.iter().copied());
        assert_eq!(find_aligned(&d, MAGIC), Some(32));
    }
}
