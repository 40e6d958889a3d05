//! The `sigstore` signer plugin: cosign's key files and signatures, with no network.
//!
//! - [`keys`]: ECDSA P-256/P-384, Ed25519 (pure and pre-hashed) and RSA PKCS#1 v1.5 over bytes;
//! - [`keyfile`]: cosign's encrypted private keys (scrypt + NaCl secretbox) and PEM public keys;
//! - [`formats`]: DSSE's PAE and the sigstore bundle JSON;
//! - this module: the `lade:plugin@0.2.0` signer over them ([`Signer`], [`Verifier`],
//!   [`generate_key_pair`]). Everything is plain Rust that tests natively; only the export is wasm-only.
//!
//! Options (`key-material.options`): `ed25519` = `pure` (default; containers/image and DSSE verifiers) or
//! `prehashed` (Ed25519ph, cosign 2's default) chooses how an Ed25519 key signs; verification accepts both.
//! `generate-key-pair` reads `algorithm` = `ecdsa-p256` (default), `ecdsa-p384` or `ed25519`.

pub mod formats;
pub mod keyfile;
pub mod keys;

use formats::{BundleContent, DsseSig};
use keys::{Algorithm, Ed25519Mode, PrivateKey, PublicKey};
use lade_plugin_sdk::signer::{
    self, CosignSignature, DsseEnvelope, DsseSignature, Guest, GuestSigningKey, GuestVerifyingKey,
    KeyMaterial, KeyPair, KeyValue, Metadata, PluginError, PluginInfo, SignRequest,
    SignatureFormat, Signed, SigningKey, Verification, VerifyingKey,
};
use sha2::{Digest, Sha256};

// Used by the export, which only the wasm build has.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Plugin;

impl Metadata for Plugin {
    fn info() -> PluginInfo {
        signer::info(
            "sigstore",
            env!("CARGO_PKG_VERSION"),
            "cosign keys and signatures: tag signatures, DSSE envelopes and sigstore bundles, offline",
        )
    }
}

use lade_plugin_sdk::signer::{failed, kv, option};

/// An opened private key.
pub struct Signer {
    key: PrivateKey,
    public: PublicKey,
    ed25519: Ed25519Mode,
}

impl Signer {
    pub fn from_material(material: &KeyMaterial) -> Result<Signer, PluginError> {
        let file = material.private_key.as_deref().ok_or_else(|| {
            failed("no private key given: name a cosign private key file (cosign.key)")
        })?;
        let ed25519 = match option(&material.options, "ed25519") {
            None | Some("pure") => Ed25519Mode::Pure,
            Some("prehashed") | Some("ph") => Ed25519Mode::Prehashed,
            Some(other) => {
                return Err(failed(format!(
                    "option ed25519={other}: use `pure` or `prehashed`"
                )));
            }
        };
        let key =
            keyfile::read_private_key(file, material.passphrase.as_deref()).map_err(failed)?;
        Ok(Signer {
            public: key.public(),
            key,
            ed25519,
        })
    }

    pub fn id(&self) -> String {
        self.public.id()
    }

    pub fn public_pem(&self) -> Vec<u8> {
        self.public.to_pem()
    }

    pub fn sign_request(&self, request: SignRequest) -> Result<Signed, PluginError> {
        let sign = |message: &[u8]| self.key.sign(message, self.ed25519).map_err(failed);
        let payload_type = if request.payload_type.is_empty() {
            formats::IN_TOTO.to_string()
        } else {
            request.payload_type
        };
        match request.format {
            SignatureFormat::Cosign => Ok(Signed::Cosign(CosignSignature {
                signature: sign(&request.payload)?,
                annotations: Vec::new(),
            })),
            SignatureFormat::Dsse => {
                let sig = sign(&formats::pae(&payload_type, &request.payload))?;
                Ok(Signed::Dsse(DsseEnvelope {
                    payload_type,
                    payload: request.payload,
                    signatures: vec![DsseSignature {
                        keyid: self.id(),
                        sig,
                    }],
                }))
            }
            SignatureFormat::SigstoreBundle => {
                let sig = sign(&formats::pae(&payload_type, &request.payload))?;
                Ok(Signed::SigstoreBundle(formats::bundle_json(
                    &self.public.hint(),
                    &payload_type,
                    &request.payload,
                    &sig,
                )))
            }
            SignatureFormat::OpenpgpMessage => Err(PluginError::Unsupported(
                "the sigstore signer makes no OpenPGP signatures: use the gpg signer".into(),
            )),
        }
    }
}

/// Opened public keys (a file may hold several `PUBLIC KEY` blocks).
pub struct Verifier {
    keys: Vec<PublicKey>,
}

impl Verifier {
    pub fn from_material(material: &KeyMaterial) -> Result<Verifier, PluginError> {
        let file = material.public_key.as_deref().ok_or_else(|| {
            failed("no public key given: name a PEM public key file (cosign.pub)")
        })?;
        Ok(Verifier {
            keys: keyfile::read_public_keys(file).map_err(failed)?,
        })
    }

    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(PublicKey::id).collect()
    }

    /// The first key under which `sig` over `message` is valid, with what matched; or why none is.
    fn check(&self, message: &[u8], sig: &[u8]) -> Result<(&PublicKey, keys::Checked), String> {
        let mut why = Vec::new();
        for key in &self.keys {
            match key.verify(message, sig) {
                Ok(checked) => return Ok((key, checked)),
                Err(e) => why.push(format!("key {}: {e}", key.id())),
            }
        }
        Err(why.join("; "))
    }

    pub fn verify_signed(
        &self,
        payload: Option<Vec<u8>>,
        signature: Signed,
    ) -> Result<Verification, PluginError> {
        match signature {
            Signed::Cosign(c) => {
                let payload = payload.ok_or_else(|| {
                    failed("a cosign signature is checked against its payload (the simple-signing layer), and none was given")
                })?;
                let (key, checked) = self
                    .check(&payload, &c.signature)
                    .map_err(|e| failed(format!("the cosign signature is not valid: {e}")))?;
                Ok(verified(key, checked, payload, Vec::new()))
            }
            Signed::Dsse(env) => {
                let sigs = env
                    .signatures
                    .into_iter()
                    .map(|s| DsseSig {
                        keyid: s.keyid,
                        sig: s.sig,
                    })
                    .collect();
                self.verify_dsse(payload, env.payload_type, env.payload, sigs, Vec::new())
            }
            Signed::SigstoreBundle(json) => self.verify_bundle(payload, &json),
            Signed::OpenpgpMessage(_) => Err(PluginError::Unsupported(
                "the sigstore signer checks no OpenPGP signatures: use the gpg signer".into(),
            )),
            Signed::Artifact(a) => Err(PluginError::Unsupported(format!(
                "the sigstore signer does not know signatures of media type {}",
                a.media_type
            ))),
        }
    }

    fn verify_dsse(
        &self,
        expected: Option<Vec<u8>>,
        payload_type: String,
        payload: Vec<u8>,
        signatures: Vec<DsseSig>,
        mut details: Vec<KeyValue>,
    ) -> Result<Verification, PluginError> {
        if expected.as_ref().is_some_and(|p| *p != payload) {
            return Err(failed(
                "the DSSE envelope carries another payload than the one it was checked for",
            ));
        }
        if signatures.is_empty() {
            return Err(failed("the DSSE envelope has no signatures"));
        }
        let message = formats::pae(&payload_type, &payload);
        let mut why = Vec::new();
        for s in &signatures {
            match self.check(&message, &s.sig) {
                Ok((key, checked)) => {
                    details.push(kv("payload-type", payload_type));
                    return Ok(verified(key, checked, payload, details));
                }
                Err(e) => why.push(e),
            }
        }
        Err(failed(format!(
            "none of the DSSE envelope's {} signature(s) is valid: {}",
            signatures.len(),
            why.join("; ")
        )))
    }

    fn verify_bundle(
        &self,
        payload: Option<Vec<u8>>,
        json: &[u8],
    ) -> Result<Verification, PluginError> {
        let bundle = formats::parse_bundle(json).map_err(failed)?;
        let mut details = vec![kv("media-type", bundle.media_type)];
        if let Some(hint) = bundle.hint {
            details.push(kv("key-hint", hint));
        }
        // Transparency log entries need the log's key and, for inclusion proofs, the network: not checked.
        details.push(kv(
            "tlog-entries-unchecked",
            bundle.tlog_entries.to_string(),
        ));
        match bundle.content {
            BundleContent::Dsse {
                payload_type,
                payload: inner,
                signatures,
            } => self.verify_dsse(payload, payload_type, inner, signatures, details),
            BundleContent::Message { sha256, signature } => {
                let payload = payload.ok_or_else(|| {
                    failed("a message-signature bundle is checked against the artifact it signs, and none was given")
                })?;
                if sha256.is_some_and(|d| d != Sha256::digest(&payload).as_slice()) {
                    return Err(failed(
                        "the bundle's message digest is not the SHA-256 of the artifact",
                    ));
                }
                let (key, checked) = self.check(&payload, &signature).map_err(|e| {
                    failed(format!("the bundle's message signature is not valid: {e}"))
                })?;
                Ok(verified(key, checked, payload, details))
            }
        }
    }
}

fn verified(
    key: &PublicKey,
    checked: keys::Checked,
    payload: Vec<u8>,
    mut details: Vec<KeyValue>,
) -> Verification {
    details.insert(0, kv("algorithm", checked.algorithm));
    Verification {
        key_id: key.id(),
        payload,
        details,
    }
}

/// A new cosign key pair (`algorithm` option; ECDSA P-256 by default), encrypted as cosign does.
pub fn generate_key_pair(passphrase: &str, options: &[KeyValue]) -> Result<KeyPair, PluginError> {
    let algorithm =
        Algorithm::parse(option(options, "algorithm").unwrap_or("ecdsa-p256")).map_err(failed)?;
    let (private_key, public_key) = keyfile::generate(algorithm, passphrase).map_err(failed)?;
    Ok(KeyPair {
        private_key,
        public_key,
    })
}

impl GuestSigningKey for Signer {
    fn open(material: KeyMaterial) -> Result<SigningKey, PluginError> {
        Signer::from_material(&material).map(SigningKey::new)
    }

    fn key_id(&self) -> String {
        self.id()
    }

    fn public_key(&self) -> Option<Vec<u8>> {
        Some(self.public_pem())
    }

    fn sign(&self, request: SignRequest) -> Result<Signed, PluginError> {
        self.sign_request(request)
    }
}

impl GuestVerifyingKey for Verifier {
    fn open(material: KeyMaterial) -> Result<VerifyingKey, PluginError> {
        Verifier::from_material(&material).map(VerifyingKey::new)
    }

    fn key_ids(&self) -> Vec<String> {
        self.ids()
    }

    fn verify(
        &self,
        payload: Option<Vec<u8>>,
        signature: Signed,
    ) -> Result<Verification, PluginError> {
        self.verify_signed(payload, signature)
    }
}

impl Guest for Plugin {
    type SigningKey = Signer;
    type VerifyingKey = Verifier;

    fn formats() -> Vec<SignatureFormat> {
        vec![
            SignatureFormat::Cosign,
            SignatureFormat::Dsse,
            SignatureFormat::SigstoreBundle,
        ]
    }

    fn generate_key_pair(
        passphrase: String,
        options: Vec<KeyValue>,
    ) -> Result<KeyPair, PluginError> {
        generate_key_pair(&passphrase, &options)
    }
}

// The component's exports exist in the wasm build only; natively, `cargo test` tests the logic.
#[cfg(target_arch = "wasm32")]
lade_plugin_sdk::export_signer!(Plugin);

#[cfg(test)]
mod tests;
