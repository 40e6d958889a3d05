//! Evaluation: which requirements apply to an image (the scope precedence of containers/image), and
//! whether the image meets them. Cryptography is behind [`Verifier`]; everything else (payload, digest,
//! identity) is checked here.

use super::config::{IdentityMatch, KeyType, Policy, Requirement, SigstoreSigned, SigstoreTrust};
use super::identity;
use super::scope::{PolicyRef, STORE_ALIAS, STORE_TRANSPORT};
use super::signature::{self, Signature};
use anyhow::{Result, anyhow, bail};
use std::fmt;

/// The cryptography the engine needs; the signer plugins implement it.
pub trait Verifier: Send + Sync {
    /// Verify a GPG simple-signing blob against the keyrings (each an armored or binary public keyring)
    /// and return the signed payload. Must fail unless one of the keyrings' keys made the signature.
    fn verify_gpg(&self, keyrings: &[Vec<u8>], blob: &[u8]) -> Result<Vec<u8>>;

    /// Verify a sigstore signature (base64, as in the `dev.cosignproject.cosign/signature` annotation) over
    /// `payload` with one of `public_keys` (PEM). Must fail unless one of the keys made it.
    fn verify_sigstore(
        &self,
        public_keys: &[Vec<u8>],
        payload: &[u8],
        signature_b64: &str,
    ) -> Result<()>;

    /// Verify a sigstore bundle (its JSON: a DSSE envelope) with one of `public_keys` (PEM) and return the
    /// envelope's payload (an in-toto statement). Must fail unless one of the keys made it.
    fn verify_sigstore_bundle(&self, _public_keys: &[Vec<u8>], _bundle: &[u8]) -> Result<Vec<u8>> {
        bail!("no verifier for sigstore bundles: this lade has no sigstore signer plugin")
    }
}

/// The verifier when no signer plugin provides one: every signature check fails closed.
pub struct NoVerifier;

impl Verifier for NoVerifier {
    fn verify_gpg(&self, _: &[Vec<u8>], _: &[u8]) -> Result<Vec<u8>> {
        bail!(
            "no verifier for GPG signatures yet: this lade has no gpg signer plugin, so a signedBy requirement cannot be met"
        )
    }
    fn verify_sigstore(&self, _: &[Vec<u8>], _: &[u8], _: &str) -> Result<()> {
        bail!(
            "no verifier for sigstore signatures yet: this lade has no sigstore signer plugin, so a sigstoreSigned requirement cannot be met"
        )
    }
}

/// Which part of the policy applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeName {
    Default,
    Transport { transport: String, scope: String },
}

impl fmt::Display for ScopeName {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ScopeName::Default => write!(f, "default"),
            ScopeName::Transport { transport, scope } => write!(
                f,
                "{}",
                super::json::child(&super::json::child("transports", transport), scope)
            ),
        }
    }
}

/// The requirements for `image`: its transport's most specific scope (identity, then namespaces in
/// order), then the transport's `""` scope, then the global default. The local store reads its `lade`
/// section, or `containers-storage` when the policy has no `lade` section.
pub fn requirements_for<'p>(
    policy: &'p Policy,
    image: &PolicyRef,
) -> (&'p [Requirement], ScopeName) {
    let mut section = policy.transports.get_key_value(image.transport.as_str());
    if section.is_none() && image.transport == STORE_TRANSPORT {
        section = policy.transports.get_key_value(STORE_ALIAS);
    }
    if let Some((t, scopes)) = section {
        let empty = String::new();
        let candidates = std::iter::once(&image.identity)
            .chain(&image.namespaces)
            .chain(std::iter::once(&empty));
        for c in candidates {
            if let Some(reqs) = scopes.get(c) {
                return (
                    reqs,
                    ScopeName::Transport {
                        transport: t.clone(),
                        scope: c.clone(),
                    },
                );
            }
        }
    }
    (&policy.default, ScopeName::Default)
}

/// Whether any of `reqs` needs the image's signatures (and so its manifest).
pub fn needs_signatures(reqs: &[Requirement]) -> bool {
    reqs.iter()
        .any(|r| !matches!(r, Requirement::InsecureAcceptAnything | Requirement::Reject))
}

/// The image being checked: its policy name, its manifest and its signatures.
pub struct Subject<'a> {
    pub image: &'a PolicyRef,
    pub manifest: &'a [u8],
    pub signatures: &'a [Signature],
}

/// Check every requirement of `reqs`; the error says which requirement failed and why.
pub fn evaluate(reqs: &[Requirement], s: &Subject, verifier: &dyn Verifier) -> Result<()> {
    if reqs.is_empty() {
        bail!("the list of requirements is empty");
    }
    for (i, r) in reqs.iter().enumerate() {
        allowed(r, s, verifier)
            .map_err(|e| anyhow!("requirement {} ({}): {e:#}", i + 1, r.type_name()))?;
    }
    Ok(())
}

fn allowed(r: &Requirement, s: &Subject, verifier: &dyn Verifier) -> Result<()> {
    match r {
        Requirement::InsecureAcceptAnything => Ok(()),
        Requirement::Reject => bail!("{} is rejected by policy", s.image.name),
        Requirement::SignedBaseLayer { .. } => {
            bail!("signedBaseLayer is not implemented (nor is it in containers/image)")
        }
        Requirement::SignedBy {
            key_type,
            keys,
            signed_identity,
        } => {
            if *key_type != KeyType::GpgKeys {
                bail!("keyType {:?} is not implemented", key_type.name());
            }
            let keyrings = keys.load()?;
            if keyrings.iter().all(|k| k.is_empty()) {
                bail!("no public keys imported");
            }
            any_signature(s, |sig| match sig {
                Signature::SimpleSigning(blob) => {
                    let payload = verifier.verify_gpg(&keyrings, blob)?;
                    check_payload(&payload, signature::ATOMIC_TYPE, s, signed_identity).map(Some)
                }
                Signature::Sigstore { .. } | Signature::Bundle(_) => Ok(None),
            })
        }
        Requirement::SigstoreSigned(p) => sigstore(p, s, verifier),
    }
}

fn sigstore(p: &SigstoreSigned, s: &Subject, verifier: &dyn Verifier) -> Result<()> {
    let keys = match &p.trust {
        SigstoreTrust::PublicKeys(k) => k.load()?,
        SigstoreTrust::Fulcio { .. } => bail!(
            "fulcio (keyless) signatures need certificate and Rekor checks that lade does not do yet; use keyPath/keyData with a public key"
        ),
        SigstoreTrust::Pki { .. } => bail!(
            "pki (X.509 certificate) signatures are not supported yet; use keyPath/keyData with a public key"
        ),
    };
    if p.rekor.is_some() {
        bail!(
            "rekorPublicKeyPath(s)/rekorPublicKeyData(s) ask for a Rekor SET check, which lade does not do yet; remove them to trust the key alone"
        );
    }
    any_signature(s, |sig| match sig {
        Signature::Sigstore {
            media_type,
            payload,
            annotations,
        } => {
            if media_type != signature::SIGSTORE_MEDIA_TYPE {
                bail!("unexpected sigstore signature media type {media_type:?}");
            }
            let b64 = annotations
                .get(signature::SIGSTORE_SIGNATURE_ANNOTATION)
                .ok_or_else(|| {
                    anyhow!(
                        "missing {} annotation",
                        signature::SIGSTORE_SIGNATURE_ANNOTATION
                    )
                })?;
            verifier.verify_sigstore(&keys, payload, b64)?;
            check_payload(payload, signature::COSIGN_TYPE, s, &p.signed_identity).map(Some)
        }
        Signature::Bundle(json) => {
            let payload = verifier.verify_sigstore_bundle(&keys, json)?;
            let digest = signature::manifest_digest(s.manifest)?;
            let image = s.image.docker_reference.as_ref();
            super::statement::check_signature(&payload, &digest, image, Some(&p.signed_identity))
                .map(|_| Some(()))
        }
        Signature::SimpleSigning(_) => Ok(None),
    })
}

/// Accept when one signature `check` accepts (`Ok(Some)`); signatures of the other kind (`Ok(None)`) are
/// skipped. The error lists why each was refused.
fn any_signature(s: &Subject, check: impl Fn(&Signature) -> Result<Option<()>>) -> Result<()> {
    let mut reasons = vec![];
    for sig in s.signatures {
        match check(sig) {
            Ok(Some(())) => return Ok(()),
            Ok(None) => {}
            Err(e) => reasons.push(format!("{e:#}")),
        }
    }
    match reasons.len() {
        0 => bail!("a signature was required, but no signature exists"),
        1 => bail!("{}", reasons[0]),
        _ => bail!(
            "none of the {} signatures was accepted: {}",
            reasons.len(),
            reasons.join("; ")
        ),
    }
}

/// The checks on a verified payload: its type and shape, the manifest digest, the identity.
fn check_payload(payload: &[u8], ty: &str, s: &Subject, m: &IdentityMatch) -> Result<()> {
    let p = signature::parse_payload(payload, ty)?;
    let actual = signature::manifest_digest(s.manifest)?;
    if p.manifest_digest != actual {
        bail!(
            "the signature is for manifest digest {}, the image's manifest is {actual}",
            p.manifest_digest
        );
    }
    if !identity::matches(m, s.image.docker_reference.as_ref(), &p.docker_reference) {
        bail!(
            "the signature is for identity {:?}, which signedIdentity {} does not accept for {}",
            p.docker_reference,
            describe(m),
            s.image.name
        );
    }
    Ok(())
}

fn describe(m: &IdentityMatch) -> String {
    match m {
        IdentityMatch::MatchExact => "matchExact".into(),
        IdentityMatch::MatchRepoDigestOrExact => "matchRepoDigestOrExact".into(),
        IdentityMatch::MatchRepository => "matchRepository".into(),
        IdentityMatch::ExactReference(r) => format!("exactReference {r}"),
        IdentityMatch::ExactRepository(r) => format!("exactRepository {}", r.name()),
        IdentityMatch::RemapIdentity {
            prefix,
            signed_prefix,
        } => format!("remapIdentity {prefix} → {signed_prefix}"),
    }
}
