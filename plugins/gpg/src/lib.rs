//! The `gpg` signer plugin: containers-signature(5) simple signing with OpenPGP keys, in pure Rust (rpgp).
//!
//! - [`keys`]: key files (armored or binary, keyrings) and the state of each component key;
//! - [`message`]: signing a payload into a signed message, and parsing one strictly to verify it;
//! - this module: the `lade:plugin@0.2.0` signer over them ([`Signer`], [`Verifier`]).
//!
//! Key ids are OpenPGP fingerprints of the primary key, uppercase hex (40 digits for v4 keys), as
//! containers tools show them. Options (`key-material.options`): `fingerprint` = the key (primary or
//! subkey fingerprint, or 16-digit key id) to sign with when the secret key file holds several; without
//! it the file must hold one key, which signs with its newest usable signing subkey, else its primary key.

pub mod keys;
pub mod message;

use keys::{Component, KeyPacket};
use lade_plugin_sdk::signer::{
    self, Guest, GuestSigningKey, GuestVerifyingKey, KeyMaterial, KeyPair, KeyValue, Metadata,
    PluginError, PluginInfo, SignRequest, SignatureFormat, Signed, SigningKey, Verification,
    VerifyingKey,
};
use message::SecretPacket;
use pgp::composed::{ArmorOptions, SignedPublicKey};

// Used by the export, which only the wasm build has.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Plugin;

impl Metadata for Plugin {
    fn info() -> PluginInfo {
        signer::info(
            "gpg",
            env!("CARGO_PKG_VERSION"),
            "OpenPGP simple signing (containers-signature(5)): gpg secret keys and keyrings, no gpg needed",
        )
    }
}

use lade_plugin_sdk::signer::{failed, kv, option};

/// A fingerprint or key id as users write it (`0x…`, spaces, lowercase, gpg's trailing `!`), normalized.
fn normalize_fingerprint(s: &str) -> String {
    let s = s.trim().trim_end_matches('!');
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    s.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase()
}

/// An opened secret key: the unlocked packet that signs, and its certificate.
pub struct Signer {
    key: SecretPacket,
    primary: String,
    public: SignedPublicKey,
}

impl Signer {
    pub fn from_material(material: &KeyMaterial) -> Result<Signer, PluginError> {
        let file = material.private_key.as_deref().ok_or_else(|| {
            failed("no secret key given: name a file from `gpg --export-secret-keys FINGERPRINT`")
        })?;
        if file.len() > keys::MAX_KEY_FILE {
            return Err(failed("the secret key file is larger than 16 MiB"));
        }
        let wanted = option(&material.options, "fingerprint").map(normalize_fingerprint);
        Self::open(file, material.passphrase.as_deref(), wanted.as_deref()).map_err(failed)
    }

    fn open(file: &[u8], passphrase: Option<&str>, wanted: Option<&str>) -> Result<Signer, String> {
        let mut certs = keys::parse_secret_keys(file)?;
        let all: Vec<String> = certs
            .iter()
            .map(|c| keys::fingerprint_hex(&c.primary_key))
            .collect();
        let index = match wanted {
            Some(fpr) => certs
                .iter()
                .position(|c| {
                    keys::components(&c.to_public_key())
                        .iter()
                        .any(|comp| message::names(&comp.key, fpr))
                })
                .ok_or_else(|| {
                    format!(
                        "no key {fpr} in the secret key file (it holds {})",
                        all.join(", ")
                    )
                })?,
            None if certs.len() == 1 => 0,
            None => {
                return Err(format!(
                    "the secret key file holds {} keys ({}): choose one with the `fingerprint` option",
                    certs.len(),
                    all.join(", ")
                ));
            }
        };
        let cert = certs.swap_remove(index);
        let public = cert.to_public_key();
        let components = keys::components(&public);
        let component = choose(&components, wanted)?;
        let fpr = component.key.fingerprint();
        let mut key = if matches!(component.key, KeyPacket::Primary(_)) {
            SecretPacket::Primary(cert.primary_key.clone())
        } else {
            let sub = cert
                .secret_subkeys
                .iter()
                .find(|s| keys::fingerprint_hex(&s.key) == fpr)
                .ok_or_else(|| {
                    format!("the secret key file holds no secret part for subkey {fpr}")
                })?;
            SecretPacket::Subkey(sub.key.clone())
        };
        key.unlock(passphrase, &fpr)?;
        Ok(Signer {
            key,
            primary: component.primary.clone(),
            public,
        })
    }
}

/// The component that signs: the one `wanted` names when it is a subkey, else the newest usable signing
/// subkey, else the primary key (gpg's choice).
fn choose<'c>(components: &'c [Component], wanted: Option<&str>) -> Result<&'c Component, String> {
    let now = keys::now();
    if let Some(fpr) = wanted
        && let Some(sub) = components
            .iter()
            .find(|c| matches!(c.key, KeyPacket::Subkey(_)) && message::names(&c.key, fpr))
    {
        return match sub.refusal(now) {
            None => Ok(sub),
            Some(why) => Err(format!("cannot sign: {why}")),
        };
    }
    let usable = components
        .iter()
        .filter(|c| matches!(c.key, KeyPacket::Subkey(_)) && c.refusal(now).is_none())
        .max_by_key(|c| c.key.created());
    if let Some(sub) = usable {
        return Ok(sub);
    }
    let primary = &components[0];
    match primary.refusal(now) {
        None => Ok(primary),
        Some(why) => Err(format!(
            "cannot sign: {why}, and it has no usable signing subkey"
        )),
    }
}

impl GuestSigningKey for Signer {
    fn open(material: KeyMaterial) -> Result<SigningKey, PluginError> {
        Ok(SigningKey::new(Signer::from_material(&material)?))
    }

    fn key_id(&self) -> String {
        self.primary.clone()
    }

    fn public_key(&self) -> Option<Vec<u8>> {
        self.public.to_armored_bytes(ArmorOptions::default()).ok()
    }

    fn sign(&self, request: SignRequest) -> Result<Signed, PluginError> {
        match request.format {
            SignatureFormat::OpenpgpMessage => message::sign(&self.key, &request.payload)
                .map(Signed::OpenpgpMessage)
                .map_err(failed),
            other => Err(PluginError::Unsupported(format!(
                "the gpg signer makes OpenPGP messages (simple signing) only, not {other:?}"
            ))),
        }
    }
}

/// An opened keyring: every component key of every certificate in it.
pub struct Verifier {
    components: Vec<Component>,
    primaries: Vec<String>,
}

impl Verifier {
    pub fn from_material(material: &KeyMaterial) -> Result<Verifier, PluginError> {
        let file = material.public_key.as_deref().ok_or_else(|| {
            failed("no keyring given: name a file from `gpg --export FINGERPRINT`")
        })?;
        if file.len() > keys::MAX_KEY_FILE {
            return Err(failed("the keyring is larger than 16 MiB"));
        }
        Self::open(file).map_err(failed)
    }

    pub fn open(file: &[u8]) -> Result<Verifier, String> {
        let certs = keys::parse_public_keys(file)?;
        let primaries = certs
            .iter()
            .map(|c| keys::fingerprint_hex(&c.primary_key))
            .collect();
        let components = certs.iter().flat_map(keys::components).collect();
        Ok(Verifier {
            components,
            primaries,
        })
    }

    /// Checks a signed message; `expected` is the payload when the caller has it apart.
    pub fn check(
        &self,
        expected: Option<&[u8]>,
        signature: &[u8],
    ) -> Result<message::Verified, String> {
        let verified = message::verify(&self.components, signature)?;
        if expected.is_some_and(|p| p != verified.payload.as_slice()) {
            return Err(
                "the signed payload differs from the payload given alongside the signature".into(),
            );
        }
        Ok(verified)
    }
}

impl GuestVerifyingKey for Verifier {
    fn open(material: KeyMaterial) -> Result<VerifyingKey, PluginError> {
        Ok(VerifyingKey::new(Verifier::from_material(&material)?))
    }

    fn key_ids(&self) -> Vec<String> {
        self.primaries.clone()
    }

    fn verify(
        &self,
        payload: Option<Vec<u8>>,
        signature: Signed,
    ) -> Result<Verification, PluginError> {
        let Signed::OpenpgpMessage(message) = signature else {
            return Err(PluginError::Unsupported(
                "the gpg signer verifies OpenPGP messages (simple signing) only".into(),
            ));
        };
        let v = self.check(payload.as_deref(), &message).map_err(failed)?;
        let mut details = vec![kv("signer", v.signer)];
        if let Some(created) = v.created {
            details.push(kv("created", created.to_string()));
        }
        Ok(Verification {
            key_id: v.key_id,
            payload: v.payload,
            details,
        })
    }
}

impl Guest for Plugin {
    type SigningKey = Signer;
    type VerifyingKey = Verifier;

    fn formats() -> Vec<SignatureFormat> {
        vec![SignatureFormat::OpenpgpMessage]
    }

    fn generate_key_pair(
        _passphrase: String,
        _options: Vec<KeyValue>,
    ) -> Result<KeyPair, PluginError> {
        Err(PluginError::Unsupported(
            "the gpg signer does not make keys: use `gpg --quick-gen-key 'NAME <EMAIL>' ed25519`, then \
             `gpg --export-secret-keys FINGERPRINT > key.gpg` and `gpg --export FINGERPRINT > key.pub`"
                .into(),
        ))
    }
}

// The component's exports exist in the wasm build only; natively, `cargo test` tests the logic.
#[cfg(target_arch = "wasm32")]
lade_plugin_sdk::export_signer!(Plugin);

#[cfg(test)]
mod tests;
