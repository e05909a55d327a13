//! Types shared by the core and its protocol adapters.

use crate::fsutil::NanoTime;

/// An inode number as the kernel sees it.
pub type Ino = u64;
/// The root directory's inode number.
pub const ROOT: Ino = 1;

/// The status of a failed operation: an errno, mapped by each adapter to its protocol.
pub type Errno = rustix::io::Errno;
pub type VResult<T> = Result<T, Errno>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDev,
    BlockDev,
}

impl FileKind {
    pub fn from_mode(mode: u32) -> FileKind {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => FileKind::Dir,
            libc::S_IFLNK => FileKind::Symlink,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFSOCK => FileKind::Socket,
            libc::S_IFCHR => FileKind::CharDev,
            libc::S_IFBLK => FileKind::BlockDev,
            _ => FileKind::Regular,
        }
    }
}

/// Attributes of a node, as reported to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: FileKind,
    pub size: u64,
    pub blocks: u64,
    pub atime: NanoTime,
    pub mtime: NanoTime,
    pub ctime: NanoTime,
    /// Permission bits (including setuid/setgid/sticky).
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
}

/// How long the kernel may cache an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// The daemon sees every change and invalidates explicitly (projected entries).
    Long,
    /// Changes can happen without the daemon seeing them (real files under passthrough).
    Short,
}

/// The answer to a lookup, create, mkdir, link...: the node's attributes and cacheability.
#[derive(Debug, Clone, Copy)]
pub struct EntryAttr {
    pub attr: Attr,
    pub cache: Cache,
}

/// A new or changed time, as given by `utimensat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSet {
    Now,
    At(NanoTime),
}

/// The changes of a `setattr`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
    /// The handle the change came through, if any (ftruncate, futimens).
    pub fh: Option<u64>,
}

/// How an open file's I/O is carried.
#[derive(Debug)]
pub enum OpenMode {
    /// The kernel does I/O on this fd itself (FUSE passthrough).
    Passthrough(std::sync::Arc<std::fs::File>),
    /// The daemon serves reads and writes; `keep_cache`: the bytes never change, so the
    /// kernel may keep its page cache across opens.
    Cached { keep_cache: bool },
}

#[derive(Debug)]
pub struct Opened {
    pub fh: u64,
    pub mode: OpenMode,
}

/// One directory entry of a readdir.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub ino: Ino,
    pub kind: FileKind,
    pub name: std::ffi::OsString,
}

/// Answer of `statfs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}

/// The kinds of request a protocol adapter receives, counted per mount (`zcfs status`), to
/// see where a build's filesystem time goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Lookup,
    Forget,
    Getattr,
    Setattr,
    Readlink,
    Mknod,
    Mkdir,
    Unlink,
    Rmdir,
    Symlink,
    Rename,
    Link,
    Open,
    Create,
    Read,
    Write,
    Flush,
    Release,
    Fsync,
    Opendir,
    Readdir,
    Releasedir,
    Statfs,
    Xattr,
    Fallocate,
}

impl RequestKind {
    pub const ALL: [RequestKind; 25] = [
        RequestKind::Lookup,
        RequestKind::Forget,
        RequestKind::Getattr,
        RequestKind::Setattr,
        RequestKind::Readlink,
        RequestKind::Mknod,
        RequestKind::Mkdir,
        RequestKind::Unlink,
        RequestKind::Rmdir,
        RequestKind::Symlink,
        RequestKind::Rename,
        RequestKind::Link,
        RequestKind::Open,
        RequestKind::Create,
        RequestKind::Read,
        RequestKind::Write,
        RequestKind::Flush,
        RequestKind::Release,
        RequestKind::Fsync,
        RequestKind::Opendir,
        RequestKind::Readdir,
        RequestKind::Releasedir,
        RequestKind::Statfs,
        RequestKind::Xattr,
        RequestKind::Fallocate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Lookup => "lookup",
            RequestKind::Forget => "forget",
            RequestKind::Getattr => "getattr",
            RequestKind::Setattr => "setattr",
            RequestKind::Readlink => "readlink",
            RequestKind::Mknod => "mknod",
            RequestKind::Mkdir => "mkdir",
            RequestKind::Unlink => "unlink",
            RequestKind::Rmdir => "rmdir",
            RequestKind::Symlink => "symlink",
            RequestKind::Rename => "rename",
            RequestKind::Link => "link",
            RequestKind::Open => "open",
            RequestKind::Create => "create",
            RequestKind::Read => "read",
            RequestKind::Write => "write",
            RequestKind::Flush => "flush",
            RequestKind::Release => "release",
            RequestKind::Fsync => "fsync",
            RequestKind::Opendir => "opendir",
            RequestKind::Readdir => "readdir",
            RequestKind::Releasedir => "releasedir",
            RequestKind::Statfs => "statfs",
            RequestKind::Xattr => "xattr",
            RequestKind::Fallocate => "fallocate",
        }
    }
}
