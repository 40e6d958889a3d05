//! ADD from a git repository: parse the address, resolve its ref to a commit, check it out, copy the tree.
//!
//! Addresses are those of the Dockerfile reference: `git://host/repo.git`, `ssh://…`, `git@host:org/repo.git`,
//! or an `http(s)` URL whose path ends in `.git`, each optionally followed by `#<branch|tag|commit>[:<subdir>]`.
//! Everything goes through the `git` CLI (as buildah and BuildKit do), run with a throw-away HOME, no
//! system config (`GIT_CONFIG_NOSYSTEM`), no `GIT_*` variables from lade's own environment, no prompt
//! (`GIT_TERMINAL_PROMPT=0`) and stdin closed, so neither the user's nor the machine's git configuration
//! (aliases, filters, hooks, `insteadOf`) can change what is fetched. `protocol.file.allow` keeps git's default.
//!
//! [`resolve`] turns the ref into a commit with `git ls-remote` (a full commit sha is taken as given) and is
//! all a cache hit costs; [`checkout`] fetches that one commit shallowly (`git init`, `git fetch --depth 1`,
//! `git checkout`) into a temp dir under the build's tmp dir, with submodules; [`copy_tree`] writes the
//! tree (or its subdir, resolved inside the checkout) into the layer without ever following a link.
//!
//! File times: BuildKit leaves checkout-time mtimes by default and offers commit-time mtimes (`git.mtime=commit`,
//! automatic under SOURCE_DATE_EPOCH) for reproducible builds. lade always uses the commit's committer time
//! for every file, directory and link it copies: the layer then depends only on the commit and the step's
//! flags, so two builds of the same commit give the same layer digest and the cache key (which holds the
//! commit, not the files) never describes content whose bytes differ.
//!
//! Modes: git records only 0644 and 0755, so files are written 0755 when any execute bit is set and 0644
//! otherwise, directories 0755, whatever lade's umask (then `--chmod` applies).

use super::out::{Meta, create_file, open_dir_at, set_link_meta, set_meta_fd};
use super::{join, norm};
use crate::build::rootview::RootView;
use crate::layer::remove_all_at;
use anyhow::{Context, Result, anyhow, bail};
use rustix::fs::{AtFlags, FileType, Mode};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A parsed git address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitSource {
    /// What `git` is given as the remote (the address without its fragment).
    pub remote: String,
    /// Branch, tag, full ref or commit sha; empty means the remote's HEAD.
    pub reference: String,
    /// The subdirectory to copy, root-relative without a leading `/` (empty: the whole tree).
    pub subdir: String,
    /// The address as written, with any password in it replaced (for messages and `--explain-cache`).
    pub display: String,
}

/// What a ref resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// Full hex object name of the commit.
    pub sha: String,
    /// The full ref it came from (`refs/heads/main`, `refs/tags/v1`), `None` for a commit given by sha.
    pub full_ref: Option<String>,
}

/// A `git` address rather than a file URL (the rule BuildKit's Dockerfile frontend follows).
pub fn is_git(s: &str) -> bool {
    if s.starts_with("git://") || s.starts_with("git@") || s.starts_with("ssh://") {
        return true;
    }
    if !(s.starts_with("http://") || s.starts_with("https://")) {
        return false;
    }
    let path = s.split(['#', '?']).next().unwrap_or(s);
    path.trim_end_matches('/').ends_with(".git")
}

/// `user:password@` in an URL shown as `user:***@`.
fn redact(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_string();
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            let pass = if rest[..at].contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{pass}{}", &rest[at..])
        }
        None => s.to_string(),
    }
}

/// `s` with the userinfo of every URL in it taken out (`https://user:token@host/r.git` → `https://host/r.git`),
/// for what outlives the fetch: a kept `.git`'s config and the image's history. An `ssh://` URL keeps its
/// user name (needed to log in, not a secret) and loses only a password. Text without `://` is unchanged.
pub fn strip_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let scheme_start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+.-".contains(c)))
            .map_or(0, |j| j + 1);
        let scheme = &rest[scheme_start..i];
        let after = &rest[i + 3..];
        // The authority ends at the first `/`, `?`, `#` or blank; userinfo is what precedes its last `@`.
        let end = after
            .find(|c: char| "/?#\"'".contains(c) || c.is_whitespace())
            .unwrap_or(after.len());
        out.push_str(&rest[..i + 3]);
        match after[..end].rfind('@') {
            Some(at) if scheme.eq_ignore_ascii_case("ssh") => {
                let user = after[..at].split(':').next().unwrap_or("");
                if !user.is_empty() {
                    out.push_str(user);
                    out.push('@');
                }
                out.push_str(&after[at + 1..end]);
            }
            Some(at) => out.push_str(&after[at + 1..end]),
            None => out.push_str(&after[..end]),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Take the userinfo out of the URLs a kept `.git` records: the config of the repository and of its
/// submodules (`remote.origin.url`, `submodule.*.url`) and FETCH_HEAD.
fn scrub_git_dir(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for e in entries {
        let e = e?;
        let (path, ft) = (e.path(), e.file_type()?);
        if ft.is_dir() {
            scrub_git_dir(&path)?;
        } else if ft.is_file() && (e.file_name() == "config" || e.file_name() == "FETCH_HEAD") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let clean = strip_userinfo(&text);
            if clean != text {
                std::fs::write(&path, clean)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(())
}

fn is_hex_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parse `<remote>[#<ref>[:<subdir>]]`.
pub fn parse(s: &str) -> Result<GitSource> {
    let display = redact(s);
    let (remote, fragment) = match s.split_once('#') {
        Some((r, f)) => (r, f),
        None => (s, ""),
    };
    if remote.is_empty() {
        bail!("git address {display} has no repository");
    }
    let (reference, subdir) = match fragment.split_once(':') {
        Some((r, d)) => (r, d),
        None => (fragment, ""),
    };
    if reference.starts_with('-') || reference.contains(['\0', ' ', '~', '^', '\\']) {
        bail!("git address {display}: `{reference}` is not a valid branch, tag or commit");
    }
    if subdir.split('/').any(|c| c == "..") {
        bail!("git address {display}: the subdirectory `{subdir}` may not contain `..`");
    }
    Ok(GitSource {
        remote: remote.to_string(),
        reference: reference.to_string(),
        subdir: norm(subdir).join("/"),
        display,
    })
}

/// The last lines of a command's stderr, for an error message.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(6)..].join("\n")
}

/// The `git` CLI with a private HOME under a temp dir (see the module docs for the environment).
struct Git {
    home: PathBuf,
}

impl Git {
    fn new(scratch: &Path) -> Result<Git> {
        let home = scratch.join("home");
        std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
        Ok(Git { home })
    }

    /// Run `git args…` in `cwd`; its stdout, or an error with its stderr tail.
    fn run(&self, cwd: &Path, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("git");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GIT_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .args(["-c", "advice.detachedHead=false"])
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null());
        let out = match cmd.output() {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("ADD from a git repository needs the `git` command; install git")
            }
            Err(e) => return Err(e).context("running git"),
        };
        if !out.status.success() {
            bail!(
                "`git {}` failed ({}):\n{}",
                args.first().copied().unwrap_or(""),
                out.status,
                tail(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Pick the commit `reference` names in `git ls-remote` output, as git's own rules order the candidates
/// (an exact full ref, then `refs/`, then tags, then branches); an annotated tag is peeled to its commit.
fn pick(listing: &str, reference: &str) -> Option<Commit> {
    let refs: std::collections::HashMap<&str, &str> = listing
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(sha, name)| (name.trim(), sha.trim()))
        .collect();
    let reference = if reference.is_empty() {
        "HEAD"
    } else {
        reference
    };
    let candidates = [
        reference.to_string(),
        format!("refs/{reference}"),
        format!("refs/tags/{reference}"),
        format!("refs/heads/{reference}"),
    ];
    candidates.into_iter().find_map(|name| {
        let sha = refs
            .get(format!("{name}^{{}}").as_str())
            .or_else(|| refs.get(name.as_str()))?;
        Some(Commit {
            sha: sha.to_string(),
            full_ref: Some(name),
        })
    })
}

/// Resolve the source's ref to a commit (`git ls-remote`; a full sha is taken as given, without network).
pub fn resolve(src: &GitSource, tmp_dir: &Path) -> Result<Commit> {
    if is_hex_sha(&src.reference) {
        return Ok(Commit {
            sha: src.reference.to_ascii_lowercase(),
            full_ref: None,
        });
    }
    let scratch = tempfile::Builder::new()
        .prefix("add-git-")
        .tempdir_in(tmp_dir)
        .with_context(|| format!("creating a temp dir in {}", tmp_dir.display()))?;
    let git = Git::new(scratch.path())?;
    let listing = git
        .run(scratch.path(), &["ls-remote", "--", &src.remote])
        .with_context(|| format!("listing the refs of {}", src.display))?;
    pick(&listing, &src.reference).ok_or_else(|| {
        let what = if src.reference.is_empty() {
            "has no HEAD".to_string()
        } else {
            format!(
                "has no branch or tag `{}` (give a branch, a tag, or a full 40-character commit sha)",
                src.reference
            )
        };
        anyhow!("{} {what}", src.display)
    })
}

/// A checked-out commit in a temp dir (deleted on drop).
pub struct Checkout {
    _scratch: tempfile::TempDir,
    /// The directory to copy: the work tree, or the subdirectory asked for (inside it).
    pub root: PathBuf,
    /// The commit's committer time (seconds since the epoch), every copied entry's mtime.
    pub time: i64,
}

/// Fetch `commit` of `src` shallowly and check it out (see the module docs).
pub fn checkout(
    src: &GitSource,
    commit: &Commit,
    keep_git_dir: bool,
    tmp_dir: &Path,
) -> Result<Checkout> {
    let scratch = tempfile::Builder::new()
        .prefix("add-git-")
        .tempdir_in(tmp_dir)
        .with_context(|| format!("creating a temp dir in {}", tmp_dir.display()))?;
    let git = Git::new(scratch.path())?;
    let tree = scratch.path().join("tree");
    std::fs::create_dir(&tree).with_context(|| format!("creating {}", tree.display()))?;
    // No template: no sample hooks in a kept .git.
    git.run(&tree, &["init", "-q", "--template=", "."])?;
    git.run(&tree, &["remote", "add", "origin", &src.remote])?;
    // The commit itself first (protocol v2 servers allow any reachable object); a server that refuses
    // unadvertised objects still serves the ref, which must then still point at the commit.
    let by_sha = git.run(
        &tree,
        &[
            "fetch",
            "-q",
            "--depth",
            "1",
            "--no-tags",
            "origin",
            &commit.sha,
        ],
    );
    if let Err(e) = by_sha {
        let Some(full_ref) = &commit.full_ref else {
            return Err(e).with_context(|| format!("fetching commit {}", commit.sha));
        };
        git.run(
            &tree,
            &[
                "fetch",
                "-q",
                "--depth",
                "1",
                "--no-tags",
                "origin",
                full_ref,
            ],
        )
        .with_context(|| format!("fetching {full_ref}"))?;
    }
    let fetched = git
        .run(&tree, &["rev-parse", "--verify", "FETCH_HEAD^{commit}"])?
        .trim()
        .to_string();
    if !fetched.eq_ignore_ascii_case(&commit.sha) {
        bail!(
            "{} moved while it was fetched (was {}, now {fetched}); build again",
            commit.full_ref.as_deref().unwrap_or(&src.reference),
            commit.sha
        );
    }
    match commit
        .full_ref
        .as_deref()
        .and_then(|r| r.strip_prefix("refs/heads/"))
    {
        // A kept .git is on the branch it was asked for, as BuildKit leaves it.
        Some(branch) if keep_git_dir => {
            git.run(&tree, &["checkout", "-q", "-B", branch, &fetched])?
        }
        _ => git.run(&tree, &["checkout", "-q", "--detach", &fetched])?,
    };
    if tree.join(".gitmodules").exists() {
        git.run(
            &tree,
            &[
                "submodule",
                "update",
                "-q",
                "--init",
                "--recursive",
                "--depth",
                "1",
            ],
        )
        .context("checking out the submodules")?;
    }
    if keep_git_dir {
        // Fetched with the credentials; kept without them.
        scrub_git_dir(&tree.join(".git"))?;
    }
    let time: i64 = git
        .run(&tree, &["show", "-s", "--format=%ct", &fetched])?
        .trim()
        .parse()
        .context("reading the commit time")?;
    let root = if src.subdir.is_empty() {
        tree.clone()
    } else {
        // Followed inside the checkout only: a link in the path cannot lead out of it.
        let found = RootView::new(vec![tree.clone()])
            .resolve(&src.subdir, true)?
            .filter(|r| r.meta.is_dir())
            .ok_or_else(|| {
                anyhow!(
                    "{} has no directory `{}` at commit {fetched}",
                    src.display,
                    src.subdir
                )
            })?;
        if norm(&found.path).first().map(String::as_str) == Some(".git") {
            bail!("{}: `{}` is inside .git", src.display, src.subdir);
        }
        found.host
    };
    Ok(Checkout {
        _scratch: scratch,
        root,
        time,
    })
}

/// How [`copy_tree`] writes entries.
pub struct CopyOpts<'a> {
    pub owner: (u32, u32),
    /// `--chmod` applied to a (mode, is_dir).
    pub mode: &'a dyn Fn(u32, bool) -> u32,
    pub mtime: i64,
    /// Leave out `.git` (the repository's and the submodules').
    pub skip_git_dir: bool,
}

/// Copy the contents of `from` into the directory `to` (an fd in the layer; `show` names it in messages),
/// never following a link on either side. What is already there gives way as a layer entry would: a
/// directory is merged into, anything else replaced.
pub fn copy_tree(from: &Path, to: BorrowedFd, show: &str, opts: &CopyOpts) -> Result<()> {
    copy_dir(from, to, show, "", opts)
}

/// Remove what is at `name` in `dir` unless it is a directory and a directory goes there.
fn make_room(dir: BorrowedFd, name: &OsStr, for_dir: bool) -> Result<()> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if for_dir && FileType::from_raw_mode(st.st_mode) == FileType::Directory => Ok(()),
        Ok(_) => remove_all_at(dir, name),
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn copy_dir(from: &Path, to: BorrowedFd, show: &str, rel: &str, opts: &CopyOpts) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .with_context(|| format!("reading {}", from.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", from.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let sub = join(rel, &name.to_string_lossy());
        // git never tracks a `.git` entry: any one is git's own (the repository's, a submodule's link).
        if opts.skip_git_dir && name == ".git" {
            continue;
        }
        let what = || format!("{show}/{sub}");
        let src = e.path();
        let ft = e.file_type()?;
        make_room(to, &name, ft.is_dir()).with_context(|| format!("replacing {}", what()))?;
        let mut meta = Meta {
            mode: 0,
            owner: opts.owner,
            mtime: (opts.mtime, 0),
            xattrs: &[],
        };
        if ft.is_dir() {
            match rustix::fs::mkdirat(to, &name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e).with_context(|| format!("creating {}", what())),
            }
            let dir = open_dir_at(to, &name).with_context(|| format!("opening {}", what()))?;
            copy_dir(&src, dir.as_fd(), show, &sub, opts)?;
            meta.mode = (opts.mode)(0o755, true);
            set_meta_fd(dir.as_fd(), &meta, &what)?;
        } else if ft.is_symlink() {
            let target =
                std::fs::read_link(&src).with_context(|| format!("reading {}", src.display()))?;
            rustix::fs::symlinkat(&target, to, &name)
                .with_context(|| format!("creating link {}", what()))?;
            set_link_meta(to, &name, opts.owner, (opts.mtime, 0), &what)?;
        } else if ft.is_file() {
            let mut input = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&src)
                .with_context(|| format!("opening {}", src.display()))?;
            let exec = input.metadata()?.permissions().mode() & 0o111 != 0;
            meta.mode = (opts.mode)(if exec { 0o755 } else { 0o644 }, false);
            let mut out =
                File::from(create_file(to, &name).with_context(|| format!("creating {}", what()))?);
            std::io::copy(&mut input, &mut out)
                .with_context(|| format!("copying {}", src.display()))?;
            set_meta_fd(out.as_fd(), &meta, &what)?;
        } else {
            tracing::warn!("skipping {sub} in the git checkout (not a file, dir or symlink)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(is_git("git://h/r.git#v1"));
        assert!(is_git("git@github.com:o/r.git#main:sub"));
        assert!(is_git("https://h/o/r.git"));
        assert!(is_git("https://h/o/r.git#main"));
        assert!(!is_git("https://h/o/r.tar.gz"));
        assert!(!is_git("https://h/o/r.gitx#a"));
        let s = parse("https://u:secret@h/o/r.git#v1:a/./b").unwrap();
        assert_eq!(s.remote, "https://u:secret@h/o/r.git");
        assert_eq!((s.reference.as_str(), s.subdir.as_str()), ("v1", "a/b"));
        assert_eq!(s.display, "https://u:***@h/o/r.git#v1:a/./b");
        let s = parse("git@h:o/r.git").unwrap();
        assert_eq!(
            (s.remote.as_str(), s.reference.as_str()),
            ("git@h:o/r.git", "")
        );
        assert!(parse("git://h/r.git#main:../x").is_err());
        assert!(parse("git://h/r.git#--upload-pack=x").is_err());
    }

    #[test]
    fn userinfo_is_stripped() {
        assert_eq!(
            strip_userinfo("ADD https://u:secret@h:8/o/r.git#v1 /x"),
            "ADD https://h:8/o/r.git#v1 /x"
        );
        assert_eq!(strip_userinfo("https://tok@h/r.git"), "https://h/r.git");
        assert_eq!(
            strip_userinfo(r#"ADD ["http://a:b@h/r.git", "/x"] http://h/p@q"#),
            r#"ADD ["http://h/r.git", "/x"] http://h/p@q"#
        );
        assert_eq!(strip_userinfo("ssh://git:pw@h/r.git"), "ssh://git@h/r.git");
        assert_eq!(strip_userinfo("ssh://git@h/r.git"), "ssh://git@h/r.git");
        assert_eq!(strip_userinfo("git@h:o/r.git"), "git@h:o/r.git");
        assert_eq!(
            strip_userinfo("[remote \"origin\"]\n\turl = https://u:p@h/r.git\n"),
            "[remote \"origin\"]\n\turl = https://h/r.git\n"
        );
    }

    #[test]
    fn refs_are_picked_like_git() {
        let l = "1111\tHEAD\n2222\trefs/heads/main\n3333\trefs/tags/v1\n4444\trefs/tags/v1^{}\n\
                 5555\trefs/heads/v1\n6666\trefs/tags/light\n";
        let c = |r: &str| pick(l, r).map(|c| (c.sha, c.full_ref.unwrap()));
        assert_eq!(c(""), Some(("1111".into(), "HEAD".into())));
        assert_eq!(c("main"), Some(("2222".into(), "refs/heads/main".into())));
        assert_eq!(c("v1"), Some(("4444".into(), "refs/tags/v1".into())));
        assert_eq!(c("light"), Some(("6666".into(), "refs/tags/light".into())));
        assert_eq!(
            c("refs/heads/v1"),
            Some(("5555".into(), "refs/heads/v1".into()))
        );
        assert_eq!(c("heads/v1"), Some(("5555".into(), "refs/heads/v1".into())));
        assert_eq!(c("nope"), None);
    }
}
