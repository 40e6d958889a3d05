//! The vuln plugin's version orders (plugins/vuln/src/version) against the real tools: dpkg
//! --compare-versions, rpm's own `rpm.vercmp`, Python's packaging.version and npm's semver package. Each
//! ecosystem gets 1,500 generated pairs, half of them near-misses of each other (one choice re-rolled), so
//! the rules for `~`, `^`, epochs, pre-releases and revisions are exercised, not just the first digit.
//! apk has no tool in Debian: apk-tools' own vectors are checked in vuln_apk.rs.

use lade_tests::{peer, peers_required};
use lade_vuln::version::Scheme;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const PAIRS: usize = 1500;

/// A seeded generator whose choices can be replayed with a few of them re-rolled: the second version of a
/// pair is the first one slightly changed.
struct Chooser {
    state: u64,
    replay: Vec<u64>,
    record: Vec<u64>,
    reroll_percent: u64,
}

impl Chooser {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick(&mut self, n: usize) -> usize {
        let fresh = self.next();
        let roll = self.next() % 100;
        let raw = match self.replay.get(self.record.len()) {
            Some(&old) if roll >= self.reroll_percent => old,
            _ => fresh,
        };
        self.record.push(raw);
        (raw % n as u64) as usize
    }

    fn one<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.pick(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.pick(100) < percent
    }

    fn num(&mut self, max: usize) -> String {
        self.pick(max + 1).to_string()
    }
}

/// `count` pairs from `gen`, seeded: half independent, half near-misses.
fn pairs(seed: u64, count: usize, generate: fn(&mut Chooser) -> String) -> Vec<(String, String)> {
    let mut c = Chooser {
        state: seed,
        replay: Vec::new(),
        record: Vec::new(),
        reroll_percent: 100,
    };
    (0..count)
        .map(|i| {
            c.replay.clear();
            c.record.clear();
            c.reroll_percent = 100;
            let a = generate(&mut c);
            c.replay = std::mem::take(&mut c.record);
            c.reroll_percent = if i % 2 == 0 { 100 } else { 12 };
            let b = generate(&mut c);
            (a, b)
        })
        .collect()
}

fn dpkg_version(c: &mut Chooser) -> String {
    let mut v = String::new();
    if c.chance(20) {
        v += &format!("{}:", c.num(2));
    }
    v += &c.num(12);
    for _ in 0..c.pick(4) {
        v += c.one(&[".", ".", ".", "+", "~"]);
        v += &match c.pick(4) {
            0 => c.one(&["a", "b", "rc", "dfsg", "git", "pre"]).to_string() + &c.num(3),
            1 => format!("0{}", c.num(9)),
            _ => c.num(20),
        };
    }
    if c.chance(25) {
        v += c.one(&["a", "b", "~", "~~", "+", "~rc1", "+b1", "z"]);
    }
    if c.chance(60) {
        v += "-";
        v += &c.num(5);
        if c.chance(40) {
            v += c.one(&["ubuntu", "+deb12u", "~bpo11+", ".", "~", "build", "+really"]);
            v += &c.num(3);
        }
    }
    v
}

fn rpm_version(c: &mut Chooser) -> String {
    let mut v = String::new();
    if c.chance(15) {
        v += &format!("{}:", c.num(2));
    }
    v += &c.num(12);
    for _ in 0..c.pick(4) {
        v += c.one(&[".", ".", ".", "_", "+", "~", "^", ""]);
        v += &match c.pick(4) {
            0 => {
                c.one(&["a", "b", "rc", "git", "beta", "p", "post"])
                    .to_string()
                    + &c.num(3)
            }
            1 => format!("0{}", c.num(9)),
            _ => c.num(20),
        };
    }
    if c.chance(20) {
        v += c.one(&["~", "^", "~rc1", "^git1", "a", "z", "."]);
    }
    if c.chance(75) {
        v += "-";
        v += &c.num(5);
        if c.chance(50) {
            v += c.one(&[".el", ".fc", ".", "~", "^", ".module+el8."]);
            v += &c.num(9);
        }
    }
    v
}

fn pep440_version(c: &mut Chooser) -> String {
    let mut v = String::new();
    if c.chance(10) {
        v += &format!("{}!", c.num(2));
    }
    v += &c.num(10);
    for _ in 0..c.pick(4) {
        v += &format!(".{}", c.num(12));
    }
    if c.chance(35) {
        v += c.one(&["a", "b", "rc", "alpha", "beta", "c", "pre", "-rc", ".a"]);
        v += &c.num(3);
    }
    if c.chance(25) {
        v += c.one(&[".post", "-post", ".post", "post", "-"]);
        v += &c.num(3);
    }
    if c.chance(25) {
        v += c.one(&[".dev", "dev", "-dev"]);
        v += &c.num(3);
    }
    if c.chance(15) {
        v += "+";
        v += c.one(&["ubuntu", "1", "abc", "local.7", "2.a", "cpu"]);
        if c.chance(50) {
            v += &format!(".{}", c.num(5));
        }
    }
    v
}

fn prerelease(c: &mut Chooser) -> String {
    let mut ids = Vec::new();
    for _ in 0..=c.pick(3) {
        ids.push(match c.pick(3) {
            0 => c.num(12),
            _ => c
                .one(&["alpha", "beta", "rc", "x-y", "a1", "pre", "0a", "B"])
                .to_string(),
        });
    }
    ids.join(".")
}

fn semver_version(c: &mut Chooser) -> String {
    let mut v = format!("{}.{}.{}", c.num(4), c.num(5), c.num(5));
    if c.chance(45) {
        v += &format!("-{}", prerelease(c));
    }
    if c.chance(15) {
        v += c.one(&["+build.1", "+sha.5114f85", "+001", "+exp.sha.5114f85"]);
    }
    v
}

fn npm_version(c: &mut Chooser) -> String {
    let prefix = c.one(&["", "", "", "v", " "]);
    format!("{prefix}{}", semver_version(c))
}

fn go_version(c: &mut Chooser) -> String {
    let (major, minor, patch) = (c.pick(4), c.pick(4), c.pick(4));
    let stamp = format!(
        "20{:02}{:02}{:02}{:06}",
        18 + c.pick(6),
        1 + c.pick(12),
        1 + c.pick(28),
        c.pick(999_999)
    );
    let hash = c.one(&["daa7c04131f5", "abcdef123456", "0123456789ab"]);
    let mut v = match c.pick(5) {
        // Pseudo-versions: no base, base with a pre-release, base release.
        0 => format!("v{major}.0.0-{stamp}-{hash}"),
        1 => format!(
            "v{major}.{minor}.{patch}-{}.0.{stamp}-{hash}",
            c.one(&["rc.1", "pre", "beta.2"])
        ),
        2 => format!("v{major}.{minor}.{}-0.{stamp}-{hash}", patch + 1),
        _ if c.chance(20) => format!("v{major}.{minor}.{patch}-{}", prerelease(c)),
        _ => format!("v{major}.{minor}.{patch}"),
    };
    if major >= 2 && c.chance(30) {
        v += "+incompatible";
    }
    v
}

/// Runs `program args` with one `A<TAB>B` pair per stdin line; it prints -1, 0 or 1 per line.
fn oracle(program: &str, args: &[&str], pairs: &[(String, String)]) -> Vec<i32> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    let mut input = String::new();
    for (a, b) in pairs {
        input += &format!("{a}\t{b}\n");
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_results(&String::from_utf8_lossy(&out.stdout), pairs.len())
}

fn parse_results(text: &str, expected: usize) -> Vec<i32> {
    let results: Vec<i32> = text
        .split_whitespace()
        .map(|t| {
            t.parse::<i32>()
                .unwrap_or_else(|_| panic!("oracle printed {t:?}"))
                .signum()
        })
        .collect();
    assert_eq!(
        results.len(),
        expected,
        "the oracle answered {} of {expected} pairs",
        results.len()
    );
    results
}

fn check(scheme: Scheme, pairs: &[(String, String)], expected: &[i32]) {
    let mut wrong = Vec::new();
    for ((a, b), want) in pairs.iter().zip(expected) {
        let got = scheme
            .compare(a, b)
            .unwrap_or_else(|e| panic!("{scheme:?}: {e}")) as i32;
        if got != *want {
            wrong.push(format!("{a:?} vs {b:?}: lade {got}, oracle {want}"));
        }
    }
    let distinct = expected
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert_eq!(
        distinct, 3,
        "{scheme:?}: the generated pairs must give <, = and > answers"
    );
    assert!(
        wrong.is_empty(),
        "{scheme:?}: {} of {} pairs differ:\n{}",
        wrong.len(),
        pairs.len(),
        wrong.join("\n")
    );
}

#[test]
fn dpkg_order_matches_dpkg_compare_versions() {
    if peer("dpkg").is_none() {
        return;
    }
    let pairs = pairs(0x5EED_D9C6, PAIRS, dpkg_version);
    let script = r#"while IFS="$(printf '\t')" read -r a b; do
        if dpkg --compare-versions "$a" lt "$b"; then echo -1;
        elif dpkg --compare-versions "$a" eq "$b"; then echo 0; else echo 1; fi; done"#;
    check(Scheme::Dpkg, &pairs, &oracle("sh", &["-c", script], &pairs));
}

#[test]
fn rpm_order_matches_rpm_vercmp() {
    if peer("rpm").is_none() {
        return;
    }
    let pairs = pairs(0x5EED_0A9A, PAIRS, rpm_version);
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("pairs");
    let text: String = pairs.iter().map(|(a, b)| format!("{a}\t{b}\n")).collect();
    std::fs::write(&list, text).unwrap();
    let lua = format!(
        "%{{lua: for l in io.lines('{}') do local a, b = l:match('^(.-)\\t(.*)$'); print(rpm.vercmp(a, b) .. '\\n') end}}",
        list.display()
    );
    let out = Command::new("rpm").args(["--eval", &lua]).output().unwrap();
    assert!(
        out.status.success(),
        "rpm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    check(
        Scheme::Rpm,
        &pairs,
        &parse_results(&String::from_utf8_lossy(&out.stdout), pairs.len()),
    );
}

#[test]
fn pep440_order_matches_python_packaging() {
    let Some(python) = peer("python3") else {
        return;
    };
    let probe = Command::new(&python)
        .args(["-c", "import packaging.version"])
        .output()
        .unwrap();
    if !probe.status.success() {
        assert!(
            !peers_required(),
            "python3's packaging is missing and LADE_REQUIRE_PEERS=1: run scripts/setup.sh"
        );
        eprintln!("SKIPPED: python3's packaging module is missing (scripts/setup.sh installs it)");
        return;
    }
    let pairs = pairs(0x5EED_B1B1, PAIRS, pep440_version);
    let script = "import sys\nfrom packaging.version import Version\nfor line in sys.stdin:\n    a, b = line.rstrip('\\n').split('\\t')\n    a, b = Version(a), Version(b)\n    print((a > b) - (a < b))\n";
    check(
        Scheme::Pep440,
        &pairs,
        &oracle(python.to_str().unwrap(), &["-c", script], &pairs),
    );
}

/// The directory holding node_modules/semver (scripts/setup.sh installs it there).
fn node_semver() -> Option<PathBuf> {
    peer("node")?;
    let dir = std::env::var_os("LADE_ORACLES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/local/lib/lade-oracles"));
    let module = dir.join("node_modules/semver");
    if module.join("package.json").is_file() {
        return Some(module);
    }
    assert!(
        !peers_required(),
        "npm's semver is missing from {} and LADE_REQUIRE_PEERS=1: run scripts/setup.sh",
        dir.display()
    );
    eprintln!(
        "SKIPPED: npm's semver package is missing from {} (scripts/setup.sh installs it)",
        dir.display()
    );
    None
}

fn node_compare(module: &std::path::Path, pairs: &[(String, String)]) -> Vec<i32> {
    let script = format!(
        "const s = require({:?}); const lines = require('fs').readFileSync(0, 'utf8').split('\\n').filter(l => l);\n\
         console.log(lines.map(l => {{ const [a, b] = l.split('\\t'); return s.compare(a, b); }}).join('\\n'));",
        module.display().to_string()
    );
    oracle("node", &["-e", &script], pairs)
}

#[test]
fn npm_semver_and_go_orders_match_node_semver() {
    let Some(module) = node_semver() else { return };
    for (scheme, seed, generate) in [
        (
            Scheme::Npm,
            0x5EED_0E01,
            npm_version as fn(&mut Chooser) -> String,
        ),
        (Scheme::SemVer, 0x5EED_5E5E, semver_version),
        // Go module versions are SemVer with a `v`; pseudo-versions are pre-releases, +incompatible is build
        // metadata, so node's semver (which accepts the `v`) orders them as Go does.
        (Scheme::Go, 0x5EED_0060, go_version),
    ] {
        let pairs = pairs(seed, PAIRS, generate);
        check(scheme, &pairs, &node_compare(&module, &pairs));
    }
}
