//! Directory listings: the lower directory's entries (read without the table lock) and the
//! directory's projected names, numbered as lookups would number them.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{Mode, OFlags};

use super::*;

impl Vfs {
    pub fn opendir(&self, ino: Ino) -> VResult<u64> {
        let (fd, parent, dev, projected) = {
            let t = self.table.lock();
            let d = t.dir(ino)?;
            if d.removed {
                return Err(Errno::NOENT);
            }
            let projected: Vec<(OsString, Ino)> =
                d.projected.iter().map(|(n, i)| (n.clone(), *i)).collect();
            (t.dir_fd(ino)?, d.parent, d.lower.0, projected)
        };
        // Read the lower directory without the lock: a large one would stall every request.
        let fd = rustix::fs::openat(
            &*fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut lower: Vec<(OsString, FileKind, u64)> = Vec::new();
        let mut dir = rustix::fs::Dir::read_from(&fd)?;
        while let Some(e) = dir.read() {
            let e = e?;
            let name = OsStr::from_bytes(e.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let kind = match e.file_type() {
                rustix::fs::FileType::Directory => FileKind::Dir,
                rustix::fs::FileType::Symlink => FileKind::Symlink,
                rustix::fs::FileType::Fifo => FileKind::Fifo,
                rustix::fs::FileType::Socket => FileKind::Socket,
                rustix::fs::FileType::CharacterDevice => FileKind::CharDev,
                rustix::fs::FileType::BlockDevice => FileKind::BlockDev,
                _ => FileKind::Regular,
            };
            lower.push((name.to_os_string(), kind, e.ino()));
        }
        let mut entries = Vec::with_capacity(lower.len() + projected.len() + 2);
        entries.push(DirEntry {
            ino,
            kind: FileKind::Dir,
            name: ".".into(),
        });
        entries.push(DirEntry {
            ino: parent,
            kind: FileKind::Dir,
            name: "..".into(),
        });
        {
            // Numbering takes the lock again, briefly.
            let mut t = self.table.lock();
            for (name, kind, lower_ino) in lower {
                entries.push(DirEntry {
                    ino: t.ino_for_lower((dev, lower_ino)),
                    kind,
                    name,
                });
            }
        }
        for (name, pino) in projected {
            entries.push(DirEntry {
                ino: pino,
                kind: FileKind::Regular,
                name,
            });
        }
        Ok(self.add_handle(ino, false, false, HandleState::Dir(entries)))
    }

    /// Entries from `offset` on; entry `i` has offset `i + 1`.
    pub fn readdir(&self, fh: u64, offset: u64) -> VResult<Vec<(u64, DirEntry)>> {
        let h = self.handle(fh)?;
        let state = h.state.lock();
        let HandleState::Dir(entries) = &*state else {
            return Err(Errno::NOTDIR);
        };
        Ok(entries
            .iter()
            .enumerate()
            .skip(offset as usize)
            .map(|(i, e)| (i as u64 + 1, e.clone()))
            .collect())
    }

    pub fn releasedir(&self, fh: u64) {
        self.handles.lock().remove(&fh);
    }
}
