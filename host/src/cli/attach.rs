//! `lade attach sbom IMAGE FILE`: an SBOM stored as an OCI 1.1 referrer of the image (artifactType
//! `application/spdx+json` or `application/vnd.cyclonedx+json`), as `cosign attach sbom` does in its newer
//! form; with a signer, also a DSSE-signed in-toto attestation of it in a sigstore bundle. `build --sbom
//! --push` attaches through [`attach_sbom`] too.

use super::Global;
use super::sbom::SbomFormat;
use super::sign::{CopySigner, SignFlags};
use crate::signing::referrer::{self, Artifact};
use crate::transport::SystemContext;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum AttachCommand {
    /// Attach an SPDX or CycloneDX JSON document to an image as an OCI 1.1 referrer
    Sbom(AttachSbomArgs),
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbomType {
    Spdx,
    Cyclonedx,
}

#[derive(clap::Args, Debug)]
pub struct AttachSbomArgs {
    /// The image: docker://REF (or a bare REF), oci:DIR:TAG, lade:NAME
    pub image: String,
    /// The SBOM file (SPDX 2.x JSON or CycloneDX JSON)
    pub file: PathBuf,
    /// The document kind (default: read from the document)
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub kind: Option<SbomType>,
    #[command(flatten)]
    pub sign: SignFlags,
    #[command(flatten)]
    pub remote: super::flags::RemoteFlags,
}

pub fn run(g: &Global, c: AttachCommand) -> Result<()> {
    match c {
        AttachCommand::Sbom(a) => sbom(g, a),
    }
}

fn sbom(g: &Global, a: AttachSbomArgs) -> Result<()> {
    let doc =
        std::fs::read(&a.file).with_context(|| format!("reading the SBOM {}", a.file.display()))?;
    let format = match a.kind {
        Some(SbomType::Spdx) => SbomFormat::SpdxJson,
        Some(SbomType::Cyclonedx) => SbomFormat::CyclonedxJson,
        None => sniff(&doc)
            .with_context(|| format!("{}: pass --type spdx|cyclonedx", a.file.display()))?,
    };
    let signer = super::sign::copy_signer(g, &a.sign)?;
    let name = super::sign::image_name(&a.image);
    let ctx = a.remote.context(g);
    attach_sbom(&name, &ctx, &doc, format, signer.as_ref())
}

/// SPDX (`spdxVersion`) or CycloneDX (`bomFormat: CycloneDX`), from the document itself.
fn sniff(doc: &[u8]) -> Result<SbomFormat> {
    let v: serde_json::Value =
        serde_json::from_slice(doc).context("the SBOM is not a JSON document")?;
    if v.get("spdxVersion").is_some() {
        Ok(SbomFormat::SpdxJson)
    } else if v.get("bomFormat").and_then(|f| f.as_str()) == Some("CycloneDX") {
        Ok(SbomFormat::CyclonedxJson)
    } else {
        bail!(
            "the document is neither SPDX JSON (no spdxVersion) nor CycloneDX JSON (no bomFormat)"
        )
    }
}

/// The in-toto predicate type of an SBOM attestation.
fn predicate_type(format: SbomFormat) -> &'static str {
    match format {
        SbomFormat::SpdxJson => "https://spdx.dev/Document",
        _ => "https://cyclonedx.org/bom",
    }
}

/// Attach `doc` to the image `name` as a referrer; with `signer`, also as a signed attestation bundle.
pub fn attach_sbom(
    name: &str,
    ctx: &SystemContext,
    doc: &[u8],
    format: SbomFormat,
    signer: Option<&CopySigner>,
) -> Result<()> {
    let rt = super::runtime()?;
    let media_type = format.media_type();
    let (subject, _) = rt.block_on(referrer::subject_of(name, ctx))?;
    let file = match format {
        SbomFormat::SpdxJson => "sbom.spdx.json",
        _ => "sbom.cdx.json",
    };
    let digest = rt.block_on(referrer::push(
        name,
        ctx,
        &subject,
        &Artifact {
            artifact_type: media_type,
            media_type,
            content: doc,
            title: file.into(),
            annotations: vec![],
        },
    ))?;
    eprintln!(
        "Attached the SBOM ({media_type}) to {name} ({}) as the referrer {digest}",
        subject.digest
    );
    if let Some(s) = signer {
        let predicate: serde_json::Value =
            serde_json::from_slice(doc).context("the SBOM is not a JSON document")?;
        let out = s.attest(name, ctx, predicate_type(format), predicate)?;
        eprintln!(
            "Attached a signed attestation ({}) as the referrer {}",
            out.predicate_type, out.referrer
        );
    }
    Ok(())
}
