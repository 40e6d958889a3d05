//! What commands print on standard output goes through `outln!` and `out!` (`crate::stdout::outln!`)
//! instead of `println!`/`print!`, which panic when stdout is gone (`lade plugin list | head -1`).
//!
//! A reader that went away ends lade as it ends podman, buildah and coreutils: killed by SIGPIPE (exit status
//! 141 in a shell), silently. What lade writes to its store is never visible half-written, so stopping there
//! loses nothing. Any other write error (a full disk behind `>`) is reported and exits with status 1.

use std::fmt;
use std::io::Write;

/// Print a line on stdout; see the module doc for what happens when stdout is gone.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::stdout::write(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Print on stdout without a newline; see [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::stdout::write(format_args!($($arg)*)) };
}

// Reached as `crate::stdout::outln!`, so the module layering sees where they come from.
pub(crate) use {out, outln};

/// What the macros expand to.
pub(crate) fn write(args: fmt::Arguments<'_>) {
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_fmt(args) {
        failed(e);
    }
}

/// Stop on a write to stdout that failed.
fn failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        // Rust starts programs with SIGPIPE ignored: restore the default and raise it, so the shell sees what
        // it sees of any other program whose reader left.
        // SAFETY: setting a signal's disposition to its default and raising it has no memory effects.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::raise(libc::SIGPIPE);
        }
        std::process::exit(141);
    }
    eprintln!("error: writing to standard output: {e}");
    std::process::exit(1);
}
