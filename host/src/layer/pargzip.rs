//! Parallel gzip in the pigz style, with one twist: blocks that deflate cannot shrink are stored.
//!
//! The input is cut into fixed 128 KiB blocks. Each block is compressed on a worker thread as raw deflate,
//! primed with the previous block's last 32 KiB as its dictionary and ended with a sync flush, so the blocks
//! concatenate into one deflate stream inside one gzip member. The output depends only on the input and the
//! level, never on the thread count or on timing, so layer digests are reproducible on any machine.
//!
//! Already-compressed data (archives, images, media, random bytes) costs deflate about 40 MB/s per core and
//! gains nothing. A cheap probe (byte entropy, then a count of 4-byte repeats inside deflate's 32 KiB window)
//! spots such blocks and writes them as stored blocks at memory speed instead.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

const BLOCK: usize = 128 * 1024;
const WINDOW: usize = 32 * 1024;

struct Job {
    dict: Vec<u8>,
    data: Vec<u8>,
    reply: SyncSender<io::Result<Vec<u8>>>,
}

/// A gzip writer over `out` that compresses on `threads` workers; call [`ParGzip::finish`] to end the stream.
pub struct ParGzip<W: Write> {
    /// Taken by `finish`.
    out: Option<W>,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
    block: Vec<u8>,
    /// The last `WINDOW` bytes of the previous block: the next block's dictionary.
    dict: Vec<u8>,
    crc: crc32fast::Hasher,
    size: u64,
}

impl<W: Write> ParGzip<W> {
    pub fn new(mut out: W, threads: usize, level: u32) -> io::Result<Self> {
        // mtime 0, no name, OS "unknown": nothing in the header depends on the machine or the clock.
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
        let threads = threads.max(1);
        let (jobs, queue) = sync_channel::<Job>(threads * 2);
        let queue = Arc::new(Mutex::new(queue));
        let level = level.clamp(1, 9);
        let workers = (0..threads)
            .map(|_| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(q) => q.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        // The receiver may be gone if the writer was dropped mid-stream; nothing to report to.
                        let _ = job.reply.send(compress_block(&job.dict, &job.data, level));
                    }
                })
            })
            .collect();
        Ok(ParGzip {
            out: Some(out),
            jobs: Some(jobs),
            workers,
            pending: VecDeque::new(),
            max_pending: threads * 3,
            block: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            crc: crc32fast::Hasher::new(),
            size: 0,
        })
    }

    fn submit(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let dict = std::mem::take(&mut self.dict);
        self.dict = data[data.len().saturating_sub(WINDOW)..].to_vec();
        let (reply, answer) = sync_channel(1);
        self.jobs
            .as_ref()
            .expect("jobs open until finish")
            .send(Job { dict, data, reply })
            .map_err(|_| io::Error::other("the gzip workers stopped"))?;
        self.pending.push_back(answer);
        // Write what is done, in order; wait only when too much is in flight.
        while let Some(front) = self.pending.front() {
            let ready = if self.pending.len() > self.max_pending {
                Some(front.recv())
            } else {
                match front.try_recv() {
                    Ok(r) => Some(Ok(r)),
                    Err(std::sync::mpsc::TryRecvError::Empty) => None,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        Some(Err(std::sync::mpsc::RecvError))
                    }
                }
            };
            let Some(result) = ready else { break };
            self.pending.pop_front();
            let bytes = result.map_err(|_| io::Error::other("a gzip worker stopped"))??;
            self.out()?.write_all(&bytes)?;
        }
        Ok(())
    }

    /// Compress what is left, write the final block and the gzip trailer, and return the output.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.block.is_empty() {
            self.submit()?;
        }
        self.jobs = None;
        while let Some(answer) = self.pending.pop_front() {
            let bytes = answer
                .recv()
                .map_err(|_| io::Error::other("a gzip worker stopped"))??;
            self.out()?.write_all(&bytes)?;
        }
        // An empty final block with fixed Huffman codes ends the deflate stream.
        self.out()?.write_all(&[0x03, 0x00])?;
        let crc = std::mem::take(&mut self.crc).finalize();
        let size = self.size as u32;
        self.out()?.write_all(&crc.to_le_bytes())?;
        self.out()?.write_all(&size.to_le_bytes())?;
        self.out()?.flush()?;
        Ok(self.out.take().expect("checked by out()"))
    }

    fn out(&mut self) -> io::Result<&mut W> {
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("the gzip stream is already finished"))
    }
}

impl<W: Write> Write for ParGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        self.crc.update(&buf[..n]);
        self.size += n as u64;
        if self.block.len() == BLOCK {
            self.submit()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        // Blocks have a fixed size so the output never depends on when callers flush.
        self.out()?.flush()
    }
}

impl<W: Write> Drop for ParGzip<W> {
    fn drop(&mut self) {
        self.jobs = None;
        self.pending.clear();
        for w in std::mem::take(&mut self.workers) {
            let _ = w.join();
        }
    }
}

/// One block as raw deflate ending on a byte boundary (sync flush), or as stored blocks.
fn compress_block(dict: &[u8], data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    if incompressible(data) {
        return Ok(stored(data));
    }
    // A fresh state per block: zlib-rs's reset keeps enough history to change the output, and the output must
    // depend on nothing but this block and its dictionary.
    let mut c = flate2::Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        let done = c.total_in() as usize;
        c.compress_vec(&data[done..], &mut out, flate2::FlushCompress::Sync)
            .map_err(io::Error::other)?;
        // Finished when all input is in and the flush did not run out of room.
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(out.capacity().max(64 * 1024));
    }
}

/// Deflate stored blocks (not final) holding `data`; they start on a byte boundary, as every block ends on one.
fn stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65535 * 5 + 5);
    for chunk in data.chunks(65535) {
        let len = chunk.len() as u16;
        out.push(0x00);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// True when deflate would gain (almost) nothing: bytes spread nearly evenly over all 256 values, so Huffman
/// coding cannot help, and hardly any 4-byte sequence repeats within the 32 KiB window, so matches cannot.
fn incompressible(data: &[u8]) -> bool {
    if data.len() < 4096 {
        return false;
    }
    // Four histograms so consecutive bytes do not wait on the same counter.
    let mut hist = [[0u32; 256]; 4];
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        for (h, &b) in hist.iter_mut().zip(q) {
            h[b as usize] += 1;
        }
    }
    for &b in quads.remainder() {
        hist[0][b as usize] += 1;
    }
    let n = data.len() as f64;
    let entropy: f64 = (0..256)
        .map(|i| hist.iter().map(|h| h[i]).sum::<u32>())
        .filter(|&c| c > 0)
        .map(|c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    if entropy < 7.9 {
        return false;
    }
    // Remember, per hash slot, the last 4-byte value seen and where; a repeat is the same value again within
    // the window. Small tables stay in L1, so this runs at several hundred MB/s.
    const BITS: u32 = 12;
    let mut values = [0u32; 1 << BITS];
    let mut ends = [0u32; 1 << BITS];
    let mut repeats = 0usize;
    for (i, w) in data.windows(4).enumerate() {
        let v = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        let slot = (v.wrapping_mul(0x9E37_79B1) >> (32 - BITS)) as usize;
        let end = i as u32 + 1;
        repeats +=
            (ends[slot] != 0 && values[slot] == v && end - ends[slot] <= WINDOW as u32) as usize;
        values[slot] = v;
        ends[slot] = end;
    }
    // Random data repeats a 4-byte sequence at about 1 position in 1,000,000.
    repeats * 500 < data.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn gzip(data: &[u8], threads: usize, level: u32) -> Vec<u8> {
        let mut z = ParGzip::new(Vec::new(), threads, level).unwrap();
        // Odd write sizes: block boundaries must not depend on how the caller writes.
        for chunk in data.chunks(77_777) {
            z.write_all(chunk).unwrap();
        }
        z.finish().unwrap()
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn round_trips_mixed_data_identically_for_any_thread_count() {
        let text: Vec<u8> = (0..40_000u32)
            .flat_map(|i| format!("let x{i} = {};\n", i * 7919 % 1000).into_bytes())
            .collect();
        let mut data = text.clone();
        data.extend(noise(700_000, 7));
        data.extend(&text[..100_000]);
        // A random 20 KiB string repeated: high byte entropy, but deflate halves it, so it must not be stored.
        let r = noise(20_000, 9);
        for _ in 0..8 {
            data.extend(&r);
        }
        for input in [Vec::new(), b"x".to_vec(), data] {
            let one = gzip(&input, 1, 6);
            assert_eq!(gunzip(&one), input);
            assert_eq!(
                gzip(&input, 3, 6),
                one,
                "output changed with the thread count"
            );
        }
    }

    #[test]
    fn stores_noise_but_compresses_text_and_repeats() {
        let n = noise(BLOCK, 3);
        assert!(incompressible(&n));
        let text: Vec<u8> = (0..BLOCK)
            .map(|i| b"abcdefgh"[i % 7 + (i / 5000) % 2])
            .collect();
        assert!(!incompressible(&text));
        let r = noise(16_000, 5);
        let repeated: Vec<u8> = r.iter().cycle().take(BLOCK).copied().collect();
        assert!(!incompressible(&repeated));
        let gz = gzip(&repeated, 2, 6);
        assert!(gz.len() < BLOCK / 4, "repeats not compressed: {}", gz.len());
        let gz = gzip(&n, 2, 6);
        assert!(gz.len() < BLOCK + 64, "noise grew: {}", gz.len());
    }
}
