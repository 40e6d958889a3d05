//! The plugin runtime: one wasmtime engine, compile cache, limits; one file per host-provided interface.
