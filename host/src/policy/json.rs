//! Strict JSON for policy.json and signature payloads, as containers/image's "paranoid" decoding: a tree
//! that keeps every object's keys, refuses duplicate keys and trailing data, and typed accessors that refuse
//! unknown keys and wrong types. Every error names the path of the offending value (`transports.docker
//! ["quay.io/x"][0].keyPath`).

use anyhow::{Result, anyhow, bail};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

/// A parsed JSON value; objects keep their keys in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// What kind of value this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

/// Parse `bytes` as one JSON value: duplicate keys (at any depth) and anything after the value are errors.
pub fn parse(bytes: &[u8]) -> Result<Json> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Seed {
        path: String::new(),
    }
    .deserialize(&mut de)
    .map_err(|e| anyhow!("{e}"))?;
    de.end()
        .map_err(|e| anyhow!("unexpected data after the JSON value: {e}"))?;
    Ok(v)
}

/// The path of `key` inside the object at `path`.
pub fn child(path: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (plain, path.is_empty()) {
        (true, true) => key.to_string(),
        (true, false) => format!("{path}.{key}"),
        (false, _) => format!("{path}[{}]", serde_json::Value::from(key)),
    }
}

/// The path of element `i` of the array at `path`.
pub fn element(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A path for messages: the empty path is the top level.
pub fn shown(path: &str) -> &str {
    if path.is_empty() {
        "the top level"
    } else {
        path
    }
}

struct Seed {
    path: String,
}

impl<'de> DeserializeSeed<'de> for Seed {
    type Value = Json;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a JSON value at {}", shown(&self.path))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom(format!("{}: not a finite number", shown(&self.path))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut out = vec![];
        while let Some(v) = seq.next_element_seed(Seed {
            path: element(&self.path, out.len()),
        })? {
            out.push(v);
        }
        Ok(Json::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut out = vec![];
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!(
                    "{}: duplicate key {}",
                    shown(&self.path),
                    serde_json::Value::from(key.as_str())
                )));
            }
            let v = map.next_value_seed(Seed {
                path: child(&self.path, &key),
            })?;
            out.push((key, v));
        }
        Ok(Json::Object(out))
    }
}

/// The members of an object, checked against the keys it may have.
pub struct Fields<'a> {
    pub path: String,
    members: &'a [(String, Json)],
}

/// `v` (at `path`) as an object whose keys are all in `allowed`; `None` for `allowed` accepts any key.
pub fn object<'a>(v: &'a Json, path: &str, allowed: Option<&[&str]>) -> Result<Fields<'a>> {
    let Json::Object(members) = v else {
        bail!("{}: expected an object, found {}", shown(path), v.kind());
    };
    if let Some(allowed) = allowed
        && let Some((k, _)) = members.iter().find(|(k, _)| !allowed.contains(&k.as_str()))
    {
        bail!(
            "{}: unknown key {} (allowed here: {})",
            shown(path),
            serde_json::Value::from(k.as_str()),
            allowed.join(", ")
        );
    }
    Ok(Fields {
        path: path.to_string(),
        members,
    })
}

impl<'a> Fields<'a> {
    /// Every member, in document order.
    pub fn members(&self) -> &'a [(String, Json)] {
        self.members
    }

    pub fn get(&self, key: &str) -> Option<&'a Json> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The path of member `key`.
    pub fn at(&self, key: &str) -> String {
        child(&self.path, key)
    }

    fn wrong(&self, key: &str, want: &str, got: &Json) -> anyhow::Error {
        anyhow!("{}: expected {want}, found {}", self.at(key), got.kind())
    }

    /// A member that must be present.
    pub fn required(&self, key: &str) -> Result<&'a Json> {
        self.get(key).ok_or_else(|| {
            anyhow!(
                "{}: required key {} is missing",
                shown(&self.path),
                serde_json::Value::from(key)
            )
        })
    }

    pub fn string(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.wrong(key, "a string", v)),
        }
    }

    pub fn required_string(&self, key: &str) -> Result<String> {
        self.required(key)?;
        Ok(self.string(key)?.expect("present"))
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong(key, "a boolean", v)),
        }
    }

    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Json::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Json::String(s) => Ok(s.clone()),
                    v => bail!(
                        "{}: expected a string, found {}",
                        element(&self.at(key), i),
                        v.kind()
                    ),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(v) => Err(self.wrong(key, "an array of strings", v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_duplicates_at_any_depth_and_trailing_data() {
        let e = format!("{:#}", parse(br#"{"a":1,"a":2}"#).unwrap_err());
        assert!(e.contains("the top level: duplicate key \"a\""), "{e}");
        let e = format!(
            "{:#}",
            parse(br#"{"t":{"x.io/y":[{"k":1,"k":1}]}}"#).unwrap_err()
        );
        assert!(e.contains(r#"t["x.io/y"][0]: duplicate key "k""#), "{e}");
        assert!(parse(br#"{"a":1} {}"#).is_err());
        assert!(parse(b"{").is_err());
    }

    #[test]
    fn typed_access_names_the_path() {
        let v = parse(br#"{"keyPath": 3, "list": ["a", 1]}"#).unwrap();
        let f = object(&v, "", Some(&["keyPath", "list"])).unwrap();
        let e = format!("{:#}", f.string("keyPath").unwrap_err());
        assert_eq!(e, "keyPath: expected a string, found a number");
        let e = format!("{:#}", f.strings("list").unwrap_err());
        assert_eq!(e, "list[1]: expected a string, found a number");
        let e = format!("{:#}", object(&v, "x", Some(&["list"])).err().unwrap());
        assert!(e.starts_with("x: unknown key \"keyPath\""), "{e}");
        let e = format!("{:#}", f.required("type").unwrap_err());
        assert_eq!(e, "the top level: required key \"type\" is missing");
    }
}
