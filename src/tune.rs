//! Autotune: choose among correct variants of a kernel by measuring them, once per device and
//! shape bucket, and remember the winner in the [`Gpu`](crate::Gpu).
//!
//! The shape of cubecl's tune module: a key made of the op's name and its sizes rounded up to
//! powers of two ([`bucket`]); on the first call in a bucket every candidate runs a few times
//! ([`measure`]: a first run, which also compiles the pipeline and warms the buffers, then two
//! more whose faster is the candidate's time, unless the first was already 3x slower than the
//! best so far) and the fastest
//! is kept in a [`TuneCache`] owned by the `Gpu`, so the next call in the bucket pays nothing.
//!
//! Autotuning never changes what is computed, only how fast: every candidate is a complete,
//! tested kernel (the tests run each variant against the float64 reference, not just winners).
//!
//! `SHADERLENS_AUTOTUNE=off` (or `0`) turns measuring off: each op then takes its static
//! preference for the adapter's type, which is also what it takes for work too small to be worth
//! measuring.
//!
//! Winners are also kept on disk per device ([`persist`]), so that the next process on the same
//! adapter, driver and kernels measures nothing it measured before.

pub mod persist;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};
use persist::TuneFile;

/// What a tuning result is remembered under: the op and its bucketed sizes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TuneKey {
    /// The op (and sub-kind, e.g. `"matmul"`).
    pub op: &'static str,
    /// Sizes rounded up to powers of two, as exponents (see [`bucket`]), plus any flags the op adds.
    pub bucket: Vec<u32>,
}

impl std::fmt::Display for TuneKey {
    /// `op:b0,b1,…`, the form the key has in the file [`persist`] writes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bucket: Vec<String> = self.bucket.iter().map(u32::to_string).collect();
        write!(f, "{}:{}", self.op, bucket.join(","))
    }
}

/// The autotuner's state on one device: whether to measure, the winners so far, and the file
/// they are kept in between processes.
#[derive(Debug)]
pub struct TuneCache {
    enabled: bool,
    winners: Mutex<HashMap<TuneKey, String>>,
    /// Winners read from the file at start, by [`TuneKey`]'s display form.
    saved: BTreeMap<String, String>,
    file: Option<TuneFile>,
    /// Set once saving has failed (and been reported): later winners stay in memory only.
    file_failed: AtomicBool,
}

impl TuneCache {
    /// Measuring on, unless `SHADERLENS_AUTOTUNE` is `off`, `0` or `false`; winners kept in
    /// `file` (see [`persist::TuneFile::from_env`]) when there is one. A file that cannot be read
    /// is reported on stderr and not used.
    pub fn from_env(file: Option<TuneFile>) -> Self {
        let off = std::env::var("SHADERLENS_AUTOTUNE")
            .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "off" | "0" | "false"));
        let (saved, file) = match file.as_ref().map(TuneFile::load) {
            Some(Ok(saved)) => (saved, file),
            Some(Err(e)) => {
                eprintln!("shaderlens: {e}");
                (BTreeMap::new(), None)
            }
            None => (BTreeMap::new(), None),
        };
        Self { enabled: !off, winners: Mutex::new(HashMap::new()), saved, file, file_failed: AtomicBool::new(false) }
    }

    /// Whether ops measure their variants (otherwise they take their static preference).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The file winners are kept in between processes, if any.
    pub fn file(&self) -> Option<&std::path::Path> {
        self.file.as_ref().map(TuneFile::path)
    }

    /// The remembered winner for `key` (measured in this process or read from the file), if any.
    pub fn winner(&self, key: &TuneKey) -> Option<String> {
        let mut winners = self.winners.lock().ok()?;
        if let Some(name) = winners.get(key) {
            return Some(name.clone());
        }
        let saved = self.saved.get(&key.to_string())?.clone();
        winners.insert(key.clone(), saved.clone());
        Some(saved)
    }

    /// Remembers `name` as the winner for `key`, and adds it to the file. A file that cannot be
    /// written is reported once on stderr; tuning goes on in memory.
    pub fn remember(&self, key: TuneKey, name: &str) -> Result<()> {
        let line = key.to_string();
        self.winners.lock().map_err(|_| Error::Gpu("tune cache poisoned".into()))?.insert(key, name.to_string());
        if let Some(file) = self.file.as_ref().filter(|_| !self.file_failed.load(Ordering::Relaxed)) {
            if let Err(e) = file.save(&BTreeMap::from([(line, name.to_string())])) {
                self.file_failed.store(true, Ordering::Relaxed);
                eprintln!("shaderlens: {e}; autotune winners are kept in memory only");
            }
        }
        Ok(())
    }

    /// Every remembered winner, sorted by key.
    pub fn winners(&self) -> Vec<(TuneKey, String)> {
        let mut all: Vec<_> = match self.winners.lock() {
            Ok(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => Vec::new(),
        };
        all.sort();
        all
    }
}

/// The bucket of a size: the exponent of the smallest power of two at least `size` (0 for 0 and 1).
pub fn bucket(size: usize) -> u32 {
    size.max(1).next_power_of_two().trailing_zeros()
}

/// Measures every candidate with `run_once` (which runs it once and returns seconds) and returns
/// the fastest with its time. A candidate whose run fails is skipped; if every one fails, the
/// first error is returned.
pub fn measure<C: Copy>(candidates: &[C], mut run_once: impl FnMut(C) -> Result<f64>) -> Result<(C, f64)> {
    let mut best: Option<(C, f64)> = None;
    let mut first_error = None;
    for &candidate in candidates {
        let mut time = || -> Result<f64> {
            // One untimed run first: pipelines are built while recording, but drivers such as
            // lavapipe JIT-compile a shader on its first dispatch, which would make a large kernel
            // look slow enough to be pruned below.
            run_once(candidate)?;
            let first = run_once(candidate)?;
            if best.is_some_and(|(_, t)| first > 3.0 * t) {
                return Ok(first);
            }
            Ok(run_once(candidate)?.min(run_once(candidate)?))
        };
        match time() {
            Ok(t) if best.is_none_or(|(_, b)| t < b) => best = Some((candidate, t)),
            Ok(_) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (best, first_error) {
        (Some(best), _) => Ok(best),
        (None, Some(e)) => Err(e),
        (None, None) => Err(Error::Input("autotune was given no candidates".into())),
    }
}
