//! The signature formats: DSSE's pre-authentication encoding and the sigstore bundle JSON
//! (`application/vnd.dev.sigstore.bundle.v0.3+json`, the protobuf-specs `Bundle` in its JSON form).

use crate::keyfile::decode_b64;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The media types of the bundle versions this signer reads.
const BUNDLE_TYPES: &[&str] = &[
    BUNDLE_V03,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
];
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// DSSE v1 pre-authentication encoding: what a DSSE signature signs.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// One DSSE signature.
pub struct DsseSig {
    pub keyid: String,
    pub sig: Vec<u8>,
}

/// What a bundle carries.
pub enum BundleContent {
    Dsse {
        payload_type: String,
        payload: Vec<u8>,
        signatures: Vec<DsseSig>,
    },
    /// A `messageSignature` (cosign sign-blob): a signature over the artifact itself, with its digest.
    Message {
        sha256: Option<Vec<u8>>,
        signature: Vec<u8>,
    },
}

pub struct Bundle {
    pub media_type: String,
    pub hint: Option<String>,
    pub tlog_entries: usize,
    pub content: BundleContent,
}

/// A public-key bundle around one DSSE signature, as cosign 3 writes it (the key named by its hint only;
/// no transparency log entry: lade works offline).
pub fn bundle_json(hint: &str, payload_type: &str, payload: &[u8], sig: &[u8]) -> Vec<u8> {
    let bundle = json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": { "publicKey": { "hint": hint } },
        "dsseEnvelope": {
            "payload": STANDARD.encode(payload),
            "payloadType": payload_type,
            "signatures": [ { "sig": STANDARD.encode(sig), "keyid": "" } ]
        }
    });
    serde_json::to_vec(&bundle).expect("a JSON value encodes")
}

fn str_field<'a>(v: &'a Value, path: &str) -> Result<&'a str, String> {
    v.pointer(path).and_then(Value::as_str).ok_or_else(|| {
        format!(
            "the bundle has no string `{}`",
            path.trim_start_matches('/').replace('/', ".")
        )
    })
}

/// Parse a bundle's JSON. Certificate bundles (Fulcio, PKI) are refused: this signer checks public keys.
pub fn parse_bundle(bytes: &[u8]) -> Result<Bundle, String> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("the sigstore bundle is not JSON: {e}"))?;
    let media_type = str_field(&v, "/mediaType")?.to_string();
    if !BUNDLE_TYPES.contains(&media_type.as_str()) {
        return Err(format!(
            "the bundle's media type `{media_type}` is not a sigstore bundle this signer reads ({})",
            BUNDLE_TYPES.join(", ")
        ));
    }
    let material = v
        .get("verificationMaterial")
        .ok_or("the bundle has no `verificationMaterial`")?;
    if material.get("certificate").is_some() || material.get("x509CertificateChain").is_some() {
        return Err("the bundle is signed with a certificate (keyless, Fulcio or PKI): lade checks bundles \
                    signed with a public key only"
            .into());
    }
    let hint = material
        .pointer("/publicKey/hint")
        .and_then(Value::as_str)
        .map(str::to_string);
    let tlog_entries = material
        .get("tlogEntries")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let content = if let Some(env) = v.get("dsseEnvelope") {
        let payload = decode_b64("dsseEnvelope.payload", str_field(env, "/payload")?)?;
        let payload_type = str_field(env, "/payloadType")?.to_string();
        let mut signatures = Vec::new();
        for s in env
            .get("signatures")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            signatures.push(DsseSig {
                keyid: s
                    .get("keyid")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                sig: decode_b64("dsseEnvelope.signatures.sig", str_field(s, "/sig")?)?,
            });
        }
        BundleContent::Dsse {
            payload_type,
            payload,
            signatures,
        }
    } else if let Some(m) = v.get("messageSignature") {
        let sha256 = match m.get("messageDigest") {
            None => None,
            Some(d) => {
                let algorithm = str_field(d, "/algorithm")?;
                if algorithm != "SHA2_256" {
                    return Err(format!(
                        "the bundle's message digest is {algorithm}; only SHA2_256 is checked"
                    ));
                }
                Some(decode_b64(
                    "messageSignature.messageDigest.digest",
                    str_field(d, "/digest")?,
                )?)
            }
        };
        BundleContent::Message {
            sha256,
            signature: decode_b64("messageSignature.signature", str_field(m, "/signature")?)?,
        }
    } else {
        return Err("the bundle has neither a `dsseEnvelope` nor a `messageSignature`".into());
    };
    Ok(Bundle {
        media_type,
        hint,
        tlog_entries,
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // The example of the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn a_bundle_round_trips_and_certificate_bundles_are_refused() {
        let json = bundle_json("aGludA==", IN_TOTO, b"{\"a\":1}", b"sig");
        let b = parse_bundle(&json).unwrap();
        assert_eq!(b.media_type, BUNDLE_V03);
        assert_eq!(b.hint.as_deref(), Some("aGludA=="));
        let BundleContent::Dsse {
            payload_type,
            payload,
            signatures,
        } = b.content
        else {
            panic!()
        };
        assert_eq!(
            (payload_type.as_str(), payload.as_slice()),
            (IN_TOTO, &b"{\"a\":1}"[..])
        );
        assert_eq!(signatures[0].sig, b"sig");
        let mut v: Value = serde_json::from_slice(&json).unwrap();
        v["verificationMaterial"] = json!({"certificate": {"rawBytes": "AA=="}});
        let e = parse_bundle(&serde_json::to_vec(&v).unwrap())
            .err()
            .unwrap();
        assert!(e.contains("certificate"), "{e}");
        v["mediaType"] = json!("application/json");
        assert!(
            parse_bundle(&serde_json::to_vec(&v).unwrap())
                .err()
                .unwrap()
                .contains("media type")
        );
    }
}
