//! lade: build, copy, sign and scan OCI container images. See ARCHITECTURE.md for the map.

pub mod build;
pub mod cli;
pub mod context;
pub mod copy;
pub mod dispatch;
pub mod layer;
pub mod paths;
pub mod plugin;
pub mod reference;
pub mod registry;
pub mod store;
pub mod transport;
