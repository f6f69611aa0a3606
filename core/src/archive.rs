//! The file a prune writes what it removes to: one JSON object per line
//! (NDJSON), gzip when its name ends in `.gz`.
//!
//! Each chunk is appended and synced before the chunk's rows are removed,
//! and the store records the file's length in the transaction that removes
//! them. A prune that stopped between the two left a tail the store does
//! not know of: the next prune into the same file cuts it off and writes
//! that chunk again, so every removed row is in the archive exactly once.
//! A gzip archive is a series of gzip members, one per chunk, which every
//! gzip reader reads as one stream.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Serialize;

use crate::error::{Error, Result, StorageKind};

/// An archive open for appending chunks.
#[derive(Debug)]
pub(crate) struct Archive {
    path: PathBuf,
    file: File,
    gzip: bool,
    len: u64,
}

impl Archive {
    /// Open `path` to go on from `recorded`, the store's record of its last
    /// archive (path and length). The same file is cut back to the length
    /// recorded; another file must be new or empty, so that nothing in it
    /// is taken for a part of this store's archive.
    pub(crate) fn open(path: &Path, recorded: Option<&(String, u64)>) -> Result<Archive> {
        let path = absolute(path)?;
        let name = path.to_string_lossy().into_owned();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(&path, "open", e))?;
        let on_disk = file.metadata().map_err(|e| io(&path, "read", e))?.len();
        let len = match recorded {
            Some((p, bytes)) if *p == name => {
                if on_disk < *bytes {
                    return Err(Error::arg(format!(
                        "archive {name} holds {on_disk} bytes, fewer than the {bytes} the store recorded: it was changed outside prune; give prune a new archive file"
                    )));
                }
                *bytes
            }
            _ if on_disk > 0 => {
                return Err(Error::arg(format!(
                    "archive {name} already exists and is not the archive of this store's last prune{}; give a new file name",
                    recorded.map(|(p, _)| format!(" ({p})")).unwrap_or_default()
                )))
            }
            _ => 0,
        };
        if on_disk > len {
            // The tail of a prune that stopped before its chunk committed.
            file.set_len(len).map_err(|e| io(&path, "cut back", e))?;
        }
        let gzip = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"));
        Ok(Archive { path, file, gzip, len })
    }

    /// The store's record of this archive at its current length.
    pub(crate) fn record(&self) -> (String, u64) {
        (self.path.to_string_lossy().into_owned(), self.len)
    }

    /// Append `rows`, one JSON line each, and sync the file to disk.
    pub(crate) fn append<T: Serialize>(&mut self, rows: &[T]) -> Result<()> {
        let mut text = Vec::new();
        for row in rows {
            serde_json::to_writer(&mut text, row)
                .map_err(|e| Error::storage(StorageKind::Other, format!("an archived row has no JSON form: {e}")))?;
            text.push(b'\n');
        }
        let bytes = if self.gzip {
            let mut gz = GzEncoder::new(Vec::new(), Compression::default());
            gz.write_all(&text)
                .and_then(|()| gz.finish())
                .map_err(|e| io(&self.path, "compress", e))?
        } else {
            text
        };
        let path = &self.path;
        self.file
            .seek(SeekFrom::Start(self.len))
            .map_err(|e| io(path, "seek", e))?;
        self.file.write_all(&bytes).map_err(|e| io(path, "write", e))?;
        self.file.sync_all().map_err(|e| io(path, "sync", e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }
}

/// `path` made absolute, so that one file has one name in the store's
/// record whatever directory a prune runs from.
fn absolute(path: &Path) -> Result<PathBuf> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::arg(format!("archive {} is not a file name", path.display())))?;
    let dir = dir.canonicalize().map_err(|e| io(&dir, "find the folder of", e))?;
    Ok(dir.join(name))
}

fn io(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::storage(
        StorageKind::Io,
        format!("could not {what} archive {}: {e}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_stopped_chunk_is_cut_off_and_other_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("ingest-archive-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.ndjson.gz");
        let _ = std::fs::remove_file(&path);
        let mut a = Archive::open(&path, None).unwrap();
        a.append(&[1, 2]).unwrap();
        let committed = a.record();
        a.append(&[3]).unwrap(); // never committed
        let mut b = Archive::open(&path, Some(&committed)).unwrap();
        b.append(&[4]).unwrap();
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(File::open(&path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "1\n2\n4\n");
        // Another name over a file with data, or a file shorter than the record.
        let other = dir.join("b.ndjson");
        std::fs::write(&other, "x\n").unwrap();
        assert!(Archive::open(&other, Some(&committed))
            .unwrap_err()
            .to_string()
            .contains("already exists"));
        let short = (committed.0.clone(), committed.1 + 1000);
        assert!(Archive::open(&path, Some(&short))
            .unwrap_err()
            .to_string()
            .contains("changed outside"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
