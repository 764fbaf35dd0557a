//! Reading inputs and writing output files safely: every file shaderlens writes goes to a
//! temporary name in the destination's own folder, is flushed and synced, and only then renamed
//! over the destination, so that a full disk, a crash, a failed run or a second process writing
//! the same path never leaves a truncated or half-replaced file (the old file stays whole until
//! the new one is complete, and of two racing writers the last rename wins with a complete file).
//!
//! [`write_atomic`] is the whole recipe in one call; [`stage`] writes and syncs without renaming,
//! so that a command with several outputs can finish all of them before it replaces any
//! ([`Staged::commit`]); [`check_outputs`] refuses, before anything is computed, an output that
//! cannot be written (no such folder, a device or FIFO, a folder) or that is one of the inputs or
//! another output by canonical path. [`open_regular`] opens an input only when it is a regular
//! file: opening a FIFO would block forever and `/dev/zero` never ends.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// The writer a [`write_atomic`] or [`stage`] callback writes into: a buffered temporary file
/// that remembers its first write error. After that error further writes are swallowed (and
/// reported once, by [`stage`]), so that writers which retry in their `Drop` (zip's) fail quietly
/// instead of printing their own half-messages.
pub struct Output {
    file: BufWriter<File>,
    error: Option<io::Error>,
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.error.is_some() {
            return Ok(buf.len());
        }
        self.file.write(buf).map_err(|e| self.latch(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.error.is_some() {
            return Ok(());
        }
        self.file.flush().map_err(|e| self.latch(e))
    }
}

impl Seek for Output {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

impl Output {
    /// Keeps the first error and hands back one that says the same.
    fn latch(&mut self, e: io::Error) -> io::Error {
        let copy = io::Error::new(e.kind(), e.to_string());
        self.error.get_or_insert(e);
        copy
    }
}

/// A written and synced temporary file, renamed over its destination by [`Staged::commit`] and
/// removed if dropped uncommitted.
#[derive(Debug)]
pub struct Staged {
    temp: PathBuf,
    dest: PathBuf,
    shown: PathBuf,
    committed: bool,
}

impl Staged {
    /// Renames the temporary file over the destination (atomic on one file system).
    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.temp, &self.dest).map_err(|e| file_error(&self.shown, format!("cannot replace it: {e}")))?;
        self.committed = true;
        // The rename itself is durable once the folder is synced; a failure here loses nothing.
        if let Some(parent) = self.dest.parent() {
            let _ = File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Writes `path` as `write` produces it, never leaving it truncated: the bytes go to a temporary
/// file in the same folder, which is flushed, synced and renamed over `path` only when `write`
/// and every write succeeded. On any error `path` is as it was and the temporary file is gone.
pub fn write_atomic<T>(path: &Path, write: impl FnOnce(&mut Output) -> Result<T>) -> Result<T> {
    let (staged, value) = stage(path, write)?;
    staged.commit()?;
    Ok(value)
}

/// The first half of [`write_atomic`]: writes and syncs the temporary file, leaving the rename to
/// [`Staged::commit`].
pub fn stage<T>(path: &Path, write: impl FnOnce(&mut Output) -> Result<T>) -> Result<(Staged, T)> {
    let dest = destination(path)?;
    let (file, temp) = create_temp(&dest).map_err(|e| file_error(path, format!("cannot create a file in its folder: {e}")))?;
    let staged = Staged { temp, dest, shown: path.to_path_buf(), committed: false };
    let mut output = Output { file: BufWriter::new(file), error: None };
    let result = write(&mut output);
    let flushed = output.file.flush();
    if let Some(e) = output.error.take() {
        return Err(file_error(path, format!("cannot write: {e}")));
    }
    let value = result?;
    flushed.map_err(|e| file_error(path, format!("cannot write: {e}")))?;
    let file = output.file.into_inner().map_err(|e| file_error(path, format!("cannot write: {}", e.error())))?;
    file.sync_all().map_err(|e| file_error(path, format!("cannot write (sync): {e}")))?;
    if let Ok(meta) = std::fs::metadata(&staged.dest) {
        let _ = std::fs::set_permissions(&staged.temp, meta.permissions());
    }
    Ok((staged, value))
}

/// Where `path` really is: itself, or the file a symlink at `path` points to (so that writing
/// replaces the target, not the link). Refuses a path that exists and is not a regular file, and
/// a folder that does not exist.
fn destination(path: &Path) -> Result<PathBuf> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {
            std::fs::canonicalize(path).map_err(|e| file_error(path, format!("cannot resolve the path: {e}")))
        }
        Ok(meta) => Err(file_error(path, format!("is {}, not a regular file: shaderlens writes only regular files", kind(&meta)))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let name = path.file_name().ok_or_else(|| file_error(path, "names no file".into()))?;
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let folder = std::fs::canonicalize(parent)
                .map_err(|e| file_error(path, format!("its folder {} cannot be used: {e}", parent.display())))?;
            if !folder.is_dir() {
                return Err(file_error(path, format!("{} is not a folder", parent.display())));
            }
            Ok(folder.join(name))
        }
        Err(e) => Err(file_error(path, format!("cannot be checked: {e}"))),
    }
}

/// Creates a new, uniquely named temporary file beside `dest`.
fn create_temp(dest: &Path) -> io::Result<(File, PathBuf)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let folder = dest.parent().unwrap_or(Path::new("."));
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut last = None;
    for _ in 0..16 {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = folder.join(format!(".{name}.{}-{n}-{nanos}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => return Ok((file, temp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary name")))
}

/// Checks, before any work, that every output can be written and that no output is an input or
/// another output (by canonical path, and on Unix by device and inode, so hard links count).
/// `inputs` and `outputs` are `(what, path)` pairs such as `("--weights", path)`.
pub fn check_outputs(inputs: &[(&str, &Path)], outputs: &[(&str, &Path)]) -> Result<()> {
    let mut seen: Vec<Seen> = Vec::new();
    for (what, path) in inputs {
        if let Ok(canonical) = std::fs::canonicalize(path) {
            seen.push((what, canonical, identity(path)));
        }
    }
    for (what, path) in outputs {
        let dest = destination(path).map_err(|e| Error::Input(format!("{what} {e}")))?;
        let id = identity(&dest);
        if let Some((other, _, _)) = seen.iter().find(|(_, p, i)| *p == dest || (id.is_some() && *i == id)) {
            return Err(Error::Input(format!(
                "{what} {} is the same file as {other}: refusing to overwrite it",
                path.display()
            )));
        }
        seen.push((what, dest, id));
    }
    Ok(())
}

/// An input or output seen so far: its flag, canonical path and (device, inode).
type Seen<'a> = (&'a str, PathBuf, Option<(u64, u64)>);

#[cfg(unix)]
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(_path: &Path) -> Option<(u64, u64)> {
    None
}

/// Opens `path` for reading only if it is a regular file (or a symlink to one). A FIFO would
/// block `open` forever and a device such as `/dev/zero` never ends, so both are refused with an
/// error that says what the path is.
pub fn open_regular(path: &Path) -> Result<File> {
    let meta = std::fs::metadata(path).map_err(|e| file_error(path, format!("cannot open: {e}")))?;
    if !meta.is_file() {
        return Err(file_error(path, format!("is {}, not a regular file", kind(&meta))));
    }
    File::open(path).map_err(|e| file_error(path, format!("cannot open: {e}")))
}

/// What a non-regular path is, for messages: `a folder`, `a FIFO`, `a character device`, ….
pub fn kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a folder";
    }
    if t.is_file() {
        return "a regular file";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

fn file_error(path: &Path, message: String) -> Error {
    Error::File { path: path.display().to_string(), message }
}

/// The text of the regular file at `path` (see [`open_regular`]).
pub fn read_to_string(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut text = String::new();
    open_regular(path)?.read_to_string(&mut text).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    Ok(text)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// A zip writer on a full disk fails once, with the disk's error, and its `Drop` (which
    /// finalizes again and prints "ZipWriter drop failed" when that fails too) then finds every
    /// write succeeding: no second error, no stray message.
    #[test]
    fn the_first_write_error_is_kept_and_later_writes_are_quiet() {
        let file = OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
        let mut output = Output { file: BufWriter::with_capacity(16, file), error: None };
        {
            let mut npz = ndarray_npy::NpzWriter::new_compressed(&mut output);
            let a = ndarray::Array1::<f32>::zeros(4096);
            assert!(npz.add_array("a", &a).is_err());
        }
        let e = output.error.take().expect("the full disk's error");
        assert_eq!(e.raw_os_error(), Some(28), "{e}"); // ENOSPC
        output.error = Some(e);
        assert_eq!(output.write(b"later").unwrap(), 5);
    }
}
