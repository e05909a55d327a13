//! `file:///path`: a shared directory (NFS, a mounted volume). Objects are files under the
//! root; a write goes to a temp file in `.tmp/` and is renamed into place (readers never
//! see a partial object); `if_absent` publishes with `link`, which fails if the name exists.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::backend::{Backend, ErrorKind, Put, RemoteError, Size, copy_capped};

pub struct Dir {
    root: PathBuf,
}

impl Dir {
    pub fn new(root: PathBuf) -> Dir {
        Dir { root }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

fn kind(e: &io::Error) -> ErrorKind {
    match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => ErrorKind::Auth,
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Io,
    }
}

fn err(what: &str, path: &Path, e: io::Error) -> RemoteError {
    RemoteError::new(kind(&e), format!("{what} {}: {e}", path.display()))
}

impl Backend for Dir {
    fn get(
        &self,
        name: &str,
        max: u64,
        _size: Size,
        out: &mut dyn Write,
    ) -> Result<Option<u64>, RemoteError> {
        let path = self.path(name);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err("opening", &path, e)),
        };
        let len = f.metadata().map_err(|e| err("stat", &path, e))?.len();
        if !f.metadata().map(|m| m.is_file()).unwrap_or(false) {
            return Err(RemoteError::new(
                ErrorKind::Protocol,
                format!("{} is not a regular file", path.display()),
            ));
        }
        if len > max {
            return Err(RemoteError::new(
                ErrorKind::TooLarge,
                format!("{} bytes, more than {max}", len),
            ));
        }
        copy_capped(&mut f, max, out, kind).map(Some)
    }

    fn head(&self, name: &str) -> Result<bool, RemoteError> {
        let path = self.path(name);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(err("stat", &path, e)),
        }
    }

    fn put(
        &self,
        name: &str,
        bytes: &[u8],
        _size: Size,
        if_absent: bool,
    ) -> Result<Put, RemoteError> {
        let dest = self.path(name);
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).map_err(|e| err("creating", dir, e))?;
        }
        let tmp_dir = self.root.join(".tmp");
        fs::create_dir_all(&tmp_dir).map_err(|e| err("creating", &tmp_dir, e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix("put-")
            .tempfile_in(&tmp_dir)
            .map_err(|e| err("creating a temp file in", &tmp_dir, e))?;
        tmp.write_all(bytes)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| err("writing", tmp.path(), e))?;
        if if_absent {
            // link() refuses an existing name: the first writer wins, atomically.
            match fs::hard_link(tmp.path(), &dest) {
                Ok(()) => Ok(Put::Stored),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Put::Existed),
                Err(e) => Err(err("linking", &dest, e)),
            }
        } else {
            tmp.persist(&dest)
                .map(|_| Put::Stored)
                .map_err(|e| err("renaming to", &dest, e.error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_and_the_first_writer_wins() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dir::new(dir.path().to_path_buf());
        let mut out = Vec::new();
        assert_eq!(d.get("a/b/x", 10, Size::Small, &mut out).unwrap(), None);
        assert!(!d.head("a/b/x").unwrap());
        assert_eq!(
            d.put("a/b/x", b"one", Size::Small, true).unwrap(),
            Put::Stored
        );
        assert_eq!(
            d.put("a/b/x", b"two", Size::Small, true).unwrap(),
            Put::Existed
        );
        assert_eq!(d.get("a/b/x", 10, Size::Small, &mut out).unwrap(), Some(3));
        assert_eq!(out, b"one");
        d.put("a/b/x", b"three", Size::Small, false).unwrap();
        assert!(d.head("a/b/x").unwrap());
        let e = d.get("a/b/x", 4, Size::Small, &mut Vec::new()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooLarge);
        // No temp file is left behind.
        assert_eq!(fs::read_dir(dir.path().join(".tmp")).unwrap().count(), 0);
    }
}
