//! The WASI a plugin gets: only the interfaces [`super::imports`] allows, linked with an empty context
//! (no preopens, no environment, no arguments, no network). Filesystem and sockets are not even linked.

use super::engine::TICK;
use super::state::State;
use std::time::Instant;
use wasmtime::Engine;
use wasmtime::component::Resource;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::WasiClocksCtxView;
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::sync as p2;
use wasmtime_wasi::p2::bindings::sync::clocks::monotonic_clock;
use wasmtime_wasi::random::WasiRandom;

struct Io;

impl HasData for Io {
    type Data<'a> = &'a mut ResourceTable;
}

/// The monotonic clock, except that no sleep outlasts the call's deadline: a pollable that waits past it is
/// cut short, so a plugin blocked in `poll` wakes up and meets the epoch interruption instead of holding the
/// host thread for as long as it asked.
struct DeadlineClock<'a> {
    inner: WasiClocksCtxView<'a>,
    deadline: Instant,
}

struct DeadlineClocks;

impl HasData for DeadlineClocks {
    type Data<'a> = DeadlineClock<'a>;
}

impl DeadlineClock<'_> {
    /// Nanoseconds until just past the deadline.
    fn remaining(&self) -> u64 {
        let left = self.deadline.saturating_duration_since(Instant::now()) + TICK;
        u64::try_from(left.as_nanos()).unwrap_or(u64::MAX)
    }
}

impl monotonic_clock::Host for DeadlineClock<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        self.inner.now()
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        self.inner.resolution()
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let latest = self.inner.now()?.saturating_add(self.remaining());
        self.inner.subscribe_instant(when.min(latest))
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let remaining = self.remaining();
        self.inner.subscribe_duration(duration.min(remaining))
    }
}

/// A linker holding the allowed WASI 0.2 interfaces, synchronous flavour.
pub(crate) fn linker(engine: &Engine) -> anyhow::Result<Linker<State>> {
    let mut l = Linker::<State>::new(engine);
    add(&mut l).map_err(anyhow::Error::from)?;
    Ok(l)
}

fn add(l: &mut Linker<State>) -> wasmtime::Result<()> {
    p2::io::error::add_to_linker::<State, Io>(l, |t| t.ctx().table)?;
    p2::io::poll::add_to_linker::<State, Io>(l, |t| t.ctx().table)?;
    p2::io::streams::add_to_linker::<State, Io>(l, |t| t.ctx().table)?;
    p2::clocks::wall_clock::add_to_linker::<State, WasiClocks>(l, State::clocks)?;
    p2::clocks::monotonic_clock::add_to_linker::<State, DeadlineClocks>(l, |s| {
        let deadline = s.deadline;
        DeadlineClock {
            inner: s.clocks(),
            deadline,
        }
    })?;
    p2::random::random::add_to_linker::<State, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    p2::random::insecure::add_to_linker::<State, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    p2::random::insecure_seed::add_to_linker::<State, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    p2::cli::exit::add_to_linker::<State, WasiCli>(l, State::cli)?;
    p2::cli::environment::add_to_linker::<State, WasiCli>(l, State::cli)?;
    p2::cli::stdin::add_to_linker::<State, WasiCli>(l, State::cli)?;
    p2::cli::stdout::add_to_linker::<State, WasiCli>(l, State::cli)?;
    p2::cli::stderr::add_to_linker::<State, WasiCli>(l, State::cli)?;
    p2::cli::terminal_input::add_to_linker::<State, WasiCli>(l, State::cli)?;
    p2::cli::terminal_output::add_to_linker::<State, WasiCli>(l, State::cli)?;
    p2::cli::terminal_stdin::add_to_linker::<State, WasiCli>(l, State::cli)?;
    p2::cli::terminal_stdout::add_to_linker::<State, WasiCli>(l, State::cli)?;
    p2::cli::terminal_stderr::add_to_linker::<State, WasiCli>(l, State::cli)?;
    Ok(())
}
