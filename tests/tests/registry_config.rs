//! registries.conf, credential helpers, `lade login`/`logout` and `inspect`'s RepoTags against real peers:
//! two docker-registry servers on loopback, a docker credential helper written as a shell script, and
//! skopeo as the judge of RepoTags. Every lade here runs in its own HOME/XDG dirs, with
//! `$CONTAINERS_REGISTRIES_CONF` pointing at the test's registries.conf.

use lade_tests::oci::{noise, oci_digest, umoci_image};
use lade_tests::{Registry, fails, lade, ok, require_peers, run};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A private world for lade: HOME, XDG dirs, a store, a registries.conf and an auth file.
struct World {
    tmp: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let w = World {
            tmp: tempfile::tempdir().unwrap(),
        };
        for d in ["home", "config", "run", "cache", "docker", "root"] {
            std::fs::create_dir_all(w.path(d)).unwrap();
        }
        w.conf("");
        w
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    /// Write the main registries.conf.
    fn conf(&self, text: &str) {
        std::fs::write(self.path("registries.conf"), text).unwrap();
    }

    /// Write a drop-in into the user's registries.conf.d.
    fn drop_in(&self, name: &str, text: &str) {
        let d = self.path("config/containers/registries.conf.d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), text).unwrap();
    }

    fn lade(&self) -> Command {
        let mut c = lade();
        c.env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("LADE_ROOT", self.path("root"))
            .env("CONTAINERS_REGISTRIES_CONF", self.path("registries.conf"))
            .env_remove("REGISTRY_AUTH_FILE");
        c
    }
}

/// An OCI layout at `dir` with one image `tag` made by umoci (not lade), distinct per seed.
fn image(dir: &Path, tag: &str, seed: u64) -> String {
    let data = noise(seed, 50_000);
    umoci_image(dir, tag, &[("data/blob", &data)], Some("/bin/sh"));
    oci_digest(dir, tag).unwrap()
}

/// Push `oci:layout:tag` to `docker://dest` with lade (plain HTTP allowed by flag).
fn push(w: &World, layout: &Path, tag: &str, dest: &str) {
    ok(w.lade()
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{dest}")));
}

/// Access-log lines of `reg` since `from` (a byte offset of its log) that are requests to `/v2/<repo>/`.
fn requests(reg: &Registry, from: usize, repo: &str) -> Vec<String> {
    let log = reg.log();
    log[from.min(log.len())..]
        .lines()
        .filter(|l| l.contains(&format!(" /v2/{repo}/")) && l.contains("HTTP/1.1\""))
        .map(str::to_string)
        .collect()
}

/// Manifest requests (GET or HEAD) among `lines`, with their status: `(line has " 200 ", line)`.
fn manifest_hits(lines: &[String]) -> (usize, usize) {
    let m: Vec<&String> = lines.iter().filter(|l| l.contains("/manifests/")).collect();
    let found = m.iter().filter(|l| l.contains("\" 200 ")).count();
    (found, m.len() - found)
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Copy `docker://src` into a fresh `oci:` layout with `w`'s settings and return the manifest digest.
fn pull_digest(w: &World, src: &str) -> String {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("o");
    ok(w.lade()
        .args(["copy", "-q"])
        .arg(format!("docker://{src}"))
        .arg(format!("oci:{}:x", dir.display())));
    oci_digest(&dir, "x").unwrap()
}

#[test]
fn mirror_serves_a_pull_and_the_primary_is_the_fallback() {
    require_peers!("docker-registry", "umoci");
    let (Some(primary), Some(mirror)) = (Registry::start(), Registry::start()) else {
        return;
    };
    let w = World::new();
    let src = w.path("src");
    let a_mirror = image(&src, "a-mirror", 1);
    let a_primary = image(&src, "a-primary", 2);
    let b = image(&src, "b", 3);
    // The mirror holds tag `a` with one image; the primary holds a different image under `a`, and `b`.
    push(
        &w,
        &src,
        "a-mirror",
        &format!("{}/mirror/app:a", mirror.addr),
    );
    push(
        &w,
        &src,
        "a-primary",
        &format!("{}/team/app:a", primary.addr),
    );
    push(&w, &src, "b", &format!("{}/team/app:b", primary.addr));
    assert_ne!(a_mirror, a_primary);
    w.conf(&format!(
        r#"
[[registry]]
prefix = "primary.test/team"
location = "{p}/team"
insecure = true

[[registry.mirror]]
location = "{m}/mirror"
insecure = true
"#,
        p = primary.addr,
        m = mirror.addr
    ));

    // `a` comes from the mirror: its image, and not one request reaches the primary's repository.
    let (p0, m0) = (primary.log().len(), mirror.log().len());
    assert_eq!(pull_digest(&w, "primary.test/team/app:a"), a_mirror);
    let on_primary = requests(&primary, p0, "team/app");
    assert!(on_primary.is_empty(), "primary was asked: {on_primary:?}");
    let on_mirror = requests(&mirror, m0, "mirror/app");
    assert_eq!(manifest_hits(&on_mirror).0, 1, "{on_mirror:?}");
    assert!(
        on_mirror.iter().any(|l| l.contains("/blobs/sha256:")),
        "{on_mirror:?}"
    );

    // `b` is not on the mirror: one miss there, then the primary serves it.
    let (p0, m0) = (primary.log().len(), mirror.log().len());
    assert_eq!(pull_digest(&w, "primary.test/team/app:b"), b);
    let on_mirror = requests(&mirror, m0, "mirror/app");
    assert_eq!(manifest_hits(&on_mirror), (0, 1), "{on_mirror:?}");
    assert!(
        !on_mirror.iter().any(|l| l.contains("/blobs/")),
        "{on_mirror:?}"
    );
    let on_primary = requests(&primary, p0, "team/app");
    assert_eq!(manifest_hits(&on_primary).0, 1, "{on_primary:?}");

    // `lade pull` goes the same way (mirror first) into the store.
    let m0 = mirror.log().len();
    ok(w.lade().args(["pull", "-q", "primary.test/team/app:a"]));
    assert_eq!(manifest_hits(&requests(&mirror, m0, "mirror/app")).0, 1);

    // pull-from-mirror = "digest-only": a tag goes straight to the primary (its own image under `a`).
    w.conf(&format!(
        r#"
[[registry]]
prefix = "primary.test/team"
location = "{p}/team"
insecure = true

[[registry.mirror]]
location = "{m}/mirror"
insecure = true
pull-from-mirror = "digest-only"
"#,
        p = primary.addr,
        m = mirror.addr
    ));
    let m0 = mirror.log().len();
    assert_eq!(pull_digest(&w, "primary.test/team/app:a"), a_primary);
    assert!(requests(&mirror, m0, "mirror/app").is_empty());
    // ... and a digest goes to the mirror first.
    assert_eq!(
        pull_digest(&w, &format!("primary.test/team/app@{a_mirror}")),
        a_mirror
    );
    assert_eq!(manifest_hits(&requests(&mirror, m0, "mirror/app")).0, 1);

    // A mirror not marked insecure is not spoken to over plain HTTP: the pull falls back to the primary.
    w.conf(&format!(
        r#"
[[registry]]
prefix = "primary.test/team"
location = "{p}/team"
insecure = true

[[registry.mirror]]
location = "{m}/mirror"
"#,
        p = primary.addr,
        m = mirror.addr
    ));
    let (p0, m0) = (primary.log().len(), mirror.log().len());
    assert_eq!(pull_digest(&w, "primary.test/team/app:a"), a_primary);
    assert!(requests(&mirror, m0, "mirror/app").is_empty());
    assert_eq!(manifest_hits(&requests(&primary, p0, "team/app")).0, 1);

    // A push never goes to a mirror: it lands on the primary location.
    let p0 = primary.log().len();
    push(&w, &src, "b", "primary.test/team/pushed:1");
    assert!(!requests(&primary, p0, "team/pushed").is_empty());
    assert!(!mirror.log().contains("/v2/mirror/pushed/"));
}

#[test]
fn blocked_registry_is_refused_naming_the_entry() {
    require_peers!("docker-registry", "umoci");
    let Some(reg) = Registry::start() else {
        return;
    };
    let w = World::new();
    let src = w.path("src");
    image(&src, "v1", 4);
    push(&w, &src, "v1", &format!("{}/team/app:v1", reg.addr));
    let conf = format!(
        "[[registry]]\nprefix = \"{a}/team\"\nlocation = \"{a}/team\"\nblocked = true\n",
        a = reg.addr
    );
    // In a drop-in, so the message must name that file, not the main one.
    w.drop_in("50-block.conf", &conf);
    let from = reg.log().len();
    for args in [
        vec![
            "copy".to_string(),
            "--src-tls-verify=false".into(),
            format!("docker://{}/team/app:v1", reg.addr),
            format!("oci:{}:x", w.path("out").display()),
        ],
        vec![
            "copy".to_string(),
            "--dest-tls-verify=false".into(),
            format!("oci:{}:v1", src.display()),
            format!("docker://{}/team/other:v1", reg.addr),
        ],
        vec![
            "inspect".to_string(),
            "--tls-verify=false".into(),
            format!("docker://{}/team/app:v1", reg.addr),
        ],
    ] {
        let err = fails(w.lade().args(&args), 1);
        assert!(
            err.contains("blocked")
                && err.contains("50-block.conf")
                && err.contains(&format!("prefix `{}/team`", reg.addr)),
            "{args:?}: {err}"
        );
    }
    assert!(requests(&reg, from, "team/app").is_empty());
    assert!(requests(&reg, from, "team/other").is_empty());
    // Another repository of the same registry is not blocked by that prefix.
    push(&w, &src, "v1", &format!("{}/free/app:v1", reg.addr));

    // The v1 format blocks a whole registry the same way.
    std::fs::remove_file(w.path("config/containers/registries.conf.d/50-block.conf")).unwrap();
    w.conf(&format!(
        "[registries.block]\nregistries = [\"{}\"]\n",
        reg.addr
    ));
    let err = fails(
        w.lade()
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{}/free/app:v1", reg.addr))
            .arg(format!("oci:{}:x", w.path("out2").display())),
        1,
    );
    assert!(
        err.contains("blocked") && err.contains("registries.conf"),
        "{err}"
    );
}

#[test]
fn insecure_registry_needs_no_flag_in_both_formats() {
    require_peers!("docker-registry", "umoci");
    let Some(reg) = Registry::start() else {
        return;
    };
    let w = World::new();
    let src = w.path("src");
    let want = image(&src, "v1", 5);
    push(&w, &src, "v1", &format!("{}/app:v1", reg.addr));
    let name = format!("{}/app:v1", reg.addr);

    // Not marked: plain HTTP is refused, and the error says how to allow it.
    let out = tempfile::tempdir().unwrap();
    let err = fails(
        w.lade()
            .arg("copy")
            .arg(format!("docker://{name}"))
            .arg(format!("oci:{}:x", out.path().join("o").display())),
        1,
    );
    assert!(
        err.contains("--tls-verify=false") || err.contains("insecure"),
        "{err}"
    );

    for conf in [
        format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
            reg.addr
        ),
        format!("[registries.insecure]\nregistries = [\"{}\"]\n", reg.addr),
    ] {
        w.conf(&conf);
        assert_eq!(pull_digest(&w, &name), want, "{conf}");
        // Writing works the same, without --dest-tls-verify=false.
        ok(w.lade()
            .args(["copy", "-q"])
            .arg(format!("oci:{}:v1", src.display()))
            .arg(format!("docker://{}/copied:v1", reg.addr)));
    }

    // Mixing the v1 and v2 formats in one file is an error that names the file.
    w.conf(&format!(
        "unqualified-search-registries = [\"{a}\"]\n[registries.insecure]\nregistries = [\"{a}\"]\n",
        a = reg.addr
    ));
    let err = fails(
        w.lade()
            .arg("copy")
            .arg(format!("docker://{name}"))
            .arg(format!("oci:{}:y", out.path().join("o").display())),
        1,
    );
    assert!(
        err.contains("mixes the v1 format") && err.contains("registries.conf"),
        "{err}"
    );
}

/// The layer digests of the image `name` in `w`'s store.
fn stored_layers(w: &World, name: &str) -> Vec<Value> {
    let v = json(&ok(w.lade().args(["inspect", name])));
    v["Layers"].as_array().unwrap().clone()
}

fn layers_of(layout: &Path, tag: &str) -> Vec<Value> {
    let v =
        json(&ok(Command::new("skopeo").args([
            "inspect",
            &format!("oci:{}:{tag}", layout.display()),
        ])));
    v["Layers"].as_array().unwrap().clone()
}

#[test]
fn short_names_resolve_through_search_registries_and_aliases() {
    require_peers!("docker-registry", "umoci", "skopeo");
    let (Some(first), Some(second)) = (Registry::start(), Registry::start()) else {
        return;
    };
    let w = World::new();
    let src = w.path("src");
    image(&src, "s", 6);
    image(&src, "t", 7);
    // `shorty` exists only on the second search registry; `team/tool` only under the alias target.
    push(&w, &src, "s", &format!("{}/shorty:1", second.addr));
    push(&w, &src, "t", &format!("{}/elsewhere/tool:2", first.addr));
    w.conf(&format!(
        r#"
unqualified-search-registries = ["{a}", "{b}"]

[[registry]]
location = "{a}"
insecure = true

[[registry]]
location = "{b}"
insecure = true
"#,
        a = first.addr,
        b = second.addr
    ));
    // The alias comes from a drop-in, as distributions ship their short-name files.
    w.drop_in(
        "000-shortnames.conf",
        &format!(
            "[aliases]\n\"lade-test-tool\" = \"{}/elsewhere/tool\"\n",
            first.addr
        ),
    );
    let ctx = w.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let build = |from: &str, tag: &str| {
        std::fs::write(ctx.join("Containerfile"), format!("FROM {from}\n")).unwrap();
        ok(w.lade()
            .args(["build", "--pull=always", "-t", tag])
            .arg(&ctx));
    };

    // Search order: the first registry misses, the second has it.
    let (a0, b0) = (first.log().len(), second.log().len());
    build("shorty:1", "from-search:1");
    assert_eq!(stored_layers(&w, "from-search:1"), layers_of(&src, "s"));
    assert_eq!(manifest_hits(&requests(&first, a0, "shorty")), (0, 1));
    assert!(manifest_hits(&requests(&second, b0, "shorty")).0 >= 1);

    // An alias wins over the search list: no search registry is asked for `lade-test-tool`.
    let (a0, b0) = (first.log().len(), second.log().len());
    build("lade-test-tool:2", "from-alias:1");
    assert_eq!(stored_layers(&w, "from-alias:1"), layers_of(&src, "t"));
    assert!(manifest_hits(&requests(&first, a0, "elsewhere/tool")).0 >= 1);
    assert!(requests(&first, a0, "lade-test-tool").is_empty());
    assert!(requests(&second, b0, "lade-test-tool").is_empty());

    // `lade pull` resolves the same way, as podman pull does, and names the image where it came from.
    ok(w.lade().args(["pull", "shorty:1"]));
    ok(w.lade().args(["pull", "lade-test-tool:2"]));
    let names = ok(w.lade().args(["images", "--format", "json"]));
    assert!(
        names.contains(&format!("{}/shorty:1", second.addr)),
        "{names}"
    );
    assert!(
        names.contains(&format!("{}/elsewhere/tool:2", first.addr)),
        "{names}"
    );
    let err = lade_tests::fails(w.lade().args(["pull", "nowhere-at-all:1"]), 1);
    assert!(
        err.contains(&first.addr) && err.contains(&second.addr),
        "both candidates are named: {err}"
    );

    // The v1 format's search list resolves short names too.
    w.conf(&format!(
        "[registries.search]\nregistries = [\"{b}\"]\n[registries.insecure]\nregistries = [\"{a}\", \"{b}\"]\n",
        a = first.addr,
        b = second.addr
    ));
    let b0 = second.log().len();
    build("shorty:1", "from-v1-search:1");
    assert_eq!(stored_layers(&w, "from-v1-search:1"), layers_of(&src, "s"));
    assert!(manifest_hits(&requests(&second, b0, "shorty")).0 >= 1);
}

/// A docker credential helper (`store`, `get`, `erase`, `list`) keeping one JSON file per server in
/// `$LADE_TEST_CREDS`, and logging each call's action to `$LADE_TEST_CREDS/calls`.
const HELPER: &str = r#"#!/bin/sh
dir="$LADE_TEST_CREDS"
echo "$1" >> "$dir/calls"
file() { printf '%s/%s.json' "$dir" "$(printf '%s' "$1" | tr '/:' '__')"; }
case "$1" in
get)
    server=$(cat)
    f=$(file "$server")
    if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
store)
    input=$(cat)
    server=$(printf '%s' "$input" | jq -r .ServerURL)
    printf '%s' "$input" > "$(file "$server")" ;;
erase)
    server=$(cat)
    f=$(file "$server")
    if [ -f "$f" ]; then rm "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
list)
    for f in "$dir"/*.json; do [ -f "$f" ] && jq '{(.ServerURL): .Username}' "$f"; done | jq -s 'add // {}' ;;
*)
    echo "unknown action $1" >&2; exit 2 ;;
esac
"#;

/// A world with the helper on PATH and an empty credential store.
struct HelperWorld {
    w: World,
    bin: PathBuf,
    creds: PathBuf,
}

impl HelperWorld {
    fn new() -> HelperWorld {
        let w = World::new();
        let bin = w.path("bin");
        let creds = w.path("creds");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&creds).unwrap();
        let helper = bin.join("docker-credential-lade-test");
        std::fs::write(&helper, HELPER).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        HelperWorld { w, bin, creds }
    }

    fn lade(&self) -> Command {
        let mut c = self.w.lade();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.bin.clone()];
        dirs.extend(std::env::split_paths(&path));
        c.env("PATH", std::env::join_paths(dirs).unwrap())
            .env("LADE_TEST_CREDS", &self.creds);
        c
    }

    fn authfile(&self) -> PathBuf {
        self.w.path("auth.json")
    }

    /// The helper's stored entry for `server`, if any.
    fn stored(&self, server: &str) -> Option<Value> {
        let f = self
            .creds
            .join(format!("{}.json", server.replace(['/', ':'], "_")));
        std::fs::read_to_string(f).ok().map(|s| json(&s))
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.creds.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn htpasswd(dir: &Path) -> PathBuf {
    let out = ok(Command::new("htpasswd").args(["-Bbn", "helperuser", "s3cret"]));
    let p = dir.join("htpasswd");
    std::fs::write(&p, out).unwrap();
    p
}

#[test]
fn cred_helpers_entry_serves_push_pull_login_and_logout() {
    require_peers!("docker-registry", "umoci", "htpasswd", "jq");
    let h = HelperWorld::new();
    let Some(reg) = Registry::start_with(Some(&htpasswd(&h.w.path("")))) else {
        return;
    };
    let src = h.w.path("src");
    let want = image(&src, "v1", 8);
    let auth = h.authfile();
    std::fs::write(
        &auth,
        format!("{{\"credHelpers\": {{\"{}\": \"lade-test\"}}}}", reg.addr),
    )
    .unwrap();
    let dest = format!("docker://{}/team/app:v1", reg.addr);
    let copy_up = || {
        let mut c = h.lade();
        c.args(["copy", "-q", "--dest-tls-verify=false", "--authfile"])
            .arg(&auth)
            .arg(format!("oci:{}:v1", src.display()))
            .arg(&dest);
        c
    };

    // The helper knows nothing yet: the push is refused by the registry.
    let err = fails(&mut copy_up(), 1);
    assert!(
        err.contains("401") || err.contains("authentication"),
        "{err}"
    );
    assert!(h.calls().contains(&"get".to_string()), "{:?}", h.calls());

    // Credentials only the helper knows (stored through the helper protocol, not by lade).
    let mut store = Command::new(h.bin.join("docker-credential-lade-test"));
    store
        .arg("store")
        .env("LADE_TEST_CREDS", &h.creds)
        .env("PATH", std::env::var_os("PATH").unwrap())
        .stdin(Stdio::piped());
    let mut child = store.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            format!(
                "{{\"ServerURL\":\"{}\",\"Username\":\"helperuser\",\"Secret\":\"s3cret\"}}",
                reg.addr
            )
            .as_bytes(),
        )
        .unwrap();
    assert!(child.wait().unwrap().success());
    ok(&mut copy_up());
    let out = h.w.path("pulled");
    ok(h.lade()
        .args(["copy", "-q", "--src-tls-verify=false", "--authfile"])
        .arg(&auth)
        .arg(&dest)
        .arg(format!("oci:{}:v1", out.display())));
    assert_eq!(oci_digest(&out, "v1").unwrap(), want);
    // The auth file itself never held the secret.
    assert!(!std::fs::read_to_string(&auth).unwrap().contains("auths"));

    // --get-login asks the helper.
    let got = ok(h
        .lade()
        .args(["login", "--get-login", "--authfile"])
        .arg(&auth)
        .arg(&reg.addr));
    assert_eq!(got.trim(), "helperuser");

    // logout erases through the helper; the push is refused again.
    let out = ok(h
        .lade()
        .args(["logout", "--authfile"])
        .arg(&auth)
        .arg(&reg.addr));
    assert!(out.contains("Removed login credentials"), "{out}");
    assert!(h.stored(&reg.addr).is_none());
    assert!(h.calls().contains(&"erase".to_string()));
    fails(&mut copy_up(), 1);
    let err = fails(
        h.lade()
            .args(["logout", "--authfile"])
            .arg(&auth)
            .arg(&reg.addr),
        1,
    );
    assert!(err.contains("not logged into"), "{err}");

    // A wrong password is refused by the registry and stores nothing.
    let err = fails(
        h.lade()
            .args([
                "login",
                "--tls-verify=false",
                "-u",
                "helperuser",
                "-p",
                "wrong",
                "--authfile",
            ])
            .arg(&auth)
            .arg(&reg.addr),
        1,
    );
    assert!(err.contains("rejected") || err.contains("401"), "{err}");
    assert!(h.stored(&reg.addr).is_none());

    // login stores through the helper (not in the auth file), and the push works again.
    let out = ok(h
        .lade()
        .args([
            "login",
            "--tls-verify=false",
            "-u",
            "helperuser",
            "-p",
            "s3cret",
            "--authfile",
        ])
        .arg(&auth)
        .arg(&reg.addr));
    assert!(out.contains("Login Succeeded"), "{out}");
    let stored = h.stored(&reg.addr).expect("the helper holds the login");
    assert_eq!(stored["Username"], "helperuser");
    assert_eq!(stored["Secret"], "s3cret");
    assert!(!std::fs::read_to_string(&auth).unwrap().contains("auths"));
    ok(&mut copy_up());

    // A namespace cannot go to a helper that stores whole registries.
    let err = fails(
        h.lade()
            .args([
                "login",
                "--tls-verify=false",
                "-u",
                "helperuser",
                "-p",
                "s3cret",
                "--authfile",
            ])
            .arg(&auth)
            .arg(format!("{}/team", reg.addr)),
        1,
    );
    assert!(err.contains("stores whole registries"), "{err}");
}

#[test]
fn creds_store_serves_login_push_and_logout_all() {
    require_peers!("docker-registry", "umoci", "htpasswd", "jq");
    let h = HelperWorld::new();
    let Some(reg) = Registry::start_with(Some(&htpasswd(&h.w.path("")))) else {
        return;
    };
    let src = h.w.path("src");
    image(&src, "v1", 9);
    // The default docker config location, found without --authfile.
    let auth = h.w.path("docker/config.json");
    std::fs::write(&auth, "{\"credsStore\": \"lade-test\"}").unwrap();
    let push_it = || {
        let mut c = h.lade();
        c.args(["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", src.display()))
            .arg(format!("docker://{}/app:v1", reg.addr));
        c
    };
    fails(&mut push_it(), 1);

    // login with --authfile pointing at the docker config: the store receives the credentials.
    ok(h.lade()
        .args([
            "login",
            "--tls-verify=false",
            "-u",
            "helperuser",
            "-p",
            "s3cret",
            "--authfile",
        ])
        .arg(&auth)
        .arg(&reg.addr));
    assert_eq!(h.stored(&reg.addr).unwrap()["Username"], "helperuser");
    assert!(!std::fs::read_to_string(&auth).unwrap().contains("s3cret"));
    ok(&mut push_it());

    // Another server in the same store, then logout --all empties the store through `list` + `erase`.
    ok(h.lade()
        .args([
            "login",
            "--tls-verify=false",
            "-u",
            "helperuser",
            "-p",
            "s3cret",
            "--authfile",
        ])
        .arg(&auth)
        .arg(reg.addr.replace("127.0.0.1", "localhost")));
    assert!(
        h.stored(&reg.addr.replace("127.0.0.1", "localhost"))
            .is_some()
    );
    let out = ok(h.lade().args(["logout", "--all", "--authfile"]).arg(&auth));
    assert!(out.contains("all registries"), "{out}");
    assert!(h.calls().contains(&"list".to_string()));
    assert!(h.stored(&reg.addr).is_none());
    assert!(
        h.stored(&reg.addr.replace("127.0.0.1", "localhost"))
            .is_none()
    );
    // The helper configuration stays.
    assert!(
        std::fs::read_to_string(&auth)
            .unwrap()
            .contains("credsStore")
    );
    fails(&mut push_it(), 1);
    let err = fails(
        h.lade()
            .args(["login", "--get-login", "--authfile"])
            .arg(&auth)
            .arg(&reg.addr),
        1,
    );
    assert!(err.contains("not logged into"), "{err}");
}

/// Run `cmd` with `input` on a piped stdin; fail the test if it does not finish within a minute (a
/// prompt that waits for a terminal would hang here).
fn run_with_stdin(mut cmd: Command, input: &[u8]) -> std::process::Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within 60s (waiting for a terminal?)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn login_without_a_terminal_fails_clearly_and_reads_password_stdin() {
    require_peers!("docker-registry", "htpasswd");
    let w = World::new();
    let Some(reg) = Registry::start_with(Some(&htpasswd(&w.path("")))) else {
        return;
    };
    let auth = w.path("auth.json");
    let login = |extra: &[&str]| {
        let mut c = w.lade();
        c.args(["login", "--tls-verify=false", "--authfile"])
            .arg(&auth)
            .args(extra)
            .arg(&reg.addr);
        c
    };

    // Nothing given and no terminal: a clear error, no wait.
    let out = run_with_stdin(login(&[]), b"");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--username") && err.contains("not a terminal"),
        "{err}"
    );
    let out = run_with_stdin(login(&["-u", "helperuser"]), b"s3cret\n");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--password-stdin") && err.contains("not a terminal"),
        "{err}"
    );
    // --password-stdin needs the user name.
    let out = run_with_stdin(login(&["--password-stdin"]), b"s3cret\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--username"), "{err}");
    assert!(!auth.exists());

    // --password-stdin: the trailing newline is not part of the password.
    let out = run_with_stdin(
        login(&["-u", "helperuser", "--password-stdin"]),
        b"s3cret\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"));
    let v = json(&std::fs::read_to_string(&auth).unwrap());
    assert!(v["auths"][&reg.addr]["auth"].is_string(), "{v}");
    assert_eq!(ok(&mut login(&["--get-login"])).trim(), "helperuser");

    // With stored valid credentials and nothing given, login checks them instead of asking.
    let out = ok(&mut login(&[]));
    assert!(out.contains("Already logged in"), "{out}");

    // Logout, then nothing is stored and --get-login says so.
    ok(w.lade()
        .args(["logout", "--authfile"])
        .arg(&auth)
        .arg(&reg.addr));
    let err = fails(&mut login(&["--get-login"]), 1);
    assert!(err.contains("not logged into"), "{err}");
    // logout --all on a file with several entries.
    ok(&mut login(&["-u", "helperuser", "-p", "s3cret"]));
    let out = run(w
        .lade()
        .args(["logout", "--all", "--authfile"])
        .arg(&auth)
        .arg(&reg.addr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "--all with a registry is refused"
    );
    ok(w.lade().args(["logout", "--all", "--authfile"]).arg(&auth));
    let v = json(&std::fs::read_to_string(&auth).unwrap());
    assert_eq!(v["auths"], serde_json::json!({}));
}

#[test]
fn inspect_repo_tags_match_skopeo() {
    require_peers!("docker-registry", "umoci", "skopeo");
    let Some(reg) = Registry::start() else {
        return;
    };
    let w = World::new();
    let src = w.path("src");
    image(&src, "v1", 10);
    for tag in ["v1", "latest", "1.0", "other"] {
        push(&w, &src, "v1", &format!("{}/team/app:{tag}", reg.addr));
    }
    push(&w, &src, "v1", &format!("{}/team/unrelated:nope", reg.addr));
    let name = format!("docker://{}/team/app:v1", reg.addr);
    let lade_out = json(&ok(w.lade().args(["inspect", "--tls-verify=false", &name])));
    let skopeo_out = json(&ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &name,
    ])));
    let sorted = |v: &Value| {
        let mut t: Vec<String> = v["RepoTags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        t.sort();
        t
    };
    assert_eq!(sorted(&lade_out), ["1.0", "latest", "other", "v1"]);
    assert_eq!(sorted(&lade_out), sorted(&skopeo_out));
    assert_eq!(lade_out["Digest"], skopeo_out["Digest"]);
    assert_eq!(lade_out["Name"], skopeo_out["Name"]);

    // --no-tags skips the listing (no tags/list request), as skopeo's does.
    let from = reg.log().len();
    let no_tags = json(&ok(w.lade().args([
        "inspect",
        "--no-tags",
        "--tls-verify=false",
        &name,
    ])));
    assert_eq!(no_tags["RepoTags"], serde_json::json!([]));
    assert!(
        !requests(&reg, from, "team/app")
            .iter()
            .any(|l| l.contains("/tags/list"))
    );
    let skopeo_no = json(&ok(Command::new("skopeo").args([
        "inspect",
        "--no-tags",
        "--tls-verify=false",
        &name,
    ])));
    assert_eq!(skopeo_no["RepoTags"], no_tags["RepoTags"]);

    // Not a registry: no tags to list.
    let local = json(&ok(w
        .lade()
        .args(["inspect"])
        .arg(format!("oci:{}:v1", src.display()))));
    assert_eq!(local["RepoTags"], serde_json::json!([]));
}

/// `cmd` run under `script`, so its standard input is a terminal fed with `input`.
fn on_terminal(cmd: &Command, input: &[u8]) -> std::process::Output {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let line = std::iter::once(quote(cmd.get_program()))
        .chain(cmd.get_args().map(quote))
        .collect::<Vec<_>>()
        .join(" ");
    let mut s = Command::new("script");
    s.args(["-qec", &line, "/dev/null"]);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => s.env(k, v),
            None => s.env_remove(k),
        };
    }
    run_with_stdin(s, input)
}

#[test]
fn login_asks_on_a_terminal() {
    require_peers!("docker-registry", "htpasswd", "script");
    let w = World::new();
    let Some(reg) = Registry::start_with(Some(&htpasswd(&w.path("")))) else {
        return;
    };
    let auth = w.path("auth.json");
    let mut login = w.lade();
    login
        .args(["login", "--tls-verify=false", "--authfile"])
        .arg(&auth)
        .arg(&reg.addr);
    let out = on_terminal(&login, b"helperuser\ns3cret\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Username: ")
            && text.contains("Password: ")
            && text.contains("Login Succeeded"),
        "{text}"
    );
    // (Whether the password echoes cannot be seen here: the terminal echoes input typed ahead of the prompt.)
    assert_eq!(
        ok(w.lade()
            .args(["login", "--get-login", "--authfile"])
            .arg(&auth)
            .arg(&reg.addr))
        .trim(),
        "helperuser"
    );
    // Stored but wrong credentials: the prompt offers the stored user name, Enter keeps it.
    let f = json(&std::fs::read_to_string(&auth).unwrap());
    let mut v = f.clone();
    v["auths"][&reg.addr]["auth"] = Value::String("aGVscGVydXNlcjp3cm9uZw==".into()); // helperuser:wrong
    std::fs::write(&auth, v.to_string()).unwrap();
    let out = on_terminal(&login, b"\ns3cret\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Existing credentials are invalid")
            && text.contains("Username (helperuser): "),
        "{text}"
    );
    assert_eq!(json(&std::fs::read_to_string(&auth).unwrap()), f);
}

#[test]
fn registries_conf_credential_helpers_take_login_and_logout() {
    require_peers!("docker-registry", "htpasswd", "jq");
    let h = HelperWorld::new();
    let Some(reg) = Registry::start_with(Some(&htpasswd(&h.w.path("")))) else {
        return;
    };
    // A drop-in names the helper; no auth file names any.
    h.w.drop_in(
        "10-helpers.conf",
        "credential-helpers = [\"lade-test\", \"containers-auth.json\"]\n",
    );
    let auth = h.authfile();
    let login = |extra: &[&str]| {
        let mut c = h.lade();
        c.args(["login", "--tls-verify=false", "--authfile"])
            .arg(&auth)
            .args(extra)
            .arg(&reg.addr);
        c
    };
    ok(&mut login(&["-u", "helperuser", "-p", "s3cret"]));
    assert_eq!(h.stored(&reg.addr).unwrap()["Secret"], "s3cret");
    assert!(!auth.exists(), "the first helper took the credentials");
    assert_eq!(ok(&mut login(&["--get-login"])).trim(), "helperuser");
    // A namespace cannot go to the helper; the auth file (next in the list) takes it.
    ok(h.lade()
        .args([
            "login",
            "--tls-verify=false",
            "-u",
            "helperuser",
            "-p",
            "s3cret",
            "--authfile",
        ])
        .arg(&auth)
        .arg(format!("{}/team", reg.addr)));
    let v = json(&std::fs::read_to_string(&auth).unwrap());
    assert!(
        v["auths"][format!("{}/team", reg.addr)]["auth"].is_string(),
        "{v}"
    );
    // logout --all empties both.
    ok(h.lade().args(["logout", "--all", "--authfile"]).arg(&auth));
    assert!(h.stored(&reg.addr).is_none());
    let v = json(&std::fs::read_to_string(&auth).unwrap());
    assert_eq!(v["auths"], serde_json::json!({}));
    let err = fails(&mut login(&["--get-login"]), 1);
    assert!(err.contains("not logged into"), "{err}");
}
