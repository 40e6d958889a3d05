//! Layers: tar diffs with whiteouts, safe unpacking, compression.
