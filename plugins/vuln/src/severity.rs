//! A record's severity: the highest CVSS base score among its v3.x and v4 vectors (computed by the `cvss`
//! crate), else the severity word its database gives (`database_specific.severity`, GitHub's `MODERATE`
//! included, or Debian's `urgency`), else unknown.

use lade_plugin_sdk::scanner::FindingSeverity;
use serde_json::Value;
use std::str::FromStr;

/// The severity and, when a vector gave it, the score.
pub fn of(record: &Value, affected: &Value) -> (FindingSeverity, Option<f64>) {
    let vectors = [record.get("severity"), affected.get("severity")];
    let mut best: Option<f64> = None;
    for entry in vectors
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
    {
        let Some(vector) = entry.get("score").and_then(Value::as_str) else {
            continue;
        };
        let score = match entry.get("type").and_then(Value::as_str) {
            Some("CVSS_V3") => cvss::v3::Base::from_str(vector)
                .ok()
                .map(|b| b.score().value()),
            Some("CVSS_V4") => cvss::v4::Vector::from_str(vector)
                .ok()
                .map(|v| v.score().value()),
            _ => None,
        };
        if let Some(s) = score {
            best = Some(best.map_or(s, |b: f64| b.max(s)));
        }
    }
    if let Some(score) = best {
        return (from_score(score), Some(score));
    }
    let words = [
        record.pointer("/database_specific/severity"),
        affected.pointer("/database_specific/severity"),
        affected.pointer("/ecosystem_specific/severity"),
        affected.pointer("/ecosystem_specific/urgency"),
    ];
    let word = words
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(from_word);
    (word.unwrap_or(FindingSeverity::Unknown), None)
}

/// CVSS v3/v4 qualitative ratings.
pub fn from_score(score: f64) -> FindingSeverity {
    match score {
        s if s >= 9.0 => FindingSeverity::Critical,
        s if s >= 7.0 => FindingSeverity::High,
        s if s >= 4.0 => FindingSeverity::Medium,
        s if s > 0.0 => FindingSeverity::Low,
        _ => FindingSeverity::Negligible,
    }
}

fn from_word(word: &str) -> Option<FindingSeverity> {
    Some(match word.to_ascii_lowercase().trim_end_matches('*') {
        "critical" => FindingSeverity::Critical,
        "high" | "important" => FindingSeverity::High,
        "medium" | "moderate" => FindingSeverity::Medium,
        "low" => FindingSeverity::Low,
        "unimportant" | "negligible" | "none" => FindingSeverity::Negligible,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cvss_vectors_then_words() {
        let r = json!({"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]});
        let (sev, score) = of(&r, &json!({}));
        assert_eq!((sev, score), (FindingSeverity::Critical, Some(9.8)));
        let r = json!({"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"}]});
        assert_eq!(of(&r, &json!({})).0, FindingSeverity::Low);
        let ghsa = json!({"database_specific": {"severity": "MODERATE"}});
        assert_eq!(of(&ghsa, &json!({})).0, FindingSeverity::Medium);
        assert_eq!(
            of(
                &json!({}),
                &json!({"ecosystem_specific": {"urgency": "unimportant"}})
            )
            .0,
            FindingSeverity::Negligible
        );
        assert_eq!(of(&json!({}), &json!({})).0, FindingSeverity::Unknown);
    }
}
