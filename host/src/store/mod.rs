//! The local content-addressed store: an OCI image layout with locking and atomic writes.

pub mod layout;
