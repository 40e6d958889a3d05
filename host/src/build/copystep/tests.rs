//! Unit tests of COPY/ADD over temp contexts and layer dirs.
