//! What a secret looks like: one rule per kind, each a regular expression chosen for high confidence (a
//! distinctive prefix or structure), so that an ordinary system image reports nothing.
//!
//! Speed: a plugin instance is fresh on every scan, so compiling all the regular expressions up front cost
//! more than the scan itself. Each rule names literals that every one of its matches contains; one
//! Aho-Corasick pass per file finds which rules can match at all, and only those rules' expressions are
//! compiled (once per scan) and run. The findings are the same as running every expression on every file.

use aho_corasick::AhoCorasick;
use lade_plugin_sdk::scanner::FindingSeverity;
use regex_lite::Regex;
use std::sync::OnceLock;

/// One kind of secret.
pub struct Rule {
    /// The finding id is `secrets/<id>`.
    pub id: &'static str,
    pub severity: FindingSeverity,
    pub description: &'static str,
    /// The regular expression, as written.
    pub source: &'static str,
    /// Literals at least one of which occurs in every match (ASCII case-insensitively when
    /// `case_insensitive`), so a text without any of them cannot match.
    pub literals: &'static [&'static str],
    pub case_insensitive: bool,
    compiled: OnceLock<Regex>,
    /// A PEM block: reported only when a base64 body follows the header, so documentation that merely
    /// mentions `-----BEGIN PRIVATE KEY-----` is not a finding.
    pub needs_pem_body: bool,
}

impl Rule {
    /// The compiled expression, compiled on first use.
    pub fn pattern(&self) -> &Regex {
        self.compiled.get_or_init(|| {
            Regex::new(self.source).expect("the built-in rules are valid regular expressions")
        })
    }
}

/// A secret found in a text: the rule, the byte range of the match and its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub rule: usize,
    pub start: usize,
    pub end: usize,
    pub line: u32,
}

/// The rules, most specific first: a match that overlaps an earlier rule's match is not reported again
/// (the PEM header inside a GCP service-account key is that key, not a second finding).
pub fn rules() -> Vec<Rule> {
    use FindingSeverity::{Critical, High, Medium};
    let rule = |id, severity, description, source, needs_pem_body| Rule {
        id,
        severity,
        description,
        source,
        literals: &[],
        case_insensitive: false,
        compiled: OnceLock::new(),
        needs_pem_body,
    };
    let mut rules = vec![
        rule(
            "gcp-service-account-key",
            Critical,
            "GCP service-account private key",
            r#""private_key"\s*:\s*"-----BEGIN (?:RSA )?PRIVATE KEY-----\\n[A-Za-z0-9+/=]{20,}"#,
            false,
        ),
        rule(
            "private-key",
            Critical,
            "private key",
            r"-----BEGIN (?:RSA |DSA |EC |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----",
            true,
        ),
        rule(
            "putty-private-key",
            Critical,
            "PuTTY private key",
            r"(?m)^PuTTY-User-Key-File-[23]: ",
            false,
        ),
        rule(
            "aws-secret-access-key",
            Critical,
            "AWS secret access key",
            r#"(?i)aws_?secret_?access_?key["']?\s*[:=]\s*["']?[A-Za-z0-9/+]{40}\b"#,
            false,
        ),
        rule(
            "aws-access-key-id",
            High,
            "AWS access key id",
            r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",
            false,
        ),
        rule(
            "github-token",
            High,
            "GitHub token",
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})\b",
            false,
        ),
        rule(
            "slack-token",
            High,
            "Slack token",
            r"\bxox[abposr]-[0-9]{6,}-[0-9A-Za-z-]{6,}",
            false,
        ),
        rule(
            "slack-webhook",
            Medium,
            "Slack incoming-webhook URL",
            r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,}",
            false,
        ),
        rule(
            "stripe-secret-key",
            High,
            "Stripe live secret key",
            r"\b[rs]k_live_[0-9A-Za-z]{24,}\b",
            false,
        ),
        rule(
            "gitlab-token",
            High,
            "GitLab personal access token",
            r"\bglpat-[0-9A-Za-z_-]{20}\b",
            false,
        ),
        rule(
            "npm-token",
            High,
            "npm access token",
            r"\bnpm_[A-Za-z0-9]{36}\b",
            false,
        ),
        rule(
            "pypi-token",
            High,
            "PyPI API token",
            r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}",
            false,
        ),
        rule(
            "google-api-key",
            Medium,
            "Google API key",
            r"\bAIza[0-9A-Za-z_-]{35}\b",
            false,
        ),
    ];
    for r in &mut rules {
        r.literals = literals(r.id);
        r.case_insensitive = r.id == "aws-secret-access-key";
    }
    rules
}

/// The literals of each rule (see [`Rule::literals`]); a test checks each rule's matches contain one.
fn literals(id: &str) -> &'static [&'static str] {
    match id {
        "gcp-service-account-key" => &["\"private_key\""],
        "private-key" => &["PRIVATE KEY"],
        "putty-private-key" => &["PuTTY-User-Key-File-"],
        "aws-secret-access-key" => &["aws"],
        "aws-access-key-id" => &["AKIA", "ASIA"],
        "github-token" => &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
        "slack-token" => &["xox"],
        "slack-webhook" => &["https://hooks.slack.com/services/"],
        "stripe-secret-key" => &["k_live_"],
        "gitlab-token" => &["glpat-"],
        "npm-token" => &["npm_"],
        "pypi-token" => &["pypi-AgEIcHlwaS5vcmc"],
        "google-api-key" => &["AIza"],
        _ => &[],
    }
}

/// The rules and the prefilter over their literals.
pub struct Rules {
    pub rules: Vec<Rule>,
    prefilter: AhoCorasick,
    /// For each pattern of `prefilter`: the literal and the rule it belongs to.
    literal: Vec<&'static str>,
    owner: Vec<usize>,
}

impl Rules {
    pub fn new() -> Rules {
        let rules = rules();
        let (mut literal, mut owner) = (Vec::new(), Vec::new());
        for (i, r) in rules.iter().enumerate() {
            for lit in r.literals {
                literal.push(*lit);
                owner.push(i);
            }
        }
        // Case-insensitive for all; a case-sensitive literal's hit is checked exactly in `candidates`.
        let prefilter = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&literal)
            .expect("the built-in literals build an automaton");
        Rules {
            rules,
            prefilter,
            literal,
            owner,
        }
    }

    /// Which rules can match `text`: those with one of their literals in it.
    fn candidates(&self, text: &str) -> Vec<bool> {
        let mut wanted = vec![false; self.rules.len()];
        for m in self.prefilter.find_overlapping_iter(text) {
            let rule = self.owner[m.pattern().as_usize()];
            if wanted[rule] {
                continue;
            }
            let exact = self.literal[m.pattern().as_usize()].as_bytes();
            wanted[rule] =
                self.rules[rule].case_insensitive || exact == &text.as_bytes()[m.start()..m.end()];
        }
        wanted
    }
}

impl Default for Rules {
    fn default() -> Self {
        Rules::new()
    }
}

/// Every secret in `text`, in the order they appear.
pub fn find(rules: &Rules, text: &str) -> Vec<Hit> {
    find_with(rules, text, &rules.candidates(text))
}

/// Every match in `text` of the rules `wanted` marks.
pub(crate) fn find_with(rules: &Rules, text: &str, wanted: &[bool]) -> Vec<Hit> {
    let mut kept: Vec<Hit> = Vec::new();
    for (index, rule) in rules.rules.iter().enumerate() {
        if !wanted[index] {
            continue;
        }
        for m in rule.pattern().find_iter(text) {
            if rule.needs_pem_body && !pem_body_follows(&text[m.end()..]) {
                continue;
            }
            if kept.iter().any(|h| h.start < m.end() && m.start() < h.end) {
                continue;
            }
            kept.push(Hit {
                rule: index,
                start: m.start(),
                end: m.end(),
                line: 0,
            });
        }
    }
    kept.sort_by_key(|h| h.start);
    // Line numbers in one pass over the text.
    let (mut line, mut at) = (1u32, 0usize);
    for h in &mut kept {
        line += text.as_bytes()[at..h.start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u32;
        at = h.start;
        h.line = line;
    }
    kept
}

/// Whether a PEM body starts on the lines after a header: optional `Name: value` headers and a blank line,
/// then a line of base64.
fn pem_body_follows(rest: &str) -> bool {
    let mut lines = rest.lines().skip(1).map(str::trim);
    lines
        .find(|l| !l.is_empty() && !l.contains(": "))
        .is_some_and(|l| {
            l.len() >= 20
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        })
}

/// A secret as it may be shown: its first four characters and its length.
pub fn redact(secret: &str) -> String {
    let shown: String = secret.chars().take(4).collect();
    format!("{shown}… ({} characters)", secret.chars().count())
}
