//! Platforms, binfmt_misc detection through procfs, step runners and RUN isolation.
