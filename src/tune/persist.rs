//! The autotuner's winners kept on disk, so that a second run on the same adapter pays nothing.
//!
//! Tuning every product shape of a training step costs about a minute on lavapipe (issue 12's
//! `grokking-small` start-up), and again on every `--resume`. The winners are a pure function of
//! the adapter, its driver and the kernels' source, so they are saved in one JSON file, under a
//! device key made of all three: a changed driver or a changed kernel gets a key of its own and is
//! measured afresh. Which variant serves a product never changes the numbers (every matmul variant
//! is one multiply-add chain in increasing k), only the speed.
//!
//! Where: `SHADERLENS_TUNE_CACHE` names the file (`off`, `0` or `false`: keep winners in memory
//! only); otherwise `$XDG_CACHE_HOME/shaderlens/autotune.json`, else
//! `$HOME/.cache/shaderlens/autotune.json`. The file is rewritten whole through a temporary name
//! and a rename, after re-reading it so that other processes' winners are kept. A file that does
//! not parse is reported once on stderr and left as it is (nothing is lost; this run's winners
//! then stay in memory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The file's layout version; a file of another version is left alone.
const VERSION: u64 = 1;

/// Where the winners of one device are read from and written to.
#[derive(Clone, Debug)]
pub struct TuneFile {
    path: PathBuf,
    device: String,
}

impl TuneFile {
    /// The file `SHADERLENS_TUNE_CACHE` or the user's cache folder names, for the device
    /// `device` (see [`device_key`]); `None` when persistence is off or no folder is known.
    pub fn from_env(device: String) -> Option<Self> {
        let path = match std::env::var("SHADERLENS_TUNE_CACHE") {
            Ok(v) if matches!(v.trim().to_ascii_lowercase().as_str(), "off" | "0" | "false") => return None,
            Ok(v) if !v.trim().is_empty() => PathBuf::from(v.trim()),
            _ => default_path()?,
        };
        Some(Self { path, device })
    }

    /// A file at `path` for `device` (tests, and callers that keep their own cache).
    pub fn at(path: impl Into<PathBuf>, device: impl Into<String>) -> Self {
        Self { path: path.into(), device: device.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This device's winners as `key → variant name`; empty when the file does not exist yet.
    pub fn load(&self) -> Result<BTreeMap<String, String>> {
        let Some(root) = self.read()? else { return Ok(BTreeMap::new()) };
        let entries = root.get("devices").and_then(|d| d.get(&self.device)).and_then(Value::as_object);
        Ok(entries
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default())
    }

    /// Adds `winners` to this device's entries (re-reading the file first, so that what other
    /// processes saved meanwhile is kept) and rewrites the file atomically.
    pub fn save(&self, winners: &BTreeMap<String, String>) -> Result<()> {
        let mut root = self.read()?.unwrap_or_else(|| {
            let mut m = Map::new();
            m.insert("version".into(), VERSION.into());
            m.insert("devices".into(), Value::Object(Map::new()));
            m
        });
        let devices = root
            .entry("devices")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| self.bad("`devices` is not an object"))?;
        let entry = devices.entry(self.device.clone()).or_insert_with(|| Value::Object(Map::new()));
        let entry = entry.as_object_mut().ok_or_else(|| self.bad("a device entry is not an object"))?;
        for (k, v) in winners {
            entry.insert(k.clone(), Value::String(v.clone()));
        }
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::Input(format!("autotune cache {}: cannot create its folder: {e}", self.path.display())))?;
        }
        let text = serde_json::to_string_pretty(&Value::Object(root)).map_err(|e| self.bad(&e.to_string()))?;
        crate::io::write_atomic(&self.path, |out| {
            use std::io::Write;
            out.write_all(text.as_bytes()).map_err(|e| Error::Input(format!("autotune cache {}: {e}", self.path.display())))
        })
    }

    /// The file's top-level object, `None` if there is no file; an error naming the file if it is
    /// not this layout.
    fn read(&self) -> Result<Option<Map<String, Value>>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::Input(format!("autotune cache {}: cannot read it: {e}", self.path.display()))),
        };
        let value: Value = serde_json::from_str(&text).map_err(|e| self.bad(&format!("not JSON ({e})")))?;
        let Value::Object(root) = value else { return Err(self.bad("not a JSON object")) };
        match root.get("version").and_then(Value::as_u64) {
            Some(VERSION) => Ok(Some(root)),
            other => Err(self.bad(&format!("version {other:?}, this shaderlens writes {VERSION}"))),
        }
    }

    fn bad(&self, why: &str) -> Error {
        Error::Input(format!("autotune cache {}: {why}; left as it is (delete it to start afresh)", self.path.display()))
    }
}

/// `$XDG_CACHE_HOME/shaderlens/autotune.json`, else `$HOME/.cache/shaderlens/autotune.json`.
fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("shaderlens").join("autotune.json"))
}

/// The key a device's winners are saved under: the adapter's description (name, backend, type,
/// driver), its PCI ids, and a hash of every kernel source that is tuned, so that a new driver
/// or an edited kernel is measured again.
pub fn device_key(description: &str, vendor: u32, device: u32, tuned_sources: &[&str]) -> String {
    let mut hash = Fnv::default();
    for source in tuned_sources {
        hash.write(source.as_bytes());
        hash.write(&[0]);
    }
    format!("{description} [{vendor:04x}:{device:04x}] kernels {:016x} v{}", hash.0, env!("CARGO_PKG_VERSION"))
}

/// FNV-1a, 64 bits: stable across Rust versions and platforms (std's hasher promises neither).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("shaderlens-tune-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn winners_survive_a_round_trip_per_device_and_merge() {
        let dir = temp_dir("roundtrip");
        let path = dir.join("sub").join("autotune.json");
        let a = TuneFile::at(&path, "device a");
        let b = TuneFile::at(&path, "device b");
        assert!(a.load().unwrap().is_empty());
        a.save(&BTreeMap::from([("matmul:1,2".to_string(), "vec4_8x8".to_string())])).unwrap();
        b.save(&BTreeMap::from([("matmul:1,2".to_string(), "tiled".to_string())])).unwrap();
        a.save(&BTreeMap::from([("matmul:3,4".to_string(), "scalar_8x8".to_string())])).unwrap();
        let got = a.load().unwrap();
        assert_eq!(got.get("matmul:1,2").map(String::as_str), Some("vec4_8x8"));
        assert_eq!(got.get("matmul:3,4").map(String::as_str), Some("scalar_8x8"));
        assert_eq!(b.load().unwrap().get("matmul:1,2").map(String::as_str), Some("tiled"));
        assert_eq!(b.load().unwrap().len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_damaged_file_is_named_and_left_as_it_is() {
        let dir = temp_dir("damaged");
        let path = dir.join("autotune.json");
        std::fs::write(&path, "{ not json").unwrap();
        let file = TuneFile::at(&path, "d");
        let err = file.load().unwrap_err().to_string();
        assert!(err.contains("autotune.json") && err.contains("not JSON"), "{err}");
        assert!(file.save(&BTreeMap::from([("k".to_string(), "v".to_string())])).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ not json");
        std::fs::write(&path, r#"{"version": 7, "devices": {}}"#).unwrap();
        assert!(file.load().unwrap_err().to_string().contains("version Some(7)"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_device_key_changes_with_the_kernels_and_the_driver() {
        let k = device_key("llvmpipe (Vulkan)", 0x10005, 0, &["fn main() {}"]);
        assert_ne!(k, device_key("llvmpipe (Vulkan)", 0x10005, 0, &["fn main() { }"]));
        assert_ne!(k, device_key("llvmpipe (Vulkan, driver 25)", 0x10005, 0, &["fn main() {}"]));
        assert_eq!(k, device_key("llvmpipe (Vulkan)", 0x10005, 0, &["fn main() {}"]));
    }
}
