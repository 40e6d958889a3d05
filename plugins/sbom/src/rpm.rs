//! RPM packages from all three rpm database formats: sqlite (`rpmdb.sqlite`, table `Packages`, one header
//! blob per row; rpm >= 4.16, Fedora, RHEL 9), Berkeley DB (`Packages`, a hash database; CentOS 7 and 8)
//! and ndb (`Packages.db`; SUSE), read with [`crate::sqlite`], [`crate::bdb`] and [`crate::ndb`]. Each holds
//! the same header blobs, parsed by [`header`]. The version is `[EPOCH:]VERSION-RELEASE`, as
//! `rpm -q --qf %{EPOCHNUM}:...` without the `0:`.

use crate::licenses;
use crate::model::{Kind, Package};
use crate::sqlite::{Db, Value};
use crate::{bdb, ndb};

pub const GLOBS: &[&str] = &[
    "/var/lib/rpm/rpmdb.sqlite",
    "/usr/lib/sysimage/rpm/rpmdb.sqlite",
    "/var/lib/rpm/Packages",
    "/usr/lib/sysimage/rpm/Packages",
    "/var/lib/rpm/Packages.db",
    "/usr/lib/sysimage/rpm/Packages.db",
];

pub fn wants(path: &str) -> bool {
    GLOBS.contains(&path)
}

/// The packages of the database at `path`, and a note for each record that could not be read.
pub fn read(path: &str, layer: &str, data: &[u8]) -> Result<(Vec<Package>, Vec<String>), String> {
    let mut notes = Vec::new();
    let blobs: Vec<Vec<u8>> = if path.ends_with(".sqlite") {
        let db = Db::open(data)?;
        db.table("Packages")?
            .into_iter()
            .filter_map(|(_, mut cols)| match cols.get_mut(1) {
                Some(Value::Blob(b)) => Some(std::mem::take(b)),
                _ => None,
            })
            .collect()
    } else if path.ends_with(".db") {
        let (blobs, n) = ndb::blobs(data)?;
        notes = n;
        blobs.into_iter().map(<[u8]>::to_vec).collect()
    } else {
        let (values, n) = bdb::values(data)?;
        notes = n;
        // rpm keeps a 4-byte instance counter under key 0 of a Berkeley DB `Packages`: only headers count.
        values.into_iter().filter(|v| v.len() > 8).collect()
    };
    let mut out = Vec::new();
    for blob in blobs {
        match header(&blob, layer, path) {
            Ok(Some(p)) => out.push(p),
            Ok(None) => {}
            Err(e) => notes.push(e),
        }
    }
    Ok((out, notes))
}

const NAME: u32 = 1000;
const VERSION: u32 = 1001;
const RELEASE: u32 = 1002;
const EPOCH: u32 = 1003;
const LICENSE: u32 = 1014;
const ARCH: u32 = 1022;
const SOURCERPM: u32 = 1044;
const DIRINDEXES: u32 = 1116;
const BASENAMES: u32 = 1117;
const DIRNAMES: u32 = 1118;

/// One header blob (index count, data length, 16-byte index entries, the data store) as a package; None for
/// the `gpg-pubkey` pseudo-packages.
pub fn header(blob: &[u8], layer: &str, path: &str) -> Result<Option<Package>, String> {
    let be = |at: usize| -> Result<u32, String> {
        blob.get(at..at.checked_add(4).ok_or("bad header")?)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| "short header".to_string())
    };
    let (il, dl) = (be(0)? as usize, be(4)? as usize);
    let store = il
        .checked_mul(16)
        .and_then(|n| n.checked_add(8))
        .and_then(|at| blob.get(at..at.checked_add(dl)?))
        .ok_or("header data past the blob")?;
    let mut entries = std::collections::HashMap::new();
    for i in 0..il {
        let e = 8 + 16 * i;
        entries.insert(
            be(e)?,
            (be(e + 4)?, be(e + 8)? as usize, be(e + 12)? as usize),
        );
    }
    let strings = |tag: u32| -> Vec<String> {
        let Some(&(ty, off, count)) = entries.get(&tag) else {
            return vec![];
        };
        if !matches!(ty, 6 | 8 | 9) || off >= store.len() {
            return vec![];
        }
        store[off..]
            .split(|b| *b == 0)
            .take(if ty == 6 { 1 } else { count })
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    };
    let ints = |tag: u32| -> Vec<u32> {
        let Some(&(4, off, count)) = entries.get(&tag) else {
            return vec![];
        };
        store
            .get(off..)
            .unwrap_or_default()
            .chunks_exact(4)
            .take(count)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    let one = |tag: u32| strings(tag).into_iter().next();
    let Some(name) = one(NAME) else {
        return Ok(None);
    };
    if name == "gpg-pubkey" {
        return Ok(None);
    }
    let version = match (ints(EPOCH).first(), one(VERSION), one(RELEASE)) {
        (Some(e), Some(v), Some(r)) => format!("{e}:{v}-{r}"),
        (None, Some(v), Some(r)) => format!("{v}-{r}"),
        (_, Some(v), None) => v,
        _ => return Ok(None),
    };
    let mut p = Package::new(Kind::Rpm, &name, &version, layer, path);
    p.arch = one(ARCH);
    p.licenses = one(LICENSE).and_then(|l| licenses::expression(&l));
    p.source_name = one(SOURCERPM);
    let (dirs, index) = (strings(DIRNAMES), ints(DIRINDEXES));
    p.files = strings(BASENAMES)
        .iter()
        .zip(&index)
        .filter_map(|(base, i)| dirs.get(*i as usize).map(|d| format!("{d}{base}")))
        .collect();
    Ok(Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header blob with the given (tag, type, data) entries.
    fn blob(entries: &[(u32, u32, u32, &[u8])]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut store = Vec::new();
        for (tag, ty, count, data) in entries {
            for v in [*tag, *ty, store.len() as u32, *count] {
                index.extend(v.to_be_bytes());
            }
            store.extend_from_slice(data);
        }
        let mut out = (entries.len() as u32).to_be_bytes().to_vec();
        out.extend((store.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(store);
        out
    }

    #[test]
    fn header_blob_fields() {
        let b = blob(&[
            (NAME, 6, 1, b"hello\0"),
            (VERSION, 6, 1, b"1.0\0"),
            (RELEASE, 6, 1, b"2\0"),
            (ARCH, 6, 1, b"noarch\0"),
            (LICENSE, 6, 1, b"MIT\0"),
            (DIRNAMES, 8, 1, b"/usr/bin/\0"),
            (BASENAMES, 8, 2, b"a\0b\0"),
            (DIRINDEXES, 4, 2, &[0, 0, 0, 0, 0, 0, 0, 0]),
        ]);
        let p = header(&b, "l", "/var/lib/rpm/rpmdb.sqlite")
            .unwrap()
            .unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("hello", "1.0-2"));
        assert_eq!(p.files, ["/usr/bin/a", "/usr/bin/b"]);
        assert_eq!(p.licenses.as_deref(), Some("MIT"));
        assert!(header(&b[..10], "l", "x").is_err());
    }

    /// Truncations and corruptions of a header blob: an error or a package, never a panic.
    #[test]
    fn hostile_headers_never_panic() {
        let b = blob(&[
            (NAME, 6, 1, b"hello\0"),
            (VERSION, 6, 1, b"1.0\0"),
            (EPOCH, 4, 1, &[0, 0, 0, 1]),
            (DIRNAMES, 8, 1, b"/usr/bin/\0"),
            (BASENAMES, 8, 2, b"a\0b\0"),
            (DIRINDEXES, 4, 2, &[0, 0, 0, 0, 0, 0, 0, 9]),
        ]);
        for len in 0..b.len() {
            let _ = header(&b[..len], "l", "x");
        }
        let mut seed = 0x1234_5678_9abc_def1u64;
        for _ in 0..20_000 {
            let mut bad = b.clone();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed as usize) % bad.len();
            bad[at] = (seed >> 40) as u8;
            let _ = header(&bad, "l", "x");
        }
        let huge = [0xff; 64];
        assert!(header(&huge, "l", "x").is_err());
    }

    fn sample_header(name: &str) -> Vec<u8> {
        let n = format!("{name}\0");
        blob(&[
            (NAME, 6, 1, n.as_bytes()),
            (VERSION, 6, 1, b"2.1\0"),
            (RELEASE, 6, 1, b"7.el8\0"),
            (ARCH, 6, 1, b"x86_64\0"),
        ])
    }

    #[test]
    fn berkeley_db_and_ndb_databases_give_their_packages() {
        let (a, b) = (sample_header("bash"), sample_header("zlib"));
        let bdb = crate::bdb::tests::make(
            &[
                (b"\0\0\0\0", &[3, 0, 0, 0]),
                (b"\x01\0\0\0", &a),
                (b"\x02\0\0\0", &b),
            ],
            512,
            false,
            20,
        );
        let ndb = crate::ndb::tests::make(&[&a, &b]);
        for (path, data) in [
            ("/var/lib/rpm/Packages", bdb),
            ("/usr/lib/sysimage/rpm/Packages.db", ndb),
        ] {
            assert!(wants(path));
            let (found, notes) = read(path, "l", &data).unwrap();
            let names: Vec<(&str, &str)> = found
                .iter()
                .map(|p| (p.name.as_str(), p.version.as_str()))
                .collect();
            assert_eq!(
                names,
                [("bash", "2.1-7.el8"), ("zlib", "2.1-7.el8")],
                "{path}"
            );
            assert!(notes.is_empty(), "{notes:?}");
        }
    }
}
