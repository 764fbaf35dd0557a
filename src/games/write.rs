//! Writing the games' npz files: the destination is checked before any game is generated, and
//! the file is written through [`crate::io::write_atomic`], so that a crash or a full disk never
//! leaves a half-written file under the destination's name.

use std::path::{Path, PathBuf};

use ndarray_npy::{NpzWriter, WriteNpzError};

use crate::{Error, Result};

fn file_error(path: &Path, message: String) -> Error {
    Error::File { path: path.display().to_string(), message }
}

/// Refuses a destination that cannot be written before any work is done: an existing folder, or a
/// parent folder that does not exist.
pub(crate) fn check_destination(path: &Path) -> Result<()> {
    if path.as_os_str().is_empty() {
        return Err(Error::Input("--out is empty; give the npz file to write".into()));
    }
    if path.is_dir() {
        return Err(file_error(path, "is a folder; --out must name a file".into()));
    }
    if path.file_name().is_none() {
        return Err(file_error(path, "names no file; --out must name a file".into()));
    }
    let parent = parent_of(path);
    if !parent.is_dir() {
        return Err(file_error(path, format!("its folder {} does not exist", parent.display())));
    }
    Ok(())
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes an npz to `path` through [`crate::io::write_atomic`] (a temporary file beside it,
/// flushed, synced and renamed only when everything succeeded): `fill` adds the arrays.
pub(crate) fn write_npz_atomically(
    path: &Path,
    compress: bool,
    fill: impl FnOnce(&mut NpzWriter<&mut crate::io::Output>) -> std::result::Result<(), WriteNpzError>,
) -> Result<()> {
    check_destination(path)?;
    crate::io::write_atomic(path, |output| {
        let write_error = |e: WriteNpzError| file_error(path, format!("cannot write: {e}"));
        let mut npz = if compress { NpzWriter::new_compressed(output) } else { NpzWriter::new(output) };
        fill(&mut npz).map_err(write_error)?;
        npz.finish().map_err(write_error)?;
        Ok(())
    })
}
