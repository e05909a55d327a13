//! The POSIX overlay as the engine sees a mount ([`MountCore`]).

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::mount::contract::{MountCore, PathTarget};
use crate::os::FileStat;

fn io_err(e: Errno) -> io::Error {
    e.into()
}

impl MountCore for Vfs {
    fn now(&self) -> io::Result<NanoTime> {
        self.try_now()
    }

    fn project(&self, items: &[ProjectItem]) -> Result<(), ProjectError> {
        Vfs::project(self, items).map(|_| ())
    }

    fn make_dirs(&self, rels: &[std::path::PathBuf]) -> Result<(), ProjectError> {
        Vfs::make_dirs(self, rels)
    }

    fn put_real(
        &self,
        rel: &Path,
        bytes: &[u8],
        perm: u16,
        mtime: NanoTime,
    ) -> Result<(), ProjectError> {
        Vfs::put_real(self, rel, bytes, perm, mtime)
    }

    fn convert_to_projection(
        &self,
        rel: &Path,
        pack: Arc<Pack>,
        index: usize,
        expect: &FileStat,
    ) -> Result<Result<(), KeptReal>, ProjectError> {
        Vfs::convert_to_projection(self, rel, pack, index, expect).map(|r| r.map(|_| ()))
    }

    fn path_target(&self, rel: &Path) -> io::Result<PathTarget> {
        Vfs::path_target(self, rel).map_err(io_err)
    }

    fn dir_handle(&self, rel: &Path) -> io::Result<crate::os::DirHandle> {
        self.lower_dir_fd(rel).map_err(io_err)?.try_clone()
    }

    fn list_dir(&self, rel: &Path) -> io::Result<Vec<OsString>> {
        Vfs::list_dir(self, rel).map_err(io_err)
    }

    fn projected_bytes(&self, rel: &Path) -> Option<Vec<u8>> {
        Vfs::projected_bytes(self, rel)
    }

    fn projection_at(&self, rel: &Path) -> Option<crate::projection::Projection> {
        Vfs::projection_at(self, rel)
    }

    fn packs_in_use(&self) -> Vec<Digest> {
        Vfs::packs_in_use(self)
    }

    fn materialize_pack(&self, id: &Digest) -> io::Result<u64> {
        Vfs::materialize_pack(self, id).map_err(io_err)
    }

    fn materialize_all(&self) -> io::Result<u64> {
        Vfs::materialize_all(self).map_err(io_err)
    }

    fn tend(&self) {
        self.tend_journal();
    }

    fn persist(&self) {
        self.compact_journal();
        self.sync_journal();
    }

    fn usage(&self) -> Usage {
        Vfs::usage(self)
    }

    fn real_bytes(&self) -> u64 {
        Vfs::real_bytes(self)
    }

    fn passthrough(&self) -> bool {
        self.passthrough_enabled
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}
