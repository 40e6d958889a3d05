//! Faults between lade and a real docker-registry: a loopback HTTP proxy, controlled by each test, answers
//! 500/503/429 (with Retry-After), drops connections mid-blob, truncates and corrupts bodies. Copies either
//! succeed through retries or fail with a clear error; no destination ever holds a blob that does not match
//! its digest; rerunning an interrupted copy finishes it.

use lade_tests::oci::{assert_blobs_valid, noise, oci_digest, umoci_image};
use lade_tests::{Registry, fails, lade, ok, require_peers};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
enum Fault {
    /// Answer with this status (and Retry-After seconds) without asking the registry.
    Status(u16, Option<u32>),
    /// Pass the response head and this many body bytes, then close the connection.
    DropAfter(usize),
    /// Shorten the response to this many body bytes and say so in Content-Length (a clean short body).
    Truncate(usize),
    /// Flip one byte in the middle of the body (the response's for GET, the request's for PUT/PATCH).
    Corrupt,
}

struct Rule {
    method: &'static str,
    path: String,
    fault: Fault,
    remaining: usize,
}

/// A one-request-per-connection HTTP proxy in front of `upstream`.
struct Proxy {
    addr: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    /// "METHOD path => fault" for every fault applied.
    hits: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, h, up) = (rules.clone(), hits.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (r, h, up) = (r.clone(), h.clone(), up.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &up, &r, &h);
                });
            }
        });
        Proxy { addr, rules, hits }
    }

    fn add(&self, method: &'static str, path: &str, fault: Fault, times: usize) {
        self.rules.lock().unwrap().push(Rule {
            method,
            path: path.into(),
            fault,
            remaining: times,
        });
    }

    fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }

    fn unused_rules(&self) -> Vec<String> {
        self.rules
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.remaining > 0)
            .map(|r| format!("{} {} {:?}", r.method, r.path, r.fault))
            .collect()
    }
}

/// Read an HTTP head (up to the blank line); returns it and whatever body bytes came with it.
fn read_head(s: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = vec![];
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before the head ended",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The head with `Connection: close` (one request per connection) and an optional header replaced.
fn rewrite_head(head: &str, replace: Option<(&str, String)>) -> String {
    let mut out = String::new();
    for (i, line) in head.split("\r\n").filter(|l| !l.is_empty()).enumerate() {
        let lower = line.to_ascii_lowercase();
        if i > 0 && (lower.starts_with("connection:") || lower.starts_with("keep-alive:")) {
            continue;
        }
        if let Some((name, value)) = &replace
            && lower.starts_with(&format!("{}:", name.to_ascii_lowercase()))
        {
            out.push_str(&format!("{name}: {value}\r\n"));
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

fn content_length(head: &str) -> Option<usize> {
    head.split("\r\n").find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })
}

fn handle(
    mut client: TcpStream,
    upstream: &str,
    rules: &Mutex<Vec<Rule>>,
    hits: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (head, rest) = read_head(&mut client)?;
    let line = head.lines().next().unwrap_or_default().to_string();
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    );
    let fault = {
        let mut rules = rules.lock().unwrap();
        rules
            .iter_mut()
            .find(|r| r.remaining > 0 && r.method == method && path.contains(&r.path))
            .map(|r| {
                r.remaining -= 1;
                r.fault.clone()
            })
    };
    if let Some(f) = &fault {
        hits.lock()
            .unwrap()
            .push(format!("{method} {path} => {f:?}"));
    }
    if let Some(Fault::Status(code, retry_after)) = fault {
        let ra = retry_after
            .map(|s| format!("Retry-After: {s}\r\n"))
            .unwrap_or_default();
        let body =
            format!("{{\"errors\":[{{\"code\":\"INJECTED\",\"message\":\"injected {code}\"}}]}}");
        write!(
            client,
            "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{ra}Connection: close\r\n\r\n{body}",
            body.len()
        )?;
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(rewrite_head(&head, None).as_bytes())?;
    let corrupt_request =
        matches!(fault, Some(Fault::Corrupt)) && (method == "PUT" || method == "PATCH");
    let mut rest = rest;
    if corrupt_request && !rest.is_empty() {
        let mid = rest.len() / 2;
        rest[mid] ^= 0xff;
    }
    up.write_all(&rest)?;
    // Request body: client → registry (flipping a byte of the first chunk when asked and not done yet).
    let (mut c2, mut u2) = (client.try_clone()?, up.try_clone()?);
    let mut flip = corrupt_request && rest.is_empty();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = c2.read(&mut buf) {
            if n == 0 {
                break;
            }
            if flip {
                buf[n / 2] ^= 0xff;
                flip = false;
            }
            if u2.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = u2.shutdown(Shutdown::Write);
    });
    match fault {
        Some(Fault::DropAfter(n)) | Some(Fault::Truncate(n)) => {
            let (rhead, mut body) = read_head(&mut up)?;
            let total = content_length(&rhead).unwrap_or(usize::MAX);
            let keep = n.min(total);
            let new_head = match fault {
                Some(Fault::Truncate(_)) => {
                    rewrite_head(&rhead, Some(("Content-Length", keep.to_string())))
                }
                _ => rewrite_head(&rhead, None),
            };
            client.write_all(new_head.as_bytes())?;
            let mut chunk = [0u8; 8192];
            while body.len() < keep {
                let got = up.read(&mut chunk)?;
                if got == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..got]);
            }
            body.truncate(keep);
            client.write_all(&body)?;
        }
        Some(Fault::Corrupt) if !corrupt_request => {
            let (rhead, mut body) = read_head(&mut up)?;
            up.read_to_end(&mut body)?;
            if !body.is_empty() {
                let mid = body.len() / 2;
                body[mid] ^= 0xff;
            }
            client.write_all(rewrite_head(&rhead, None).as_bytes())?;
            client.write_all(&body)?;
        }
        _ => {
            std::io::copy(&mut up, &mut client)?;
        }
    }
    let _ = client.flush();
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.shutdown(Shutdown::Both);
    Ok(())
}

/// An image made with umoci: one layer with a file of `size` noisy bytes.
fn make_image(layout: &Path, tag: &str, seed: u64, size: usize) {
    umoci_image(layout, tag, &[("blob", &noise(seed, size))], None);
}

/// The layer digest of `tag` in a layout.
fn layer_digest(layout: &Path, tag: &str) -> String {
    let m = oci_digest(layout, tag).unwrap();
    let v: Value =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(&m[7..])).unwrap())
            .unwrap();
    v["layers"][0]["digest"].as_str().unwrap().to_string()
}

/// Push `src:tag` straight to the registry (no proxy) with skopeo, the reference implementation.
fn seed_registry(reg: &Registry, src: &Path, tag: &str, repo: &str) {
    ok(Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:{tag}", src.display()))
        .arg(format!("docker://{}/{repo}:{tag}", reg.addr)));
}

#[test]
fn pull_survives_errors_drops_truncation_and_corruption() {
    require_peers!("docker-registry", "umoci", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let Some(reg) = Registry::start() else { return };
    let src = tmp.path().join("src");
    make_image(&src, "v1", 11, 400_000);
    seed_registry(&reg, &src, "v1", "f/app");
    let layer = layer_digest(&src, "v1");
    let proxy = Proxy::start(&reg.addr);
    proxy.add("GET", "/manifests/v1", Fault::Status(500, None), 2);
    proxy.add("GET", "/manifests/v1", Fault::DropAfter(20), 1);
    proxy.add(
        "GET",
        &format!("/blobs/{layer}"),
        Fault::Status(429, Some(1)),
        1,
    );
    proxy.add(
        "GET",
        &format!("/blobs/{layer}"),
        Fault::DropAfter(100_000),
        1,
    );
    proxy.add(
        "GET",
        &format!("/blobs/{layer}"),
        Fault::Truncate(50_000),
        1,
    );
    proxy.add("GET", &format!("/blobs/{layer}"), Fault::Corrupt, 1);
    proxy.add(
        "GET",
        &format!("/blobs/{layer}"),
        Fault::Status(503, None),
        1,
    );
    let out = tmp.path().join("out");
    ok(lade()
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{}/f/app:v1", proxy.addr))
        .arg(format!("oci:{}:v1", out.display())));
    assert!(
        proxy.unused_rules().is_empty(),
        "every fault was exercised: left {:?}, hit {:?}",
        proxy.unused_rules(),
        proxy.hits()
    );
    assert_eq!(oci_digest(&out, "v1"), oci_digest(&src, "v1"));
    assert_blobs_valid(&out);
    ok(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:v1", out.display()))
        .arg(tmp.path().join("b")));
    assert_eq!(
        std::fs::read(tmp.path().join("b/rootfs/blob")).unwrap(),
        noise(11, 400_000)
    );
}

#[test]
fn persistent_failure_is_clear_leaves_nothing_bad_and_rerun_finishes() {
    require_peers!("docker-registry", "umoci", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let Some(reg) = Registry::start() else { return };
    let src = tmp.path().join("src");
    make_image(&src, "v1", 12, 300_000);
    seed_registry(&reg, &src, "v1", "f/app");
    let layer = layer_digest(&src, "v1");
    let proxy = Proxy::start(&reg.addr);
    let out = tmp.path().join("out");
    let from = format!("docker://{}/f/app:v1", proxy.addr);
    let to = format!("oci:{}:v1", out.display());

    // The connection always breaks mid-blob: the copy gives up with a message naming the blob.
    proxy.add(
        "GET",
        &format!("/blobs/{layer}"),
        Fault::DropAfter(60_000),
        1000,
    );
    let err = fails(
        lade()
            .args(["copy", "--src-tls-verify=false", "--retry-times", "2"])
            .arg(&from)
            .arg(&to),
        1,
    );
    assert!(
        err.contains(&layer[7..19]),
        "the error names the blob: {err}"
    );
    assert_eq!(
        oci_digest(&out, "v1"),
        None,
        "no tag for an incomplete image"
    );
    assert!(
        !out.join("blobs/sha256").join(&layer[7..]).exists(),
        "no partial layer is visible"
    );
    assert_blobs_valid(&out);

    // Always corrupt: never stored.
    proxy.clear();
    proxy.add("GET", &format!("/blobs/{layer}"), Fault::Corrupt, 1000);
    let err = fails(
        lade()
            .args(["copy", "--src-tls-verify=false", "--retry-times", "1"])
            .arg(&from)
            .arg(&to),
        1,
    );
    assert!(err.contains("mismatch") || err.contains("digest"), "{err}");
    assert!(!out.join("blobs/sha256").join(&layer[7..]).exists());
    assert_blobs_valid(&out);

    // Always 500: the registry's status is in the message.
    proxy.clear();
    proxy.add(
        "GET",
        &format!("/blobs/{layer}"),
        Fault::Status(500, None),
        1000,
    );
    let err = fails(
        lade()
            .args(["copy", "--src-tls-verify=false", "--retry-times", "1"])
            .arg(&from)
            .arg(&to),
        1,
    );
    assert!(err.contains("500"), "{err}");

    // The faults stop: rerunning finishes the job.
    proxy.clear();
    ok(lade()
        .args(["copy", "--src-tls-verify=false"])
        .arg(&from)
        .arg(&to));
    assert_eq!(oci_digest(&out, "v1"), oci_digest(&src, "v1"));
    assert_blobs_valid(&out);
}

#[test]
fn push_survives_upload_faults_and_registry_keeps_only_good_blobs() {
    require_peers!("docker-registry", "umoci", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let Some(reg) = Registry::start() else { return };
    let src = tmp.path().join("src");
    make_image(&src, "v1", 13, 300_000);
    let proxy = Proxy::start(&reg.addr);
    proxy.add("POST", "/blobs/uploads/", Fault::Status(503, None), 1);
    proxy.add("PUT", "/blobs/uploads/", Fault::Corrupt, 1);
    proxy.add("PUT", "/blobs/uploads/", Fault::Status(500, None), 1);
    proxy.add("PUT", "/manifests/v1", Fault::Status(429, Some(1)), 1);
    ok(lade()
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", src.display()))
        .arg(format!("docker://{}/p/app:v1", proxy.addr)));
    assert!(
        proxy.unused_rules().is_empty(),
        "left {:?}, hit {:?}",
        proxy.unused_rules(),
        proxy.hits()
    );
    // The registry refused the corrupted upload itself.
    assert!(
        reg.log().contains("DIGEST_INVALID")
            || reg.log().contains("digest invalid")
            || reg.log().contains("\" 400 "),
        "the corrupt upload was rejected"
    );
    // What the registry holds is exactly the image (read directly, without the proxy, by skopeo).
    let out = tmp.path().join("out");
    ok(Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false"])
        .arg(format!("docker://{}/p/app:v1", reg.addr))
        .arg(format!("oci:{}:v1", out.display())));
    assert_eq!(oci_digest(&out, "v1"), oci_digest(&src, "v1"));
    assert_blobs_valid(&out);
}
