//! Writing an npz so that a crash or a full disk never leaves a half-written file under the
//! destination's name: the arrays go to a temporary file in the same folder, which is renamed over
//! the destination only once complete (a rename within one folder is atomic on POSIX file systems).
//!
//! A private stand-in until `shaderlens::io` (the reliability work) provides the shared helper.

use std::fs::File;
use std::io::{BufWriter, Write};
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

/// Writes an npz to `path` via a temporary file beside it: `fill` adds the arrays; the file is
/// flushed, synced and renamed only when everything succeeded, and removed otherwise.
pub(crate) fn write_npz_atomically(
    path: &Path,
    compress: bool,
    fill: impl FnOnce(&mut NpzWriter<BufWriter<File>>) -> std::result::Result<(), WriteNpzError>,
) -> Result<()> {
    check_destination(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = parent_of(path).join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let file = File::create(&temp).map_err(|e| file_error(&temp, format!("cannot create: {e}")))?;
        let writer = BufWriter::with_capacity(1 << 20, file);
        let mut npz = if compress { NpzWriter::new_compressed(writer) } else { NpzWriter::new(writer) };
        let write_error = |e: WriteNpzError| file_error(&temp, format!("cannot write: {e}"));
        fill(&mut npz).map_err(write_error)?;
        let mut writer = npz.finish().map_err(write_error)?;
        writer.flush().map_err(|e| file_error(&temp, format!("cannot write: {e}")))?;
        let file = writer.into_inner().map_err(|e| file_error(&temp, format!("cannot write: {}", e.error())))?;
        file.sync_all().map_err(|e| file_error(&temp, format!("cannot sync: {e}")))?;
        std::fs::rename(&temp, path).map_err(|e| file_error(path, format!("cannot rename {} to it: {e}", temp.display())))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
