//! Where the database keeps things: `metadata.json`, and one JSON-lines file of OSV records per
//! ecosystem and package, `ecosystems/<ecosystem>/<package>.jsonl`. Names are escaped so any ecosystem or
//! package name (`Alpine:v3.20`, `@scope/pkg`, `github.com/a/b`) is one safe path component. The vuln
//! plugin computes the same paths (plugins/vuln/src/db.rs).

use std::path::PathBuf;

pub const METADATA: &str = "metadata.json";
pub const ECOSYSTEMS: &str = "ecosystems";

/// Percent-encodes every byte but ASCII letters, digits, `-`, `_` and a `.` that does not start the name.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The records file of one package, relative to the database directory.
pub fn package_file(ecosystem: &str, package: &str) -> PathBuf {
    PathBuf::from(ECOSYSTEMS)
        .join(escape(ecosystem))
        .join(format!("{}.jsonl", escape(package)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_one_safe_component() {
        assert_eq!(escape("Alpine:v3.20"), "Alpine%3Av3.20");
        assert_eq!(escape("@scope/pkg"), "%40scope%2Fpkg");
        assert_eq!(escape(".."), "%2E.");
        assert_eq!(escape("a b%"), "a%20b%25");
        assert_eq!(
            package_file("Debian:12", "openssl"),
            PathBuf::from("ecosystems/Debian%3A12/openssl.jsonl")
        );
    }
}
