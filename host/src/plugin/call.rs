//! One plugin call: a fresh store with the limits armed, the call, the plugin's output logged, and any
//! failure turned into an error that names the plugin and says what happened.

use super::limits::{Limits, TRANSFER, describe_bytes, describe_duration};
use super::state::State;
use std::sync::Mutex;
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
    let mut store = new_store(engine, limits, setup);
    let result = f(&mut store);
    finish(plugin, limits, store.data(), result)
}

/// A store with the limits armed.
fn new_store(engine: &Engine, limits: &Limits, setup: impl FnOnce(&mut State)) -> Store<State> {
    let mut state = State::new(limits);
    setup(&mut state);
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_hostcall_fuel(TRANSFER);
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
    store
}

/// Log the plugin's output and turn a failure into an error naming the plugin.
fn finish<R>(
    plugin: &str,
    limits: &Limits,
    state: &State,
    result: wasmtime::Result<R>,
) -> anyhow::Result<R> {
    state.stdout.log(plugin, "stdout", false);
    state.stderr.log(plugin, "stderr", result.is_ok());
    result.map_err(|e| classify(plugin, limits, state, e))
}

/// A store that outlives one call, for handles a plugin keeps between calls (a signer's opened keys). Each
/// call gets the full deadline again; the memory cap holds for the whole session. After a runtime failure
/// the instance may be broken, so the session refuses further calls.
pub(crate) struct Session {
    plugin: String,
    limits: Limits,
    store: Mutex<Option<Store<State>>>,
}

impl Session {
    /// A session whose first call is `f` (typically: instantiate and open a handle).
    pub fn open<R>(
        engine: &Engine,
        limits: &Limits,
        plugin: &str,
        f: impl FnOnce(&mut Store<State>) -> wasmtime::Result<R>,
    ) -> anyhow::Result<(Session, R)> {
        let mut store = new_store(engine, limits, |_| {});
        let result = f(&mut store);
        let r = finish(plugin, limits, store.data(), result)?;
        store.data().stdout.clear();
        store.data().stderr.clear();
        let session = Session {
            plugin: plugin.into(),
            limits: limits.clone(),
            store: Mutex::new(Some(store)),
        };
        Ok((session, r))
    }

    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// One more call in the session's store.
    pub fn call<R>(
        &self,
        f: impl FnOnce(&mut Store<State>) -> wasmtime::Result<R>,
    ) -> anyhow::Result<R> {
        let mut guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let Some(store) = guard.as_mut() else {
            anyhow::bail!(
                "plugin `{}` failed earlier in this run and its handles are gone",
                self.plugin
            );
        };
        store.data_mut().deadline = Instant::now() + self.limits.deadline;
        store.data_mut().timed_out = false;
        let result = f(store);
        let failed = result.is_err();
        let out = finish(&self.plugin, &self.limits, store.data(), result);
        store.data().stdout.clear();
        store.data().stderr.clear();
        if failed {
            *guard = None;
        }
        out
    }
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
    // wasmtime's words when the hostcall fuel runs out (its error type is private).
    if format!("{e:#}").contains("fuel allocated for hostcalls has been exhausted") {
        return anyhow::anyhow!(
            "plugin `{plugin}` tried to hand lade more than {} in one call (a plan or result far larger than \
             any real input) and was stopped",
            describe_bytes(TRANSFER)
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
