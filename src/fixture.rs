//! npz fixtures as SPEC lays them out: `<root>/<op>/<case>.npz`, float32 inputs, float64 (or
//! float32) expected outputs, 0-d scalars.
//!
//! Every array of a fixture is read once, when first asked for, and typed accessors then refuse a
//! missing key, a wrong dtype or a wrong rank with a message that names the array — a malformed
//! fixture is an error for that fixture, never a panic. The archive itself is read by
//! [`npz`], which checks each member's header against its bytes before allocating anything, and
//! converts big-endian and Fortran-order arrays (both lossless) to native C order. Inputs are
//! never converted between dtypes: SPEC's inputs are float32, and float64 or integer inputs are
//! refused rather than rounded.

mod npz;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Cursor};
use std::sync::{Mutex, OnceLock};
use std::path::{Path, PathBuf};

use ndarray::ArrayD;

use crate::error::{fmt_shape, Error, Result};

pub use npz::{read_npy, MAX_HEADER_DEPTH, MAX_HEADER_LEN};

/// One array of an npz file, with the dtype it was stored as.
#[derive(Debug, Clone)]
pub enum NpyArray {
    /// `float32` (`<f4` or `>f4`; every array is held in native C order whatever the file's).
    F32(ArrayD<f32>),
    /// `float64`.
    F64(ArrayD<f64>),
    /// `bool`.
    Bool(ArrayD<bool>),
    /// `int64`.
    I64(ArrayD<i64>),
    /// `int32`.
    I32(ArrayD<i32>),
    /// Any other dtype, kept as numpy's name for it and the shape (e.g. `float16 [2, 3]`) for the
    /// error message.
    Unsupported(String),
    /// An array whose bytes could not be read (bad header, truncated data). Kept rather than
    /// refused at open, because SPEC ignores keys that an op does not name.
    Unreadable(String),
}

impl NpyArray {
    /// numpy's name for the dtype.
    pub fn dtype(&self) -> String {
        match self {
            NpyArray::F32(_) => "float32".into(),
            NpyArray::F64(_) => "float64".into(),
            NpyArray::Bool(_) => "bool".into(),
            NpyArray::I64(_) => "int64".into(),
            NpyArray::I32(_) => "int32".into(),
            NpyArray::Unsupported(d) => d.split(' ').next().unwrap_or_default().to_string(),
            NpyArray::Unreadable(e) => format!("unreadable ({e})"),
        }
    }

    /// The shape, when the dtype could be read.
    pub fn shape(&self) -> Option<&[usize]> {
        match self {
            NpyArray::F32(a) => Some(a.shape()),
            NpyArray::F64(a) => Some(a.shape()),
            NpyArray::Bool(a) => Some(a.shape()),
            NpyArray::I64(a) => Some(a.shape()),
            NpyArray::I32(a) => Some(a.shape()),
            NpyArray::Unsupported(_) | NpyArray::Unreadable(_) => None,
        }
    }

    /// The dtype and, when known, the shape: `float64 [3, 4]`, as error messages name an array.
    pub fn describe(&self) -> String {
        if let NpyArray::Unsupported(d) = self {
            return d.clone();
        }
        match self.shape() {
            Some(shape) => format!("{} {}", self.dtype(), fmt_shape(shape)),
            None => self.dtype(),
        }
    }
}

/// A fixture file: where it is, which op and case it is, and its arrays.
///
/// Arrays are read when first asked for (and kept): an array that no op names is never
/// decompressed. Names are looked up as numpy's `NpzFile` does: a member stored under exactly the
/// name asked for wins over one stored as `<name>.npy`.
pub struct Fixture {
    /// The npz file.
    pub path: PathBuf,
    /// The op: the name of the folder that holds the file.
    pub op: String,
    /// The case: the file name without `.npz`.
    pub case: String,
    /// Members by the name they are stored under.
    arrays: BTreeMap<String, Slot>,
    /// Array names as numpy lists them (`.npy` stripped), sorted, each once.
    names: Vec<String>,
    archive: Option<Mutex<npz::Archive>>,
}

/// One member: where it is in the archive, and its array once read.
struct Slot {
    index: Option<usize>,
    value: OnceLock<NpyArray>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").field("path", &self.path).field("op", &self.op).field("case", &self.case).field("names", &self.names).finish()
    }
}

/// The op and case names SPEC derives from a fixture's path.
pub fn op_and_case(path: &Path) -> (String, String) {
    let op = path
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let case = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    (op, case)
}

impl Fixture {
    /// Opens the npz at `path` (a regular file: a FIFO or device is refused, not waited on) and
    /// reads its directory; arrays are read when asked for.
    pub fn open(path: &Path) -> Result<Self> {
        let file = crate::io::open_regular(path)?;
        let (op, case) = op_and_case(path);
        Self::from_reader(Box::new(BufReader::new(file)), &op, &case, path)
    }

    /// Reads a fixture of `op` and `case` from the bytes of an npz file (for fixtures that are
    /// not files, and for fuzzing the reader).
    pub fn from_bytes(op: &str, case: &str, bytes: &[u8]) -> Result<Self> {
        let bytes: std::sync::Arc<[u8]> = bytes.into();
        Self::from_reader(Box::new(Cursor::new(bytes)), op, case, &PathBuf::from(format!("{op}/{case}.npz")))
    }

    fn from_reader(reader: Box<dyn npz::ReadSeek>, op: &str, case: &str, path: &Path) -> Result<Self> {
        let (archive, members) =
            npz::open(reader).map_err(|message| Error::File { path: path.display().to_string(), message })?;
        let arrays = members.into_iter().map(|(name, index)| (name, Slot { index: Some(index), value: OnceLock::new() })).collect();
        Ok(Self::with(path.to_path_buf(), op, case, arrays, Some(Mutex::new(archive))))
    }

    fn with(path: PathBuf, op: &str, case: &str, arrays: BTreeMap<String, Slot>, archive: Option<Mutex<npz::Archive>>) -> Self {
        let names: BTreeSet<String> = arrays.keys().map(|k| k.strip_suffix(".npy").unwrap_or(k).to_string()).collect();
        Self { path, op: op.into(), case: case.into(), arrays, names: names.into_iter().collect(), archive }
    }

    /// Builds a fixture from arrays in memory (tests, and tools that make fixtures).
    pub fn from_arrays(op: &str, case: &str, arrays: BTreeMap<String, NpyArray>) -> Self {
        let arrays = arrays.into_iter().map(|(name, array)| (name, Slot { index: None, value: OnceLock::from(array) })).collect();
        Self::with(PathBuf::from(format!("{op}/{case}.npz")), op, case, arrays, None)
    }

    /// Names of all arrays in the file (as numpy lists them: `.npy` stripped, each once).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Whether the file holds an array `name` (readable or not).
    pub fn contains(&self, name: &str) -> bool {
        self.slot(name).is_some()
    }

    /// The member numpy's `NpzFile[name]` reads: stored as exactly `name`, else as `name.npy`.
    fn slot(&self, name: &str) -> Option<&Slot> {
        self.arrays.get(name).or_else(|| self.arrays.get(&format!("{name}.npy")))
    }

    /// The raw array `name`, or an error naming the missing key or saying why it cannot be read.
    pub fn get(&self, name: &str) -> Result<&NpyArray> {
        let Some(slot) = self.slot(name) else {
            return Err(Error::Input(format!("missing array {name:?} (the file has {})", self.listing())));
        };
        let array = slot.value.get_or_init(|| self.load(slot.index));
        match array {
            NpyArray::Unreadable(e) => Err(Error::Input(format!("array {name:?} cannot be read: {e}"))),
            array => Ok(array),
        }
    }

    fn load(&self, index: Option<usize>) -> NpyArray {
        let (Some(index), Some(archive)) = (index, &self.archive) else {
            return NpyArray::Unreadable("no data".into());
        };
        match archive.lock() {
            Ok(mut archive) => npz::read_index(&mut archive, index),
            Err(_) => NpyArray::Unreadable("an earlier read of this file panicked".into()),
        }
    }

    fn listing(&self) -> String {
        if self.names.is_empty() {
            "no arrays".into()
        } else {
            crate::scalar::cut(&self.names.join(", "), 1000)
        }
    }

    /// A float32 input (SPEC: inputs are float32). Other dtypes are refused, not converted:
    /// float64 would be rounded, and an integer or bool input is not what SPEC's ops take.
    pub fn input(&self, name: &str) -> Result<ArrayD<f32>> {
        match self.get(name)? {
            NpyArray::F32(a) => Ok(a.as_standard_layout().into_owned()),
            other => Err(Error::Input(format!(
                "{name} is {} but inputs must be float32 (SPEC; shaderlens converts no input: save {name}.astype(numpy.float32))",
                other.describe()
            ))),
        }
    }

    /// A float32 input of a given rank.
    pub fn input_rank(&self, name: &str, rank: usize) -> Result<ArrayD<f32>> {
        let a = self.input(name)?;
        check_rank(name, a.shape(), rank)?;
        Ok(a)
    }

    /// An expected output: float64, or float32 (SPEC lets a reader accept both), widened to f64.
    pub fn expected(&self, name: &str) -> Result<ArrayD<f64>> {
        match self.get(name)? {
            NpyArray::F64(a) => Ok(a.clone()),
            NpyArray::F32(a) => Ok(a.mapv(f64::from)),
            other => Err(Error::Input(format!("expected output {name} is {} but must be float64 or float32", other.describe()))),
        }
    }

    /// An expected output that must have `shape` (the shape the op produces from the inputs).
    pub fn expected_shaped(&self, name: &str, shape: &[usize]) -> Result<ArrayD<f64>> {
        let a = self.expected(name)?;
        if a.shape() != shape {
            return Err(Error::Shape(format!(
                "expected {name} is {} but the inputs give {}",
                fmt_shape(a.shape()),
                fmt_shape(shape)
            )));
        }
        Ok(a)
    }

    /// A 0-d float scalar such as `eps` or `scale` (float64 per SPEC; float32 widens losslessly).
    pub fn scalar_f64(&self, name: &str) -> Result<f64> {
        let (value, shape) = match self.get(name)? {
            NpyArray::F64(a) => (a.iter().next().copied(), a.shape().to_vec()),
            NpyArray::F32(a) => (a.iter().next().map(|&v| f64::from(v)), a.shape().to_vec()),
            other => return Err(Error::Input(format!("{name} is {} but must be a 0-d float64 scalar", other.describe()))),
        };
        check_rank(name, &shape, 0)?;
        value.ok_or_else(|| Error::Input(format!("{name} is empty")))
    }

    /// A 0-d bool scalar such as `causal`.
    pub fn scalar_bool(&self, name: &str) -> Result<bool> {
        match self.get(name)? {
            NpyArray::Bool(a) => {
                check_rank(name, a.shape(), 0)?;
                a.iter().next().copied().ok_or_else(|| Error::Input(format!("{name} is empty")))
            }
            other => Err(Error::Input(format!("{name} is {} but must be a 0-d bool scalar", other.describe()))),
        }
    }

    /// An int64 array such as `tokens` (int32 widens losslessly).
    pub fn int_array(&self, name: &str) -> Result<ArrayD<i64>> {
        match self.get(name)? {
            NpyArray::I64(a) => Ok(a.clone()),
            NpyArray::I32(a) => Ok(a.mapv(i64::from)),
            other => Err(Error::Input(format!("{name} is {} but must be int64", other.describe()))),
        }
    }
}

/// Errors unless `shape` has `rank` dimensions.
pub fn check_rank(name: &str, shape: &[usize], rank: usize) -> Result<()> {
    if shape.len() != rank {
        let what = if rank == 0 { "a 0-d scalar".to_string() } else { format!("rank {rank}") };
        return Err(Error::Shape(format!("{name} is {} (rank {}) but must be {what}", fmt_shape(shape), shape.len())));
    }
    Ok(())
}
