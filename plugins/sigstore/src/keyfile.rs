//! Key files as cosign reads and writes them. A private key is PEM `ENCRYPTED SIGSTORE PRIVATE KEY` (or the
//! older `ENCRYPTED COSIGN PRIVATE KEY`) around the JSON of go-securesystemslib's `encrypted` package:
//!
//! ```json
//! {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": "<base64>"},
//!  "cipher": {"name": "nacl/secretbox", "nonce": "<base64>"}, "ciphertext": "<base64>"}
//! ```
//!
//! The scrypt key (32 bytes) opens a NaCl secretbox (XSalsa20-Poly1305, tag first) that holds the PKCS#8
//! DER private key. A public key is PEM `PUBLIC KEY` (SubjectPublicKeyInfo).

use crate::keys::{Algorithm, PrivateKey, PublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub const SIGSTORE_PRIVATE_KEY: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
pub const COSIGN_PRIVATE_KEY: &str = "ENCRYPTED COSIGN PRIVATE KEY";

/// The scrypt parameters cosign writes (securesystemslib's "legacy" ones).
const SCRYPT_LOG_N: u8 = 15;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
/// The largest scrypt cost accepted: 2^17 (securesystemslib's strongest setting, 128 MiB with r = 8). A
/// bigger one is refused before any work, so a crafted key file cannot exhaust memory or time.
const MAX_LOG_N: u32 = 17;
const MAX_R: u32 = 8;
const MAX_P: u32 = 4;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Encrypted {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kdf {
    name: String,
    params: ScryptParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

/// Go's encoding/json writes `[]byte` as standard base64 with padding.
mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// A PEM block, as Go's encoding/pem writes it (64-column base64, LF line ends).
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der.to_vec()), config)
}

/// Every `PUBLIC KEY` block of a public key file (at least one).
pub fn read_public_keys(file: &[u8]) -> Result<Vec<PublicKey>, String> {
    let blocks =
        pem::parse_many(file).map_err(|e| format!("the public key file is not PEM: {e}"))?;
    if blocks.is_empty() {
        return Err(
            "the public key file holds no PEM block: expected `-----BEGIN PUBLIC KEY-----` \
                    (as `cosign generate-key-pair` writes cosign.pub)"
                .into(),
        );
    }
    let mut keys = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        match block.tag() {
            "PUBLIC KEY" => keys.push(
                PublicKey::from_spki_der(block.contents())
                    .map_err(|e| format!("public key {} of the file: {e}", i + 1))?,
            ),
            "CERTIFICATE" => {
                return Err(
                    "the key file holds a certificate: this signer takes public keys (PEM `PUBLIC \
                            KEY`); certificate (Fulcio/PKI) checks are not supported"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "PEM block {} is `{other}`, not a `PUBLIC KEY`; for a private key file use the signing \
                     key option, not the verifying key",
                    i + 1
                ));
            }
        }
    }
    Ok(keys)
}

/// Open a private key file: a cosign encrypted key (with `passphrase`; none counts as empty, as cosign's
/// `COSIGN_PASSWORD=""`), or an unencrypted PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`.
pub fn read_private_key(file: &[u8], passphrase: Option<&str>) -> Result<PrivateKey, String> {
    let block = pem::parse(file).map_err(|e| format!("the private key file is not PEM: {e}"))?;
    match block.tag() {
        SIGSTORE_PRIVATE_KEY | COSIGN_PRIVATE_KEY => {
            let der = decrypt(block.contents(), passphrase.unwrap_or("").as_bytes())?;
            PrivateKey::from_pkcs8_der(&der)
        }
        "PRIVATE KEY" => PrivateKey::from_pkcs8_der(block.contents()),
        "EC PRIVATE KEY" => PrivateKey::from_sec1_der(block.contents()),
        "ENCRYPTED PRIVATE KEY" => Err(
            "an OpenSSL-encrypted PKCS#8 key is not supported: convert it with \
                                        `cosign import-key-pair`"
                .into(),
        ),
        other => Err(format!(
            "the private key file's PEM block is `{other}`; expected `{SIGSTORE_PRIVATE_KEY}` (as \
             `cosign generate-key-pair` writes cosign.key), `{COSIGN_PRIVATE_KEY}` or `PRIVATE KEY`"
        )),
    }
}

/// Decrypt the JSON of a cosign encrypted key into the PKCS#8 DER.
pub fn decrypt(json: &[u8], passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let data: Encrypted = serde_json::from_slice(json).map_err(|e| {
        format!("the encrypted private key is not cosign's JSON (kdf, cipher, ciphertext): {e}")
    })?;
    if data.kdf.name != "scrypt" {
        return Err(format!(
            "the private key uses key derivation `{}`; only `scrypt` is known",
            data.kdf.name
        ));
    }
    if data.cipher.name != "nacl/secretbox" {
        return Err(format!(
            "the private key uses cipher `{}`; only `nacl/secretbox` is known",
            data.cipher.name
        ));
    }
    let params = scrypt_params(&data.kdf.params)?;
    let nonce: [u8; 24] = data.cipher.nonce.as_slice().try_into().map_err(|_| {
        format!(
            "the secretbox nonce has {} bytes, not 24",
            data.cipher.nonce.len()
        )
    })?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(passphrase, &data.kdf.salt, &params, key.as_mut())
        .map_err(|e| format!("scrypt failed: {e}"))?;
    let cipher = XSalsa20Poly1305::new(key.as_ref().into());
    cipher
        .decrypt(&nonce.into(), data.ciphertext.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| {
            "decrypting the private key failed: wrong passphrase (or a damaged key file)"
                .to_string()
        })
}

/// Check the stored scrypt parameters against the limits before any work.
fn scrypt_params(p: &ScryptParams) -> Result<scrypt::Params, String> {
    if p.n < 2 || !p.n.is_power_of_two() {
        return Err(format!(
            "the private key's scrypt N = {} is not a power of two",
            p.n
        ));
    }
    let log_n = p.n.trailing_zeros();
    if log_n > MAX_LOG_N {
        return Err(format!(
            "the private key's scrypt cost N = {} (2^{log_n}) is above the limit 2^{MAX_LOG_N} = {}; lade refuses \
             it so that a key file cannot exhaust memory. Re-encrypt the key with cosign (N = 32768)",
            p.n,
            1u64 << MAX_LOG_N
        ));
    }
    if !(1..=MAX_R).contains(&p.r) || !(1..=MAX_P).contains(&p.p) {
        return Err(format!(
            "the private key's scrypt r = {}, p = {} are outside the accepted 1..={MAX_R} and 1..={MAX_P}",
            p.r, p.p
        ));
    }
    scrypt::Params::new(log_n as u8, p.r, p.p, 32)
        .map_err(|e| format!("bad scrypt parameters: {e}"))
}

/// Encrypt a PKCS#8 DER private key as cosign does (scrypt N = 32768, r = 8, p = 1; a fresh salt and nonce).
pub fn encrypt(der: &[u8], passphrase: &[u8]) -> Result<Vec<u8>, String> {
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    getrandom::getrandom(&mut salt).map_err(|e| format!("no randomness for the salt: {e}"))?;
    getrandom::getrandom(&mut nonce).map_err(|e| format!("no randomness for the nonce: {e}"))?;
    let params = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, 32)
        .expect("cosign's scrypt parameters");
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(passphrase, &salt, &params, key.as_mut())
        .map_err(|e| format!("scrypt failed: {e}"))?;
    let ciphertext = XSalsa20Poly1305::new(key.as_ref().into())
        .encrypt(&nonce.into(), der)
        .map_err(|_| "encrypting the private key failed".to_string())?;
    let data = Encrypted {
        kdf: Kdf {
            name: "scrypt".into(),
            params: ScryptParams {
                n: 1 << SCRYPT_LOG_N,
                r: SCRYPT_R,
                p: SCRYPT_P,
            },
            salt: salt.to_vec(),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: nonce.to_vec(),
        },
        ciphertext,
    };
    serde_json::to_vec(&data).map_err(|e| format!("encoding the encrypted key: {e}"))
}

/// A new key pair as `cosign generate-key-pair` writes it: the `ENCRYPTED SIGSTORE PRIVATE KEY` PEM and
/// the `PUBLIC KEY` PEM.
pub fn generate(algorithm: Algorithm, passphrase: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
    let key = PrivateKey::generate(algorithm);
    let encrypted = encrypt(&key.to_pkcs8_der()?, passphrase.as_bytes())?;
    // The JSON is not secret, but keep the encoded file in one place.
    let private = pem_encode(SIGSTORE_PRIVATE_KEY, &encrypted).into_bytes();
    Ok((private, key.public().to_pem()))
}

/// The base64 alphabets sigstore JSON may use (protobuf JSON accepts both, padded or not).
pub fn decode_b64(field: &str, text: &str) -> Result<Vec<u8>, String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(bytes) = engine.decode(text) {
            return Ok(bytes);
        }
    }
    Err(format!("`{field}` is not base64"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Ed25519Mode;

    fn with_params(n: u64, r: u32, p: u32) -> Vec<u8> {
        let (private, _) = generate(Algorithm::EcdsaP256, "pw").unwrap();
        let block = pem::parse(&private).unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(block.contents()).unwrap();
        json["kdf"]["params"] = serde_json::json!({"N": n, "r": r, "p": p});
        pem_encode(SIGSTORE_PRIVATE_KEY, &serde_json::to_vec(&json).unwrap()).into_bytes()
    }

    #[test]
    fn a_generated_key_pair_opens_with_its_passphrase_and_signs_for_its_public_key() {
        let (private, public) = generate(Algorithm::EcdsaP256, "secret").unwrap();
        let text = String::from_utf8(private.clone()).unwrap();
        assert!(
            text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"),
            "{text}"
        );
        assert!(text.lines().all(|l| l.len() <= 64));
        let block = pem::parse(&private).unwrap();
        let json: serde_json::Value = serde_json::from_slice(block.contents()).unwrap();
        assert_eq!(
            json["kdf"]["params"],
            serde_json::json!({"N": 32768, "r": 8, "p": 1})
        );
        assert_eq!(json["cipher"]["name"], "nacl/secretbox");
        let key = read_private_key(&private, Some("secret")).unwrap();
        let pubs = read_public_keys(&public).unwrap();
        assert_eq!(pubs.len(), 1);
        assert_eq!(pubs[0].id(), key.public().id());
        let sig = key.sign(b"x", Ed25519Mode::Pure).unwrap();
        pubs[0].verify(b"x", &sig).unwrap();
    }

    #[test]
    fn a_wrong_passphrase_is_refused_clearly() {
        let (private, _) = generate(Algorithm::Ed25519, "right").unwrap();
        let e = read_private_key(&private, Some("wrong")).err().unwrap();
        assert!(e.contains("wrong passphrase"), "{e}");
        assert!(
            read_private_key(&private, None)
                .err()
                .unwrap()
                .contains("wrong passphrase")
        );
    }

    #[test]
    fn scrypt_costs_above_2_pow_17_and_odd_parameters_are_refused_before_any_work() {
        let e = read_private_key(&with_params(1 << 18, 8, 1), Some("pw"))
            .err()
            .unwrap();
        assert!(e.contains("2^18") && e.contains("limit 2^17"), "{e}");
        let e = read_private_key(&with_params(1 << 40, 8, 1), Some("pw"))
            .err()
            .unwrap();
        assert!(e.contains("above the limit"), "{e}");
        let e = read_private_key(&with_params(30000, 8, 1), Some("pw"))
            .err()
            .unwrap();
        assert!(e.contains("power of two"), "{e}");
        let e = read_private_key(&with_params(1024, 1000, 1), Some("pw"))
            .err()
            .unwrap();
        assert!(e.contains("r = 1000"), "{e}");
        // Other parameters within the limit only fail on the (now wrong) derived key.
        let e = read_private_key(&with_params(1024, 8, 1), Some("pw"))
            .err()
            .unwrap();
        assert!(e.contains("wrong passphrase"), "{e}");
    }

    #[test]
    fn the_older_cosign_label_and_plain_pkcs8_are_read_and_other_files_refused() {
        let key = PrivateKey::generate(Algorithm::EcdsaP384);
        let der = key.to_pkcs8_der().unwrap();
        let json = encrypt(&der, b"").unwrap();
        let old = pem_encode(COSIGN_PRIVATE_KEY, &json);
        assert_eq!(
            read_private_key(old.as_bytes(), None)
                .unwrap()
                .public()
                .id(),
            key.public().id()
        );
        let plain = pem_encode("PRIVATE KEY", &der);
        assert_eq!(
            read_private_key(plain.as_bytes(), None)
                .unwrap()
                .public()
                .id(),
            key.public().id()
        );
        let e = read_private_key(key.public().to_pem().as_slice(), None)
            .err()
            .unwrap();
        assert!(
            e.contains("`PUBLIC KEY`") && e.contains(SIGSTORE_PRIVATE_KEY),
            "{e}"
        );
        let e = read_public_keys(plain.as_bytes()).err().unwrap();
        assert!(e.contains("not a `PUBLIC KEY`"), "{e}");
        assert!(read_public_keys(b"nothing here").is_err());
    }
}
