#!/usr/bin/env python3
"""An independent implementation of cosign's key files and signatures, for lade's sigstore plugin tests.

Python `cryptography` (keys, ECDSA/Ed25519 signatures, scrypt) and PyNaCl (the NaCl secretbox), written from
the format descriptions only (go-securesystemslib `encrypted`, cosign's PEM labels, the DSSE spec, the
sigstore bundle JSON), nothing shared with the plugin. Commands:

  make-key DIR PASSPHRASE [p256|p384|ed25519]    write DIR/cosign.key (encrypted) and DIR/cosign.pub
  public-of KEY PASSPHRASE                       decrypt KEY; print its public key as PEM
  sign KEY PASSPHRASE FORMAT PAYLOAD OUT         FORMAT: cosign (raw signature), dsse (envelope JSON),
                                                 bundle (sigstore bundle JSON)
  verify PUB FORMAT PAYLOAD SIG                  exit 0 when SIG (as `sign` writes it) is valid for PAYLOAD
"""

import base64
import hashlib
import json
import os
import sys

import nacl.secret
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"
LABELS = (LABEL, "ENCRYPTED COSIGN PRIVATE KEY")
IN_TOTO = "application/vnd.in-toto+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def pem(label, der):
    b64 = base64.b64encode(der).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)


def unpem(text):
    lines = text.strip().splitlines()
    begin, end = lines[0], lines[-1]
    assert begin.startswith("-----BEGIN ") and end.startswith("-----END "), "not PEM"
    return begin[len("-----BEGIN "):-len("-----")], base64.b64decode("".join(lines[1:-1]))


def scrypt_key(passphrase, salt, n, r, p):
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def encrypt_key(der, passphrase):
    salt, nonce = os.urandom(32), os.urandom(24)
    key = scrypt_key(passphrase, salt, 32768, 8, 1)
    # PyNaCl's result is nonce || tag || ciphertext; the JSON stores the nonce apart.
    boxed = nacl.secret.SecretBox(key).encrypt(der, nonce).ciphertext
    doc = {
        "kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1},
                "salt": base64.b64encode(salt).decode()},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(boxed).decode(),
    }
    return pem(LABEL, json.dumps(doc).encode())


def decrypt_key(path, passphrase):
    label, body = unpem(open(path).read())
    assert label in LABELS, "unexpected PEM label %r" % label
    doc = json.loads(body)
    assert doc["kdf"]["name"] == "scrypt" and doc["cipher"]["name"] == "nacl/secretbox", doc
    params = doc["kdf"]["params"]
    key = scrypt_key(passphrase, base64.b64decode(doc["kdf"]["salt"]), params["N"], params["r"], params["p"])
    der = nacl.secret.SecretBox(key).decrypt(base64.b64decode(doc["ciphertext"]),
                                             base64.b64decode(doc["cipher"]["nonce"]))
    return serialization.load_der_private_key(der, password=None)


def public_pem(public):
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def raw_sign(key, message):
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    digest = hashes.SHA384() if key.curve.name == "secp384r1" else hashes.SHA256()
    return key.sign(message, ec.ECDSA(digest))


def raw_verify(public, message, sig):
    if isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(sig, message)
    else:
        digest = hashes.SHA384() if public.curve.name == "secp384r1" else hashes.SHA256()
        public.verify(sig, message, ec.ECDSA(digest))


def pae(payload_type, payload):
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def spki_sha256(public):
    return hashlib.sha256(public.public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)).digest()


def sign(key_path, passphrase, fmt, payload, out):
    key = decrypt_key(key_path, passphrase)
    if fmt == "cosign":
        open(out, "wb").write(raw_sign(key, payload))
        return
    sig = base64.b64encode(raw_sign(key, pae(IN_TOTO, payload))).decode()
    envelope = {"payload": base64.b64encode(payload).decode(), "payloadType": IN_TOTO,
                "signatures": [{"keyid": "", "sig": sig}]}
    if fmt == "dsse":
        doc = envelope
    else:
        hint = base64.b64encode(spki_sha256(key.public_key())).decode()
        doc = {"mediaType": BUNDLE, "verificationMaterial": {"publicKey": {"hint": hint}},
               "dsseEnvelope": envelope}
    open(out, "w").write(json.dumps(doc))


def verify(pub_path, fmt, payload, sig_path):
    public = serialization.load_pem_public_key(open(pub_path, "rb").read())
    if fmt == "cosign":
        raw_verify(public, payload, open(sig_path, "rb").read())
        return
    doc = json.load(open(sig_path))
    if fmt == "bundle":
        assert doc["mediaType"] == BUNDLE, doc["mediaType"]
        hint = doc["verificationMaterial"]["publicKey"]["hint"]
        assert base64.b64decode(hint) == spki_sha256(public), "the bundle's key hint names another key"
        doc = doc["dsseEnvelope"]
    inner = base64.b64decode(doc["payload"])
    assert inner == payload, "the envelope carries another payload"
    sigs = doc["signatures"]
    assert len(sigs) == 1, sigs
    raw_verify(public, pae(doc["payloadType"], inner), base64.b64decode(sigs[0]["sig"]))


def main(argv):
    cmd = argv[1]
    if cmd == "make-key":
        out, passphrase = argv[2], argv[3]
        kind = argv[4] if len(argv) > 4 else "p256"
        key = {"p256": lambda: ec.generate_private_key(ec.SECP256R1()),
               "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
               "ed25519": ed25519.Ed25519PrivateKey.generate}[kind]()
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        open(os.path.join(out, "cosign.key"), "w").write(encrypt_key(der, passphrase))
        open(os.path.join(out, "cosign.pub"), "wb").write(public_pem(key.public_key()))
    elif cmd == "public-of":
        sys.stdout.write(public_pem(decrypt_key(argv[2], argv[3]).public_key()).decode())
    elif cmd == "sign":
        sign(argv[2], argv[3], argv[4], open(argv[5], "rb").read(), argv[6])
    elif cmd == "verify":
        try:
            verify(argv[2], argv[3], open(argv[4], "rb").read(), argv[5])
        except (InvalidSignature, AssertionError, ValueError) as e:
            print("invalid: %r" % (e,), file=sys.stderr)
            return 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
