//! policy.json (containers-policy.json(5)) parsed as strictly as containers/image parses it: every object
//! has exactly the keys its type allows, no key twice, every value of the right type, the combinations
//! containers/image refuses refused here too (one key source, fulcio only with rekor, ...), and scopes
//! checked by their transport's rules. Errors name the JSON path.

use super::json::{self, Fields, Json};
use super::scope;
use crate::reference::{self, Reference};
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A whole policy: the default requirements and per-transport scopes.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub default: Vec<Requirement>,
    /// transport name → scope → requirements (the scope `""` is the transport's default).
    pub transports: BTreeMap<String, BTreeMap<String, Vec<Requirement>>>,
}

/// One requirement; an image must satisfy every requirement of its scope.
#[derive(Debug, Clone, PartialEq)]
pub enum Requirement {
    InsecureAcceptAnything,
    Reject,
    SignedBy {
        key_type: KeyType,
        keys: KeySource,
        signed_identity: IdentityMatch,
    },
    /// Parsed as containers/image does; refused at use (it is unimplemented there too).
    SignedBaseLayer {
        base_layer_identity: IdentityMatch,
    },
    SigstoreSigned(Box<SigstoreSigned>),
}

impl Requirement {
    /// The `type` as policy.json spells it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Requirement::InsecureAcceptAnything => "insecureAcceptAnything",
            Requirement::Reject => "reject",
            Requirement::SignedBy { .. } => "signedBy",
            Requirement::SignedBaseLayer { .. } => "signedBaseLayer",
            Requirement::SigstoreSigned(_) => "sigstoreSigned",
        }
    }
}

/// `signedBy`'s `keyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    GpgKeys,
    SignedByGpgKeys,
    X509Certificates,
    SignedByX509Cas,
}

impl KeyType {
    pub fn name(self) -> &'static str {
        match self {
            KeyType::GpgKeys => "GPGKeys",
            KeyType::SignedByGpgKeys => "signedByGPGKeys",
            KeyType::X509Certificates => "X509Certificates",
            KeyType::SignedByX509Cas => "signedByX509CAs",
        }
    }
}

/// Where key material comes from: `…Path`, `…Paths`, `…Data` (base64 in the JSON) or `…Datas`.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    Path(PathBuf),
    Paths(Vec<PathBuf>),
    Data(Vec<u8>),
    Datas(Vec<Vec<u8>>),
}

impl KeySource {
    /// The key material, one entry per key file or data item.
    pub fn load(&self) -> Result<Vec<Vec<u8>>> {
        let read = |p: &Path| {
            std::fs::read(p).with_context(|| format!("reading the key file {}", p.display()))
        };
        Ok(match self {
            KeySource::Path(p) => vec![read(p)?],
            KeySource::Paths(ps) => ps.iter().map(|p| read(p)).collect::<Result<_>>()?,
            KeySource::Data(d) => vec![d.clone()],
            KeySource::Datas(ds) => ds.clone(),
        })
    }
}

/// `sigstoreSigned`.
#[derive(Debug, Clone, PartialEq)]
pub struct SigstoreSigned {
    pub trust: SigstoreTrust,
    /// `rekorPublicKeyPath(s)` / `rekorPublicKeyData(s)`.
    pub rekor: Option<KeySource>,
    pub signed_identity: IdentityMatch,
}

/// What a sigstore signature must chain to.
#[derive(Debug, Clone, PartialEq)]
pub enum SigstoreTrust {
    PublicKeys(KeySource),
    Fulcio {
        ca: KeySource,
        oidc_issuer: String,
        subject_email: String,
    },
    Pki {
        ca_roots: KeySource,
        ca_intermediates: Option<KeySource>,
        subject_email: Option<String>,
        subject_hostname: Option<String>,
    },
}

/// `signedIdentity`: how the identity in a signature must relate to the image's reference.
#[derive(Debug, Clone, PartialEq)]
pub enum IdentityMatch {
    MatchExact,
    MatchRepoDigestOrExact,
    MatchRepository,
    ExactReference(Reference),
    ExactRepository(Reference),
    RemapIdentity {
        prefix: String,
        signed_prefix: String,
    },
}

impl Policy {
    /// Parse policy.json bytes.
    pub fn parse(bytes: &[u8]) -> Result<Policy> {
        let v = json::parse(bytes)?;
        let top = json::object(&v, "", Some(&["default", "transports"]))?;
        let default = requirements(
            top.required("default").map_err(|_| {
                anyhow!(
                    "the default policy is missing: policy.json needs a top-level \"default\" list"
                )
            })?,
            "default",
        )?;
        let mut transports = BTreeMap::new();
        if let Some(t) = top.get("transports") {
            let t = json::object(t, "transports", None)?;
            for (name, scopes) in t.members() {
                let path = t.at(name);
                let scopes_obj = json::object(scopes, &path, None)?;
                let mut out = BTreeMap::new();
                for (s, reqs) in scopes_obj.members() {
                    let spath = scopes_obj.at(s);
                    if !s.is_empty() {
                        scope::validate(name, s)
                            .with_context(|| format!("{spath}: invalid scope"))?;
                    }
                    out.insert(s.clone(), requirements(reqs, &spath)?);
                }
                transports.insert(name.clone(), out);
            }
        }
        Ok(Policy {
            default,
            transports,
        })
    }

    /// Read and parse the file at `path`.
    pub fn load(path: &Path) -> Result<Policy> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading the signature policy {}", path.display()))?;
        Policy::parse(&bytes)
            .with_context(|| format!("invalid signature policy {}", path.display()))
    }
}

fn requirements(v: &Json, path: &str) -> Result<Vec<Requirement>> {
    let Json::Array(items) = v else {
        bail!(
            "{path}: expected a list of requirements, found {}",
            v.kind()
        );
    };
    if items.is_empty() {
        bail!("{path}: the list of requirements must not be empty");
    }
    items
        .iter()
        .enumerate()
        .map(|(i, r)| requirement(r, &json::element(path, i)))
        .collect()
}

fn requirement(v: &Json, path: &str) -> Result<Requirement> {
    let f = json::object(v, path, None)?;
    let ty = f.required_string("type")?;
    let only_type = |r: Requirement| -> Result<Requirement> {
        json::object(v, path, Some(&["type"]))?;
        Ok(r)
    };
    match ty.as_str() {
        "insecureAcceptAnything" => only_type(Requirement::InsecureAcceptAnything),
        "reject" => only_type(Requirement::Reject),
        "signedBy" => signed_by(v, path),
        "sigstoreSigned" => sigstore_signed(v, path),
        "signedBaseLayer" => {
            let f = json::object(v, path, Some(&["type", "baseLayerIdentity"]))?;
            Ok(Requirement::SignedBaseLayer {
                base_layer_identity: identity(
                    f.required("baseLayerIdentity")?,
                    &f.at("baseLayerIdentity"),
                )?,
            })
        }
        other => bail!(
            "{}: unknown policy requirement type {other:?} (known: insecureAcceptAnything, reject, signedBy, sigstoreSigned, signedBaseLayer)",
            f.at("type")
        ),
    }
}

/// A base64 `[]byte` member, as Go's encoding/json reads it.
fn bytes(f: &Fields, key: &str) -> Result<Option<Vec<u8>>> {
    f.string(key)?
        .map(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .with_context(|| format!("{}: not valid base64", f.at(key)))
        })
        .transpose()
}

/// A list of base64 `[]byte` members.
fn bytes_list(f: &Fields, key: &str) -> Result<Option<Vec<Vec<u8>>>> {
    let Some(items) = f.strings(key)? else {
        return Ok(None);
    };
    items
        .iter()
        .enumerate()
        .map(|(i, s)| {
            base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .with_context(|| format!("{}: not valid base64", json::element(&f.at(key), i)))
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Exactly one key source among `names` (path, paths, data[, datas]); `what` names them in messages.
fn key_source(f: &Fields, names: [&str; 4], required: bool) -> Result<Option<KeySource>> {
    let mut found = vec![];
    if let Some(p) = f.string(names[0])? {
        if p.is_empty() {
            bail!("{}: must not be empty", f.at(names[0]));
        }
        found.push(KeySource::Path(p.into()));
    }
    if let Some(ps) = f.strings(names[1])? {
        if ps.is_empty() {
            bail!("{}: contains no entries", f.at(names[1]));
        }
        found.push(KeySource::Paths(
            ps.into_iter().map(PathBuf::from).collect(),
        ));
    }
    if let Some(d) = bytes(f, names[2])? {
        found.push(KeySource::Data(d));
    }
    if !names[3].is_empty()
        && let Some(ds) = bytes_list(f, names[3])?
    {
        if ds.is_empty() {
            bail!("{}: contains no entries", f.at(names[3]));
        }
        found.push(KeySource::Datas(ds));
    }
    let listed = names
        .iter()
        .filter(|n| !n.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    match found.len() {
        0 if required => bail!(
            "{}: exactly one of {listed} must be given, none is",
            json::shown(&f.path)
        ),
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => bail!(
            "{}: exactly one of {listed} must be given, several are",
            json::shown(&f.path)
        ),
    }
}

fn signed_identity_or_default(f: &Fields) -> Result<IdentityMatch> {
    match f.get("signedIdentity") {
        None => Ok(IdentityMatch::MatchRepoDigestOrExact),
        Some(v) => identity(v, &f.at("signedIdentity")),
    }
}

fn signed_by(v: &Json, path: &str) -> Result<Requirement> {
    let f = json::object(
        v,
        path,
        Some(&[
            "type",
            "keyType",
            "keyPath",
            "keyPaths",
            "keyData",
            "signedIdentity",
        ]),
    )?;
    let kt = f.required_string("keyType")?;
    let key_type = match kt.as_str() {
        "GPGKeys" => KeyType::GpgKeys,
        "signedByGPGKeys" => KeyType::SignedByGpgKeys,
        "X509Certificates" => KeyType::X509Certificates,
        "signedByX509CAs" => KeyType::SignedByX509Cas,
        other => bail!(
            "{}: unrecognized keyType {other:?} (GPGKeys, signedByGPGKeys, X509Certificates or signedByX509CAs)",
            f.at("keyType")
        ),
    };
    let keys = key_source(&f, ["keyPath", "keyPaths", "keyData", ""], true)?.expect("required");
    Ok(Requirement::SignedBy {
        key_type,
        keys,
        signed_identity: signed_identity_or_default(&f)?,
    })
}

fn sigstore_signed(v: &Json, path: &str) -> Result<Requirement> {
    let f = json::object(
        v,
        path,
        Some(&[
            "type",
            "keyPath",
            "keyPaths",
            "keyData",
            "keyDatas",
            "fulcio",
            "pki",
            "rekorPublicKeyPath",
            "rekorPublicKeyPaths",
            "rekorPublicKeyData",
            "rekorPublicKeyDatas",
            "signedIdentity",
        ]),
    )?;
    let keys = key_source(&f, ["keyPath", "keyPaths", "keyData", "keyDatas"], false)?;
    let rekor = key_source(
        &f,
        [
            "rekorPublicKeyPath",
            "rekorPublicKeyPaths",
            "rekorPublicKeyData",
            "rekorPublicKeyDatas",
        ],
        false,
    )?;
    let mut trusts = vec![];
    if let Some(k) = keys {
        trusts.push(SigstoreTrust::PublicKeys(k));
    }
    if let Some(v) = f.get("fulcio") {
        trusts.push(fulcio(v, &f.at("fulcio"))?);
    }
    if let Some(v) = f.get("pki") {
        trusts.push(pki(v, &f.at("pki"))?);
    }
    if trusts.len() != 1 {
        bail!(
            "{}: exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio and pki must be given, {} are",
            json::shown(path),
            trusts.len()
        );
    }
    let trust = trusts.pop().expect("one");
    match (&trust, &rekor) {
        (SigstoreTrust::Fulcio { .. }, None) => bail!(
            "{}: fulcio needs one of rekorPublicKeyPath, rekorPublicKeyPaths, rekorPublicKeyData and rekorPublicKeyDatas",
            json::shown(path)
        ),
        (SigstoreTrust::Pki { .. }, Some(_)) => bail!(
            "{}: rekorPublicKeyPath(s)/rekorPublicKeyData(s) are not supported with pki",
            json::shown(path)
        ),
        _ => {}
    }
    Ok(Requirement::SigstoreSigned(Box::new(SigstoreSigned {
        trust,
        rekor,
        signed_identity: signed_identity_or_default(&f)?,
    })))
}

fn fulcio(v: &Json, path: &str) -> Result<SigstoreTrust> {
    let f = json::object(
        v,
        path,
        Some(&["caPath", "caData", "oidcIssuer", "subjectEmail"]),
    )?;
    let ca = key_source(&f, ["caPath", "", "caData", ""], true)?.expect("required");
    let nonempty = |k: &str| -> Result<String> {
        match f.string(k)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => bail!("{}: {k} not specified", json::shown(path)),
        }
    };
    Ok(SigstoreTrust::Fulcio {
        ca,
        oidc_issuer: nonempty("oidcIssuer")?,
        subject_email: nonempty("subjectEmail")?,
    })
}

fn pki(v: &Json, path: &str) -> Result<SigstoreTrust> {
    let f = json::object(
        v,
        path,
        Some(&[
            "caRootsPath",
            "caRootsData",
            "caIntermediatesPath",
            "caIntermediatesData",
            "subjectEmail",
            "subjectHostname",
        ]),
    )?;
    let ca_roots = key_source(&f, ["caRootsPath", "", "caRootsData", ""], true)?.expect("required");
    let ca_intermediates = key_source(
        &f,
        ["caIntermediatesPath", "", "caIntermediatesData", ""],
        false,
    )?;
    let subject_email = f.string("subjectEmail")?.filter(|s| !s.is_empty());
    let subject_hostname = f.string("subjectHostname")?.filter(|s| !s.is_empty());
    if subject_email.is_none() && subject_hostname.is_none() {
        bail!(
            "{}: at least one of subjectEmail and subjectHostname must be given",
            json::shown(path)
        );
    }
    Ok(SigstoreTrust::Pki {
        ca_roots,
        ca_intermediates,
        subject_email,
        subject_hostname,
    })
}

/// A `signedIdentity` (or `baseLayerIdentity`) object.
fn identity(v: &Json, path: &str) -> Result<IdentityMatch> {
    let f = json::object(v, path, None)?;
    let ty = f.required_string("type")?;
    let exact = |keys: &[&str]| -> Result<Fields> {
        let f = json::object(v, path, Some(keys))?;
        for k in keys {
            f.required(k)?;
        }
        Ok(f)
    };
    Ok(match ty.as_str() {
        "matchExact" => {
            exact(&["type"])?;
            IdentityMatch::MatchExact
        }
        "matchRepoDigestOrExact" => {
            exact(&["type"])?;
            IdentityMatch::MatchRepoDigestOrExact
        }
        "matchRepository" => {
            exact(&["type"])?;
            IdentityMatch::MatchRepository
        }
        "exactReference" => {
            let f = exact(&["type", "dockerReference"])?;
            let s = f.required_string("dockerReference")?;
            let r = reference::parse(&s).with_context(|| {
                format!("{}: invalid dockerReference {s:?}", f.at("dockerReference"))
            })?;
            if r.tag.is_none() && r.digest.is_none() {
                bail!(
                    "{}: dockerReference {s:?} contains neither a tag nor a digest",
                    f.at("dockerReference")
                );
            }
            IdentityMatch::ExactReference(r)
        }
        "exactRepository" => {
            let f = exact(&["type", "dockerRepository"])?;
            let s = f.required_string("dockerRepository")?;
            let r = reference::parse(&s).with_context(|| {
                format!(
                    "{}: invalid dockerRepository {s:?}",
                    f.at("dockerRepository")
                )
            })?;
            IdentityMatch::ExactRepository(r)
        }
        "remapIdentity" => {
            let f = exact(&["type", "prefix", "signedPrefix"])?;
            let prefix = f.required_string("prefix")?;
            let signed_prefix = f.required_string("signedPrefix")?;
            for (k, p) in [("prefix", &prefix), ("signedPrefix", &signed_prefix)] {
                if !super::identity::valid_remap_prefix(p) {
                    bail!("{}: prefix {p:?} is not valid", f.at(k));
                }
            }
            IdentityMatch::RemapIdentity {
                prefix,
                signed_prefix,
            }
        }
        other => bail!(
            "{}: unknown signedIdentity type {other:?} (matchExact, matchRepoDigestOrExact, matchRepository, exactReference, exactRepository or remapIdentity)",
            f.at("type")
        ),
    })
}
