//! A read-only merged view of an image's unpacked layers (being written by helper A).

use std::path::PathBuf;

/// The merged root filesystem of overlay-form layer dirs, base first.
#[derive(Clone, Debug)]
pub struct RootView {
    lowers: Vec<PathBuf>,
}

impl RootView {
    pub fn new(lowers: Vec<PathBuf>) -> Self {
        RootView { lowers }
    }

    /// The layer dirs, base first.
    pub fn lowers(&self) -> &[PathBuf] {
        &self.lowers
    }
}
