//! The plugin's calls, natively: every format round-trips, and tampering, other keys and bad key files are
//! refused with a message that says why.

use super::*;

fn material(
    private: Option<&[u8]>,
    public: Option<&[u8]>,
    passphrase: Option<&str>,
) -> KeyMaterial {
    KeyMaterial {
        private_key: private.map(<[u8]>::to_vec),
        public_key: public.map(<[u8]>::to_vec),
        passphrase: passphrase.map(str::to_string),
        options: Vec::new(),
    }
}

fn pair(algorithm: &str) -> (Signer, Verifier) {
    let kp = generate_key_pair("pw", &[kv("algorithm", algorithm)]).unwrap();
    let signer = Signer::from_material(&material(Some(&kp.private_key), None, Some("pw"))).unwrap();
    let verifier = Verifier::from_material(&material(None, Some(&kp.public_key), None)).unwrap();
    (signer, verifier)
}

fn request(format: SignatureFormat, payload: &[u8]) -> SignRequest {
    SignRequest {
        format,
        payload: payload.to_vec(),
        payload_type: formats::IN_TOTO.into(),
    }
}

fn message(e: PluginError) -> String {
    match e {
        PluginError::Failed(m) | PluginError::Unsupported(m) | PluginError::Host(m) => m,
        PluginError::InvalidInput(d) => d.into_iter().map(|d| d.message).collect(),
    }
}

const FORMATS: [SignatureFormat; 3] = [
    SignatureFormat::Cosign,
    SignatureFormat::Dsse,
    SignatureFormat::SigstoreBundle,
];

/// Change the last byte of the signature inside `signed` (the DER stays well-formed).
fn tamper_signature(signed: Signed) -> Signed {
    match signed {
        Signed::Cosign(mut c) => {
            *c.signature.last_mut().unwrap() ^= 1;
            Signed::Cosign(c)
        }
        Signed::Dsse(mut d) => {
            *d.signatures[0].sig.last_mut().unwrap() ^= 1;
            Signed::Dsse(d)
        }
        Signed::SigstoreBundle(json) => {
            let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
            let sig = v["dsseEnvelope"]["signatures"][0]["sig"]
                .as_str()
                .unwrap()
                .to_string();
            let mut raw = keyfile::decode_b64("sig", &sig).unwrap();
            *raw.last_mut().unwrap() ^= 1;
            use base64::Engine;
            v["dsseEnvelope"]["signatures"][0]["sig"] =
                base64::engine::general_purpose::STANDARD.encode(raw).into();
            Signed::SigstoreBundle(serde_json::to_vec(&v).unwrap())
        }
        other => other,
    }
}

/// The payload a verifier is handed: cosign's travels apart, the others' inside.
fn detached(format: SignatureFormat, payload: &[u8]) -> Option<Vec<u8>> {
    (format == SignatureFormat::Cosign).then(|| payload.to_vec())
}

#[test]
fn every_format_round_trips_with_every_generated_key_type() {
    for algorithm in ["ecdsa-p256", "ecdsa-p384", "ed25519"] {
        let (signer, verifier) = pair(algorithm);
        assert_eq!(verifier.ids(), vec![signer.id()]);
        assert_eq!(signer.id().len(), 64);
        for format in FORMATS {
            let signed = signer
                .sign_request(request(format, b"{\"critical\":{}}"))
                .unwrap();
            let v = verifier
                .verify_signed(detached(format, b"{\"critical\":{}}"), signed)
                .unwrap();
            assert_eq!(v.key_id, signer.id(), "{algorithm} {format:?}");
            assert_eq!(v.payload, b"{\"critical\":{}}");
        }
    }
}

#[test]
fn the_dsse_envelope_names_the_key_and_the_bundle_is_cosign_v3_shaped() {
    let (signer, verifier) = pair("ecdsa-p256");
    let Signed::Dsse(env) = signer
        .sign_request(request(SignatureFormat::Dsse, b"x"))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(env.payload_type, formats::IN_TOTO);
    assert_eq!(env.signatures[0].keyid, signer.id());
    // The signature is over the PAE, not the bare payload.
    let pae = formats::pae(formats::IN_TOTO, b"x");
    verifier.check(&pae, &env.signatures[0].sig).unwrap();
    assert!(verifier.check(b"x", &env.signatures[0].sig).is_err());
    let Signed::SigstoreBundle(json) = signer
        .sign_request(request(SignatureFormat::SigstoreBundle, b"x"))
        .unwrap()
    else {
        panic!()
    };
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        v["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    assert_eq!(v["dsseEnvelope"]["payloadType"], formats::IN_TOTO);
    assert_eq!(v["dsseEnvelope"]["payload"], "eA==");
    assert!(v["verificationMaterial"]["publicKey"]["hint"].is_string());
}

#[test]
fn tampered_signatures_and_payloads_are_refused() {
    let (signer, verifier) = pair("ecdsa-p256");
    for format in FORMATS {
        let signed = signer.sign_request(request(format, b"payload")).unwrap();
        let e = verifier
            .verify_signed(
                detached(format, b"payload"),
                tamper_signature(signed.clone()),
            )
            .unwrap_err();
        let e = message(e);
        assert!(
            e.contains("does not match the payload") && e.contains(&signer.id()),
            "{format:?}: {e}"
        );
        // Another payload than the signed one.
        let e = verifier
            .verify_signed(Some(b"payloaD".to_vec()), signed)
            .unwrap_err();
        assert!(!message(e).is_empty());
    }
    // A DSSE envelope whose payload was swapped.
    let Signed::Dsse(mut env) = signer
        .sign_request(request(SignatureFormat::Dsse, b"payload"))
        .unwrap()
    else {
        panic!()
    };
    env.payload = b"other".to_vec();
    let e = message(verifier.verify_signed(None, Signed::Dsse(env)).unwrap_err());
    assert!(
        e.contains("none of the DSSE envelope's 1 signature(s) is valid"),
        "{e}"
    );
}

#[test]
fn another_key_is_refused_and_a_file_of_several_keys_finds_the_right_one() {
    let (signer, _) = pair("ecdsa-p256");
    let (other, other_verifier) = pair("ecdsa-p256");
    for format in FORMATS {
        let signed = signer.sign_request(request(format, b"p")).unwrap();
        let e = message(
            other_verifier
                .verify_signed(detached(format, b"p"), signed)
                .unwrap_err(),
        );
        assert!(
            e.contains(&other.id()),
            "the message names the key tried: {e}"
        );
    }
    let both = [other.public_pem(), signer.public_pem()].concat();
    let verifier = Verifier::from_material(&material(None, Some(&both), None)).unwrap();
    assert_eq!(verifier.ids(), vec![other.id(), signer.id()]);
    let signed = signer
        .sign_request(request(SignatureFormat::Cosign, b"p"))
        .unwrap();
    assert_eq!(
        verifier
            .verify_signed(Some(b"p".to_vec()), signed)
            .unwrap()
            .key_id,
        signer.id()
    );
}

#[test]
fn ed25519_signs_pure_by_default_and_prehashed_on_request_and_both_verify() {
    let kp = generate_key_pair("", &[kv("algorithm", "ed25519")]).unwrap();
    let mut m = material(Some(&kp.private_key), None, None);
    let pure = Signer::from_material(&m).unwrap();
    m.options = vec![kv("ed25519", "prehashed")];
    let ph = Signer::from_material(&m).unwrap();
    let verifier = Verifier::from_material(&material(None, Some(&kp.public_key), None)).unwrap();
    for (signer, algorithm) in [(&pure, "ed25519"), (&ph, "ed25519ph")] {
        let signed = signer
            .sign_request(request(SignatureFormat::Cosign, b"p"))
            .unwrap();
        let v = verifier.verify_signed(Some(b"p".to_vec()), signed).unwrap();
        assert_eq!(
            (v.details[0].key.as_str(), v.details[0].value.as_str()),
            ("algorithm", algorithm)
        );
    }
    m.options = vec![kv("ed25519", "sometimes")];
    assert!(message(Signer::from_material(&m).err().unwrap()).contains("ed25519=sometimes"));
}

#[test]
fn bad_key_material_is_refused_with_what_to_do() {
    let kp = generate_key_pair("right", &[]).unwrap();
    let e = message(
        Signer::from_material(&material(Some(&kp.private_key), None, Some("wrong")))
            .err()
            .unwrap(),
    );
    assert!(e.contains("wrong passphrase"), "{e}");
    let e = message(
        Signer::from_material(&material(None, Some(&kp.public_key), None))
            .err()
            .unwrap(),
    );
    assert!(e.contains("no private key"), "{e}");
    let e = message(
        Verifier::from_material(&material(None, Some(b"not a key"), None))
            .err()
            .unwrap(),
    );
    assert!(e.contains("PUBLIC KEY"), "{e}");
    let e = message(generate_key_pair("", &[kv("algorithm", "dsa")]).unwrap_err());
    assert!(e.contains("unknown key algorithm"), "{e}");
}

#[test]
fn formats_without_a_payload_and_foreign_formats_are_refused() {
    let (signer, verifier) = pair("ecdsa-p256");
    let signed = signer
        .sign_request(request(SignatureFormat::Cosign, b"p"))
        .unwrap();
    assert!(message(verifier.verify_signed(None, signed).unwrap_err()).contains("payload"));
    let e = signer
        .sign_request(request(SignatureFormat::OpenpgpMessage, b"p"))
        .unwrap_err();
    assert!(matches!(e, PluginError::Unsupported(_)));
    let e = verifier
        .verify_signed(None, Signed::OpenpgpMessage(vec![1]))
        .unwrap_err();
    assert!(matches!(e, PluginError::Unsupported(_)));
}

#[test]
fn a_key_pair_is_ecdsa_p256_unless_asked_otherwise() {
    let kp = generate_key_pair("", &[]).unwrap();
    let signer = Signer::from_material(&material(Some(&kp.private_key), None, None)).unwrap();
    let verifier = Verifier::from_material(&material(None, Some(&kp.public_key), None)).unwrap();
    let signed = signer
        .sign_request(request(SignatureFormat::Cosign, b"p"))
        .unwrap();
    let v = verifier.verify_signed(Some(b"p".to_vec()), signed).unwrap();
    assert_eq!(v.details[0].value, "ecdsa-p256-sha256");
}
