//! One plugin call: a fresh store with the limits armed, the call, the plugin's output logged, and any
//! failure turned into an error that names the plugin and says what happened.

use super::limits::{Limits, describe_bytes, describe_duration};
use super::state::State;
use std::time::Instant;
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::I32Exit;

/// Run `f` in a fresh store for `plugin`; `setup` may put host services into the state first.
pub(crate) fn run<R>(
    engine: &Engine,
    limits: &Limits,
    plugin: &str,
    setup: impl FnOnce(&mut State),
    f: impl FnOnce(&mut Store<State>) -> wasmtime::Result<R>,
) -> anyhow::Result<R> {
    let mut state = State::new(limits);
    setup(&mut state);
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut cx| {
        let state = cx.data_mut();
        if Instant::now() >= state.deadline {
            state.timed_out = true;
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Continue(1))
        }
    });
    let result = f(&mut store);
    let state = store.data();
    state.stdout.log(plugin, "stdout", false);
    state.stderr.log(plugin, "stderr", result.is_ok());
    result.map_err(|e| classify(plugin, limits, state, e))
}

/// Say what happened, most specific first.
fn classify(plugin: &str, limits: &Limits, state: &State, e: wasmtime::Error) -> anyhow::Error {
    let trap = e.downcast_ref::<Trap>().copied();
    tracing::debug!(target: "lade", "plugin {plugin} failed: {e:?}");
    if state.timed_out || trap == Some(Trap::Interrupt) {
        return anyhow::anyhow!(
            "plugin `{plugin}` exceeded its {} deadline and was stopped (raise it with --plugin-timeout)",
            describe_duration(limits.deadline)
        );
    }
    if let Some(asked) = state.limiter.hit {
        return anyhow::anyhow!(
            "plugin `{plugin}` hit its {} memory cap (it asked for {}) and was stopped (raise it with --plugin-memory)",
            describe_bytes(limits.memory),
            describe_bytes(asked)
        );
    }
    if trap == Some(Trap::StackOverflow) {
        return anyhow::anyhow!(
            "plugin `{plugin}` overflowed its {} wasm stack (runaway recursion?) and was stopped",
            describe_bytes(limits.wasm_stack)
        );
    }
    let stderr = state.stderr.text();
    if let Some(panic) = panic_message(&stderr) {
        return anyhow::anyhow!("plugin `{plugin}` panicked {panic}");
    }
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return anyhow::anyhow!(
            "plugin `{plugin}` exited with status {} instead of returning",
            exit.0
        );
    }
    if let Some(trap) = trap {
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return match last {
            Some(line) => {
                anyhow::anyhow!("plugin `{plugin}` crashed ({trap}); its last words: {line}")
            }
            None => anyhow::anyhow!("plugin `{plugin}` crashed: {trap}"),
        };
    }
    anyhow::Error::from(e).context(format!("plugin `{plugin}` failed"))
}

/// From Rust's panic output (`thread '…' panicked at src/lib.rs:3:5:\nmessage`): `at src/lib.rs:3:5: message`.
fn panic_message(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines();
    let head = lines.by_ref().find(|l| l.contains("panicked at "))?;
    let location = head
        .split_once("panicked at ")?
        .1
        .trim_end_matches(':')
        .trim();
    let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note: ")).collect();
    let message = message.join("\n");
    let message = message.trim();
    Some(if message.is_empty() {
        format!("at {location}")
    } else {
        format!("at {location}: {message}")
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn panic_messages_are_found() {
        let err = "\nthread '<unnamed>' panicked at src/lib.rs:12:9:\nboom: it broke\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            super::panic_message(err).unwrap(),
            "at src/lib.rs:12:9: boom: it broke"
        );
        assert!(super::panic_message("just noise\n").is_none());
    }
}
