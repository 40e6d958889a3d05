//! lade's vulnerability scanner plugin. [`version`] holds the version order of each ecosystem; the scanner
//! itself (the `component` feature) matches the packages of the sbom plugin's document against the OSV
//! database `lade db import` writes, granted as the data directory `vuln-db`.

pub mod version;

#[cfg(feature = "component")]
pub mod db;
#[cfg(feature = "component")]
pub mod inventory;
#[cfg(feature = "component")]
pub mod matching;
#[cfg(feature = "component")]
pub mod scan;
#[cfg(feature = "component")]
pub mod severity;

#[cfg(all(feature = "component", target_arch = "wasm32"))]
mod bindings;
