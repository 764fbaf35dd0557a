//! npz fixtures as SPEC lays them out: `<root>/<op>/<case>.npz`, float32 inputs, float64 (or
//! float32) expected outputs, 0-d scalars.
//!
//! Every array of a fixture is read once, whatever its dtype, and typed accessors then refuse a
//! missing key, a wrong dtype or a wrong rank with a message that names the array — a malformed
//! fixture is an error for that fixture, never a panic. The archive itself is read by
//! [`npz`], which checks each member's header against its bytes before allocating anything, and
//! converts big-endian and Fortran-order arrays (both lossless) to native C order. Inputs are
//! never converted between dtypes: SPEC's inputs are float32, and float64 or integer inputs are
//! refused rather than rounded.

mod npz;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek};
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
#[derive(Debug)]
pub struct Fixture {
    /// The npz file.
    pub path: PathBuf,
    /// The op: the name of the folder that holds the file.
    pub op: String,
    /// The case: the file name without `.npz`.
    pub case: String,
    arrays: BTreeMap<String, NpyArray>,
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
    /// Reads every array of the npz at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::File { path: path.display().to_string(), message: format!("cannot open: {e}") })?;
        let (op, case) = op_and_case(path);
        Self::from_reader(BufReader::new(file), &op, &case, path)
    }

    /// Reads a fixture of `op` and `case` from the bytes of an npz file (for fixtures that are
    /// not files, and for fuzzing the reader).
    pub fn from_bytes(op: &str, case: &str, bytes: &[u8]) -> Result<Self> {
        Self::from_reader(Cursor::new(bytes), op, case, &PathBuf::from(format!("{op}/{case}.npz")))
    }

    fn from_reader(reader: impl Read + Seek, op: &str, case: &str, path: &Path) -> Result<Self> {
        let arrays =
            npz::read_arrays(reader).map_err(|message| Error::File { path: path.display().to_string(), message })?;
        Ok(Self { path: path.to_path_buf(), op: op.into(), case: case.into(), arrays })
    }

    /// Builds a fixture from arrays in memory (tests, and tools that make fixtures).
    pub fn from_arrays(op: &str, case: &str, arrays: BTreeMap<String, NpyArray>) -> Self {
        Self { path: PathBuf::from(format!("{op}/{case}.npz")), op: op.into(), case: case.into(), arrays }
    }

    /// Names of all arrays in the file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.arrays.keys().map(String::as_str)
    }

    /// The raw array `name`, or an error naming the missing key.
    pub fn get(&self, name: &str) -> Result<&NpyArray> {
        match self.arrays.get(name) {
            None => Err(Error::Input(format!("missing array {name:?} (the file has {})", self.listing()))),
            Some(NpyArray::Unreadable(e)) => Err(Error::Input(format!("array {name:?} cannot be read: {e}"))),
            Some(array) => Ok(array),
        }
    }

    fn listing(&self) -> String {
        if self.arrays.is_empty() {
            "no arrays".into()
        } else {
            self.arrays.keys().cloned().collect::<Vec<_>>().join(", ")
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
