//! The one wasmtime engine of a runtime: cranelift, epoch interruption driven by a ticker thread, and a
//! capped wasm stack.

use super::limits::Limits;
use std::time::Duration;
use wasmtime::{Config, Engine, OptLevel, Strategy};

/// How often the ticker bumps the epoch: the granularity of deadlines.
pub(crate) const TICK: Duration = Duration::from_millis(10);

pub(crate) fn new_engine(limits: &Limits) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config
        .strategy(Strategy::Cranelift)
        .cranelift_opt_level(OptLevel::Speed)
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(limits.wasm_stack)
        .parallel_compilation(true);
    let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
    start_ticker(&engine)?;
    Ok(engine)
}

/// Bump the engine's epoch every [`TICK`] until the engine is gone.
fn start_ticker(engine: &Engine) -> anyhow::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("lade-plugin-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map_err(|e| anyhow::anyhow!("starting the plugin deadline thread: {e}"))?;
    Ok(())
}
