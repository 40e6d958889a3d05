//! Early writeback for big files that are fsynced at the end (blobs, layers).
//!
//! Left alone, the kernel keeps a freshly written blob in the page cache and writes it only when the final
//! fsync asks, so the whole file hits the disk while the caller waits. Asking for writeback of each
//! completed stretch as we go (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which only starts I/O) overlaps the
//! disk with the work that produces the data; the fsync then waits for the tail alone.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

/// How much to write before starting writeback of it.
const STRETCH: u64 = 8 << 20;

/// Start writing back `len` bytes of `file` from `offset`. A hint: errors are ignored, the fsync that
/// follows is what makes the data durable.
pub fn start(file: &impl AsRawFd, offset: u64, len: u64) {
    // SAFETY: plain syscall on a descriptor the caller keeps open; no memory is passed.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Tracks how far a sequentially written file has been handed to writeback.
#[derive(Debug, Default)]
pub struct Progress {
    written: u64,
    started: u64,
}

impl Progress {
    /// Note `n` more bytes written; true when a stretch is complete and [`Progress::start`] is due (async
    /// writers flush their buffer first, so the bytes are in the file when writeback starts).
    pub fn wrote(&mut self, n: usize) -> bool {
        self.written += n as u64;
        self.written - self.started >= STRETCH
    }
    /// Start writeback of everything written since the last call.
    pub fn start(&mut self, file: &impl AsRawFd) {
        start(file, self.started, self.written - self.started);
        self.started = self.written;
    }
}

/// A `File` writer with early writeback (for synchronous writers).
pub struct WritebackFile {
    file: File,
    progress: Progress,
}

impl WritebackFile {
    pub fn new(file: File) -> Self {
        WritebackFile {
            file,
            progress: Progress::default(),
        }
    }
}

impl Write for WritebackFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        if self.progress.wrote(n) {
            self.progress.start(&self.file);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
