//! The one copy engine that push, pull, copy and sync go through.
