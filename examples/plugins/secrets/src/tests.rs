use super::*;
use lade_plugin_sdk::MemoryFiles;
use lade_plugin_sdk::scanner::FindingSeverity;

// Planted secrets. Built from pieces so that this source file is not itself a finding.
fn aws_id() -> String {
    format!("AKIA{}", "Q3T7JW5RZP2M4B6X")
}
fn pem_key() -> String {
    format!(
        "-----BEGIN {}PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END {}PRIVATE KEY-----\n",
        "RSA ", "RSA "
    )
}
fn github() -> String {
    format!("gh{}_{}", "p", "a".repeat(20) + &"B7".repeat(8))
}

/// (rule id, location, layer, severity) of each finding.
fn summary(r: &ScanResult) -> Vec<(String, String, String, FindingSeverity)> {
    r.findings
        .iter()
        .map(|f| {
            (
                f.id.clone(),
                f.location.clone().unwrap(),
                f.layer.clone().unwrap(),
                f.severity,
            )
        })
        .collect()
}

#[test]
fn secrets_are_found_in_every_layer_with_their_line_and_layer() {
    let env = format!("# deploy\nexport AWS_ACCESS_KEY_ID={}\n", aws_id());
    let creds = format!(
        "[default]\naws_secret_access_key = {}\n",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKE"
    );
    // The private_key line as GCP writes it (the PEM's newlines are `\n` escapes in JSON).
    let gcp = concat!(
        "{\n  \"type\": \"service_account\",\n",
        "  \"private_key\": \"-----BEGIN PRIVATE KEY-----\\nMIIEvgIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----\\n\"\n}\n"
    );
    let tokens = format!(
        "GITHUB_TOKEN={}\nSLACK={}\nNPM=npm_{}\n",
        github(),
        "xox".to_string() + "b-1234567890-abcdefABCDEF123",
        "c".repeat(36)
    );
    let pem = pem_key();
    let mut files = MemoryFiles::new([
        ("/root/.ssh/id_rsa", 0, false, pem.as_bytes()),
        ("/app/.env", 1, true, env.as_bytes()),
        ("/root/.aws/credentials", 1, true, creds.as_bytes()),
        ("/app/sa.json", 2, true, gcp.as_bytes()),
        ("/app/tokens", 2, true, tokens.as_bytes()),
        ("/etc/os-release", 2, true, &b"ID=debian\n"[..]),
    ]);
    let (result, counts) = scan_files(&mut files, &Allowlist::default(), DEFAULT_MAX_FILE_SIZE);
    use FindingSeverity::{Critical, High};
    let s = |id: &str, loc: &str, layer: u32, sev| {
        (
            format!("secrets/{id}"),
            loc.to_string(),
            format!("sha256:layer{layer}"),
            sev,
        )
    };
    assert_eq!(
        summary(&result),
        [
            s("private-key", "/root/.ssh/id_rsa:1", 0, Critical),
            s("aws-access-key-id", "/app/.env:2", 1, High),
            s(
                "aws-secret-access-key",
                "/root/.aws/credentials:2",
                1,
                Critical
            ),
            s("gcp-service-account-key", "/app/sa.json:3", 2, Critical),
            s("github-token", "/app/tokens:1", 2, High),
            s("slack-token", "/app/tokens:2", 2, High),
            s("npm-token", "/app/tokens:3", 2, High),
        ]
    );
    assert_eq!(counts.scanned, 6);
    // The deleted key says so; no message or detail shows a whole secret.
    assert!(
        result.findings[0]
            .message
            .contains("deleted or replaced by a later layer")
    );
    for f in &result.findings {
        let all = format!("{} {:?}", f.message, f.details);
        assert!(
            !all.contains(&aws_id()) && !all.contains(&github()),
            "{all}"
        );
    }
}

#[test]
fn look_alikes_are_not_secrets() {
    let text = "\
The header -----BEGIN PRIVATE KEY----- starts a PKCS#8 key.\n\
-----BEGIN RSA PRIVATE KEY-----\n...\n\
AKIA is the prefix of AWS key ids; AKIASHORT is not one.\n\
ghp_tooshort and xoxb-abc are no tokens.\n";
    let mut files = MemoryFiles::new([("/usr/share/doc/keys.txt", 0, true, text.as_bytes())]);
    let (result, _) = scan_files(&mut files, &Allowlist::default(), DEFAULT_MAX_FILE_SIZE);
    assert!(result.findings.is_empty(), "{:?}", summary(&result));
}

#[test]
fn the_allowlist_skips_paths_and_drops_matching_lines() {
    let env = format!("A={}\nB={}\n", aws_id(), "AKIAIOSFODNN7EXAMPLE");
    let pem = pem_key();
    let allow = Allowlist::parse("/srv/fixtures/**\nAKIA[A-Z0-9]{9}EXAMPLE\n").unwrap();
    let mut files = MemoryFiles::new([
        ("/srv/fixtures/test.pem", 0, true, pem.as_bytes()),
        ("/app/.env", 0, true, env.as_bytes()),
    ]);
    let (result, counts) = scan_files(&mut files, &allow, DEFAULT_MAX_FILE_SIZE);
    assert_eq!(
        summary(&result)
            .into_iter()
            .map(|f| f.1)
            .collect::<Vec<_>>(),
        ["/app/.env:1"]
    );
    assert_eq!(counts.allowlisted, 2);
}

#[test]
fn binary_and_large_files_are_skipped() {
    let pem = pem_key();
    let mut binary = b"\x7fELF\0\0\0".to_vec();
    binary.extend_from_slice(pem.as_bytes());
    let mut large = pem.clone().into_bytes();
    large.extend(std::iter::repeat_n(b'x', 200));
    let mut files = MemoryFiles::new([
        ("/bin/tool", 0, true, &binary[..]),
        ("/big.txt", 0, true, &large[..]),
        ("/small.txt", 0, true, pem.as_bytes()),
    ]);
    let (result, counts) = scan_files(&mut files, &Allowlist::default(), pem.len() + 100);
    assert_eq!(summary(&result).len(), 1);
    assert_eq!(result.findings[0].location.as_deref(), Some("/small.txt:1"));
    assert_eq!((counts.binary, counts.too_large, counts.scanned), (1, 1, 1));
}

#[test]
fn the_size_option_is_checked() {
    let kv = |v: &str| {
        vec![KeyValue {
            key: "max-file-size".into(),
            value: v.into(),
        }]
    };
    assert_eq!(max_file_size(&[]), Ok(DEFAULT_MAX_FILE_SIZE));
    assert_eq!(max_file_size(&kv("4096")), Ok(4096));
    assert!(
        max_file_size(&kv("4k"))
            .unwrap_err()
            .contains("expected a number of bytes")
    );
}

/// The prefilter only skips rules that cannot match: over a sample of every rule (in other cases too), the
/// hits are those of running every rule's expression.
#[test]
fn the_literal_prefilter_loses_no_match() {
    let samples = [
        pem_key(),
        format!(
            "{}\nAAAAB3NzaC1yc2EAAAADAQABAAABAQ\n",
            "-----BEGIN OPENSSH PRIVATE KEY-----"
        ),
        "{\"private_key\" : \"-----BEGIN RSA PRIVATE KEY-----\\nMIIEvgIBADANBgkqhkiG9w0B\"".into(),
        format!("{}-2: ssh-rsa\n", "PuTTY-User-Key-File"),
        format!(
            "AWS_Secret_AccessKey: \"{}\"\n",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKE"
        ),
        format!(
            "awssecretaccesskey={}\n",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKE"
        ),
        format!("id {} and AS{}\n", aws_id(), "IAQ3T7JW5RZP2M4B6X"),
        github(),
        format!("github_pat_{}", "x".repeat(82)),
        format!("xoxp-{}-{}", "123456789", "abcdef-123"),
        format!(
            "https://hooks.{}/services/T0123456/B0123456/{}",
            "slack.com",
            "a".repeat(24)
        ),
        format!("rk_live_{} sk_live_{}", "a".repeat(24), "b".repeat(30)),
        format!("glpat-{}", "c".repeat(20)),
        format!("npm_{}", "d".repeat(36)),
        format!("pypi-AgEIcHlwaS5vcmc{}", "e".repeat(60)),
        format!("AIza{}", "f".repeat(35)),
        // Near misses in case: the case-sensitive rules must not match, the AWS secret rule must.
        format!("akia{} GHP_{}", "Q3T7JW5RZP2M4B6X", "a".repeat(36)),
    ];
    let rules = rules::Rules::new();
    let every = vec![true; rules.rules.len()];
    let mut seen = std::collections::BTreeSet::new();
    for text in &samples {
        let hits = rules::find(&rules, text);
        assert_eq!(hits, rules::find_with(&rules, text, &every), "{text}");
        seen.extend(hits.iter().map(|h| rules.rules[h.rule].id));
    }
    let all: std::collections::BTreeSet<_> = rules.rules.iter().map(|r| r.id).collect();
    assert_eq!(seen, all, "every rule has a sample that it finds");
}
