//! The WASI a plugin gets: only the interfaces [`super::imports`] allows, linked with an empty context
//! (no preopens, no environment, no arguments, no network). Filesystem and sockets are not even linked.

use super::state::State;
use wasmtime::Engine;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::p2::bindings::sync as p2;
use wasmtime_wasi::random::WasiRandom;

struct Io;

impl HasData for Io {
    type Data<'a> = &'a mut ResourceTable;
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
    p2::clocks::monotonic_clock::add_to_linker::<State, WasiClocks>(l, State::clocks)?;
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
