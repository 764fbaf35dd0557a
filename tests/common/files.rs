//! Scratch folders and npz files built in tests (issue 14's reliability tests).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use ndarray_npy::WriteNpyExt;

/// A fresh, empty folder under the system's temporary folder, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new folder named after `name` and this process.
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("shaderlens-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// `name` inside the folder.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The names in the folder, sorted.
    pub fn listing(&self) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(&self.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The npy bytes of `a`.
pub fn npy<T: ndarray_npy::WritableElement>(a: &ArrayD<T>) -> Vec<u8> {
    let mut bytes = Vec::new();
    a.write_npy(&mut bytes).unwrap();
    bytes
}

/// An npz holding `members` (name as stored, bytes) in that order, stored or deflated.
pub fn npz(members: &[(&str, Vec<u8>)], deflate: bool) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    let options = zip::write::SimpleFileOptions::default().compression_method(method).large_file(true);
    for (name, bytes) in members {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// The committed tiny model split as `run` takes it: `m.json`, `w.npz` (weights only) and
/// `tok.npy`, written into `dir`. Returns the three paths.
pub fn tiny_model(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/transformer");
    let (m, w, t) = (dir.join("m.json"), dir.join("w.npz"), dir.join("tok.npy"));
    std::fs::copy(root.join("tiny.json"), &m).unwrap();
    let fixture = shaderlens::fixture::Fixture::open(&root.join("tiny.npz")).unwrap();
    let mut members = Vec::new();
    for name in fixture.names() {
        if name == "tokens" || name == "logits" || name.starts_with("cache.") {
            continue;
        }
        members.push((format!("{name}.npy"), npy(&fixture.input(name).unwrap())));
    }
    let members: Vec<(&str, Vec<u8>)> = members.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    std::fs::write(&w, npz(&members, true)).unwrap();
    std::fs::write(&t, npy(&fixture.int_array("tokens").unwrap())).unwrap();
    (m, w, t)
}
