//! `--progress=auto|tty|plain|json` (buildx's flag) for build, pull, push, copy and sync: the renderers of
//! [`crate::events`]. `tty` draws live bars (indicatif) on stderr, `plain` writes one line per event on
//! stderr, `json` writes NDJSON events on stdout; `auto` is `tty` when stderr is a terminal, else `plain`.

use crate::events::{BlobHow, Event, Events, JsonSink, Sink};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProgressArg {
    /// tty on a terminal, else plain
    #[default]
    Auto,
    /// Live progress drawn in place
    Tty,
    /// One line per event (what CI logs want)
    Plain,
    /// NDJSON events on stdout (schema: docs/events.schema.json)
    Json,
}

/// The `--progress` flag, for flattening into a command's arguments.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProgressFlag {
    /// How to show progress: auto, tty, plain or json (NDJSON events on stdout)
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto, value_name = "MODE")]
    pub progress: ProgressArg,
}

/// What `--progress` resolved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    Tty,
    Plain,
    Json,
}

impl ProgressArg {
    pub fn resolve(self) -> Shown {
        match self {
            ProgressArg::Auto if std::io::stderr().is_terminal() => Shown::Tty,
            ProgressArg::Auto | ProgressArg::Plain => Shown::Plain,
            ProgressArg::Tty => Shown::Tty,
            ProgressArg::Json => Shown::Json,
        }
    }
}

/// The sink for a resolved mode (`quiet`: none for plain and tty; json is never quiet).
pub fn sink(shown: Shown, quiet: bool) -> Events {
    match shown {
        Shown::Json => Events::new(Arc::new(JsonSink)),
        _ if quiet => Events::default(),
        Shown::Plain => Events::new(Arc::new(PlainSink)),
        Shown::Tty => Events::new(Arc::new(TtySink::new())),
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..12.min(hex.len())]
}

fn blob_line(digest: &str, size: u64, how: BlobHow) -> String {
    let what = match how {
        BlobHow::Copied => format!("done ({})", super::flags::human_size(size)),
        BlobHow::Skipped => "already there".to_string(),
        BlobHow::Mounted => "mounted".to_string(),
    };
    format!("Copying blob {} {what}", short(digest))
}

/// One line per event on stderr.
pub struct PlainSink;

impl Sink for PlainSink {
    fn event(&self, e: &Event) {
        match e {
            Event::BlobDone { digest, size, how } => {
                eprintln!("{}", blob_line(digest, *size, *how))
            }
            Event::ManifestWritten {
                digest,
                destination,
                ..
            } => eprintln!("Writing manifest {} to {destination}", short(digest)),
            Event::Message { text } => eprintln!("{text}"),
            _ => {}
        }
    }
}

/// Live bars on stderr: a spinner per build step, a byte bar (count and rate) per blob.
pub struct TtySink {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl TtySink {
    pub fn new() -> Self {
        TtySink {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn add(&self, key: String, bar: ProgressBar) {
        let bar = self.multi.add(bar);
        bar.enable_steady_tick(Duration::from_millis(100));
        if let Ok(mut m) = self.bars.lock() {
            m.insert(key, bar);
        }
    }

    fn take(&self, key: &str) -> Option<ProgressBar> {
        self.bars.lock().ok()?.remove(key)
    }

    fn println(&self, text: &str) {
        let _ = self.multi.println(text);
    }
}

impl Default for TtySink {
    fn default() -> Self {
        Self::new()
    }
}

fn step_key(stage: &str, step: usize) -> String {
    format!("step {stage} {step}")
}

impl Sink for TtySink {
    fn event(&self, e: &Event) {
        match e {
            Event::StepStarted {
                stage,
                step,
                steps,
                instruction,
            } => {
                let bar = ProgressBar::new_spinner()
                    .with_style(
                        ProgressStyle::with_template("{spinner} {prefix} {msg} {elapsed}").unwrap(),
                    )
                    .with_prefix(format!("[{stage}] STEP {step}/{steps}:"))
                    .with_message(instruction.clone());
                self.add(step_key(stage, *step), bar);
            }
            Event::StepCached { stage, step, .. } => {
                if let Some(b) = self
                    .bars
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&step_key(stage, *step)).cloned())
                {
                    b.set_message(format!("{} CACHED", b.message()));
                }
            }
            Event::CacheMiss {
                stage,
                step,
                reason: Some(why),
                ..
            } => self.println(&format!("[{stage}] CACHE step {step}: miss: {why}")),
            Event::StepFinished {
                stage,
                step,
                seconds,
                ..
            } => {
                if let Some(b) = self.take(&step_key(stage, *step)) {
                    b.set_style(ProgressStyle::with_template("✔ {prefix} {msg}").unwrap());
                    b.finish_with_message(format!("{} ({seconds:.1}s)", b.message()));
                }
            }
            Event::BlobStarted { digest, size, .. } => {
                let style = ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .unwrap()
                .progress_chars("=> ");
                let bar = ProgressBar::new(*size)
                    .with_style(style)
                    .with_prefix(format!("blob {}", short(digest)));
                self.add(digest.clone(), bar);
            }
            Event::BlobDone { digest, size, how } => match self.take(digest) {
                Some(b) => {
                    b.set_style(ProgressStyle::with_template("{msg}").unwrap());
                    b.finish_with_message(blob_line(digest, *size, *how));
                }
                None => self.println(&blob_line(digest, *size, *how)),
            },
            Event::ManifestWritten {
                digest,
                destination,
                ..
            } => self.println(&format!(
                "Writing manifest {} to {destination}",
                short(digest)
            )),
            Event::Message { text } => self.println(text),
            Event::Image { .. } | Event::Done { .. } | Event::CacheMiss { .. } => {}
        }
    }

    fn bytes(&self, digest: &str, n: u64) {
        if let Some(b) = self.bars.lock().ok().and_then(|m| m.get(digest).cloned()) {
            b.inc(n);
        }
    }
}
