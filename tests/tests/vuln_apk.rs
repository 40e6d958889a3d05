//! The vuln plugin's apk version order against apk-tools' own published vectors (Debian has no apk):
//! tests/fixtures/apk/version.data, unchanged from apk-tools (its source is named in SOURCE.md there).

use lade_vuln::version::Scheme;
use std::cmp::Ordering;

#[test]
fn apk_order_agrees_with_apk_tools_vectors() {
    let data = include_str!("../fixtures/apk/version.data");
    let mut checked = 0;
    let mut wrong = Vec::new();
    for line in data.lines() {
        let case = line.split('#').next().unwrap().trim();
        if case.is_empty() {
            continue;
        }
        let parts: Vec<&str> = case.split_whitespace().collect();
        let [a, op, b] = parts[..] else {
            panic!("unreadable vector line {line:?}");
        };
        let want = match op {
            "<" => Ordering::Less,
            "=" => Ordering::Equal,
            ">" => Ordering::Greater,
            _ => panic!("unknown operator in {line:?}"),
        };
        for (x, y, w) in [(a, b, want), (b, a, want.reverse())] {
            let got = Scheme::Apk.compare(x, y).unwrap();
            if got != w {
                wrong.push(format!("{x} {y}: got {got:?}, apk-tools says {w:?}"));
            }
        }
        checked += 1;
    }
    assert!(checked > 700, "only {checked} vectors read");
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
