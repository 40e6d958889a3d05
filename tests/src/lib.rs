//! The harness every integration test uses: the real `lade` binary, peers found on PATH, and servers
//! started on loopback.
//!
//! Peers: a test that needs skopeo, buildah, umoci, docker-registry, ... calls [`peer`]. When the peer is
//! missing the test says so loudly and is skipped, unless `LADE_REQUIRE_PEERS=1` (CI), where it fails.

pub mod oci;
pub mod tree;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root (the directory holding the top Cargo.toml).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// One plugin compile cache for the whole test run, so each plugin is compiled once.
pub fn shared_cache_dir() -> PathBuf {
    target_dir().join("test-cache")
}

/// The lade binary: `$LADE_BIN`, or the workspace's debug build, brought up to date once per test process.
pub fn lade_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("LADE_BIN") {
            return PathBuf::from(bin);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let build = || {
            Command::new(&cargo)
                .current_dir(workspace())
                .args(["build", "--quiet", "-p", "lade", "--bin", "lade"])
                .status()
                .expect("running cargo build for the lade binary")
        };
        // A build started while another test process rebuilds the same crates can fail spuriously; one retry
        // separates that from a real compile error, which fails both times.
        let mut status = build();
        if !status.success() {
            eprintln!("*** cargo build -p lade failed ({status}); retrying once ***");
            status = build();
        }
        assert!(
            status.success(),
            "cargo build -p lade failed twice (see the compiler output above)"
        );
        target_dir().join("debug").join("lade")
    })
}

/// A `lade` command with the shared plugin cache, logging at warn, and no inherited store settings.
pub fn lade() -> Command {
    let mut c = Command::new(lade_bin());
    c.env("LADE_CACHE_DIR", shared_cache_dir())
        .env_remove("LADE_ROOT")
        .env_remove("LADE_LOG");
    c.stdin(Stdio::null());
    c
}

/// Run and return the outcome, whatever it is.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Run, require success, return stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// Run, require failure with exit code `code`, return stderr.
pub fn fails(cmd: &mut Command, code: i32) -> String {
    let out = run(cmd);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{cmd:?} should exit {code}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Whether CI demands every peer.
pub fn peers_required() -> bool {
    std::env::var("LADE_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Find a peer program on PATH. Missing: panic under LADE_REQUIRE_PEERS=1, else warn loudly and return None.
pub fn peer(name: &str) -> Option<PathBuf> {
    if let Some(p) = which(name) {
        return Some(p);
    }
    if peers_required() {
        panic!(
            "peer `{name}` is missing and LADE_REQUIRE_PEERS=1: install it (scripts/setup.sh does)"
        );
    }
    eprintln!(
        "\n*** SKIPPED: peer `{name}` is not installed; run scripts/setup.sh to test against it ***\n"
    );
    None
}

/// Skip the calling test (return early) unless every named peer is present.
#[macro_export]
macro_rules! require_peers {
    ($($name:expr),+ $(,)?) => {
        $( if $crate::peer($name).is_none() { return; } )+
    };
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A free TCP port on 127.0.0.1 (bound then released; good enough for tests that start a server at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until `addr` accepts TCP connections, for at most `limit`.
pub fn wait_for_port(addr: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(200))
            .is_ok()
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A real `docker-registry` serving on 127.0.0.1, stopped when dropped.
pub struct Registry {
    pub addr: String,
    pub dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Registry {
    /// None when the peer is missing (and not required).
    pub fn start() -> Option<Registry> {
        Self::start_with(None)
    }

    /// With `htpasswd`: basic auth against that file (made with `htpasswd -Bbn`).
    pub fn start_with(htpasswd: Option<&Path>) -> Option<Registry> {
        let auth = htpasswd.map(|h| {
            format!(
                "auth:\n  htpasswd:\n    realm: lade-test\n    path: {}\n",
                h.display()
            )
        });
        Self::start_config("", &auth.unwrap_or_default())
    }

    /// Serving HTTPS with `cert`/`key`; with `client_ca`, only clients with a certificate it signed get in.
    pub fn start_tls(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Option<Registry> {
        let mut tls = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        );
        if let Some(ca) = client_ca {
            tls.push_str(&format!("    clientcas:\n      - {}\n", ca.display()));
        }
        Self::start_config(&tls, "")
    }

    /// `http_extra` goes under `http:`, `top_extra` at the top level of the registry's config.
    fn start_config(http_extra: &str, top_extra: &str) -> Option<Registry> {
        let bin = peer("docker-registry")?;
        // A port picked free can be taken by another test's server before the registry binds it: then the
        // registry exits (address in use), and the next attempt takes another port.
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let addr = format!("127.0.0.1:{}", free_port());
            let cfg = format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{http_extra}{top_extra}",
                dir.path().join("data").display()
            );
            let cfg_path = dir.path().join("config.yml");
            std::fs::write(&cfg_path, cfg).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new(&bin)
                .arg("serve")
                .arg(&cfg_path)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("starting docker-registry");
            let mut reg = Registry { addr, dir, child };
            // Listening means its own log says so (a connection alone could reach another test's server).
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(15) {
                if reg.child.try_wait().unwrap().is_some() {
                    break;
                }
                if reg.log().contains(&format!("listening on {}", reg.addr))
                    && wait_for_port(&reg.addr, Duration::from_secs(1))
                {
                    return Some(reg);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!(
                "docker-registry did not start on {}:\n{}",
                reg.addr,
                reg.log()
            );
        }
        panic!("docker-registry did not start (three ports tried; its logs are above)");
    }

    /// Everything the registry logged so far (requests included), for tests that count uploads.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this process is root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether this process is root, which most build tests want: their RUN steps run as root does (lade's
/// rootless path, a re-run in a user namespace from /etc/subuid (host/src/dispatch/userns.rs), is tested
/// by tests/tests/rootless.rs as an ordinary user), and the peers they compare with (buildah, umoci, runc)
/// keep owners only as root. When not root: skips the test loudly, or fails it under LADE_REQUIRE_PEERS=1.
pub fn need_root(test: &str) -> bool {
    need_root_for(test, "its RUN steps and its peers run as root")
}

/// [`need_root`] saying `why` the test needs root.
pub fn need_root_for(test: &str, why: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        !peers_required(),
        "{test} needs root ({why}) and LADE_REQUIRE_PEERS=1: run the tests as root"
    );
    eprintln!("\n*** SKIPPED {test}: needs root ({why}) ***\n");
    false
}
