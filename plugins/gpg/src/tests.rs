//! Round trips and refusals with keys rpgp makes in the test (gpg itself is the oracle in tests/).

use super::*;
use pgp::composed::{
    EncryptionCaps, KeyType, SecretKeyParamsBuilder, SignedSecretKey, SubkeyParamsBuilder,
};
use pgp::crypto::ecc_curve::ECCCurve;
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{
    LiteralData, Packet, PacketParser, SignatureConfig, SignatureType, Subpacket, SubpacketData,
};
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Password, Timestamp};

const PAYLOAD: &[u8] = br#"{"critical":{"identity":{"docker-reference":"example.com/app:1"},"image":{"docker-manifest-digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},"type":"atomic container signature"},"optional":{}}"#;

/// A key whose primary signs (what `gpg --quick-gen-key ... ed25519` makes), with an encryption subkey.
fn key(primary: KeyType, passphrase: Option<&str>) -> SignedSecretKey {
    let mut enc = SubkeyParamsBuilder::default();
    enc.key_type(KeyType::ECDH(ECCCurve::Curve25519Legacy))
        .can_encrypt(EncryptionCaps::All)
        .passphrase(passphrase.map(String::from));
    let mut params = SecretKeyParamsBuilder::default();
    params
        .key_type(primary)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id("lade test <t@example.com>".into())
        .passphrase(passphrase.map(String::from))
        .subkeys(vec![enc.build().unwrap()]);
    params
        .build()
        .unwrap()
        .generate(rand::thread_rng())
        .unwrap()
}

/// A key whose primary only certifies, with a signing subkey (the usual long-lived key layout).
fn key_with_signing_subkey() -> SignedSecretKey {
    let mut sign = SubkeyParamsBuilder::default();
    sign.key_type(KeyType::Ed25519Legacy).can_sign(true);
    let mut params = SecretKeyParamsBuilder::default();
    params
        .key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(false)
        .primary_user_id("lade sub <s@example.com>".into())
        .subkeys(vec![sign.build().unwrap()]);
    params
        .build()
        .unwrap()
        .generate(rand::thread_rng())
        .unwrap()
}

fn secret_file(keys: &[&SignedSecretKey]) -> Vec<u8> {
    let mut out = Vec::new();
    for k in keys {
        k.to_writer(&mut out).unwrap();
    }
    out
}

fn public_file(keys: &[&SignedSecretKey]) -> Vec<u8> {
    let mut out = Vec::new();
    for k in keys {
        k.to_public_key().to_writer(&mut out).unwrap();
    }
    out
}

fn fpr(k: &SignedSecretKey) -> String {
    format!("{:X}", k.primary_key.fingerprint())
}

fn signer(file: &[u8], pass: Option<&str>, fingerprint: Option<&str>) -> Result<Signer, String> {
    Signer::open(file, pass, fingerprint)
}

fn sign(s: &Signer, payload: &[u8]) -> Vec<u8> {
    message::sign(&s.key, payload).unwrap()
}

/// The packets inside a signed message, decompressed.
fn inner_packets(msg: &[u8]) -> Vec<Packet> {
    let top: Vec<Packet> = PacketParser::new(msg).map(|p| p.unwrap()).collect();
    let [Packet::CompressedData(c)] = top.as_slice() else {
        panic!("expected one compressed packet, got {top:?}")
    };
    let mut data = Vec::new();
    std::io::Read::read_to_end(&mut c.decompress().unwrap(), &mut data).unwrap();
    PacketParser::new(&data[..]).map(|p| p.unwrap()).collect()
}

fn serialize(packets: &[Packet]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in packets {
        p.to_writer(&mut out).unwrap();
    }
    out
}

#[test]
fn ed25519_round_trip_reports_fingerprint_and_payload() {
    let k = key(KeyType::Ed25519Legacy, None);
    let s = signer(&secret_file(&[&k]), None, None).unwrap();
    assert_eq!(s.primary, fpr(&k));
    assert_eq!(s.primary.len(), 40);
    assert!(
        s.primary
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
    let msg = sign(&s, PAYLOAD);

    let v = Verifier::open(&public_file(&[&k])).unwrap();
    assert_eq!(v.primaries, vec![fpr(&k)]);
    let got = v.check(None, &msg).unwrap();
    assert_eq!(got.key_id, fpr(&k));
    assert_eq!(got.signer, fpr(&k));
    assert_eq!(got.payload, PAYLOAD);
    // The payload given apart must be the signed one.
    assert!(v.check(Some(PAYLOAD), &msg).is_ok());
    assert!(
        v.check(Some(b"other"), &msg)
            .unwrap_err()
            .contains("differs")
    );
}

#[test]
fn signed_message_has_gpg_shape() {
    let k = key(KeyType::Ed25519Legacy, None);
    let msg = sign(&signer(&secret_file(&[&k]), None, None).unwrap(), PAYLOAD);
    let inner = inner_packets(&msg);
    assert!(
        matches!(
            inner.as_slice(),
            [
                Packet::OnePassSignature(_),
                Packet::LiteralData(_),
                Packet::Signature(_)
            ]
        ),
        "{inner:?}"
    );
    let Packet::LiteralData(lit) = &inner[1] else {
        unreachable!()
    };
    assert_eq!(lit.data(), PAYLOAD);
    assert!(lit.is_binary());
}

#[test]
fn rsa_round_trip() {
    let k = key(KeyType::Rsa(2048), None);
    let s = signer(&secret_file(&[&k]), None, None).unwrap();
    let msg = sign(&s, PAYLOAD);
    let got = Verifier::open(&public_file(&[&k]))
        .unwrap()
        .check(None, &msg)
        .unwrap();
    assert_eq!(got.key_id, fpr(&k));
    assert_eq!(got.payload, PAYLOAD);
}

#[test]
fn signing_subkey_signs_and_primary_fingerprint_is_reported() {
    let k = key_with_signing_subkey();
    let s = signer(&secret_file(&[&k]), None, None).unwrap();
    let sub = format!("{:X}", k.secret_subkeys[0].key.fingerprint());
    let msg = sign(&s, PAYLOAD);
    let got = Verifier::open(&public_file(&[&k]))
        .unwrap()
        .check(None, &msg)
        .unwrap();
    assert_eq!(got.key_id, fpr(&k));
    assert_eq!(got.signer, sub);
    // Naming the subkey (or the primary, or the long key id) picks the same key.
    for name in [sub.clone(), fpr(&k), sub[24..].to_string()] {
        assert!(
            signer(&secret_file(&[&k]), None, Some(&name)).is_ok(),
            "{name}"
        );
    }
}

#[test]
fn wrong_key_is_refused_naming_the_signer() {
    let k = key(KeyType::Ed25519Legacy, None);
    let other = key(KeyType::Ed25519Legacy, None);
    let msg = sign(&signer(&secret_file(&[&k]), None, None).unwrap(), PAYLOAD);
    let err = Verifier::open(&public_file(&[&other]))
        .unwrap()
        .check(None, &msg)
        .unwrap_err();
    assert!(err.contains("not in the keyring"), "{err}");
    assert!(err.contains(&fpr(&k)), "{err}");
}

#[test]
fn keyring_with_several_keys_and_armor_blocks() {
    let a = key(KeyType::Ed25519Legacy, None);
    let b = key(KeyType::Ed25519Legacy, None);
    let armored = |k: &SignedSecretKey| {
        k.to_public_key()
            .to_armored_bytes(ArmorOptions::default())
            .unwrap()
    };
    let mut ring = armored(&a);
    ring.extend(armored(&b));
    let v = Verifier::open(&ring).unwrap();
    assert_eq!(v.primaries, vec![fpr(&a), fpr(&b)]);
    let msg = sign(&signer(&secret_file(&[&b]), None, None).unwrap(), PAYLOAD);
    assert_eq!(v.check(None, &msg).unwrap().key_id, fpr(&b));
    // A binary keyring with both keys, too.
    let v = Verifier::open(&public_file(&[&a, &b])).unwrap();
    assert_eq!(v.check(None, &msg).unwrap().key_id, fpr(&b));
}

#[test]
fn tampered_payload_is_refused() {
    let k = key(KeyType::Ed25519Legacy, None);
    let msg = sign(&signer(&secret_file(&[&k]), None, None).unwrap(), PAYLOAD);
    let v = Verifier::open(&public_file(&[&k])).unwrap();
    let mut inner = inner_packets(&msg);
    // Unchanged but uncompressed: still valid.
    assert_eq!(v.check(None, &serialize(&inner)).unwrap().payload, PAYLOAD);
    let tampered = String::from_utf8(PAYLOAD.to_vec())
        .unwrap()
        .replace("app:1", "app:2");
    inner[1] = Packet::LiteralData(LiteralData::from_bytes("", tampered.into()).unwrap());
    let err = v.check(None, &serialize(&inner)).unwrap_err();
    assert!(err.contains("does not verify"), "{err}");
}

#[test]
fn two_signature_packets_are_refused() {
    let k = key(KeyType::Ed25519Legacy, None);
    let msg = sign(&signer(&secret_file(&[&k]), None, None).unwrap(), PAYLOAD);
    let v = Verifier::open(&public_file(&[&k])).unwrap();
    let inner = inner_packets(&msg);
    let mut doubled = inner.clone();
    doubled.push(inner[2].clone());
    let err = v.check(None, &serialize(&doubled)).unwrap_err();
    assert!(err.contains("2 signature packets"), "{err}");
    // Signature first, then the literal data (the old, non-one-pass form) is fine.
    let old_form = [inner[2].clone(), inner[1].clone()];
    assert!(v.check(None, &serialize(&old_form)).is_ok());
    // Anything else around it is not.
    let extra = [
        inner[0].clone(),
        inner[1].clone(),
        inner[2].clone(),
        inner[1].clone(),
    ];
    let err = v.check(None, &serialize(&extra)).unwrap_err();
    assert!(err.contains("2 literal data packets"), "{err}");
    // A bare literal, unsigned.
    let err = v.check(None, &serialize(&inner[1..2])).unwrap_err();
    assert!(err.contains("0 signature packets"), "{err}");
    // Garbage.
    assert!(v.check(None, b"\x99\x01garbage").is_err());
}

#[test]
fn revoked_key_is_refused() {
    let k = key(KeyType::Ed25519Legacy, None);
    let msg = sign(&signer(&secret_file(&[&k]), None, None).unwrap(), PAYLOAD);
    let mut public = k.to_public_key();
    let mut config = SignatureConfig::v4(
        SignatureType::KeyRevocation,
        k.primary_key.algorithm(),
        HashAlgorithm::Sha256,
    );
    config.hashed_subpackets = vec![
        Subpacket::regular(SubpacketData::SignatureCreationTime(Timestamp::now())).unwrap(),
        Subpacket::regular(SubpacketData::IssuerFingerprint(
            k.primary_key.fingerprint(),
        ))
        .unwrap(),
    ];
    let revocation = config
        .sign_key(
            &k.primary_key,
            &Password::empty(),
            k.primary_key.public_key(),
        )
        .unwrap();
    public.details.revocation_signatures.push(revocation);
    let mut ring = Vec::new();
    public.to_writer(&mut ring).unwrap();
    let err = Verifier::open(&ring)
        .unwrap()
        .check(None, &msg)
        .unwrap_err();
    assert!(err.contains("revoked"), "{err}");
}

#[test]
fn passphrases() {
    let k = key(KeyType::Ed25519Legacy, Some("sesame"));
    let file = secret_file(&[&k]);
    let err = signer(&file, None, None).err().unwrap();
    assert!(err.contains("passphrase"), "{err}");
    let err = signer(&file, Some("wrong"), None).err().unwrap();
    assert!(err.contains("wrong passphrase"), "{err}");
    let s = signer(&file, Some("sesame"), None).unwrap();
    let msg = sign(&s, PAYLOAD);
    let got = Verifier::open(&public_file(&[&k]))
        .unwrap()
        .check(None, &msg)
        .unwrap();
    assert_eq!(got.key_id, fpr(&k));
}

#[test]
fn several_secret_keys_need_a_fingerprint() {
    let a = key(KeyType::Ed25519Legacy, None);
    let b = key(KeyType::Ed25519Legacy, None);
    let file = secret_file(&[&a, &b]);
    let err = signer(&file, None, None).err().unwrap();
    assert!(
        err.contains("fingerprint") && err.contains(&fpr(&b)),
        "{err}"
    );
    let lower = format!("0x{}", fpr(&b).to_lowercase());
    let s = signer(&file, None, Some(&normalize_fingerprint(&lower))).unwrap();
    assert_eq!(s.primary, fpr(&b));
    let err = signer(
        &file,
        None,
        Some("0123456789ABCDEF0123456789ABCDEF01234567"),
    )
    .err()
    .unwrap();
    assert!(err.contains("no key"), "{err}");
}

#[test]
fn public_key_of_a_signing_key_verifies_its_signatures() {
    let k = key(KeyType::Ed25519Legacy, None);
    let s = signer(&secret_file(&[&k]), None, None).unwrap();
    let public = GuestSigningKey::public_key(&s).unwrap();
    assert!(public.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    let v = Verifier::open(&public).unwrap();
    assert_eq!(v.check(None, &sign(&s, PAYLOAD)).unwrap().key_id, s.primary);
}

#[test]
fn wrong_files_get_clear_errors() {
    let k = key(KeyType::Ed25519Legacy, None);
    // A public keyring where the secret key belongs, and the other way round.
    let err = signer(&public_file(&[&k]), None, None).err().unwrap();
    assert!(err.contains("secret key"), "{err}");
    let armored_secret = k.to_armored_bytes(ArmorOptions::default()).unwrap();
    let err = Verifier::open(&armored_secret).err().unwrap();
    assert!(err.contains("PRIVATE KEY BLOCK"), "{err}");
    assert!(Verifier::open(b"").err().unwrap().contains("empty"));
    assert!(Verifier::open(b"hello").err().unwrap().contains("armored"));
    // An armored secret key signs like a binary one.
    assert_eq!(
        signer(&armored_secret, None, None).unwrap().primary,
        fpr(&k)
    );
}

#[test]
fn a_primary_key_not_marked_for_signing_is_refused() {
    // The primary of this key only certifies; a data signature made with it anyway is not accepted.
    let k = key_with_signing_subkey();
    let msg = message::sign(
        &message::SecretPacket::Primary(k.primary_key.clone()),
        PAYLOAD,
    )
    .unwrap();
    let err = Verifier::open(&public_file(&[&k]))
        .unwrap()
        .check(None, &msg)
        .unwrap_err();
    assert!(
        err.contains("not marked for signing") && err.contains(&fpr(&k)),
        "{err}"
    );
    // Asked to sign with a certify-only primary and no signing subkey, the signer says so.
    let mut only_primary = k.clone();
    only_primary.secret_subkeys.clear();
    let err = signer(&secret_file(&[&only_primary]), None, None)
        .err()
        .unwrap();
    assert!(
        err.contains("not marked for signing") && err.contains("no usable signing subkey"),
        "{err}"
    );
}
