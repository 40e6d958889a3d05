//! What a build tells the user while it runs: plain lines (bold step headers on a terminal), nothing with
//! `-q`, or [`Event`]s to a sink (`--progress=json`: NDJSON on stdout; `--progress=tty`: live drawing).

use crate::events::{Event, Events};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Quiet,
    Plain,
    /// Events to the sink, no image ID line on stdout (NDJSON owns stdout).
    Json,
    /// Events to the sink (a live display), the image ID still printed.
    Tty,
}

/// The build's reporter; shared by the stage threads.
pub struct Progress {
    mode: Mode,
    explain: bool,
    tty: bool,
    out: Mutex<()>,
    events: Events,
}

/// Where a step is: `[stage] STEP n/total`.
#[derive(Clone, Debug)]
pub struct StepId<'a> {
    pub stage: &'a str,
    pub n: usize,
    pub total: usize,
}

impl Progress {
    /// `events`: where Json and Tty modes send events.
    pub fn new(mode: Mode, explain: bool, events: Events) -> Self {
        Progress {
            mode,
            explain,
            tty: std::io::stderr().is_terminal(),
            out: Mutex::new(()),
            events,
        }
    }

    /// The sink, for the copies a build makes (base images, pushes).
    pub fn events(&self) -> &Events {
        &self.events
    }

    fn evented(&self) -> bool {
        matches!(self.mode, Mode::Json | Mode::Tty)
    }

    fn line(&self, text: &str) {
        let _g = self.out.lock();
        let _ = writeln!(std::io::stderr(), "{text}");
    }

    pub fn step_started(&self, id: &StepId, text: &str) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => {
                let head = format!("[{}] STEP {}/{}: {text}", id.stage, id.n, id.total);
                if self.tty {
                    self.line(&format!("\x1b[1m{head}\x1b[0m"));
                } else {
                    self.line(&head);
                }
            }
            Mode::Json | Mode::Tty => self.events.emit(Event::StepStarted {
                stage: id.stage.to_string(),
                step: id.n,
                steps: id.total,
                instruction: text.to_string(),
            }),
        }
    }

    /// A cache lookup's result; with `--explain-cache` a miss says which input changed.
    pub fn cache(&self, id: &StepId, key: &str, hit: bool, why: Option<&str>) {
        match self.mode {
            _ if self.evented() => self.events.emit(if hit {
                Event::StepCached {
                    stage: id.stage.to_string(),
                    step: id.n,
                    key: key.to_string(),
                }
            } else {
                Event::CacheMiss {
                    stage: id.stage.to_string(),
                    step: id.n,
                    key: key.to_string(),
                    // The live display shows a miss's reason only with --explain-cache, as plain does.
                    reason: why
                        .filter(|_| self.explain || self.mode == Mode::Json)
                        .map(String::from),
                }
            }),
            _ if self.explain => {
                let verdict = if hit {
                    format!("hit ({})", &key[..12.min(key.len())])
                } else {
                    format!("miss: {}", why.unwrap_or("not cached"))
                };
                self.line(&format!("[{}] CACHE step {}: {verdict}", id.stage, id.n));
            }
            Mode::Plain if hit => {
                self.line(&format!("--> Using cache {}", &key[..12.min(key.len())]))
            }
            _ => {}
        }
    }

    pub fn step_finished(&self, id: &StepId, took: Duration, layer: Option<&str>) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => {
                if took >= Duration::from_millis(100) {
                    self.line(&format!("--> {:.2}s", took.as_secs_f64()));
                }
            }
            Mode::Json | Mode::Tty => self.events.emit(Event::StepFinished {
                stage: id.stage.to_string(),
                step: id.n,
                seconds: took.as_secs_f64(),
                layer: layer.map(String::from),
            }),
        }
    }

    /// A free-form line (plain mode) or `{"event":"message"}`.
    pub fn message(&self, text: &str) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => self.line(text),
            Mode::Json | Mode::Tty => self.events.emit(Event::Message {
                text: text.to_string(),
            }),
        }
    }

    /// The build's result: the image ID (always printed; `-q` prints only this).
    pub fn finished(&self, id: &str, names: &[String], took: Duration) {
        match self.mode {
            Mode::Json | Mode::Tty => {
                self.events.emit(Event::Image {
                    id: id.to_string(),
                    names: names.to_vec(),
                    seconds: took.as_secs_f64(),
                });
                if self.mode == Mode::Tty {
                    crate::stdout::outln!("{id}");
                }
            }
            Mode::Plain => {
                for n in names {
                    self.line(&format!("COMMIT {n}"));
                }
                self.line(&format!(
                    "--> {} in {:.2}s",
                    &id[..12.min(id.len())],
                    took.as_secs_f64()
                ));
                crate::stdout::outln!("{id}");
            }
            Mode::Quiet => crate::stdout::outln!("{id}"),
        }
    }
}
