//! Per-call limits: the wall-clock deadline, the memory cap and the wasm stack cap, and the memory limiter
//! that enforces the cap inside a store.

use std::time::Duration;

/// What every plugin call may use. One set per [`super::Runtime`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time for one call, instantiation included (time spent in host calls that wait on the
    /// network, such as resolving a base image, is not counted).
    pub deadline: Duration,
    /// Linear memory, all memories of the instance together, in bytes.
    pub memory: usize,
    /// The wasm call stack, in bytes.
    pub wasm_stack: usize,
    /// Wall-clock time for compiling a component that is not in the compile cache.
    pub compile: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(30),
            memory: 512 << 20,
            wasm_stack: 1 << 20,
            compile: Duration::from_secs(120),
        }
    }
}

impl Limits {
    /// The defaults with the CLI's `--plugin-timeout SECONDS` and `--plugin-memory MIB`.
    pub fn new(timeout_secs: f64, memory_mib: u64) -> anyhow::Result<Limits> {
        anyhow::ensure!(
            timeout_secs.is_finite() && timeout_secs > 0.0 && timeout_secs <= 86_400.0,
            "the plugin timeout must be between 0 and 86400 seconds, not {timeout_secs}"
        );
        anyhow::ensure!(
            (1..=65_536).contains(&memory_mib),
            "the plugin memory cap must be between 1 and 65536 MiB, not {memory_mib}"
        );
        Ok(Limits {
            deadline: Duration::from_secs_f64(timeout_secs),
            memory: usize::try_from(memory_mib << 20)?,
            ..Limits::default()
        })
    }

    /// These limits with `--plugin-compile-timeout SECONDS`.
    pub fn with_compile_timeout(self, secs: f64) -> anyhow::Result<Limits> {
        anyhow::ensure!(
            secs.is_finite() && secs > 0.0 && secs <= 86_400.0,
            "the plugin compile timeout must be between 0 and 86400 seconds, not {secs}"
        );
        Ok(Limits {
            compile: Duration::from_secs_f64(secs),
            ..self
        })
    }
}

/// The most a plugin may hand the host in one call, arguments of its calls into the host and its results
/// alike (a frontend's plan with its raw instructions): wasmtime's hostcall fuel, which counts the strings
/// and lists lifted out of the plugin's memory in host bytes, a string aliased many times once per alias.
/// So a hostile result is refused while it is lifted, before the host allocates more than this.
pub const TRANSFER: usize = 128 << 20;

/// `2 s`, `1.5 s`, `250 ms`: how a deadline reads in an error.
pub fn describe_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// `64 MiB`, `32.1 MiB`, or bytes when below one MiB.
pub fn describe_bytes(n: usize) -> String {
    const MIB: usize = 1 << 20;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else {
        format!("{n} bytes")
    }
}

/// Enforces the memory cap over all memories of a store and remembers when it was hit, so the failure can
/// be reported as what it is rather than as a bare trap.
pub(crate) struct MemoryLimiter {
    cap: usize,
    total: usize,
    /// The total the instance asked for when it hit the cap.
    pub hit: Option<usize>,
}

/// Tables are small; this only stops a table bomb.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl MemoryLimiter {
    pub fn new(cap: usize) -> Self {
        MemoryLimiter {
            cap,
            total: 0,
            hit: None,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let next = self.total.saturating_sub(current).saturating_add(desired);
        if next > self.cap {
            self.hit = Some(next);
            // An error traps at once: the guest's allocator never gets to retry or limp on.
            wasmtime::bail!("memory cap of {} reached", describe_bytes(self.cap));
        }
        self.total = next;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        100
    }

    fn tables(&self) -> usize {
        100
    }

    fn memories(&self) -> usize {
        10
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn cap_counts_every_memory_together() {
        let mut l = MemoryLimiter::new(10 << 20);
        assert!(l.memory_growing(0, 6 << 20, None).unwrap());
        assert!(l.memory_growing(0, 4 << 20, None).unwrap());
        assert!(l.memory_growing(4 << 20, 5 << 20, None).is_err());
        assert_eq!(l.hit, Some(11 << 20));
    }

    #[test]
    fn descriptions_read_well() {
        assert_eq!(describe_duration(Duration::from_secs(2)), "2 s");
        assert_eq!(describe_duration(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(describe_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(describe_bytes(64 << 20), "64 MiB");
        assert_eq!(describe_bytes(1000), "1000 bytes");
        assert_eq!(describe_bytes(33_619_968), "32.1 MiB");
    }

    #[test]
    fn cli_values_are_checked() {
        let l = Limits::new(2.0, 64).unwrap();
        assert_eq!(l.deadline, Duration::from_secs(2));
        assert_eq!(l.memory, 64 << 20);
        assert!(Limits::new(0.0, 64).is_err());
        assert!(Limits::new(1.0, 0).is_err());
    }
}
