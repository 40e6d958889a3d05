//! Just enough of Berkeley DB's hash access method to read every value of a database: rpm's `Packages`
//! before rpm 4.16 (CentOS 7 and 8, RHEL 7 and 8, Amazon Linux 2). Read-only, over bytes in memory.
//!
//! The layout (Berkeley DB's `db_page.h`): page 0 is the hash metadata page (magic 0x061561 at byte 12, in
//! the byte order the database was written in; page size at 20; encryption at 24; page type 8 at 25; the
//! checksum flag in byte 26; the last page number at 32). Every page starts with a 26-byte header (next
//! page at 16, entry count at 20, `hf_offset` at 22, type at 25), followed by 6 more bytes when pages carry
//! checksums. Hash pages (type 13, or 2 unsorted) hold an array of u16 item offsets: even items are keys, odd
//! ones values. A value is either on the page (`H_KEYDATA`, 1: a type byte then the bytes up to the item
//! before it) or off it (`H_OFFPAGE`, 3: the first overflow page at 4, the total length at 8). Overflow pages
//! (type 7) chain through their next page number and hold `hf_offset` bytes each.
//!
//! Pages are read in file order, so every bucket and overflow bucket page is seen once; a corrupt chain ends
//! with an error for that value, never a panic or a loop.

type R<T> = Result<T, String>;

const MAGIC: u32 = 0x061561;
const PAGE_HEADER: usize = 26;
/// Pages of a database with checksums carry 6 more header bytes (2 of padding, a 4-byte checksum).
const CHECKSUM_AREA: usize = 6;
const HASH_META: u8 = 8;
const HASH: u8 = 13;
const HASH_UNSORTED: u8 = 2;
const OVERFLOW: u8 = 7;
const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;

struct Db<'a> {
    data: &'a [u8],
    big_endian: bool,
    page_size: usize,
    pages: usize,
    /// Where a page's item array (hash pages) or data (overflow pages) starts.
    body: usize,
}

/// Every value of the hash database in `data`, and a note for each value that could not be read.
pub fn values(data: &[u8]) -> R<(Vec<Vec<u8>>, Vec<String>)> {
    let db = Db::open(data)?;
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    // Each overflow chain is one value's: together they cannot be longer than the file (a hostile file
    // pointing many items at one long chain would otherwise take memory without bound).
    let mut budget = data.len();
    for n in 1..db.pages {
        let page = db.page(n)?;
        if !matches!(page[25], HASH | HASH_UNSORTED) {
            continue;
        }
        let entries = db.u16(page, 20)? as usize;
        for i in (1..entries).step_by(2) {
            match db.value(page, i, &mut budget) {
                Ok(Some(v)) => out.push(v),
                Ok(None) => {}
                Err(e) => notes.push(format!("page {n}, item {i}: {e}")),
            }
        }
    }
    Ok((out, notes))
}

impl<'a> Db<'a> {
    fn open(data: &'a [u8]) -> R<Db<'a>> {
        let meta = data
            .get(..PAGE_HEADER + 46)
            .ok_or("too short for a Berkeley DB metadata page")?;
        let magic = |be: bool| {
            let b: [u8; 4] = meta[12..16].try_into().unwrap_or_default();
            if be {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let big_endian = match (magic(false), magic(true)) {
            (MAGIC, _) => false,
            (_, MAGIC) => true,
            _ => return Err("not a Berkeley DB hash database (bad magic)".into()),
        };
        let mut db = Db {
            data,
            big_endian,
            page_size: 0,
            pages: 0,
            body: PAGE_HEADER,
        };
        let page_size = db.u32(meta, 20)? as usize;
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(format!("bad page size {page_size}"));
        }
        if meta[24] != 0 {
            return Err("the database is encrypted".into());
        }
        if meta[25] != HASH_META {
            return Err(format!("not a hash database (page type {})", meta[25]));
        }
        if meta[26] & 1 != 0 {
            db.body += CHECKSUM_AREA;
        }
        let last = db.u32(meta, 32)? as usize;
        db.page_size = page_size;
        // A truncated file: read the pages that are there.
        db.pages = last.saturating_add(1).min(data.len() / page_size);
        Ok(db)
    }

    fn page(&self, n: usize) -> R<&'a [u8]> {
        if n >= self.pages {
            return Err(format!("page {n} is past the end"));
        }
        Ok(&self.data[n * self.page_size..(n + 1) * self.page_size])
    }

    fn u16(&self, b: &[u8], at: usize) -> R<u16> {
        let b: [u8; 2] = b
            .get(at..at + 2)
            .and_then(|s| s.try_into().ok())
            .ok_or("short page")?;
        Ok(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&self, b: &[u8], at: usize) -> R<u32> {
        let b: [u8; 4] = b
            .get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or("short page")?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    /// Item `i` of a hash page: Some(bytes) for data on or off the page, None for other item kinds.
    fn value(&self, page: &[u8], i: usize, budget: &mut usize) -> R<Option<Vec<u8>>> {
        let at = self.u16(page, self.body + 2 * i)? as usize;
        // Items fill the page from its end: item i ends where item i - 1 starts.
        let end = self.u16(page, self.body + 2 * (i - 1))? as usize;
        if at >= end || end > page.len() {
            return Err("bad item offset".into());
        }
        match page[at] {
            H_KEYDATA => Ok(Some(page[at + 1..end].to_vec())),
            H_OFFPAGE => {
                let first = self.u32(page, at + 4)? as usize;
                let len = self.u32(page, at + 8)? as usize;
                *budget = budget
                    .checked_sub(len)
                    .ok_or("overflow items longer than the file")?;
                self.overflow(first, len).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The `len` bytes of the overflow chain starting at page `n`.
    fn overflow(&self, mut n: usize, len: usize) -> R<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        // Each page adds at least one byte, or the chain is bad: at most `len` pages.
        while out.len() < len {
            let page = self.page(n)?;
            if page[25] != OVERFLOW {
                return Err(format!("page {n} is not an overflow page"));
            }
            let here = self.u16(page, 22)? as usize;
            let data = page
                .get(self.body..self.body + here)
                .filter(|d| !d.is_empty())
                .ok_or_else(|| format!("overflow page {n} has a bad length"))?;
            out.extend_from_slice(&data[..data.len().min(len - out.len())]);
            n = self.u32(page, 16)? as usize;
            if n == 0 {
                break;
            }
        }
        if out.len() != len {
            return Err(format!("overflow chain holds {} of {len} bytes", out.len()));
        }
        Ok(out)
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A little hash database, as Berkeley DB lays it out: the metadata page, one hash page holding
    /// (key, value) pairs (values of `inline` bytes or less on the page, longer ones off it), and the
    /// overflow pages.
    pub fn make(pairs: &[(&[u8], &[u8])], page_size: usize, be: bool, inline: usize) -> Vec<u8> {
        let w16 = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let w32 = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut pages: Vec<Vec<u8>> = vec![vec![0; page_size], vec![0; page_size]];
        let mut items: Vec<Vec<u8>> = Vec::new();
        for (k, v) in pairs {
            let mut key = vec![H_KEYDATA];
            key.extend_from_slice(k);
            items.push(key);
            if v.len() <= inline {
                let mut val = vec![H_KEYDATA];
                val.extend_from_slice(v);
                items.push(val);
                continue;
            }
            let first = pages.len();
            let room = page_size - PAGE_HEADER;
            let chunks: Vec<&[u8]> = v.chunks(room).collect();
            for (j, c) in chunks.iter().enumerate() {
                let mut p = vec![0; page_size];
                let n = pages.len();
                p[8..12].copy_from_slice(&w32(n as u32));
                let next = if j + 1 < chunks.len() { n + 1 } else { 0 };
                p[16..20].copy_from_slice(&w32(next as u32));
                p[22..24].copy_from_slice(&w16(c.len() as u16));
                p[25] = OVERFLOW;
                p[PAGE_HEADER..PAGE_HEADER + c.len()].copy_from_slice(c);
                pages.push(p);
            }
            let mut off = vec![H_OFFPAGE, 0, 0, 0];
            off.extend(w32(first as u32));
            off.extend(w32(v.len() as u32));
            items.push(off);
        }
        let page = &mut pages[1];
        page[20..22].copy_from_slice(&w16(items.len() as u16));
        page[25] = HASH;
        let mut end = page_size;
        for (i, item) in items.iter().enumerate() {
            let at = end - item.len();
            page[at..end].copy_from_slice(item);
            page[PAGE_HEADER + 2 * i..PAGE_HEADER + 2 * i + 2].copy_from_slice(&w16(at as u16));
            end = at;
        }
        let meta = &mut pages[0];
        meta[12..16].copy_from_slice(&w32(MAGIC));
        meta[20..24].copy_from_slice(&w32(page_size as u32));
        meta[25] = HASH_META;
        let last = pages.len() as u32 - 1;
        pages[0][32..36].copy_from_slice(&w32(last));
        pages.concat()
    }

    fn sample(be: bool) -> (Vec<u8>, Vec<Vec<u8>>) {
        let long: Vec<u8> = (0..1500u32).map(|i| (i % 251) as u8).collect();
        let want = vec![long.clone(), b"short".to_vec()];
        (
            make(
                &[(b"\x01\0\0\0", &long), (b"\x02\0\0\0", b"short")],
                512,
                be,
                100,
            ),
            want,
        )
    }

    #[test]
    fn values_on_and_off_the_page_in_both_byte_orders() {
        for be in [false, true] {
            let (db, want) = sample(be);
            let (got, notes) = values(&db).unwrap();
            assert_eq!(got, want);
            assert!(notes.is_empty(), "{notes:?}");
        }
    }

    #[test]
    fn not_a_database_is_an_error() {
        assert!(values(b"").is_err());
        assert!(values(&[0u8; 4096]).unwrap_err().contains("magic"));
    }

    /// Every truncation and many corruptions of a good database: errors or fewer values, never a panic.
    #[test]
    fn hostile_input_never_panics() {
        let (db, _) = sample(false);
        for len in 0..db.len() {
            let _ = values(&db[..len]);
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut bad = db.clone();
            for _ in 0..1 + seed % 4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed as usize) % bad.len();
                bad[at] = (seed >> 32) as u8;
            }
            let _ = values(&bad);
        }
    }
}
