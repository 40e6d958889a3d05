//! A lade signer to start from. It is NOT cryptography: a "signature" is a keyed hash stand-in so the
//! plumbing (keys opened once, typed outputs, stable key ids) works end to end. Replace `sign_bytes` and
//! `key_id` with a real scheme (a pure-Rust crate that builds for wasm32-wasip2).

use lade_plugin_sdk::signer::{
    self, CosignSignature, Guest, GuestSigningKey, GuestVerifyingKey, KeyMaterial, KeyPair, KeyValue, Metadata,
    PluginError, PluginInfo, SignRequest, SignatureFormat, Signed, SigningKey, Verification, VerifyingKey,
};

// Used by the export, which only the wasm build has.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Plugin;

impl Metadata for Plugin {
    fn info() -> PluginInfo {
        signer::info("__NAME__", env!("CARGO_PKG_VERSION"), "__DESCRIPTION__")
    }
}

/// Stand-in for a real signature (FNV-1a over key and payload).
pub fn sign_bytes(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in key.iter().chain(payload) {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100000001b3);
    }
    h.to_be_bytes().to_vec()
}

pub fn key_id(key: &[u8]) -> String {
    format!("demo:{:x}", u64::from_be_bytes(sign_bytes(key, b"id").try_into().unwrap_or_default()))
}

pub struct Key(Vec<u8>);

impl GuestSigningKey for Key {
    fn open(material: KeyMaterial) -> Result<SigningKey, PluginError> {
        let key = material.private_key.ok_or_else(|| PluginError::Failed("no private key given".into()))?;
        Ok(SigningKey::new(Key(key)))
    }

    fn key_id(&self) -> String {
        key_id(&self.0)
    }

    fn public_key(&self) -> Option<Vec<u8>> {
        None
    }

    fn sign(&self, request: SignRequest) -> Result<Signed, PluginError> {
        match request.format {
            SignatureFormat::Cosign => Ok(Signed::Cosign(CosignSignature {
                signature: sign_bytes(&self.0, &request.payload),
                annotations: Vec::new(),
            })),
            _ => Err(PluginError::Unsupported("this signer makes cosign signatures only".into())),
        }
    }
}

pub struct Verifier(Vec<u8>);

impl GuestVerifyingKey for Verifier {
    fn open(material: KeyMaterial) -> Result<VerifyingKey, PluginError> {
        // The stand-in is symmetric: the "public" key is the same secret.
        let key = material.public_key.ok_or_else(|| PluginError::Failed("no public key given".into()))?;
        Ok(VerifyingKey::new(Verifier(key)))
    }

    fn key_ids(&self) -> Vec<String> {
        vec![key_id(&self.0)]
    }

    fn verify(&self, payload: Option<Vec<u8>>, signature: Signed) -> Result<Verification, PluginError> {
        let (Some(payload), Signed::Cosign(sig)) = (payload, signature) else {
            return Err(PluginError::Unsupported("cosign signatures with a payload only".into()));
        };
        if sig.signature != sign_bytes(&self.0, &payload) {
            return Err(PluginError::Failed("the signature does not match".into()));
        }
        Ok(Verification { key_id: key_id(&self.0), payload, details: Vec::new() })
    }
}

impl Guest for Plugin {
    type SigningKey = Key;
    type VerifyingKey = Verifier;

    fn formats() -> Vec<SignatureFormat> {
        vec![SignatureFormat::Cosign]
    }

    fn generate_key_pair(_passphrase: String, _options: Vec<KeyValue>) -> Result<KeyPair, PluginError> {
        Err(PluginError::Unsupported("this signer does not make keys".into()))
    }
}

// The component's exports exist in the wasm build only; natively, `cargo test` tests the logic.
#[cfg(target_arch = "wasm32")]
lade_plugin_sdk::export_signer!(Plugin);

#[cfg(test)]
mod tests {
    #[test]
    fn signatures_depend_on_key_and_payload() {
        assert_ne!(super::sign_bytes(b"k", b"p"), super::sign_bytes(b"k", b"q"));
        assert_eq!(super::key_id(b"k"), super::key_id(b"k"));
    }
}
