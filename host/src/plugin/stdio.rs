//! A plugin's stdout and stderr: captured in memory (bounded), then logged through `tracing` after the call
//! with the plugin's name in front. A plugin never writes to lade's own terminal.

use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// How much of each stream is kept; the rest is counted and dropped, never an error for the plugin.
const CAPACITY: usize = 64 << 10;

#[derive(Default)]
struct Buffer {
    kept: Vec<u8>,
    dropped: usize,
}

/// One captured stream. Clones share the buffer.
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Buffer>>);

impl Capture {
    fn push(&self, bytes: &[u8]) {
        let mut b = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let room = CAPACITY.saturating_sub(b.kept.len()).min(bytes.len());
        b.kept.extend_from_slice(&bytes[..room]);
        b.dropped += bytes.len() - room;
    }

    /// What was written, lossily decoded.
    pub fn text(&self) -> String {
        let b = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&b.kept).into_owned()
    }

    /// Forget what was written (a session logs each call's output once).
    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Buffer::default();
    }

    /// Log every line at `level` (target `lade`), prefixed with the plugin and the stream.
    pub fn log(&self, plugin: &str, stream: &str, warn: bool) {
        let (text, dropped) = {
            let b = self.0.lock().unwrap_or_else(|p| p.into_inner());
            (String::from_utf8_lossy(&b.kept).into_owned(), b.dropped)
        };
        for line in text.lines() {
            if warn {
                tracing::warn!(target: "lade", "plugin {plugin} {stream}: {line}");
            } else {
                tracing::info!(target: "lade", "plugin {plugin} {stream}: {line}");
            }
        }
        if dropped > 0 {
            tracing::warn!(target: "lade", "plugin {plugin} {stream}: {dropped} more bytes not kept");
        }
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(CAPACITY)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn output_is_logged_line_by_line_with_the_plugin_name() {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let c = Capture::default();
        c.push(b"first line\nsecond line\n");
        tracing::subscriber::with_default(subscriber, || c.log("scribbler", "stderr", true));
        let logged = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(
            logged.contains("WARN lade: plugin scribbler stderr: first line"),
            "{logged}"
        );
        assert!(
            logged.contains("plugin scribbler stderr: second line"),
            "{logged}"
        );
    }

    #[test]
    fn keeps_a_bounded_prefix() {
        let c = Capture::default();
        c.push(&vec![b'a'; CAPACITY - 1]);
        c.push(b"bc");
        let text = c.text();
        assert_eq!(text.len(), CAPACITY);
        assert!(text.ends_with("ab"));
        assert_eq!(c.0.lock().unwrap().dropped, 1);
    }
}
