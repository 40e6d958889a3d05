//! The build context directory: confined, read-only access and .containerignore/.dockerignore matching.
//!
//! Every access goes through a cap-std [`Dir`] opened on the context root, so no path, `..` or symlink
//! (absolute or relative) can reach outside it. Paths are context-relative, slash-separated; a leading `/`
//! or `./` means the context root. Ignored paths look absent: [`BuildContext::stat`] says `None`,
//! [`BuildContext::list_dir`] and [`BuildContext::walk`] leave them out and [`BuildContext::read_file`] refuses.

pub mod ignore;
pub mod pattern;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use cap_std::ambient_authority;
use cap_std::fs::{Dir, MetadataExt};

pub use ignore::IgnoreMatcher;
pub use pattern::Pattern;

/// What a path is. Symlinks are reported as such, not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Directory,
    Symlink,
    Other,
}

/// The metadata a build needs about one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: FileKind,
    pub size: u64,
    /// Permission bits and file type bits, as `st_mode`.
    pub mode: u32,
}

/// One path found by [`BuildContext::walk`] or [`BuildContext::glob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Context-relative, slash-separated, no leading `/`.
    pub path: String,
    pub stat: Stat,
}

/// A build context: a directory plus the ignore rules that apply to it.
#[derive(Debug)]
pub struct BuildContext {
    root: Dir,
    root_path: PathBuf,
    ignore: IgnoreMatcher,
}

impl BuildContext {
    /// Open `dir` as a context. `containerfile`, when given, is the build definition's path (absolute or
    /// relative to `dir`); it decides which ignore file applies (see [`ignore::choose_file`]).
    pub fn open(dir: &Path, containerfile: Option<&Path>) -> anyhow::Result<BuildContext> {
        let root = Dir::open_ambient_dir(dir, ambient_authority())
            .with_context(|| format!("opening build context directory {}", dir.display()))?;
        let ignore = IgnoreMatcher::for_build(dir, containerfile)?;
        Ok(BuildContext {
            root,
            root_path: dir.to_path_buf(),
            ignore,
        })
    }

    /// A context with explicit ignore rules (tests, or a caller that parsed them itself).
    pub fn with_ignore(dir: &Path, ignore: IgnoreMatcher) -> anyhow::Result<BuildContext> {
        let root = Dir::open_ambient_dir(dir, ambient_authority())
            .with_context(|| format!("opening build context directory {}", dir.display()))?;
        Ok(BuildContext {
            root,
            root_path: dir.to_path_buf(),
            ignore,
        })
    }

    /// The directory as it was named.
    pub fn root_path(&self) -> &Path {
        &self.root_path
    }

    /// The confined root directory handle, for callers that stream files (open through it, never by path).
    pub fn dir(&self) -> &Dir {
        &self.root
    }

    pub fn ignore(&self) -> &IgnoreMatcher {
        &self.ignore
    }

    /// Whether a context-relative path is excluded by the ignore file.
    pub fn is_ignored(&self, rel: &str, is_dir: bool) -> bool {
        self.ignore.is_ignored(rel, is_dir)
    }

    /// The whole content of a regular file.
    pub fn read_file(&self, rel: &str) -> anyhow::Result<Vec<u8>> {
        let path = confine(rel)?;
        if self.is_ignored(&path, false) {
            anyhow::bail!("{rel}: excluded by {}", self.ignore_name());
        }
        self.root
            .read(as_fs_path(&path))
            .with_context(|| format!("reading {rel} in the build context"))
    }

    /// Open a regular file for streaming.
    pub fn open_file(&self, rel: &str) -> anyhow::Result<cap_std::fs::File> {
        let path = confine(rel)?;
        if self.is_ignored(&path, false) {
            anyhow::bail!("{rel}: excluded by {}", self.ignore_name());
        }
        self.root
            .open(as_fs_path(&path))
            .with_context(|| format!("opening {rel} in the build context"))
    }

    /// Metadata of a path, not following a final symlink. `None` when it does not exist or is ignored.
    pub fn stat(&self, rel: &str) -> anyhow::Result<Option<Stat>> {
        let path = confine(rel)?;
        let md = match self.root.symlink_metadata(as_fs_path(&path)) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("stat {rel} in the build context")),
        };
        let stat = to_stat(&md);
        if self.is_ignored(&path, stat.kind == FileKind::Directory) {
            return Ok(None);
        }
        Ok(Some(stat))
    }

    /// Entries of a directory, sorted by name, ignored entries left out. An ignored directory still lists
    /// what an exception re-includes below it.
    pub fn list_dir(&self, rel: &str) -> anyhow::Result<Vec<(String, FileKind)>> {
        Ok(self
            .list_stats(rel)?
            .into_iter()
            .map(|(n, s)| (n, s.kind))
            .collect())
    }

    /// Every path under `rel` (itself excluded), parents before children, siblings sorted by name. Ignored
    /// paths are left out; an ignored directory is entered only when an exception may re-include something
    /// in it, and then listed only if it does. Symlinks are listed, never followed.
    pub fn walk(&self, rel: &str) -> anyhow::Result<Vec<Entry>> {
        let base = confine(rel)?;
        let mut out = Vec::new();
        self.walk_into(&base, &mut out)?;
        Ok(out)
    }

    /// Paths matching a COPY/ADD source pattern (Go `filepath.Match` per component, `**` across them),
    /// sorted, ignored ones left out. A pattern without wildcards yields the path itself if it exists.
    pub fn glob(&self, pattern: &str) -> anyhow::Result<Vec<Entry>> {
        let cleaned = confine(pattern)?;
        let compiled = Pattern::new(&cleaned)?;
        if compiled.is_literal() {
            return Ok(self
                .stat(&cleaned)?
                .map(|stat| Entry {
                    path: cleaned,
                    stat,
                })
                .into_iter()
                .collect());
        }
        if cleaned.contains("**") {
            let mut all = self.walk("")?;
            all.retain(|e| compiled.matches(&e.path));
            return Ok(all);
        }
        let mut current = vec![String::new()];
        let parts: Vec<&str> = cleaned.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let comp = Pattern::new(part)?;
            let mut next = Vec::new();
            for dir in &current {
                if comp.is_literal() {
                    let p = join(dir, &unescape(part));
                    if let Some(st) = self.stat(&p)?
                        && (last || st.kind == FileKind::Directory)
                    {
                        next.push(p);
                    }
                    continue;
                }
                match self.stat(if dir.is_empty() { "." } else { dir })? {
                    Some(st) if st.kind == FileKind::Directory => {}
                    _ => continue,
                }
                for (name, st) in self.list_stats(dir)? {
                    if comp.matches(&name) && (last || st.kind == FileKind::Directory) {
                        next.push(join(dir, &name));
                    }
                }
            }
            current = next;
        }
        current.sort();
        let mut out = Vec::new();
        for path in current {
            if let Some(stat) = self.stat(&path)? {
                out.push(Entry { path, stat });
            }
        }
        Ok(out)
    }

    fn ignore_name(&self) -> String {
        self.ignore
            .source()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the ignore file".into())
    }

    fn list_stats(&self, rel: &str) -> anyhow::Result<Vec<(String, Stat)>> {
        let dir = confine(rel)?;
        let fs_path = if dir.is_empty() {
            Path::new(".")
        } else {
            as_fs_path(&dir)
        };
        let entries = self
            .root
            .read_dir(fs_path)
            .with_context(|| format!("listing {rel} in the build context"))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {rel} in the build context"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let md = entry
                .metadata()
                .with_context(|| format!("stat {name} in {rel}"))?;
            let stat = to_stat(&md);
            let child = join(&dir, &name);
            let is_dir = stat.kind == FileKind::Directory;
            if self.is_ignored(&child, is_dir) && !(is_dir && self.ignore.must_descend(&child)) {
                continue;
            }
            out.push((name, stat));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn walk_into(&self, dir: &str, out: &mut Vec<Entry>) -> anyhow::Result<()> {
        for (name, stat) in self.list_stats(dir)? {
            let path = join(dir, &name);
            if stat.kind == FileKind::Directory {
                let ignored = self.is_ignored(&path, true);
                let at = out.len();
                self.walk_into(&path, out)?;
                if !ignored || out.len() > at {
                    out.insert(at, Entry { path, stat });
                }
            } else if !self.is_ignored(&path, false) {
                out.push(Entry { path, stat });
            }
        }
        Ok(())
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn as_fs_path(rel: &str) -> &Path {
    if rel.is_empty() {
        Path::new(".")
    } else {
        Path::new(rel)
    }
}

/// Remove `\` escapes from a literal pattern component.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Clean a context-relative path lexically; `""` is the root. Climbing above the root is an error.
pub fn confine(rel: &str) -> anyhow::Result<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    anyhow::bail!(
                        "{rel}: path leaves the build context (hint: every path is relative to the context directory)"
                    );
                }
            }
            p => parts.push(p),
        }
    }
    if parts.iter().any(|p| p.contains('\0')) {
        anyhow::bail!("{rel:?}: a path cannot contain NUL");
    }
    Ok(parts.join("/"))
}

fn to_stat(md: &cap_std::fs::Metadata) -> Stat {
    let ft = md.file_type();
    let kind = if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_dir() {
        FileKind::Directory
    } else if ft.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    };
    Stat {
        kind,
        size: md.len(),
        mode: md.mode(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("src/sub")).unwrap();
        std::fs::create_dir_all(p.join("docs")).unwrap();
        std::fs::write(p.join("src/main.rs"), "fn main() {}").unwrap();
        std::fs::write(p.join("src/sub/lib.rs"), "").unwrap();
        std::fs::write(p.join("src/notes.md"), "n").unwrap();
        std::fs::write(p.join("docs/keep.txt"), "k").unwrap();
        std::fs::write(p.join("docs/drop.txt"), "d").unwrap();
        std::fs::write(p.join("a.txt"), "hello").unwrap();
        std::fs::write(p.join("b.log"), "").unwrap();
        d
    }

    fn ctx(d: &tempfile::TempDir, rules: &str) -> BuildContext {
        BuildContext::with_ignore(d.path(), IgnoreMatcher::parse(rules, None).unwrap()).unwrap()
    }

    #[test]
    fn read_stat_list() {
        let d = tree();
        let c = ctx(&d, "*.log");
        assert_eq!(c.read_file("a.txt").unwrap(), b"hello");
        assert_eq!(c.read_file("/a.txt").unwrap(), b"hello");
        assert_eq!(c.read_file("./src/../a.txt").unwrap(), b"hello");
        let st = c.stat("a.txt").unwrap().unwrap();
        assert_eq!((st.kind, st.size), (FileKind::File, 5));
        assert_eq!(c.stat("src").unwrap().unwrap().kind, FileKind::Directory);
        assert_eq!(c.stat("missing").unwrap(), None);
        assert_eq!(c.stat("b.log").unwrap(), None, "ignored looks absent");
        assert!(c.read_file("b.log").is_err());
        let names: Vec<String> = c
            .list_dir("")
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["a.txt", "docs", "src"]);
        assert_eq!(c.stat("").unwrap().unwrap().kind, FileKind::Directory);
    }

    #[test]
    fn nothing_leaves_the_context() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let d = tree();
        symlink(outside.path().join("secret"), d.path().join("abs-link")).unwrap();
        symlink("../../../../../../etc/passwd", d.path().join("rel-link")).unwrap();
        symlink("a.txt", d.path().join("ok-link")).unwrap();
        let c = ctx(&d, "");
        assert!(c.read_file("../secret").is_err());
        assert!(c.read_file("src/../../x").is_err());
        assert!(c.read_file("abs-link").is_err());
        assert!(c.read_file("rel-link").is_err());
        assert_eq!(c.read_file("ok-link").unwrap(), b"hello");
        assert_eq!(c.stat("abs-link").unwrap().unwrap().kind, FileKind::Symlink);
        assert!(c.stat("../x").is_err());
        assert!(c.list_dir("..").is_err());
    }

    #[test]
    fn walk_respects_ignore_and_exceptions() {
        let d = tree();
        let c = ctx(&d, "docs\n!docs/keep.txt\n**/*.md\nsrc/sub");
        let paths: Vec<String> = c.walk("").unwrap().into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            [
                "a.txt",
                "b.log",
                "docs",
                "docs/keep.txt",
                "src",
                "src/main.rs"
            ]
        );
        let under: Vec<String> = c.walk("src").unwrap().into_iter().map(|e| e.path).collect();
        assert_eq!(under, ["src/main.rs"]);
    }

    #[test]
    fn glob_sources() {
        let d = tree();
        let c = ctx(&d, "b.log");
        let g = |p: &str| {
            c.glob(p)
                .unwrap()
                .into_iter()
                .map(|e| e.path)
                .collect::<Vec<_>>()
        };
        assert_eq!(g("*.txt"), ["a.txt"]);
        assert_eq!(g("*.log"), Vec::<String>::new());
        assert_eq!(g("src/*.rs"), ["src/main.rs"]);
        assert_eq!(g("*/*.txt"), ["docs/drop.txt", "docs/keep.txt"]);
        assert_eq!(g("**/*.rs"), ["src/main.rs", "src/sub/lib.rs"]);
        assert_eq!(g("a.txt"), ["a.txt"]);
        assert_eq!(g("nope"), Vec::<String>::new());
        assert_eq!(g("s?c"), ["src"]);
        assert!(c.glob("../*").is_err());
    }

    #[test]
    fn open_picks_the_ignore_file() {
        let d = tree();
        std::fs::write(d.path().join(".dockerignore"), "a.txt\n").unwrap();
        let c = BuildContext::open(d.path(), None).unwrap();
        assert_eq!(c.stat("a.txt").unwrap(), None);
        std::fs::write(d.path().join("Containerfile.containerignore"), "b.log\n").unwrap();
        let c = BuildContext::open(d.path(), Some(Path::new("Containerfile"))).unwrap();
        assert!(c.stat("a.txt").unwrap().is_some());
        assert_eq!(c.stat("b.log").unwrap(), None);
    }
}
