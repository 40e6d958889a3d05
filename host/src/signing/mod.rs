//! Signing and verifying with the signer plugins: the policy engine's [`Verifier`](crate::policy::Verifier)
//! ([`verifier`]), cosign key pairs, and cosign signatures stored as `sha256-<hex>.sig` tag manifests.
//!
//! * [`cosign`] `sha256-<hex>.sig` tag signatures: sign (read-modify-write) and verify.
//! * [`keys`] cosign key pairs (`lade generate-key-pair`).
//! * [`simple`] GPG simple signing: keys from the GnuPG keyring, lookaside and `dir:` signature storage.
//! * [`verifier`] the policy's crypto: sigstore keys (and GPG keyrings) opened once per run in the plugins.
//! * [`bundle`] cosign v3 bundles (DSSE in-toto statements) as OCI 1.1 referrers: sign, attest, verify.
//! * [`referrer`] writing an OCI 1.1 referrer (bundles, SBOMs) next to an image.

pub mod bundle;
pub mod cosign;
pub mod keys;
pub mod referrer;
pub mod simple;
pub mod verifier;

pub use verifier::PluginVerifier;

/// The embedded cosign-compatible signer.
pub const SIGSTORE_PLUGIN: &str = "sigstore";
/// The embedded GPG simple-signing signer.
pub const GPG_PLUGIN: &str = "gpg";
