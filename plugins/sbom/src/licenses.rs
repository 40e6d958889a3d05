//! License names as packages give them (Debian's DEP-5 short names, apk's, Python's and npm's fields) turned
//! into SPDX expressions. Ids on the SPDX list stay; any other name becomes `LicenseRef-<name>`, which the
//! SPDX document declares.

/// Debian short names (DEP-5) and other common spellings, with their SPDX ids.
const ALIASES: &[(&str, &str)] = &[
    ("GPL-1", "GPL-1.0-only"),
    ("GPL-1+", "GPL-1.0-or-later"),
    ("GPL-2", "GPL-2.0-only"),
    ("GPL-2+", "GPL-2.0-or-later"),
    ("GPL-3", "GPL-3.0-only"),
    ("GPL-3+", "GPL-3.0-or-later"),
    ("LGPL-2", "LGPL-2.0-only"),
    ("LGPL-2+", "LGPL-2.0-or-later"),
    ("LGPL-2.1", "LGPL-2.1-only"),
    ("LGPL-2.1+", "LGPL-2.1-or-later"),
    ("LGPL-3", "LGPL-3.0-only"),
    ("LGPL-3+", "LGPL-3.0-or-later"),
    ("AGPL-3", "AGPL-3.0-only"),
    ("AGPL-3+", "AGPL-3.0-or-later"),
    ("GFDL-1.2", "GFDL-1.2-only"),
    ("GFDL-1.2+", "GFDL-1.2-or-later"),
    ("GFDL-1.3", "GFDL-1.3-only"),
    ("GFDL-1.3+", "GFDL-1.3-or-later"),
    ("Apache-2", "Apache-2.0"),
    ("Apache 2.0", "Apache-2.0"),
    ("BSD-2-clause", "BSD-2-Clause"),
    ("BSD-3-clause", "BSD-3-Clause"),
    ("BSD-4-clause", "BSD-4-Clause"),
    ("Expat", "MIT"),
    ("MIT License", "MIT"),
    ("BSD License", "BSD-3-Clause"),
    ("public-domain", "LicenseRef-public-domain"),
    ("Artistic", "Artistic-1.0-Perl"),
    ("MPL-2", "MPL-2.0"),
    ("zlib", "Zlib"),
    ("ISC License", "ISC"),
];

/// SPDX list ids lade recognises as they are.
const KNOWN: &[&str] = &[
    "0BSD",
    "AFL-2.1",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-1.1",
    "Apache-2.0",
    "Artistic-1.0",
    "Artistic-1.0-Perl",
    "Artistic-2.0",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD-4-Clause",
    "BSL-1.0",
    "bzip2-1.0.6",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "CDDL-1.0",
    "EPL-1.0",
    "EPL-2.0",
    "GFDL-1.2-only",
    "GFDL-1.2-or-later",
    "GFDL-1.3-only",
    "GFDL-1.3-or-later",
    "GPL-1.0-only",
    "GPL-1.0-or-later",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "ISC",
    "LGPL-2.0-only",
    "LGPL-2.0-or-later",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "MIT",
    "MIT-0",
    "MPL-1.1",
    "MPL-2.0",
    "OpenSSL",
    "PSF-2.0",
    "Python-2.0",
    "Ruby",
    "Unicode-DFS-2016",
    "Unicode-3.0",
    "Unlicense",
    "W3C",
    "WTFPL",
    "X11",
    "Zlib",
    "curl",
    "libtiff",
    "OLDAP-2.8",
    "GPL-2.0-with-classpath-exception",
    "BlueOak-1.0.0",
    "Beerware",
    "HPND",
    "NTP",
    "PostgreSQL",
];

/// One license name as an SPDX id, or a `LicenseRef-` made from it.
pub fn id(name: &str) -> String {
    let name = name.trim().trim_matches(|c| c == '(' || c == ')');
    if let Some((_, spdx)) = ALIASES.iter().find(|(a, _)| a.eq_ignore_ascii_case(name)) {
        return spdx.to_string();
    }
    if let Some(k) = KNOWN.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        return k.to_string();
    }
    if name.starts_with("LicenseRef-") {
        return name.to_string();
    }
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("LicenseRef-{}", clean.trim_matches('-'))
}

/// A license field (`GPL-2+ or Artistic`, `MIT AND (BSD-2-Clause OR ISC)`, `GPL-2+ with X exception`)
/// as an SPDX expression; `with` exceptions are folded into the license ref.
pub fn expression(field: &str) -> Option<String> {
    let field = field.lines().next().unwrap_or_default().trim();
    if field.is_empty()
        || field.eq_ignore_ascii_case("unknown")
        || field.eq_ignore_ascii_case("UNKNOWN")
    {
        return None;
    }
    let mut out = Vec::new();
    let mut current = Vec::new();
    let flush = |current: &mut Vec<&str>, out: &mut Vec<String>| {
        if !current.is_empty() {
            out.push(id(&current.join(" ")));
            current.clear();
        }
    };
    for word in field.split_whitespace() {
        match word.to_ascii_lowercase().trim_end_matches(',') {
            "or" | "|" => {
                flush(&mut current, &mut out);
                out.push("OR".into());
            }
            "and" | "&" => {
                flush(&mut current, &mut out);
                out.push("AND".into());
            }
            _ => current.push(word.trim_end_matches(',')),
        }
    }
    flush(&mut current, &mut out);
    // Drop dangling operators (a field like `GPL-2+ or`).
    while out.last().is_some_and(|w| w == "OR" || w == "AND") {
        out.pop();
    }
    while out.first().is_some_and(|w| w == "OR" || w == "AND") {
        out.remove(0);
    }
    let mut expr = Vec::new();
    for w in out {
        let op = w == "OR" || w == "AND";
        if op
            && expr
                .last()
                .is_some_and(|l: &String| l == "OR" || l == "AND")
        {
            continue;
        }
        expr.push(w);
    }
    (!expr.is_empty()).then(|| expr.join(" "))
}

/// Several expressions that all apply, joined with AND (each parenthesised when compound).
pub fn all_of(exprs: &[String]) -> Option<String> {
    let mut seen: Vec<&String> = Vec::new();
    for e in exprs {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    match seen.len() {
        0 => None,
        1 => Some(seen[0].clone()),
        _ => Some(
            seen.iter()
                .map(|e| {
                    if e.contains(' ') {
                        format!("({e})")
                    } else {
                        e.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" AND "),
        ),
    }
}

/// The `LicenseRef-` ids an expression uses.
pub fn refs(expr: &str) -> Vec<String> {
    expr.split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| w.starts_with("LicenseRef-"))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_names_become_spdx() {
        assert_eq!(
            expression("GPL-2+ or Artistic").unwrap(),
            "GPL-2.0-or-later OR Artistic-1.0-Perl"
        );
        assert_eq!(
            expression("MIT AND BSD-2-Clause").unwrap(),
            "MIT AND BSD-2-Clause"
        );
        assert_eq!(
            expression("Custom thing").unwrap(),
            "LicenseRef-Custom-thing"
        );
        assert_eq!(expression("unknown"), None);
        assert_eq!(
            all_of(&["MIT".into(), "A OR B".into(), "MIT".into()]).unwrap(),
            "MIT AND (A OR B)"
        );
    }
}
