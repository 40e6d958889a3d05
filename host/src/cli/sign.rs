//! `lade generate-key-pair`, `lade sign` and `lade verify`: cosign's commands, on the signer plugins.

use super::Global;
use crate::plugin::{Plugin, PluginSource};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct GenerateKeyPairArgs {
    /// Write PREFIX.key (encrypted) and PREFIX.pub, as cosign does
    #[arg(long, default_value = "cosign", value_name = "PREFIX")]
    pub output_key_prefix: PathBuf,
    /// Read the private key's passphrase from FILE (default: $COSIGN_PASSWORD; lade never prompts)
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// ecdsa-p256 (cosign's default), ecdsa-p384 or ed25519
    #[arg(long, value_name = "ALGORITHM")]
    pub algorithm: Option<String>,
}

/// The embedded sigstore signer, with the process's plugin limits.
fn sigstore(g: &Global) -> Result<Plugin> {
    super::plugin::runtime(g)?.load(&PluginSource::Embedded(
        crate::signing::SIGSTORE_PLUGIN.into(),
    ))
}

/// A passphrase from `file` (its first line, as skopeo reads --sign-passphrase-file), else from
/// `$COSIGN_PASSWORD` (which may be empty, for an unencrypted-equivalent key, as cosign allows).
pub fn passphrase(file: Option<&Path>) -> Result<String> {
    if let Some(f) = file {
        let s = std::fs::read_to_string(f)
            .with_context(|| format!("reading the passphrase file {}", f.display()))?;
        return Ok(s.lines().next().unwrap_or("").to_string());
    }
    match std::env::var("COSIGN_PASSWORD") {
        Ok(p) => Ok(p),
        Err(_) => bail!(
            "no passphrase: set COSIGN_PASSWORD (it may be empty) or pass --passphrase-file FILE; lade does not prompt"
        ),
    }
}

pub fn generate_key_pair(g: &Global, a: GenerateKeyPairArgs) -> Result<()> {
    let pass = passphrase(a.passphrase_file.as_deref())?;
    let (key, public) = crate::signing::keys::generate(
        &sigstore(g)?,
        &a.output_key_prefix,
        &pass,
        a.algorithm.as_deref(),
    )?;
    eprintln!(
        "Private key written to {}\nPublic key written to {}",
        key.display(),
        public.display()
    );
    Ok(())
}

/// An image argument: a transport string, or a bare registry reference (as cosign takes it).
pub fn image_name(image: &str) -> String {
    match crate::transport::parse(image) {
        Ok(_) => image.to_string(),
        Err(_) => format!("docker://{image}"),
    }
}

#[derive(clap::Args, Debug)]
pub struct SignArgs {
    /// The image: docker://REF (or a bare REF), oci:DIR:TAG, lade:NAME
    pub image: String,
    /// cosign private key file (encrypted: the passphrase comes from --passphrase-file or $COSIGN_PASSWORD)
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Read the key's passphrase from FILE
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// The docker reference the signature names (default: the image's own, with its tag)
    #[arg(long, value_name = "REF")]
    pub sign_identity: Option<String>,
    /// Store a cosign v3 bundle (a DSSE in-toto statement, application/vnd.dev.sigstore.bundle.v0.3+json) as an
    /// OCI 1.1 referrer of the image instead of a .sig tag signature
    #[arg(long)]
    pub bundle: bool,
    #[command(flatten)]
    pub remote: super::flags::RemoteFlags,
}

pub fn sign(g: &Global, a: SignArgs) -> Result<()> {
    let name = image_name(&a.image);
    let private = std::fs::read(&a.key)
        .with_context(|| format!("reading the private key {}", a.key.display()))?;
    let pass = match (&a.passphrase_file, std::env::var("COSIGN_PASSWORD")) {
        (None, Err(_)) => String::new(),
        _ => passphrase(a.passphrase_file.as_deref())?,
    };
    let plugin = sigstore(g)?;
    let opening = (std::time::Instant::now(), thread_cpu());
    let key = plugin
        .signer()?
        .signing_key(&crate::plugin::signer::KeyMaterial {
            private_key: Some(private),
            public_key: None,
            passphrase: Some(pass),
            options: vec![],
        })
        .with_context(|| format!("opening the private key {}", a.key.display()))?;
    // The key's scrypt dominates this (scripts/bench-sigstore.sh reports it apart from signing).
    tracing::info!(
        "opened the private key in {:.1} ms ({:.1} ms cpu)",
        opening.0.elapsed().as_secs_f64() * 1000.0,
        (thread_cpu() - opening.1).as_secs_f64() * 1000.0
    );
    let ctx = a.remote.context(g);
    if a.bundle {
        let out = super::runtime()?.block_on(crate::signing::bundle::sign(
            &name,
            &ctx,
            &key,
            a.sign_identity.as_deref(),
        ))?;
        eprintln!(
            "Signed {name} ({}) with a sigstore bundle; stored as the referrer {}",
            out.manifest_digest, out.referrer
        );
        return Ok(());
    }
    let out = super::runtime()?.block_on(crate::signing::cosign::sign(
        &name,
        &ctx,
        &key,
        a.sign_identity.as_deref(),
    ))?;
    if out.added {
        eprintln!(
            "Signed {name} ({}) as {}; signature stored under the tag {}",
            out.manifest_digest, out.identity, out.signature_tag
        );
    } else {
        eprintln!(
            "{name} ({}) already carries this signature under {}; nothing added",
            out.manifest_digest, out.signature_tag
        );
    }
    Ok(())
}

/// This thread's CPU time (the plugin runs on the calling thread), for the key-opening log line.
fn thread_cpu() -> std::time::Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `t`, which lives for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    std::time::Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The image: docker://REF (or a bare REF), oci:DIR:TAG, lade:NAME
    pub image: String,
    /// cosign public key file (PEM)
    #[arg(long, value_name = "FILE", required_unless_present = "keyring")]
    pub key: Option<PathBuf>,
    /// GPG keyring file (`gpg --export`): check the image's GPG simple signatures (lookaside, dir:)
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    pub keyring: Option<PathBuf>,
    /// text, or json: what was checked, signature by signature
    #[arg(long, short = 'o', default_value = "text", value_name = "FORMAT")]
    pub output: super::OutputFormat,
    #[command(flatten)]
    pub remote: super::flags::RemoteFlags,
}

pub fn verify(g: &Global, a: VerifyArgs) -> Result<()> {
    let name = image_name(&a.image);
    if let Some(ring) = &a.keyring {
        let ctx = a.remote.context(g);
        return super::standalone::verify_keyring(g, &name, ring, a.output, &ctx);
    }
    let key_file = a.key.clone().context("--key or --keyring is needed")?;
    let public = std::fs::read(&key_file)
        .with_context(|| format!("reading the public key {}", key_file.display()))?;
    let plugin = sigstore(g)?;
    let key = plugin
        .signer()?
        .verifying_key(&crate::plugin::signer::KeyMaterial {
            private_key: None,
            public_key: Some(public),
            passphrase: None,
            options: vec![],
        })
        .with_context(|| format!("opening the public key {}", key_file.display()))?;
    let ctx = a.remote.context(g);
    let rt = super::runtime()?;
    let tags = rt.block_on(crate::signing::cosign::verify(&name, &ctx, &key));
    let (digest, bundles) = rt.block_on(crate::signing::bundle::verify(&name, &ctx, &key))?;
    let report = match tags {
        Ok(r) => r,
        // No .sig manifest: the bundles alone, when there are any.
        Err(e) if bundles.is_empty() => {
            return Err(e.context(format!(
                "{name} has no sigstore bundle among its referrers either"
            )));
        }
        Err(_) => crate::signing::cosign::Report {
            image: name.clone(),
            manifest_digest: digest,
            signature_tag: String::new(),
            checks: vec![],
            signatures: vec![],
        },
    };
    print_report(a.output, &name, &report, &bundles)?;
    let valid = report.accepted() + bundles.iter().filter(|b| b.valid).count();
    if valid == 0 {
        bail!(
            "no signature of {name} ({} under {}, {} sigstore bundle(s) among its referrers) is valid for the key {}",
            report.signatures.len(),
            report.signature_tag,
            bundles.len(),
            key_file.display()
        );
    }
    Ok(())
}

fn print_report(
    format: super::OutputFormat,
    name: &str,
    report: &crate::signing::cosign::Report,
    bundles: &[crate::signing::bundle::CheckedBundle],
) -> Result<()> {
    match format {
        super::OutputFormat::Json => {
            let mut v = serde_json::to_value(report)?;
            v["bundles"] = serde_json::to_value(bundles)?;
            if !bundles.is_empty() {
                v["bundle_checks"] = serde_json::to_value(crate::signing::bundle::CHECKS)?;
            }
            crate::stdout::outln!("{}", serde_json::to_string_pretty(&v)?)
        }
        super::OutputFormat::Text => {
            crate::stdout::outln!("Verification for {} ({}):", name, report.manifest_digest);
            for c in &report.checks {
                crate::stdout::outln!("  - {c}");
            }
            for s in &report.signatures {
                match (&s.error, &s.docker_reference) {
                    (None, Some(r)) => {
                        crate::stdout::outln!("  signature {}: valid, identity {r}", s.layer)
                    }
                    (e, _) => crate::stdout::outln!(
                        "  signature {}: refused: {}",
                        s.layer,
                        e.as_deref().unwrap_or("")
                    ),
                }
            }
            if !bundles.is_empty() {
                for c in crate::signing::bundle::CHECKS {
                    crate::stdout::outln!("  - {c}");
                }
            }
            for b in bundles {
                match &b.error {
                    None => crate::stdout::outln!(
                        "  bundle {}: valid, identity {}",
                        b.bundle,
                        b.docker_reference.as_deref().unwrap_or("(none)")
                    ),
                    Some(e) => crate::stdout::outln!("  bundle {}: refused: {e}", b.bundle),
                }
            }
        }
    }
    Ok(())
}

/// Signing flags of push and copy (skopeo's names).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SignFlags {
    /// Sign the copied image with this cosign private key (the signature goes into its .sig tag)
    #[arg(long, value_name = "FILE")]
    pub sign_by_sigstore_private_key: Option<PathBuf>,
    /// Read the signing key's passphrase from FILE (default: $COSIGN_PASSWORD, else none)
    #[arg(long, value_name = "FILE")]
    pub sign_passphrase_file: Option<PathBuf>,
    /// The docker reference the signature names (default: the destination's)
    #[arg(long, value_name = "REF")]
    pub sign_identity: Option<String>,
}

/// The key push and copy sign with, opened (and its passphrase checked) before anything is copied.
pub struct CopySigner {
    key: crate::plugin::signer::SigningKey<'static>,
    identity: Option<String>,
}

/// The signer the flags ask for, if any.
pub fn copy_signer(g: &Global, f: &SignFlags) -> Result<Option<CopySigner>> {
    let Some(key_file) = &f.sign_by_sigstore_private_key else {
        return Ok(None);
    };
    let private = std::fs::read(key_file)
        .with_context(|| format!("reading the private key {}", key_file.display()))?;
    let pass = match (&f.sign_passphrase_file, std::env::var("COSIGN_PASSWORD")) {
        (None, Err(_)) => String::new(),
        _ => passphrase(f.sign_passphrase_file.as_deref())?,
    };
    // The plugin lives as long as the process: the opened key borrows it.
    let plugin: &'static Plugin = Box::leak(Box::new(sigstore(g)?));
    let key = plugin
        .signer()?
        .signing_key(&crate::plugin::signer::KeyMaterial {
            private_key: Some(private),
            public_key: None,
            passphrase: Some(pass),
            options: vec![],
        })
        .with_context(|| format!("opening the private key {}", key_file.display()))?;
    Ok(Some(CopySigner {
        key,
        identity: f.sign_identity.clone(),
    }))
}

impl CopySigner {
    /// Attach a signed in-toto attestation about `dest` as a sigstore bundle referrer.
    pub fn attest(
        &self,
        dest: &str,
        ctx: &crate::transport::SystemContext,
        predicate_type: &str,
        predicate: serde_json::Value,
    ) -> Result<crate::signing::bundle::Attached> {
        super::runtime()?.block_on(crate::signing::bundle::attest(
            dest,
            ctx,
            &self.key,
            self.identity.as_deref(),
            predicate_type,
            predicate,
        ))
    }

    /// Sign `dest` (the image just written) with the key.
    pub fn sign(&self, dest: &str, ctx: &crate::transport::SystemContext) -> Result<()> {
        super::runtime()?.block_on(self.sign_async(dest, ctx))
    }

    /// [`CopySigner::sign`], inside a runtime.
    pub async fn sign_async(
        &self,
        dest: &str,
        ctx: &crate::transport::SystemContext,
    ) -> Result<()> {
        crate::signing::cosign::sign(dest, ctx, &self.key, self.identity.as_deref()).await?;
        Ok(())
    }
}
