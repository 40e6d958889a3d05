//! Transports (docker://, oci:, oci-archive:, docker-archive:, dir:, the local store) behind one source/destination interface.
