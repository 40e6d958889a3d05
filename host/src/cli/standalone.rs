//! `lade standalone-sign` and `lade standalone-verify` (skopeo's: a manifest file, a docker reference, a GPG
//! key of the GnuPG keyring, a signature file), and `lade verify IMAGE --keyring FILE` (an image's GPG
//! simple signatures, from its lookaside or `dir:`).

use super::Global;
use crate::policy::signature;
use crate::signing::simple::{self, Storage};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct StandaloneSignArgs {
    /// The manifest file to sign
    pub manifest: PathBuf,
    /// The docker reference the signature names (REGISTRY/REPO:TAG)
    pub docker_reference: String,
    /// The GPG key of the GnuPG keyring ($GNUPGHOME) to sign with
    pub key_fingerprint: String,
    /// Write the signature to SIGNATURE
    #[arg(short = 'o', long, value_name = "SIGNATURE")]
    pub output: PathBuf,
    /// Read the key's passphrase from FILE (its first line)
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading the {what} {}", path.display()))
}

pub fn standalone_sign(g: &Global, a: StandaloneSignArgs) -> Result<()> {
    let manifest = read(&a.manifest, "manifest")?;
    let digest = signature::manifest_digest(&manifest)?;
    crate::reference::parse(&a.docker_reference)
        .with_context(|| format!("{:?} is not a docker reference", a.docker_reference))?;
    let pass = match &a.passphrase_file {
        Some(f) => Some(super::sign::passphrase(Some(f.as_path()))?),
        None => None,
    };
    let plugin = super::gpg_sign::plugin(g)?;
    let key = simple::open_signing_key(plugin, &a.key_fingerprint, pass.as_deref())?;
    let sig = simple::sign(&key, &simple::payload(&a.docker_reference, &digest))?;
    crate::fsutil::write_atomic(&a.output, &sig)
        .with_context(|| format!("writing the signature {}", a.output.display()))
}

#[derive(clap::Args, Debug)]
pub struct StandaloneVerifyArgs {
    /// The manifest file the signature should be for
    pub manifest: PathBuf,
    /// The docker reference the signature should name
    pub docker_reference: String,
    /// The fingerprint(s) of the key(s) allowed to have signed, comma-separated (`any` with --public-key-file)
    pub key_fingerprints: String,
    /// The signature file
    pub signature: PathBuf,
    /// Verify with the keys of this keyring file instead of the GnuPG keyring
    #[arg(long, value_name = "FILE")]
    pub public_key_file: Option<PathBuf>,
}

pub fn standalone_verify(g: &Global, a: StandaloneVerifyArgs) -> Result<()> {
    let manifest = read(&a.manifest, "manifest")?;
    let sig = read(&a.signature, "signature")?;
    let digest = signature::manifest_digest(&manifest)?;
    let any = a.key_fingerprints.trim() == "any";
    let wanted: Vec<String> = a
        .key_fingerprints
        .split(',')
        .map(|f| f.trim().trim_start_matches("0x").to_ascii_uppercase())
        .filter(|f| !f.is_empty())
        .collect();
    if wanted.is_empty() {
        bail!("no key fingerprint given");
    }
    let keyring = match (&a.public_key_file, any) {
        (Some(f), _) => read(f, "public key file")?,
        (None, true) => bail!("`any` key fingerprint needs --public-key-file"),
        (None, false) => simple::export_public_keys(&wanted)?,
    };
    let plugin = super::gpg_sign::plugin(g)?;
    let key = plugin
        .signer()?
        .verifying_key(&crate::plugin::signer::KeyMaterial {
            private_key: None,
            public_key: Some(keyring),
            passphrase: None,
            options: vec![],
        })
        .context("the public keys cannot be used")?;
    let v = simple::check(&key, &sig, &digest)
        .with_context(|| format!("verifying {}", a.signature.display()))?;
    if !any && !wanted.contains(&v.key_id) && !v.signer.as_ref().is_some_and(|s| wanted.contains(s))
    {
        bail!(
            "the signature was made by {}, not by {}",
            v.key_id,
            wanted.join(", ")
        );
    }
    if !simple::same_reference(&v.docker_reference, &a.docker_reference) {
        bail!(
            "the signature names {:?}, not {:?}",
            v.docker_reference,
            a.docker_reference
        );
    }
    crate::stdout::outln!(
        "Signature verified using fingerprint {}, digest {digest}",
        v.key_id
    );
    Ok(())
}

/// One signature `verify --keyring` looked at.
#[derive(Debug, Serialize)]
struct Checked {
    index: usize,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    docker_reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What `verify --keyring` checked.
#[derive(Debug, Serialize)]
struct Report {
    image: String,
    manifest_digest: String,
    keyring: String,
    /// Where the signatures were read.
    location: String,
    checks: Vec<&'static str>,
    signatures: Vec<Checked>,
}

/// `lade verify IMAGE --keyring FILE`: check every GPG simple signature of `image` (a transport string).
pub fn verify_keyring(
    g: &Global,
    image: &str,
    keyring: &std::path::Path,
    output: super::OutputFormat,
    ctx: &crate::transport::SystemContext,
) -> Result<()> {
    let ring = read(keyring, "keyring")?;
    let key = super::gpg_sign::plugin(g)?
        .signer()?
        .verifying_key(&crate::plugin::signer::KeyMaterial {
            private_key: None,
            public_key: Some(ring),
            passphrase: None,
            options: vec![],
        })
        .with_context(|| format!("opening the keyring {}", keyring.display()))?;
    let policy = g.policy();
    let (digest, sigs) = super::runtime()?.block_on(async {
        let src = crate::transport::open_source(image, ctx).await?;
        let (manifest, _) = src
            .manifest(None)
            .await
            .with_context(|| format!("reading the manifest of {image}"))?;
        let digest = signature::manifest_digest(&manifest)?;
        let sigs = simple::read(image, src.as_ref(), ctx, &policy, &digest).await?;
        anyhow::Ok((digest, sigs))
    })?;
    let signatures: Vec<Checked> = sigs
        .iter()
        .enumerate()
        .map(|(i, s)| match simple::check(&key, s, &digest) {
            Ok(v) => Checked {
                index: i + 1,
                valid: true,
                key_id: Some(v.key_id),
                docker_reference: Some(v.docker_reference),
                error: None,
            },
            Err(e) => Checked {
                index: i + 1,
                valid: false,
                key_id: None,
                docker_reference: None,
                error: Some(format!("{e:#}")),
            },
        })
        .collect();
    let report = Report {
        image: image.to_string(),
        manifest_digest: digest.clone(),
        keyring: keyring.display().to_string(),
        location: Storage::of(image, &policy, ctx, false)?.describe(&digest),
        checks: vec![
            "the OpenPGP signature was made by a key of the keyring (one signature packet, parsed strictly)",
            "the payload is an atomic container signature (parsed strictly)",
            "the payload's docker-manifest-digest is the image's manifest digest",
        ],
        signatures,
    };
    let valid = report.signatures.iter().filter(|s| s.valid).count();
    match output {
        super::OutputFormat::Json => {
            crate::stdout::outln!("{}", serde_json::to_string_pretty(&report)?)
        }
        super::OutputFormat::Text => {
            crate::stdout::outln!(
                "Verification for {image} ({digest}), signatures from {}:",
                report.location
            );
            for c in &report.checks {
                crate::stdout::outln!("  - {c}");
            }
            for s in &report.signatures {
                match (&s.key_id, &s.docker_reference, &s.error) {
                    (Some(k), Some(r), _) => {
                        crate::stdout::outln!(
                            "  signature-{}: valid, key {k}, identity {r}",
                            s.index
                        )
                    }
                    (_, _, e) => crate::stdout::outln!(
                        "  signature-{}: refused: {}",
                        s.index,
                        e.as_deref().unwrap_or("")
                    ),
                }
            }
        }
    }
    if valid == 0 {
        bail!(
            "no GPG signature of {image} ({} found at {}) is valid for the keyring {}",
            report.signatures.len(),
            report.location,
            keyring.display()
        );
    }
    Ok(())
}
