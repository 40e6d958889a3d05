//! The key types cosign uses, as raw signers and verifiers over bytes: ECDSA P-256 (SHA-256) and P-384
//! (SHA-384, and SHA-256 as containers/image uses it), Ed25519 (pure, or pre-hashed "Ed25519ph" as cosign 2
//! makes it) and RSA PKCS#1 v1.5 with SHA-256. ECDSA signatures are ASN.1 DER, as Go writes them.

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::signature::{RandomizedSigner, SignatureEncoding, Signer, Verifier};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rand_core::OsRng;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

// The algorithm OIDs of SubjectPublicKeyInfo / PKCS#8.
const ID_EC_PUBLIC_KEY: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ID_ED25519: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.112");
const RSA_ENCRYPTION: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// RSA keys shorter than this are refused, as sigstore's goodkey does.
const RSA_MIN_BITS: usize = 2048;

/// How an Ed25519 key signs: over the raw payload (containers/image, DSSE) or over its SHA-512 (cosign 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ed25519Mode {
    Pure,
    Prehashed,
}

/// The key algorithms a new key pair can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
}

impl Algorithm {
    pub fn parse(name: &str) -> Result<Algorithm, String> {
        match name {
            "ecdsa-p256" | "ecdsa-p256-sha256" => Ok(Algorithm::EcdsaP256),
            "ecdsa-p384" | "ecdsa-p384-sha384" => Ok(Algorithm::EcdsaP384),
            "ed25519" => Ok(Algorithm::Ed25519),
            other => Err(format!(
                "unknown key algorithm `{other}`: use ecdsa-p256 (the default, as cosign), ecdsa-p384 or ed25519"
            )),
        }
    }
}

/// A public key.
#[derive(Clone, Debug)]
pub enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

/// A private key.
pub enum PrivateKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

/// What a successful check found: the algorithm and, for Ed25519, which form matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub algorithm: &'static str,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl PublicKey {
    /// A key from its SubjectPublicKeyInfo DER.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, String> {
        let info = spki::SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|e| format!("not a SubjectPublicKeyInfo (PEM `PUBLIC KEY`): {e}"))?;
        let oid = info.algorithm.oid;
        let bad = |e: &dyn std::fmt::Display| {
            format!("a malformed {} public key: {e}", algorithm_name(oid))
        };
        if oid == ID_EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|e| format!("an EC public key without a named curve: {e}"))?;
            return match curve {
                SECP256R1 => p256::ecdsa::VerifyingKey::from_public_key_der(der)
                    .map(PublicKey::P256)
                    .map_err(|e| bad(&e)),
                SECP384R1 => p384::ecdsa::VerifyingKey::from_public_key_der(der)
                    .map(PublicKey::P384)
                    .map_err(|e| bad(&e)),
                other => Err(format!(
                    "an EC public key on curve {other}, which sigstore does not use (P-256 and P-384 are supported)"
                )),
            };
        }
        if oid == ID_ED25519 {
            return ed25519_dalek::VerifyingKey::from_public_key_der(der)
                .map(PublicKey::Ed25519)
                .map_err(|e| bad(&e));
        }
        if oid == RSA_ENCRYPTION {
            let key = rsa::RsaPublicKey::from_public_key_der(der).map_err(|e| bad(&e))?;
            check_rsa_size(key.size() * 8)?;
            return Ok(PublicKey::Rsa(key));
        }
        Err(format!(
            "a public key of algorithm {oid}, which this signer does not know (ECDSA P-256/P-384, Ed25519 and RSA are)"
        ))
    }

    /// The canonical SubjectPublicKeyInfo DER (the same key always encodes the same way).
    pub fn spki_der(&self) -> Vec<u8> {
        let doc = match self {
            PublicKey::P256(k) => k.to_public_key_der(),
            PublicKey::P384(k) => k.to_public_key_der(),
            PublicKey::Ed25519(k) => k.to_public_key_der(),
            PublicKey::Rsa(k) => k.to_public_key_der(),
        };
        doc.expect("encoding a valid public key").into_vec()
    }

    /// The PEM `PUBLIC KEY` file, as cosign writes it.
    pub fn to_pem(&self) -> Vec<u8> {
        crate::keyfile::pem_encode("PUBLIC KEY", &self.spki_der()).into_bytes()
    }

    /// The key's stable id: the SHA-256 of its SubjectPublicKeyInfo DER, in hex.
    pub fn id(&self) -> String {
        hex(&Sha256::digest(self.spki_der()))
    }

    /// The SHA-256 of the SubjectPublicKeyInfo DER, base64: the key hint of a sigstore bundle.
    pub fn hint(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(self.spki_der()))
    }

    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::P256(_) => "ecdsa-p256-sha256",
            PublicKey::P384(_) => "ecdsa-p384-sha384",
            PublicKey::Ed25519(_) => "ed25519",
            PublicKey::Rsa(_) => "rsa-pkcs1v15-sha256",
        }
    }

    /// Check `sig` over `message`. Ed25519 accepts the pure and the pre-hashed form; P-384 accepts SHA-384
    /// (cosign) and SHA-256 (containers/image hashes every key with SHA-256).
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> Result<Checked, String> {
        let mismatch = || {
            format!(
                "the {} signature does not match the payload",
                self.algorithm()
            )
        };
        match self {
            PublicKey::P256(k) => {
                let sig = p256::ecdsa::Signature::from_der(sig).map_err(|_| {
                    "the signature is not an ASN.1 DER ECDSA P-256 signature".to_string()
                })?;
                k.verify(message, &sig).map_err(|_| mismatch())?;
                Ok(Checked {
                    algorithm: "ecdsa-p256-sha256",
                })
            }
            PublicKey::P384(k) => {
                let sig = p384::ecdsa::Signature::from_der(sig).map_err(|_| {
                    "the signature is not an ASN.1 DER ECDSA P-384 signature".to_string()
                })?;
                if k.verify_prehash(&Sha384::digest(message), &sig).is_ok() {
                    return Ok(Checked {
                        algorithm: "ecdsa-p384-sha384",
                    });
                }
                k.verify_prehash(&Sha256::digest(message), &sig)
                    .map_err(|_| mismatch())?;
                Ok(Checked {
                    algorithm: "ecdsa-p384-sha256",
                })
            }
            PublicKey::Ed25519(k) => {
                let sig = ed25519_dalek::Signature::from_slice(sig)
                    .map_err(|_| "the signature is not a 64-byte Ed25519 signature".to_string())?;
                if k.verify(message, &sig).is_ok() {
                    return Ok(Checked {
                        algorithm: "ed25519",
                    });
                }
                let mut prehash = Sha512::new();
                prehash.update(message);
                k.verify_prehashed(prehash, None, &sig)
                    .map_err(|_| mismatch())?;
                Ok(Checked {
                    algorithm: "ed25519ph",
                })
            }
            PublicKey::Rsa(k) => {
                let sig = rsa::pkcs1v15::Signature::try_from(sig)
                    .map_err(|_| "the signature is not an RSA signature".to_string())?;
                rsa::pkcs1v15::VerifyingKey::<Sha256>::new(k.clone())
                    .verify(message, &sig)
                    .map_err(|_| mismatch())?;
                Ok(Checked {
                    algorithm: "rsa-pkcs1v15-sha256",
                })
            }
        }
    }
}

fn check_rsa_size(bits: usize) -> Result<(), String> {
    if bits < RSA_MIN_BITS {
        return Err(format!(
            "an RSA key of {bits} bits is too weak: use at least {RSA_MIN_BITS} bits"
        ));
    }
    Ok(())
}

fn algorithm_name(oid: pkcs8::ObjectIdentifier) -> &'static str {
    match oid {
        ID_EC_PUBLIC_KEY => "EC",
        ID_ED25519 => "Ed25519",
        RSA_ENCRYPTION => "RSA",
        _ => "unknown",
    }
}

impl PrivateKey {
    /// A key from its PKCS#8 DER (what a cosign key file holds once decrypted).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey, String> {
        let info = pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|e| format!("the decrypted key is not a PKCS#8 private key: {e}"))?;
        let oid = info.algorithm.oid;
        let bad = |e: &dyn std::fmt::Display| {
            format!("a malformed {} private key: {e}", algorithm_name(oid))
        };
        if oid == ID_EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|e| format!("an EC private key without a named curve: {e}"))?;
            return match curve {
                SECP256R1 => p256::ecdsa::SigningKey::from_pkcs8_der(der)
                    .map(PrivateKey::P256)
                    .map_err(|e| bad(&e)),
                SECP384R1 => p384::ecdsa::SigningKey::from_pkcs8_der(der)
                    .map(PrivateKey::P384)
                    .map_err(|e| bad(&e)),
                other => Err(format!(
                    "an EC private key on curve {other}, which sigstore does not use (P-256 and P-384 are supported)"
                )),
            };
        }
        if oid == ID_ED25519 {
            return ed25519_dalek::SigningKey::from_pkcs8_der(der)
                .map(PrivateKey::Ed25519)
                .map_err(|e| bad(&e));
        }
        if oid == RSA_ENCRYPTION {
            let key = rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|e| bad(&e))?;
            check_rsa_size(key.size() * 8)?;
            return Ok(PrivateKey::Rsa(Box::new(key)));
        }
        Err(format!(
            "a private key of algorithm {oid}, which this signer does not know (ECDSA P-256/P-384, Ed25519 and RSA are)"
        ))
    }

    /// A key from SEC1 `EC PRIVATE KEY` DER (P-256 or P-384).
    pub fn from_sec1_der(der: &[u8]) -> Result<PrivateKey, String> {
        if let Ok(k) = p256::SecretKey::from_sec1_der(der) {
            return Ok(PrivateKey::P256(k.into()));
        }
        p384::SecretKey::from_sec1_der(der)
            .map(|k| PrivateKey::P384(k.into()))
            .map_err(|e| format!("not a P-256 or P-384 `EC PRIVATE KEY`: {e}"))
    }

    /// A new key.
    pub fn generate(algorithm: Algorithm) -> PrivateKey {
        match algorithm {
            Algorithm::EcdsaP256 => PrivateKey::P256(p256::ecdsa::SigningKey::random(&mut OsRng)),
            Algorithm::EcdsaP384 => PrivateKey::P384(p384::ecdsa::SigningKey::random(&mut OsRng)),
            Algorithm::Ed25519 => {
                PrivateKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng))
            }
        }
    }

    /// The PKCS#8 DER, as Go's x509.MarshalPKCS8PrivateKey writes it (Ed25519 in the version 1 form).
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        let doc = match self {
            PrivateKey::P256(k) => k.to_pkcs8_der(),
            PrivateKey::P384(k) => k.to_pkcs8_der(),
            PrivateKey::Ed25519(k) => ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: k.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_der(),
            PrivateKey::Rsa(k) => k.to_pkcs8_der(),
        };
        doc.map(|d| Zeroizing::new(d.as_bytes().to_vec()))
            .map_err(|e| format!("encoding the private key as PKCS#8: {e}"))
    }

    pub fn public(&self) -> PublicKey {
        match self {
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            PrivateKey::P384(k) => PublicKey::P384(*k.verifying_key()),
            PrivateKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            PrivateKey::Rsa(k) => PublicKey::Rsa(k.to_public_key()),
        }
    }

    /// Sign `message`: ECDSA in DER over its SHA-256 (P-256) or SHA-384 (P-384), Ed25519 in `mode`, RSA
    /// PKCS#1 v1.5 over its SHA-256 (blinded).
    pub fn sign(&self, message: &[u8], mode: Ed25519Mode) -> Result<Vec<u8>, String> {
        Ok(match self {
            PrivateKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            PrivateKey::P384(k) => {
                let sig: p384::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            PrivateKey::Ed25519(k) if mode == Ed25519Mode::Pure => {
                k.sign(message).to_bytes().to_vec()
            }
            PrivateKey::Ed25519(k) => {
                let mut prehash = Sha512::new();
                prehash.update(message);
                k.sign_prehashed(prehash, None)
                    .map_err(|e| format!("Ed25519ph signing failed: {e}"))?
                    .to_bytes()
                    .to_vec()
            }
            PrivateKey::Rsa(k) => rsa::pkcs1v15::SigningKey::<Sha256>::new((**k).clone())
                .try_sign_with_rng(&mut OsRng, message)
                .map_err(|e| format!("RSA signing failed: {e}"))?
                .to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<PrivateKey> {
        let rsa = rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
        vec![
            PrivateKey::generate(Algorithm::EcdsaP256),
            PrivateKey::generate(Algorithm::EcdsaP384),
            PrivateKey::generate(Algorithm::Ed25519),
            PrivateKey::Rsa(Box::new(rsa)),
        ]
    }

    #[test]
    fn every_key_type_signs_and_verifies_and_refuses_tampering_and_other_keys() {
        let keys = all();
        for (i, key) in keys.iter().enumerate() {
            let public = key.public();
            let sig = key.sign(b"payload", Ed25519Mode::Pure).unwrap();
            assert_eq!(
                public.verify(b"payload", &sig).unwrap().algorithm,
                public.algorithm()
            );
            let e = public.verify(b"payloaD", &sig).unwrap_err();
            assert!(e.contains("does not match"), "{e}");
            let other = &keys[(i + 1) % keys.len()];
            let other_sig = other.sign(b"payload", Ed25519Mode::Pure).unwrap();
            assert!(public.verify(b"payload", &other_sig).is_err());
            // Round trip through PKCS#8 and SPKI keeps the key and its id.
            let again = PrivateKey::from_pkcs8_der(&key.to_pkcs8_der().unwrap()).unwrap();
            assert_eq!(again.public().id(), public.id());
            assert_eq!(
                PublicKey::from_spki_der(&public.spki_der()).unwrap().id(),
                public.id()
            );
        }
    }

    #[test]
    fn ed25519_verifies_both_the_pure_and_the_prehashed_form() {
        let key = PrivateKey::generate(Algorithm::Ed25519);
        let pure = key.sign(b"m", Ed25519Mode::Pure).unwrap();
        let ph = key.sign(b"m", Ed25519Mode::Prehashed).unwrap();
        assert_ne!(pure, ph);
        assert_eq!(
            key.public().verify(b"m", &pure).unwrap().algorithm,
            "ed25519"
        );
        assert_eq!(
            key.public().verify(b"m", &ph).unwrap().algorithm,
            "ed25519ph"
        );
        assert!(key.public().verify(b"n", &ph).is_err());
    }

    #[test]
    fn p384_accepts_sha256_as_containers_image_signs() {
        let PrivateKey::P384(k) = PrivateKey::generate(Algorithm::EcdsaP384) else {
            unreachable!()
        };
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let sig: p384::ecdsa::Signature = k.sign_prehash(&Sha256::digest(b"m")).unwrap();
        let public = PublicKey::P384(*k.verifying_key());
        assert_eq!(
            public
                .verify(b"m", sig.to_der().as_bytes())
                .unwrap()
                .algorithm,
            "ecdsa-p384-sha256"
        );
    }

    #[test]
    fn short_rsa_keys_and_garbage_are_refused() {
        let small = rsa::RsaPrivateKey::new(&mut OsRng, 1024).unwrap();
        let der = small.to_public_key().to_public_key_der().unwrap();
        assert!(
            PublicKey::from_spki_der(der.as_bytes())
                .unwrap_err()
                .contains("too weak")
        );
        assert!(PublicKey::from_spki_der(b"garbage").is_err());
        assert!(PrivateKey::from_pkcs8_der(b"garbage").is_err());
    }
}
