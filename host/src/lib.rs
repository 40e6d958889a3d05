//! lade: build, copy, sign and scan OCI container images. See ARCHITECTURE.md for the map.

pub mod build;
pub mod cli;
pub mod container;
pub mod context;
pub mod copy;
pub mod dispatch;
pub mod events;
pub mod fsutil;
pub mod layer;
pub mod manifest;
pub mod oci;
pub mod paths;
pub mod plugin;
pub mod policy;
pub mod reference;
pub mod registry;
pub mod scan;
pub mod signing;
pub mod stdout;
pub mod store;
pub mod transport;
pub mod vulndb;
