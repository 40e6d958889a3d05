//! ADD from git repositories, against a real `git daemon` on 127.0.0.1: tags, branches with a subdir,
//! commits by sha, `--keep-git-dir`, commit-time mtimes, links kept as links, the cache following the
//! branch, and a bad ref failing with its name. An `http://user:password@` remote (git's smart HTTP
//! through `git http-backend`, which git:// cannot carry) leaves no credential in the image.

use lade_tests::{fails, free_port, lade, need_root, ok, require_peers, wait_for_port};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// `git` in `dir`, isolated from the machine's and the user's configuration.
fn git(dir: &Path, args: &[&str], date: &str) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const DATE1: &str = "2020-01-02T03:04:05Z";
const DATE2: &str = "2021-01-02T03:04:05Z";
const DATE3: &str = "2022-01-02T03:04:05Z";

/// A repository served by `git daemon`, stopped when dropped.
struct Server {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    port: u16,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Commit 1 (tag v1): README, sub/a.txt, an executable, a link inside and a link pointing out of the repo.
/// Commit 2 (branch dev): README and sub/a.txt changed. `main` stays at commit 1.
fn serve() -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let repo = base.join("repo.git");
    fs::create_dir_all(repo.join("sub/deep")).unwrap();
    git(&repo, &["init", "-q"], DATE1);
    fs::write(repo.join("README"), "one\n").unwrap();
    fs::write(repo.join("sub/a.txt"), "a1\n").unwrap();
    fs::write(repo.join("sub/deep/d.txt"), "d\n").unwrap();
    fs::write(repo.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(repo.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("sub/a.txt", repo.join("link")).unwrap();
    std::os::unix::fs::symlink("../../../../etc/passwd", repo.join("sub/out")).unwrap();
    git(&repo, &["add", "-A"], DATE1);
    git(&repo, &["commit", "-q", "-m", "one"], DATE1);
    git(&repo, &["tag", "-a", "-m", "v1", "v1"], DATE1);
    git(&repo, &["checkout", "-q", "-b", "dev"], DATE2);
    fs::write(repo.join("README"), "two\n").unwrap();
    fs::write(repo.join("sub/a.txt"), "a2\n").unwrap();
    git(&repo, &["commit", "-q", "-am", "two"], DATE2);
    git(&repo, &["checkout", "-q", "main"], DATE2);

    let port = free_port();
    // git-daemon itself, not the `git daemon` wrapper: killing the wrapper would leave the daemon running,
    // holding the test's stdout open (a CI log pipe would then never end).
    let exec_path = git(&base, &["--exec-path"], DATE1);
    let child = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", base.display()))
        .arg(&base)
        .spawn()
        .expect("starting git daemon");
    let server = Server {
        _tmp: tmp,
        repo,
        port,
        child,
    };
    assert!(
        wait_for_port(&format!("127.0.0.1:{port}"), Duration::from_secs(15)),
        "git daemon did not listen on port {port}"
    );
    server
}

impl Server {
    fn url(&self) -> String {
        format!("git://127.0.0.1:{}/repo.git", self.port)
    }

    fn sha(&self, rev: &str) -> String {
        git(
            &self.repo,
            &["rev-parse", &format!("{rev}^{{commit}}")],
            DATE1,
        )
    }

    /// A third commit on `dev`.
    fn move_dev(&self) {
        git(&self.repo, &["checkout", "-q", "dev"], DATE3);
        fs::write(self.repo.join("sub/a.txt"), "a3\n").unwrap();
        git(&self.repo, &["commit", "-q", "-am", "three"], DATE3);
        git(&self.repo, &["checkout", "-q", "main"], DATE3);
    }
}

struct Project {
    tmp: tempfile::TempDir,
    root: PathBuf,
    ctx: PathBuf,
}

fn project(containerfile: &str) -> Project {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let ctx = tmp.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Containerfile"), containerfile).unwrap();
    Project { tmp, root, ctx }
}

impl Project {
    fn build_cmd(&self) -> Command {
        let mut cmd = lade();
        cmd.arg("--root")
            .arg(&self.root)
            .args(["build", "--explain-cache", "-t", "app:1"])
            .arg(&self.ctx);
        cmd
    }

    /// Build; the cache verdict ("hit" or "miss: …") of every step by number.
    fn build(&self) -> Vec<(usize, String)> {
        let out = self.build_cmd().output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "lade build failed:\n{stderr}");
        stderr
            .lines()
            .filter_map(|l| {
                let (n, v) = l.split_once("] CACHE step ")?.1.split_once(": ")?;
                Some((n.parse().ok()?, v.to_string()))
            })
            .collect()
    }

    /// Export app:1 and unpack its root filesystem with `umoci raw unpack`.
    fn unpack(&self, name: &str) -> PathBuf {
        let layout = self.tmp.path().join(format!("oci-{name}"));
        ok(lade()
            .arg("--root")
            .arg(&self.root)
            .args(["push", "app:1"])
            .arg(format!("oci:{}:x", layout.display())));
        let bundle = self.tmp.path().join(format!("bundle-{name}"));
        ok(Command::new("umoci")
            // As root (need_root), so owners are kept.
            .args(["raw", "unpack", "--image"])
            .arg(format!("{}:x", layout.display()))
            .arg(&bundle));
        bundle
    }
}

fn read(root: &Path, p: &str) -> Option<String> {
    fs::read_to_string(root.join(p.trim_start_matches('/'))).ok()
}

fn epoch(date: &str) -> i64 {
    let out = Command::new("date")
        .args(["-u", "-d", date, "+%s"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn add_git_tag_branch_subdir_sha_and_keep_git_dir() {
    require_peers!("git", "umoci");
    if !need_root("add_git_tag_branch_subdir_sha_and_keep_git_dir") {
        return;
    }
    let srv = serve();
    let (url, sha1, sha2) = (srv.url(), srv.sha("v1"), srv.sha("dev"));
    let p = project(&format!(
        "FROM scratch\n\
         ADD {url}#v1 /v1\n\
         ADD --chown=7:8 {url}#{sha1} /bysha/\n\
         ADD {url}#dev:sub /sub\n\
         ADD --keep-git-dir=true {url}#dev /kept\n"
    ));
    let first = p.build();
    assert!(
        first.iter().all(|(_, v)| v.starts_with("miss")),
        "a first build misses: {first:?}"
    );
    let rootfs = p.unpack("1");

    // The tag, peeled to commit 1; no .git without --keep-git-dir.
    assert_eq!(read(&rootfs, "/v1/README").as_deref(), Some("one\n"));
    assert_eq!(read(&rootfs, "/v1/sub/a.txt").as_deref(), Some("a1\n"));
    assert_eq!(read(&rootfs, "/v1/sub/deep/d.txt").as_deref(), Some("d\n"));
    assert!(
        !rootfs.join("v1/.git").exists(),
        ".git copied without --keep-git-dir"
    );
    let run = fs::metadata(rootfs.join("v1/run.sh")).unwrap();
    assert_eq!(run.mode() & 0o7777, 0o755);
    let readme = fs::metadata(rootfs.join("v1/README")).unwrap();
    assert_eq!(readme.mode() & 0o7777, 0o644);
    assert_eq!(readme.uid(), 0);
    // Files carry the commit's time (reproducible layers), not the checkout's.
    assert_eq!(readme.mtime(), epoch(DATE1));
    // Links are copied as links, never followed: the one pointing out of the repo too.
    assert_eq!(
        fs::read_link(rootfs.join("v1/link")).unwrap(),
        Path::new("sub/a.txt")
    );
    assert_eq!(
        fs::read_link(rootfs.join("v1/sub/out")).unwrap(),
        Path::new("../../../../etc/passwd")
    );

    // A commit by sha, with --chown.
    assert_eq!(read(&rootfs, "/bysha/README").as_deref(), Some("one\n"));
    let owned = fs::metadata(rootfs.join("bysha/sub/a.txt")).unwrap();
    assert_eq!((owned.uid(), owned.gid()), (7, 8));

    // A branch's subdir: its contents only, at the branch's commit.
    assert_eq!(read(&rootfs, "/sub/a.txt").as_deref(), Some("a2\n"));
    assert_eq!(read(&rootfs, "/sub/deep/d.txt").as_deref(), Some("d\n"));
    assert!(read(&rootfs, "/sub/README").is_none());
    assert_eq!(
        fs::metadata(rootfs.join("sub/a.txt")).unwrap().mtime(),
        epoch(DATE2)
    );

    // --keep-git-dir: a working repository at the commit, on the branch.
    assert_eq!(read(&rootfs, "/kept/README").as_deref(), Some("two\n"));
    let kept = rootfs.join("kept");
    let head = Command::new("git")
        .args(["-c", "safe.directory=*", "rev-parse", "HEAD"])
        .current_dir(&kept)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        head.status.success(),
        "kept .git unusable: {}",
        String::from_utf8_lossy(&head.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&head.stdout).trim(), sha2);
    assert_eq!(
        read(&rootfs, "/kept/.git/HEAD").as_deref(),
        Some("ref: refs/heads/dev\n")
    );

    // Nothing moved: every step hits.
    let again = p.build();
    assert!(
        again.len() >= 4 && again.iter().all(|(_, v)| v.starts_with("hit")),
        "an unchanged repository hits: {again:?}"
    );

    // A new commit on dev: the tag and sha steps still hit, the dev steps miss and see it.
    srv.move_dev();
    let moved = p.build();
    // The last four cache lines are the four ADDs, in Containerfile order.
    assert_eq!(moved.len(), again.len(), "{moved:?}");
    let adds: Vec<&str> = moved[moved.len() - 4..]
        .iter()
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(
        adds[0].starts_with("hit"),
        "the tag did not move: {moved:?}"
    );
    assert!(
        adds[1].starts_with("hit"),
        "the sha did not move: {moved:?}"
    );
    assert!(adds[2].starts_with("miss"), "dev moved: {moved:?}");
    assert!(adds[3].starts_with("miss"), "dev moved: {moved:?}");
    let rootfs = p.unpack("2");
    assert_eq!(read(&rootfs, "/sub/a.txt").as_deref(), Some("a3\n"));
    assert_eq!(read(&rootfs, "/v1/sub/a.txt").as_deref(), Some("a1\n"));
}

#[test]
fn add_git_bad_ref_names_it() {
    require_peers!("git", "umoci");
    if !need_root("add_git_bad_ref_names_it") {
        return;
    }
    let srv = serve();
    let url = srv.url();
    let p = project(&format!("FROM scratch\nADD {url}#no-such-branch /src\n"));
    let err = fails(&mut p.build_cmd(), 1);
    assert!(err.contains("no-such-branch"), "{err}");
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("Containerfile:2"), "{err}");

    // A subdir that is not there, and a commit the server does not have: git's own words reach the user.
    let p = project(&format!("FROM scratch\nADD {url}#dev:nope /src\n"));
    let err = fails(&mut p.build_cmd(), 1);
    assert!(err.contains("no directory `nope`"), "{err}");
    // --checksum for a git source is the commit: the right one (a prefix) builds, another fails.
    let v1 = srv.sha("v1");
    let p = project(&format!(
        "FROM scratch\nADD --checksum={} {url}#v1 /src\n",
        &v1[..12]
    ));
    p.build();
    let p = project(&format!(
        "FROM scratch\nADD --checksum={} {url}#dev /src\n",
        &v1[..12]
    ));
    let err = fails(&mut p.build_cmd(), 1);
    assert!(err.contains(&v1[..12]), "{err}");
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let p = project(&format!("FROM scratch\nADD {url}#{missing} /src\n"));
    let err = fails(&mut p.build_cmd(), 1);
    assert!(err.contains(missing), "{err}");
    assert!(err.contains("git fetch"), "{err}");
}

/// git's smart HTTP on 127.0.0.1: each connection's one request goes to `git http-backend` (CGI) for the
/// repositories under `base`. Authentication is not checked: the test is about what lade keeps.
struct HttpGit {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for HttpGit {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn http_backend(base: PathBuf, exec_path: PathBuf, mut conn: std::net::TcpStream) {
    use std::io::{BufRead, BufReader, Read, Write};
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap() == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).unwrap();
    let mut cgi = Command::new(exec_path.join("git-http-backend"));
    cgi.env_clear()
        .env("GIT_PROJECT_ROOT", &base)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", len.to_string())
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (k, env) in [
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(v) = header(k) {
            cgi.env(env, v);
        }
    }
    let mut child = cgi.spawn().unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap().stdout;
    // CGI headers (with `Status:`) up to the blank line, then the body.
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))
        .unwrap_or((out.len(), 0));
    let head = String::from_utf8_lossy(&out[..split.0]).into_owned();
    let mut status = "200 OK".to_string();
    let mut response = String::new();
    for h in head.lines() {
        match h.strip_prefix("Status:") {
            Some(st) => status = st.trim().to_string(),
            None => response.push_str(&format!("{h}\r\n")),
        }
    }
    let _ = conn
        .write_all(format!("HTTP/1.1 {status}\r\n{response}Connection: close\r\n\r\n").as_bytes());
    let _ = conn.write_all(&out[(split.0 + split.1).min(out.len())..]);
}

fn serve_http(base: &Path) -> HttpGit {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let exec_path = PathBuf::from(git(base, &["--exec-path"], DATE1));
    let (base, flag) = (base.to_path_buf(), stop.clone());
    let thread = std::thread::spawn(move || {
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            match listener.accept() {
                Ok((conn, _)) => {
                    conn.set_nonblocking(false).unwrap();
                    http_backend(base.clone(), exec_path.clone(), conn);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    HttpGit {
        port,
        stop,
        thread: Some(thread),
    }
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let bytes = fs::read(e.path()).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(e.path());
                }
            }
        }
    }
    found
}

#[test]
fn add_git_keeps_no_credentials() {
    require_peers!("git", "umoci");
    if !need_root("add_git_keeps_no_credentials") {
        return;
    }
    let srv = serve();
    let base = srv.repo.parent().unwrap().to_path_buf();
    let http = serve_http(&base);
    let url = format!(
        "http://lade-user:s3cret-token@127.0.0.1:{}/repo.git",
        http.port
    );
    let p = project(&format!(
        "FROM scratch\n\
         ADD --keep-git-dir=true {url}#dev /kept\n\
         ADD {url}#v1 /plain\n"
    ));
    p.build();
    let rootfs = p.unpack("creds");
    // Fetched for real over HTTP.
    assert_eq!(read(&rootfs, "/kept/README").as_deref(), Some("two\n"));
    assert_eq!(read(&rootfs, "/plain/README").as_deref(), Some("one\n"));
    // The kept repository still names its remote, without the credentials.
    let config = read(&rootfs, "/kept/.git/config").unwrap();
    assert!(
        config.contains(&format!("url = http://127.0.0.1:{}/repo.git", http.port)),
        "{config}"
    );
    for secret in ["s3cret-token", "lade-user"] {
        let leaks = files_containing(&rootfs.join("kept/.git"), secret);
        assert!(leaks.is_empty(), "{secret} in the kept .git: {leaks:?}");
    }
    // The history's created_by has the URL without them.
    let layout = p.tmp.path().join("oci-creds");
    let cfg = files_containing(&layout.join("blobs/sha256"), "created_by");
    assert!(!cfg.is_empty());
    for c in cfg {
        let text = fs::read_to_string(&c).unwrap();
        assert!(
            !text.contains("s3cret-token") && !text.contains("lade-user@"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "ADD --keep-git-dir=true http://127.0.0.1:{}/repo.git#dev",
                http.port
            )),
            "{text}"
        );
    }
}
