//! The registry client (distribution-spec v1.1): auth, TLS, retries, blobs, manifests, referrers.
