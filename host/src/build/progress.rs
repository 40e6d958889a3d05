//! What a build tells the user while it runs: plain lines (bold step headers on a terminal), nothing with
//! `-q`, or one JSON event per line on stdout with `--format json`.

use serde_json::json;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Quiet,
    Plain,
    Json,
}

/// The build's reporter; shared by the stage threads.
pub struct Progress {
    mode: Mode,
    explain: bool,
    tty: bool,
    out: Mutex<()>,
}

/// Where a step is: `[stage] STEP n/total`.
#[derive(Clone, Debug)]
pub struct StepId<'a> {
    pub stage: &'a str,
    pub n: usize,
    pub total: usize,
}

impl Progress {
    pub fn new(mode: Mode, explain: bool) -> Self {
        Progress {
            mode,
            explain,
            tty: std::io::stderr().is_terminal(),
            out: Mutex::new(()),
        }
    }

    fn line(&self, text: &str) {
        let _g = self.out.lock();
        let _ = writeln!(std::io::stderr(), "{text}");
    }

    fn event(&self, v: serde_json::Value) {
        let _g = self.out.lock();
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{v}");
        let _ = o.flush();
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
            Mode::Json => self.event(json!({
                "event": "step-started", "stage": id.stage, "step": id.n, "steps": id.total, "instruction": text,
            })),
        }
    }

    /// A cache lookup's result; with `--explain-cache` a miss says which input changed.
    pub fn cache(&self, id: &StepId, key: &str, hit: bool, why: Option<&str>) {
        match self.mode {
            Mode::Json => self.event(json!({
                "event": if hit { "step-cached" } else { "cache-miss" },
                "stage": id.stage, "step": id.n, "key": key, "reason": why,
            })),
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
            Mode::Json => self.event(json!({
                "event": "step-finished", "stage": id.stage, "step": id.n,
                "seconds": took.as_secs_f64(), "layer": layer,
            })),
        }
    }

    /// A free-form line (plain mode) or `{"event":"message"}`.
    pub fn message(&self, text: &str) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => self.line(text),
            Mode::Json => self.event(json!({"event": "message", "text": text})),
        }
    }

    /// The build's result: the image ID (always printed; `-q` prints only this).
    pub fn finished(&self, id: &str, names: &[String], took: Duration) {
        match self.mode {
            Mode::Json => self.event(json!({
                "event": "image", "id": id, "names": names, "seconds": took.as_secs_f64(),
            })),
            Mode::Plain => {
                for n in names {
                    self.line(&format!("COMMIT {n}"));
                }
                self.line(&format!(
                    "--> {} in {:.2}s",
                    &id[..12.min(id.len())],
                    took.as_secs_f64()
                ));
                println!("{id}");
            }
            Mode::Quiet => println!("{id}"),
        }
    }
}
