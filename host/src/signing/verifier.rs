//! The policy engine's verifier on the signer plugins (`sigstore` for sigstoreSigned, `gpg` for signedBy).
//! The plugins are loaded on first use (a policy that needs no signatures never loads them); each key (a
//! PEM public key, a keyring) is opened once per run and kept, so a key file is parsed once however many
//! images or signatures are checked.

use crate::plugin::Plugin;
use crate::plugin::signer::{CosignSignature, KeyMaterial, Signed, VerifyingKey};
use crate::policy::Verifier;
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Loads an embedded plugin by name (with the process's limits).
pub type Loader = Box<dyn Fn(&str) -> Result<Plugin> + Send + Sync>;

type Loaded = OnceLock<std::result::Result<&'static Plugin, String>>;

/// [`Verifier`] backed by the `sigstore` and `gpg` signer plugins.
pub struct PluginVerifier {
    load: Loader,
    sigstore: Loaded,
    gpg: Loaded,
    /// Opened keys, by plugin name and the key file's bytes.
    keys: Mutex<HashMap<(&'static str, Vec<u8>), VerifyingKey<'static>>>,
}

impl PluginVerifier {
    pub fn new(load: Loader) -> PluginVerifier {
        PluginVerifier {
            load,
            sigstore: OnceLock::new(),
            gpg: OnceLock::new(),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// The plugin, loaded once per process (it lives as long as the process: opened keys borrow it).
    fn plugin(&self, name: &'static str) -> Result<&'static Plugin> {
        let slot = if name == super::GPG_PLUGIN {
            &self.gpg
        } else {
            &self.sigstore
        };
        slot.get_or_init(|| {
            (self.load)(name)
                .map(|p| &*Box::leak(Box::new(p)))
                .map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(|e| anyhow!("loading the {name} signer plugin: {e}"))
    }

    /// Check `sig` (over `payload` when it travels apart) with the key file `key` in plugin `name`,
    /// opening the key on first use. Returns the signed payload.
    fn verify_one(
        &self,
        name: &'static str,
        key: &[u8],
        payload: Option<&[u8]>,
        sig: &Signed,
    ) -> Result<Vec<u8>> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let id = (name, key.to_vec());
        if !keys.contains_key(&id) {
            let opened = self
                .plugin(name)?
                .signer()?
                .verifying_key(&KeyMaterial {
                    private_key: None,
                    public_key: Some(key.to_vec()),
                    passphrase: None,
                    options: vec![],
                })
                .context("the public key cannot be used")?;
            keys.insert(id.clone(), opened);
        }
        Ok(keys[&id].verify(payload, sig)?.payload)
    }
}

impl Verifier for PluginVerifier {
    fn verify_gpg(&self, keyrings: &[Vec<u8>], blob: &[u8]) -> Result<Vec<u8>> {
        let sig = Signed::OpenpgpMessage(blob.to_vec());
        let mut reasons = vec![];
        for (i, k) in keyrings.iter().filter(|k| !k.is_empty()).enumerate() {
            match self.verify_one(super::GPG_PLUGIN, k, None, &sig) {
                Ok(payload) => return Ok(payload),
                Err(e) => reasons.push(format!("keyring {}: {e:#}", i + 1)),
            }
        }
        match reasons.len() {
            0 => bail!("no public keys to verify the GPG signature with"),
            1 => bail!("the GPG signature is not valid: {}", reasons[0]),
            n => bail!(
                "the GPG signature was made by none of the {n} keyrings: {}",
                reasons.join("; ")
            ),
        }
    }

    fn verify_sigstore(
        &self,
        public_keys: &[Vec<u8>],
        payload: &[u8],
        signature_b64: &str,
    ) -> Result<()> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(signature_b64.trim())
            .context("the signature annotation is not valid base64")?;
        let sig = Signed::Cosign(CosignSignature {
            signature: raw,
            annotations: vec![],
        });
        let mut reasons = vec![];
        for (i, pem) in public_keys.iter().enumerate() {
            match self.verify_one(super::SIGSTORE_PLUGIN, pem, Some(payload), &sig) {
                Ok(_) => return Ok(()),
                Err(e) => reasons.push(format!("key {}: {e:#}", i + 1)),
            }
        }
        match reasons.len() {
            0 => bail!("no public keys to verify the sigstore signature with"),
            1 => bail!("the sigstore signature is not valid: {}", reasons[0]),
            n => bail!(
                "the sigstore signature was made by none of the {n} keys: {}",
                reasons.join("; ")
            ),
        }
    }

    fn verify_sigstore_bundle(&self, public_keys: &[Vec<u8>], bundle: &[u8]) -> Result<Vec<u8>> {
        super::bundle::verify_with(public_keys, |pem| {
            self.verify_one(
                super::SIGSTORE_PLUGIN,
                pem,
                None,
                &Signed::SigstoreBundle(bundle.to_vec()),
            )
        })
    }
}
