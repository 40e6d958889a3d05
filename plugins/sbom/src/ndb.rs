//! rpm's own "ndb" package database, `Packages.db` (openSUSE, SLES), read-only over bytes in memory.
//!
//! The layout (rpm's `lib/backend/ndb/rpmpkg.c`; every number little-endian): a 32-byte header (magic
//! `RpmP`, version 0, generation, the number of 4 KiB slot pages at 12), then the slot pages: 16-byte slots
//! (magic `Slot`, package index, block offset, block count; the header takes the first two). A slot with
//! offset 0 is free. Blocks are 16 bytes; a used slot's blocks hold one blob: a 16-byte head (magic `BlbS`,
//! package index, timestamp, length), the header blob, zero padding and a 12-byte tail (the Adler-32 of
//! everything before it, the length again, magic `BlbE`).

type R<T> = Result<T, String>;

const MAGIC: u32 = u32::from_le_bytes(*b"RpmP");
const SLOT_MAGIC: u32 = u32::from_le_bytes(*b"Slot");
const HEAD_MAGIC: u32 = u32::from_le_bytes(*b"BlbS");
const TAIL_MAGIC: u32 = u32::from_le_bytes(*b"BlbE");
const PAGE: usize = 4096;
const SLOT: usize = 16;
const BLOCK: usize = 16;
const HEAD: usize = 16;
const TAIL: usize = 12;

fn le(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// Every package blob of the database in `data`, and a note for each one that could not be read.
pub fn blobs(data: &[u8]) -> R<(Vec<&[u8]>, Vec<String>)> {
    if data.len() < 32 || le(data, 0) != MAGIC {
        return Err("not an rpm ndb database (bad magic)".into());
    }
    if le(data, 4) != 0 {
        return Err(format!("unknown ndb version {}", le(data, 4)));
    }
    let pages = le(data, 12) as usize;
    let slots = data
        .get(..pages.checked_mul(PAGE).ok_or("bad slot page count")?)
        .filter(|_| pages > 0)
        .ok_or_else(|| format!("{pages} slot pages do not fit the file"))?;
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    for at in (32..slots.len()).step_by(SLOT) {
        if le(slots, at) != SLOT_MAGIC {
            return Err(format!("bad slot at byte {at}"));
        }
        let (index, offset, count) = (le(slots, at + 4), le(slots, at + 8), le(slots, at + 12));
        if offset == 0 {
            continue;
        }
        match blob(data, index, offset as usize, count as usize) {
            Ok(b) => out.push(b),
            Err(e) => notes.push(format!("package {index}: {e}")),
        }
    }
    Ok((out, notes))
}

fn blob(data: &[u8], index: u32, offset: usize, count: usize) -> R<&[u8]> {
    let block = offset
        .checked_mul(BLOCK)
        .zip(count.checked_mul(BLOCK))
        .and_then(|(start, len)| data.get(start..start.checked_add(len)?))
        .filter(|b| b.len() >= HEAD + TAIL)
        .ok_or("its blocks are past the end of the file")?;
    if le(block, 0) != HEAD_MAGIC || le(block, 4) != index {
        return Err("bad blob head".into());
    }
    let len = le(block, 12) as usize;
    if (HEAD + len + TAIL).div_ceil(BLOCK) * BLOCK != block.len() {
        return Err("the blob length does not match its blocks".into());
    }
    let tail = block.len() - TAIL;
    if le(block, tail + 4) as usize != len || le(block, tail + 8) != TAIL_MAGIC {
        return Err("bad blob tail".into());
    }
    let mut adler = adler2::Adler32::new();
    adler.write_slice(&block[..tail]);
    if adler.checksum() != le(block, tail) {
        return Err("the blob's checksum does not match".into());
    }
    Ok(&block[HEAD..HEAD + len])
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A database holding `blobs` (package indexes 1, 2, ...) with one free slot before them, as rpm writes
    /// it.
    pub fn make(blobs: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![0u8; PAGE];
        out[..4].copy_from_slice(&MAGIC.to_le_bytes());
        out[12..16].copy_from_slice(&1u32.to_le_bytes());
        for at in (32..PAGE).step_by(SLOT) {
            out[at..at + 4].copy_from_slice(&SLOT_MAGIC.to_le_bytes());
        }
        for (i, b) in blobs.iter().enumerate() {
            let index = i as u32 + 1;
            let offset = out.len() / BLOCK;
            let mut block = Vec::new();
            for v in [HEAD_MAGIC, index, 1_700_000_000, b.len() as u32] {
                block.extend(v.to_le_bytes());
            }
            block.extend_from_slice(b);
            block.resize((HEAD + b.len() + TAIL).div_ceil(BLOCK) * BLOCK - TAIL, 0);
            let sum = adler2::adler32_slice(&block);
            for v in [sum, b.len() as u32, TAIL_MAGIC] {
                block.extend(v.to_le_bytes());
            }
            // Slot 2 is left free.
            let slot = (3 + i) * SLOT;
            let count = block.len() / BLOCK;
            for (j, v) in [index, offset as u32, count as u32].iter().enumerate() {
                out[slot + 4 + 4 * j..slot + 8 + 4 * j].copy_from_slice(&v.to_le_bytes());
            }
            out.extend(block);
        }
        out
    }

    #[test]
    fn blobs_in_slot_order() {
        let db = make(&[b"first blob", &[7u8; 300]]);
        let (got, notes) = blobs(&db).unwrap();
        assert_eq!(got, [&b"first blob"[..], &[7u8; 300][..]]);
        assert!(notes.is_empty());
    }

    #[test]
    fn a_damaged_blob_is_a_note_and_the_rest_is_read() {
        let mut db = make(&[b"first blob", b"second"]);
        db[PAGE + HEAD] ^= 1;
        let (got, notes) = blobs(&db).unwrap();
        assert_eq!(got, [&b"second"[..]]);
        assert!(notes[0].contains("checksum"), "{notes:?}");
        assert!(blobs(b"RpmP").is_err());
        assert!(blobs(&[0u8; 4096]).unwrap_err().contains("magic"));
    }

    #[test]
    fn hostile_input_never_panics() {
        let db = make(&[b"first blob", &[7u8; 300]]);
        for len in 0..db.len() {
            let _ = blobs(&db[..len]);
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut bad = db.clone();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Half of the time the first slots or the first blob's head, where the numbers are.
            let numbers = seed.is_multiple_of(2);
            let at = (seed as usize) % if numbers { 96 } else { bad.len() };
            let at = if numbers && at >= 64 {
                PAGE + at - 64
            } else {
                at
            };
            bad[at] = (seed >> 40) as u8;
            let _ = blobs(&bad);
        }
    }
}
