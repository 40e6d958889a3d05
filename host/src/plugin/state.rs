//! What a store carries for one call: an empty WASI context, the resource table, the memory limiter, the
//! deadline, and the host services this call may use.

use super::data_dirs::DataAccess;
use super::images::{ImageResolver, NoImages};
use super::limits::{Limits, MemoryLimiter};
use super::stdio::Capture;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub(crate) struct State {
    wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: MemoryLimiter,
    /// When the call must be over; host calls that wait on the network push it back by what they took.
    pub deadline: Instant,
    pub timed_out: bool,
    pub images: Arc<dyn ImageResolver>,
    /// The data directories a scanner may open in this call.
    pub data_dirs: DataAccess,
    pub stdout: Capture,
    pub stderr: Capture,
}

impl State {
    /// No preopened directory, no environment, no arguments, no network, an empty stdin; stdout and stderr
    /// go to memory.
    pub fn new(limits: &Limits) -> State {
        let stdout = Capture::default();
        let stderr = Capture::default();
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        State {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.memory),
            deadline: Instant::now() + limits.deadline,
            timed_out: false,
            images: Arc::new(NoImages),
            data_dirs: DataAccess::default(),
            stdout,
            stderr,
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
