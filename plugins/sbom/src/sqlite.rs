//! Just enough of the SQLite file format to read one table's rows: the database header, table b-tree pages
//! (interior and leaf), overflow chains and records (<https://www.sqlite.org/fileformat.html>). Read-only,
//! over bytes in memory; any inconsistency ends the read with an error, never a panic or a loop (every page
//! is visited at most once).

use std::collections::HashSet;

/// A column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Blob(Vec<u8>),
}

pub struct Db<'a> {
    data: &'a [u8],
    page_size: usize,
    usable: usize,
}

type R<T> = Result<T, String>;

impl<'a> Db<'a> {
    pub fn open(data: &'a [u8]) -> R<Db<'a>> {
        if !data.starts_with(b"SQLite format 3\0") || data.len() < 100 {
            return Err("not an SQLite 3 database".into());
        }
        let page_size = match u16::from_be_bytes([data[16], data[17]]) {
            1 => 65536,
            n if n >= 512 && n.is_power_of_two() => n as usize,
            n => return Err(format!("bad page size {n}")),
        };
        let usable = page_size - data[20] as usize;
        Ok(Db {
            data,
            page_size,
            usable,
        })
    }

    fn page(&self, n: u32) -> R<&'a [u8]> {
        let start = (n as usize).checked_sub(1).ok_or("page 0")? * self.page_size;
        self.data
            .get(start..start + self.page_size)
            .ok_or_else(|| format!("page {n} is past the end"))
    }

    /// The rows (rowid, columns) of the table named `name`.
    pub fn table(&self, name: &str) -> R<Vec<(i64, Vec<Value>)>> {
        let root = self
            .rows(1)?
            .into_iter()
            .find(|(_, cols)| {
                cols.first() == Some(&Value::Text("table".into()))
                    && cols.get(1) == Some(&Value::Text(name.into()))
            })
            .and_then(|(_, cols)| match cols.get(3) {
                Some(Value::Int(p)) => u32::try_from(*p).ok(),
                _ => None,
            })
            .ok_or_else(|| format!("no table {name}"))?;
        self.rows(root)
    }

    /// Every row of the table b-tree rooted at page `root`.
    fn rows(&self, root: u32) -> R<Vec<(i64, Vec<Value>)>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![root];
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                return Err(format!("page {n} is referenced twice"));
            }
            let page = self.page(n)?;
            let h = if n == 1 { 100 } else { 0 };
            let kind = *page.get(h).ok_or("short page")?;
            let cells = u16::from_be_bytes([page[h + 3], page[h + 4]]) as usize;
            let header = if kind == 0x05 { 12 } else { 8 };
            let mut children = Vec::new();
            for i in 0..cells {
                let at = h + header + 2 * i;
                let off = u16::from_be_bytes([
                    *page.get(at).ok_or("short page")?,
                    *page.get(at + 1).ok_or("short page")?,
                ]) as usize;
                match kind {
                    0x05 => children.push(be32(page, off)?),
                    0x0d => out.push(self.leaf_cell(page, off)?),
                    k => return Err(format!("page {n} is not a table page (type {k:#x})")),
                }
            }
            if kind == 0x05 {
                children.push(be32(page, h + 8)?);
            }
            // Keep rowid order: the left-most child is read first.
            stack.extend(children.into_iter().rev());
        }
        Ok(out)
    }

    fn leaf_cell(&self, page: &[u8], off: usize) -> R<(i64, Vec<Value>)> {
        let (size, a) = varint(page, off)?;
        let (rowid, b) = varint(page, off + a)?;
        let start = off + a + b;
        let size = size as usize;
        let (u, x) = (self.usable, self.usable - 35);
        let local = if size <= x {
            size
        } else {
            let m = (u - 12) * 32 / 255 - 23;
            let k = m + (size - m) % (u - 4);
            if k <= x { k } else { m }
        };
        let mut payload = page
            .get(start..start + local)
            .ok_or("cell past the page")?
            .to_vec();
        if local < size {
            let mut next = be32(page, start + local)?;
            let mut seen = HashSet::new();
            while payload.len() < size {
                if next == 0 || !seen.insert(next) {
                    return Err("broken overflow chain".into());
                }
                let p = self.page(next)?;
                let take = (size - payload.len()).min(u - 4);
                payload.extend_from_slice(p.get(4..4 + take).ok_or("short overflow page")?);
                next = be32(p, 0)?;
            }
        }
        Ok((rowid as i64, record(&payload)?))
    }
}

fn be32(b: &[u8], at: usize) -> R<u32> {
    Ok(u32::from_be_bytes(
        b.get(at..at + 4).ok_or("short page")?.try_into().unwrap(),
    ))
}

/// An SQLite varint at `at`: (value, length).
fn varint(b: &[u8], at: usize) -> R<(u64, usize)> {
    let mut v: u64 = 0;
    for i in 0..9 {
        let byte = *b.get(at + i).ok_or("varint past the end")?;
        if i == 8 {
            return Ok(((v << 8) | u64::from(byte), 9));
        }
        v = (v << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    unreachable!()
}

fn record(p: &[u8]) -> R<Vec<Value>> {
    let (header_len, mut at) = varint(p, 0)?;
    let mut types = Vec::new();
    while at < header_len as usize {
        let (t, n) = varint(p, at)?;
        types.push(t);
        at += n;
    }
    let mut body = header_len as usize;
    let mut out = Vec::new();
    for t in types {
        let int = |len: usize| -> R<i64> {
            let bytes = p.get(body..body + len).ok_or("record past the end")?;
            let mut v: i64 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
                -1
            } else {
                0
            };
            for b in bytes {
                v = (v << 8) | i64::from(*b);
            }
            Ok(v)
        };
        let (v, len) = match t {
            0 => (Value::Null, 0),
            1..=4 => (Value::Int(int(t as usize)?), t as usize),
            5 => (Value::Int(int(6)?), 6),
            6 => (Value::Int(int(8)?), 8),
            7 => (Value::Float(f64::from_bits(int(8)? as u64)), 8),
            8 => (Value::Int(0), 0),
            9 => (Value::Int(1), 0),
            n if n >= 12 => {
                let len = ((n - 12) / 2) as usize;
                let bytes = p.get(body..body + len).ok_or("record past the end")?;
                if n % 2 == 0 {
                    (Value::Blob(bytes.to_vec()), len)
                } else {
                    (
                        Value::Text(String::from_utf8_lossy(bytes).into_owned()),
                        len,
                    )
                }
            }
            n => return Err(format!("bad serial type {n}")),
        };
        body += len;
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_records() {
        assert_eq!(varint(&[0x81, 0x00], 0).unwrap(), (128, 2));
        // header 3 bytes: types 1 (int8) and 19 (text of 3); body 7, "abc".
        let r = record(&[3, 1, 19, 7, b'a', b'b', b'c']).unwrap();
        assert_eq!(r, [Value::Int(7), Value::Text("abc".into())]);
        assert!(Db::open(b"not sqlite").is_err());
    }
}
