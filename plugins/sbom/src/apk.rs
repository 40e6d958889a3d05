//! Alpine packages: `/lib/apk/db/installed` (`P:` name, `V:` version, `A:` arch, `o:` origin, `L:` license,
//! `F:`/`R:` the files). Layers are attributed as for dpkg's status file.

use crate::licenses;
use crate::model::{Kind, Package};
use std::collections::HashMap;

pub const INSTALLED: &str = "/lib/apk/db/installed";

#[derive(Default)]
pub struct Apk {
    packages: HashMap<(String, String), Package>,
    visible: bool,
}

impl Apk {
    pub fn add(&mut self, layer: &str, visible: bool, text: &str) {
        let mut next = HashMap::new();
        for mut pkg in parse(text, layer) {
            let key = (pkg.name.clone(), pkg.arch.clone().unwrap_or_default());
            if let Some(old) = self.packages.get(&key)
                && old.version == pkg.version
            {
                pkg.layer = old.layer.clone();
            }
            next.insert(key, pkg);
        }
        self.packages = next;
        self.visible = visible;
    }

    pub fn finish(self) -> Vec<Package> {
        let mut out: Vec<Package> = if self.visible {
            self.packages.into_values().collect()
        } else {
            vec![]
        };
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

fn parse(text: &str, layer: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut pkg = Package::new(Kind::Apk, "", "", layer, INSTALLED);
        let mut dir = String::new();
        for line in block.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            match k {
                "P" => pkg.name = v.into(),
                "V" => pkg.version = v.into(),
                "A" => pkg.arch = Some(v.into()),
                "o" => pkg.source_name = Some(v.into()),
                "L" => pkg.licenses = licenses::expression(v),
                "F" => dir = v.into(),
                "R" => pkg.files.push(format!("/{dir}/{v}").replace("//", "/")),
                _ => {}
            }
        }
        if !pkg.name.is_empty() && !pkg.version.is_empty() {
            out.push(pkg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn installed_db_is_parsed() {
        let mut a = super::Apk::default();
        a.add("l0", true, "C:Q1x\nP:musl\nV:1.2.5-r0\nA:x86_64\no:musl\nL:MIT\nF:lib\nR:ld-musl-x86_64.so.1\n\nP:busybox\nV:1.36.1-r29\nA:x86_64\nL:GPL-2.0-only\n");
        let p = a.finish();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].name, "musl");
        assert_eq!(p[1].files, ["/lib/ld-musl-x86_64.so.1"]);
        assert_eq!(p[1].licenses.as_deref(), Some("MIT"));
    }
}
