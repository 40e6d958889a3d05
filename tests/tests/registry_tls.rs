//! TLS against a real HTTPS registry on loopback: a private CA trusted through `--cert-dir` or the user's
//! certs.d, a client certificate the registry requires, and the errors when either is missing.

use lade_tests::oci::busybox_image;
use lade_tests::{Registry, lade, ok, require_peers, run};
use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    ok(Command::new("openssl").current_dir(dir).args(args));
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and a client certificate signed by a second CA.
fn pki(dir: &Path) {
    let ca = |name: &str| {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
            ],
        )
    };
    ca("server-ca");
    ca("client-ca");
    // Extensions make X.509 v3 certificates; rustls refuses v1 ones.
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (who, signer) in [("server", "server-ca"), ("client", "client-ca")] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={who}"),
                "-keyout",
                &format!("{who}.key"),
                "-out",
                &format!("{who}.csr"),
            ],
        );
        let mut args = vec![
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &format!("{who}.csr"),
            "-CA",
            &format!("{signer}.crt"),
            "-CAkey",
            &format!("{signer}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{who}.crt"),
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(["-extfile".into(), format!("{who}.ext")]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        openssl(dir, &args);
    }
}

/// A certs.d directory as containers/image reads it: `*.crt` CAs, `*.cert` + `*.key` client pairs.
fn certs_dir(pki: &Path, dir: &Path, with_client: bool) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(pki.join("server-ca.crt"), dir.join("ca.crt")).unwrap();
    if with_client {
        std::fs::copy(pki.join("client.crt"), dir.join("client.cert")).unwrap();
        std::fs::copy(pki.join("client.key"), dir.join("client.key")).unwrap();
    }
}

#[test]
fn https_registry_with_a_private_ca_and_client_certificates() {
    require_peers!("openssl", "skopeo");
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("pki");
    std::fs::create_dir(&p).unwrap();
    pki(&p);
    let Some(reg) = Registry::start_tls(
        &p.join("server.crt"),
        &p.join("server.key"),
        Some(&p.join("client-ca.crt")),
    ) else {
        return;
    };
    let layout = t.path().join("src");
    busybox_image(&layout, "1");
    let src = format!("oci:{}:1", layout.display());
    let dest = format!("docker://{}/tls/app:1", reg.addr);

    // The CA is unknown: a clear TLS error, nothing pushed.
    let out = run(lade().args(["copy", "-q", &src, &dest]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&reg.addr) && (err.contains("certificate") || err.contains("TLS")),
        "{err}"
    );

    // The CA through --dest-cert-dir, but no client certificate: the registry refuses the handshake.
    let ca_only = t.path().join("ca-only");
    certs_dir(&p, &ca_only, false);
    let out = run(lade()
        .args(["copy", "-q", "--dest-cert-dir"])
        .arg(&ca_only)
        .args([&src, &dest]));
    assert!(
        !out.status.success(),
        "the registry requires a client certificate"
    );

    // CA and client certificate: the push works, and skopeo (given the same directory) reads it.
    let full = t.path().join("full");
    certs_dir(&p, &full, true);
    ok(lade()
        .args(["copy", "-q", "--dest-cert-dir"])
        .arg(&full)
        .args([&src, &dest]));
    let raw = ok(Command::new("skopeo")
        .args(["inspect", "--raw", "--cert-dir"])
        .arg(&full)
        .arg(&dest));
    assert!(raw.contains("\"layers\""), "{raw}");

    // The same directory found as the user's certs.d/<host:port>, with no flag.
    let config = t.path().join("config");
    certs_dir(&p, &config.join("containers/certs.d").join(&reg.addr), true);
    let inspected = ok(lade()
        .env("XDG_CONFIG_HOME", &config)
        .args(["inspect", "--raw", &dest]));
    assert_eq!(inspected.trim(), raw.trim());
    let back = t.path().join("back");
    ok(lade()
        .env("XDG_CONFIG_HOME", &config)
        .args(["copy", "-q", &dest])
        .arg(format!("oci:{}:x", back.display())));
    assert!(back.join("index.json").exists());
}
