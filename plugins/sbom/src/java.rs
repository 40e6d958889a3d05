//! Java archives (`.jar`, `.war`, `.ear`): each `META-INF/maven/GROUP/ARTIFACT/pom.properties` inside is a
//! package; jars nested in `WEB-INF/lib/` or `BOOT-INF/lib/` are read once more, no deeper.

use crate::model::{Kind, Package};
use std::io::{Cursor, Read};

pub const GLOBS: &[&str] = &["/**/*.jar", "/**/*.war", "/**/*.ear"];
/// Largest nested jar read into memory.
const MAX_NESTED: u64 = 64 << 20;

pub fn wants(path: &str) -> bool {
    path.ends_with(".jar") || path.ends_with(".war") || path.ends_with(".ear")
}

pub fn read(path: &str, layer: &str, data: &[u8]) -> Vec<Package> {
    read_nested(path, layer, data, 0)
}

fn read_nested(path: &str, layer: &str, data: &[u8], depth: u32) -> Vec<Package> {
    let Ok(mut zip) = zip::ZipArchive::new(Cursor::new(data)) else {
        return vec![];
    };
    let mut out = Vec::new();
    let names: Vec<String> = zip.file_names().map(String::from).collect();
    for name in names {
        let Ok(mut entry) = zip.by_name(&name) else {
            continue;
        };
        if name.starts_with("META-INF/maven/") && name.ends_with("/pom.properties") {
            let mut text = String::new();
            if entry
                .by_ref()
                .take(1 << 20)
                .read_to_string(&mut text)
                .is_ok()
                && let Some(p) = pom_properties(&text, layer, &format!("{path}:{name}"))
            {
                out.push(p);
            }
        } else if depth == 0 && name.ends_with(".jar") && entry.size() <= MAX_NESTED {
            let mut inner = Vec::with_capacity(entry.size() as usize);
            if entry.read_to_end(&mut inner).is_ok() {
                out.extend(read_nested(
                    &format!("{path}:{name}"),
                    layer,
                    &inner,
                    depth + 1,
                ));
            }
        }
    }
    out
}

fn pom_properties(text: &str, layer: &str, location: &str) -> Option<Package> {
    let get = |key: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
    };
    let mut p = Package::new(
        Kind::Maven,
        &get("artifactId")?,
        &get("version")?,
        layer,
        location,
    );
    p.namespace = get("groupId");
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn pom_properties_in_a_jar() {
        let mut buf = Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut buf);
        w.start_file(
            "META-INF/maven/org.example/lib/pom.properties",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        w.write_all(b"#generated\ngroupId=org.example\nartifactId=lib\nversion=1.2.3\n")
            .unwrap();
        w.finish().unwrap();
        let p = read("/app/lib.jar", "l", buf.get_ref());
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].purl(None), "pkg:maven/org.example/lib@1.2.3");
    }
}
