//! cosign v3 bundles: a sigstore bundle (`application/vnd.dev.sigstore.bundle.v0.3+json`) holding a DSSE
//! envelope over an in-toto statement about the image's manifest digest, stored as an OCI 1.1 referrer of
//! the image ([`super::referrer`]), as `cosign sign --new-bundle-format` and `cosign attest` store them.
//! The sigstore plugin makes and checks the envelope (PAE, signature); this module makes the statement,
//! stores the bundle, lists bundles and checks their statements.

use super::referrer::{self, Artifact};
use crate::plugin::signer::{SignRequest, SignatureFormat, Signed, SigningKey, VerifyingKey};
use crate::policy::signature::Signature;
use crate::policy::sources::{ImageSignatures, SignatureSource};
use crate::policy::statement::{
    self, BUNDLE_MEDIA_TYPE, CONTENT_ANNOTATION, IN_TOTO_PAYLOAD_TYPE, PREDICATE_ANNOTATION,
    SIGN_PREDICATE,
};
use crate::transport::{self, SystemContext};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;

/// What [`sign`] and [`attest`] stored.
#[derive(Debug, Serialize)]
pub struct Attached {
    pub manifest_digest: String,
    /// The referrer manifest holding the bundle.
    pub referrer: String,
    pub predicate_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// Sign the image `name` (any transport that can hold a referrer: docker://, oci:, the store) with a
/// cosign v3 bundle: the statement's predicate is cosign's `sign/v1` (empty), its subject the manifest
/// digest, named `identity` (default: the image's docker reference, when it has one).
pub async fn sign(
    name: &str,
    ctx: &SystemContext,
    key: &SigningKey<'_>,
    identity: Option<&str>,
) -> Result<Attached> {
    attest(
        name,
        ctx,
        key,
        identity,
        SIGN_PREDICATE,
        Value::Object(Default::default()),
    )
    .await
}

/// Attach a signed in-toto attestation (`predicate_type`, `predicate`) about the image `name` as a bundle.
pub async fn attest(
    name: &str,
    ctx: &SystemContext,
    key: &SigningKey<'_>,
    identity: Option<&str>,
    predicate_type: &str,
    predicate: Value,
) -> Result<Attached> {
    let identity = super::cosign::identity_for(name, ctx, identity).ok();
    let (subject, _) = referrer::subject_of(name, ctx).await?;
    let digest = subject.digest.to_string();
    let statement = statement::make(identity.as_deref(), &digest, predicate_type, predicate)?;
    let json = match key.sign(&SignRequest {
        format: SignatureFormat::SigstoreBundle,
        payload: statement,
        payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
    })? {
        Signed::SigstoreBundle(b) => b,
        _ => bail!("the signer returned another format than the sigstore bundle asked for"),
    };
    let title = format!(
        "{}.sigstore.json",
        crate::oci::verify::sha256_digest(&json)
            .to_string()
            .replacen(':', "-", 1)
    );
    let referrer = referrer::push(
        name,
        ctx,
        &subject,
        &Artifact {
            artifact_type: BUNDLE_MEDIA_TYPE,
            media_type: BUNDLE_MEDIA_TYPE,
            content: &json,
            title,
            annotations: vec![
                (CONTENT_ANNOTATION, "dsse-envelope".into()),
                (PREDICATE_ANNOTATION, predicate_type.into()),
            ],
        },
    )
    .await?;
    Ok(Attached {
        manifest_digest: digest,
        referrer: referrer.to_string(),
        predicate_type: predicate_type.into(),
        identity,
    })
}

/// One bundle [`verify`] looked at.
#[derive(Debug, Serialize)]
pub struct CheckedBundle {
    pub bundle: usize,
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The statement subject's name (the identity the signer gave).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the checks on each accepted bundle were.
pub const CHECKS: &[&str] = &[
    "the bundle's DSSE envelope was signed by the key",
    "the envelope carries an in-toto statement with cosign's sign/v1 predicate",
    "a subject of the statement is the image's manifest digest",
];

/// Check every cosign v3 bundle found among the referrers of the image `name` with `key`. Returns the
/// manifest digest and one entry per bundle (none when the image has no bundle).
pub async fn verify(
    name: &str,
    ctx: &SystemContext,
    key: &VerifyingKey<'_>,
) -> Result<(String, Vec<CheckedBundle>)> {
    let src = transport::open_source(name, ctx).await?;
    let (manifest, _) = src
        .manifest(None)
        .await
        .with_context(|| format!("reading the manifest of {name}"))?;
    let digest = crate::policy::signature::manifest_digest(&manifest)?;
    let sigs = ImageSignatures {
        src: src.as_ref(),
        ctx,
        registry: None,
        dir: None,
        referrers: true,
    }
    .signatures(&digest)
    .await
    .with_context(|| format!("reading the sigstore bundles of {name}"))?;
    let mut out = vec![];
    for (i, s) in sigs.iter().enumerate() {
        let Signature::Bundle(json) = s else { continue };
        let checked = key
            .verify(None, &Signed::SigstoreBundle(json.clone()))
            .map_err(anyhow::Error::from)
            .and_then(|v| {
                let name = statement::check_signature(&v.payload, &digest, None, None)?;
                Ok((v.key_id, name))
            });
        out.push(match checked {
            Ok((key_id, reference)) => CheckedBundle {
                bundle: i,
                valid: true,
                key_id: Some(key_id),
                docker_reference: reference,
                error: None,
            },
            Err(e) => CheckedBundle {
                bundle: i,
                valid: false,
                key_id: None,
                docker_reference: None,
                error: Some(format!("{e:#}")),
            },
        });
    }
    Ok((digest, out))
}

/// The policy verifier's bundle check: accept when one of `keys` verifies (via `check`), else say why
/// each key refused.
pub fn verify_with(keys: &[Vec<u8>], check: impl Fn(&[u8]) -> Result<Vec<u8>>) -> Result<Vec<u8>> {
    let mut reasons = vec![];
    for (i, pem) in keys.iter().enumerate() {
        match check(pem) {
            Ok(payload) => return Ok(payload),
            Err(e) => reasons.push(format!("key {}: {e:#}", i + 1)),
        }
    }
    match reasons.len() {
        0 => bail!("no public keys to verify the sigstore bundle with"),
        1 => bail!("the sigstore bundle is not valid: {}", reasons[0]),
        n => bail!(
            "the sigstore bundle was signed by none of the {n} keys: {}",
            reasons.join("; ")
        ),
    }
}
