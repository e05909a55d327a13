//! The wrapper ↔ daemon protocol: one frame per message over a Unix stream socket.
//!
//! Every frame starts with a fixed 32-byte header that never changes between versions, so
//! that a daemon and a client of different versions can always tell each other apart:
//!
//! ```text
//! magic u32 "ZCFS" | proto u32 | major u16 | minor u16 | patch u16 | kind u16 | stamp u64 | len u32 | reserved u32
//! ```
//!
//! followed by `len` bytes of postcard-encoded [`Request`] or [`Reply`] (for `kind` =
//! [`KIND_MESSAGE`]). `stamp` is the build stamp of the sender (mtime of its executable, ns),
//! which orders two builds of the same version.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

pub const MAGIC: u32 = u32::from_le_bytes(*b"ZCFS");
/// Bumped whenever [`Request`] or [`Reply`] change shape.
pub const PROTO: u32 = 6;
pub const HEADER_LEN: usize = 32;
/// Frames larger than this are refused (a confused or hostile peer).
pub const MAX_FRAME: u32 = 256 << 20;

/// The frame carries a message.
pub const KIND_MESSAGE: u16 = 0;
/// Daemon → client: "I am older than you; I am shutting down so that you can replace me".
pub const KIND_OUTDATED: u16 = 1;
/// Daemon → client: "I cannot decode your protocol version".
pub const KIND_INCOMPATIBLE: u16 = 2;

/// The version of a zcfs build: the package version plus a build stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
    pub patch: u16,
    pub stamp: u64,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}.{}+{}",
            self.major, self.minor, self.patch, self.stamp
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub proto: u32,
    pub version: Version,
    pub kind: u16,
    pub len: u32,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&self.proto.to_le_bytes());
        b[8..10].copy_from_slice(&self.version.major.to_le_bytes());
        b[10..12].copy_from_slice(&self.version.minor.to_le_bytes());
        b[12..14].copy_from_slice(&self.version.patch.to_le_bytes());
        b[14..16].copy_from_slice(&self.kind.to_le_bytes());
        b[16..24].copy_from_slice(&self.version.stamp.to_le_bytes());
        b[24..28].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Header, ProtoError> {
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let u16_at = |i: usize| u16::from_le_bytes(b[i..i + 2].try_into().unwrap());
        if u32_at(0) != MAGIC {
            return Err(ProtoError::BadMagic);
        }
        let len = u32_at(24);
        if len > MAX_FRAME {
            return Err(ProtoError::TooLarge(len));
        }
        Ok(Header {
            proto: u32_at(4),
            version: Version {
                major: u16_at(8),
                minor: u16_at(10),
                patch: u16_at(12),
                stamp: u64::from_le_bytes(b[16..24].try_into().unwrap()),
            },
            kind: u16_at(14),
            len,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("not a zcfs frame (bad magic)")]
    BadMagic,
    #[error("frame of {0} bytes is larger than the limit")]
    TooLarge(u32),
    #[error("undecodable message: {0}")]
    Decode(#[from] postcard::Error),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// A compiler invocation, as the wrapper received it.
    Compile(CompileRequest),
    /// The outcome of a miss that the wrapper compiled itself.
    CompileDone {
        token: u64,
        outcome: CompileOutcome,
    },
    /// Sent after a hit without waiting for a reply: the wrapper's own view of the hit's
    /// latency, from its `main` to the reply.
    HitLatency {
        micros: u64,
    },
    Status,
    Stats {
        zero: bool,
    },
    Gc,
    Clear,
    Shutdown,
    /// `zcfs remote status`.
    RemoteStatus,
    /// `zcfs remote push`: queue every local result for upload.
    RemotePush,
    /// `zcfs remote flush`: wait (at most this long) until queued uploads are done.
    RemoteFlush {
        timeout_secs: u64,
    },
    /// Mount a zcfs filesystem over `dir` (absolute).
    Mount {
        dir: Bytes,
        opts: MountOptions,
    },
    Unmount {
        dir: Bytes,
        force: bool,
        materialize: bool,
    },
    /// Store `src` as a pack and project it at `rel` under the mount `dir` (tests, debugging).
    ProjectFile {
        dir: Bytes,
        rel: Bytes,
        src: Bytes,
        perm: Option<u32>,
        mtime: Option<i128>,
    },
    /// `zcfs cargo`, after cargo: record the units cargo left in a mounted build dir
    /// (docs/snapshot.md). Units without `inputs` are only looked up; the reply lists
    /// those that are new, whose inputs the client then sends.
    SnapshotRecord {
        at: SnapshotAt,
        units: Vec<SnapUnit>,
        /// Units the client found but does not offer, with the reason (counted in stats).
        refused: Vec<(String, String)>,
        /// The daemon's compile count the projection before the build reported: if no
        /// compile reached the daemon since, cargo built no unit a snapshot could record,
        /// and the reply says so at once (`unchanged`).
        since: Option<u64>,
    },
    /// `zcfs cargo`, before cargo: project the recorded units whose inputs verify.
    SnapshotProject {
        at: SnapshotAt,
        /// cargo's environment (a record is chosen only if the variables it read match).
        env: Vec<(Bytes, Bytes)>,
    },
}

/// Which snapshot: a mounted build dir, for a workspace and a `CARGO_HOME` (absolute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotAt {
    pub build_dir: Bytes,
    pub workspace: Bytes,
    pub cargo_home: Bytes,
    /// Tools the build runs whose contents cargo does not track (the default linker and C
    /// compilers): name and the absolute path the client's `PATH` gives.
    pub tools: Vec<(String, Bytes)>,
}

/// One unit of a build dir, as the client found it (paths relative to the build dir).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapUnit {
    /// `<profile>/<package>-<16 hex>`.
    pub key: String,
    pub hashes: Vec<(String, u64)>,
    pub files: Vec<String>,
    pub dirs: Vec<String>,
    /// Keys of the units it depends on.
    pub deps: Vec<String>,
    /// When cargo started the unit's job (its `invoked.timestamp`): an input newer than
    /// this may have changed after the unit read it.
    pub started: i128,
    /// A digest of the unit's files' stats as the client saw them (path, size, inode,
    /// mtime, ctime): the daemon reuses what it computed for the same stats.
    pub stats_digest: crate::hash::Digest,
    pub inputs: Option<Vec<SnapInput>>,
    /// The variables the unit read or declared, with their values then (`None`: unset);
    /// sent with `inputs`.
    pub env: Vec<(Bytes, Option<Bytes>)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SnapInput {
    /// An absolute path outside the build dir.
    Host(Bytes),
    /// A path relative to the build dir.
    Build(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompileRequest {
    /// argv without the wrapper itself: `[compiler, args...]`, raw bytes.
    pub argv: Vec<Bytes>,
    #[serde(with = "serde_bytes")]
    pub cwd: Vec<u8>,
    /// The (device, inode) of the working directory itself (`os::cwd_identity`): tells a
    /// process that entered a directory before a mount hid it from one in the mount.
    pub cwd_id: Option<(u64, u64)>,
    pub env: Vec<(Bytes, Bytes)>,
    /// The wrapper's stderr is a terminal (the compiler's colour choice depends on it).
    pub stderr_tty: bool,
    /// The caller's file-creation mask (the mode of the files a hit creates).
    pub umask: u32,
}

/// A byte string that serializes as one blob (not element by element).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bytes(#[serde(with = "serde_bytes")] pub Vec<u8>);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CompileOutcome {
    /// The compiler exited 0.
    Success {
        #[serde(with = "serde_bytes")]
        stdout: Vec<u8>,
        #[serde(with = "serde_bytes")]
        stderr: Vec<u8>,
    },
    /// The compiler failed (exit code, or 128+signal).
    Failed { code: i32 },
    /// The wrapper could not run the compile as planned.
    Error { message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// Outputs are in place; replay these and exit 0.
    Hit {
        #[serde(with = "serde_bytes")]
        stdout: Vec<u8>,
        #[serde(with = "serde_bytes")]
        stderr: Vec<u8>,
        /// What the compiler does when it cannot write its diagnostics.
        on_write_error: OnWriteError,
    },
    /// Run the compiler with `extra_args` added, then report with `CompileDone`.
    /// With `buffer_stderr`, hold stderr until the end: a compile that fails with
    /// `rerun_if_failed_with` in its stderr is run again without the extra arguments
    /// (the linker refused one, or the compiler's message names them).
    Miss {
        token: u64,
        extra_args: Vec<Bytes>,
        /// Where `extra_args` go among the arguments after the compiler (before a `--`);
        /// `None`: after the last.
        insert_at: Option<u32>,
        buffer_stderr: bool,
        rerun_if_failed_with: Option<Bytes>,
        /// Remove colour sequences from the compiler's stderr as it is shown (zcfs forced
        /// colours so that the stored diagnostics serve every terminal).
        strip_colour: bool,
    },
    /// Run the compiler unchanged; nothing will be cached.
    PassThrough {
        reason: String,
    },
    /// `CompileDone` processed.
    Done {
        stored: bool,
    },
    Status(StatusInfo),
    Mounted(Mounted),
    Unmounted(Unmounted),
    /// A JSON document (stats, gc report).
    Json(String),
    Ok,
    Error(String),
}

/// How a compiler ends when writing its diagnostics fails (`2>/dev/full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnWriteError {
    /// It exits with this code (gcc: 0, it does not check).
    Exit(i32),
    /// It aborts (clang: LLVM reports the failed stream and calls `abort`).
    Abort,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusInfo {
    pub pid: u32,
    pub version: String,
    pub uptime_secs: u64,
    pub socket: String,
    pub cache_dir: String,
    pub log_file: String,
    pub mounts: Vec<MountInfo>,
}

/// What a client learns about a mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountInfo {
    pub dir: String,
    pub projections: u64,
    pub projected_bytes: u64,
    /// The kernel accepted FUSE passthrough for this mount.
    pub passthrough: bool,
    pub opens_passthrough: u64,
    pub opens_cached: u64,
    pub copy_ups: u64,
    pub bytes_served: u64,
    /// Disk space of the real files in the mount (`du` of the lower dir, hard links once).
    pub real_bytes: u64,
    /// Requests received from the kernel, by kind.
    pub requests: std::collections::BTreeMap<String, u64>,
    pub since: u64,
}

/// The result of a mount request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mounted {
    pub dir: String,
    pub already: bool,
    pub cleaned_stale: u64,
    pub restored: u64,
    pub dropped: u64,
}

/// Options of `zcfs mount`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountOptions {
    pub allow_other: bool,
}

/// The result of an unmount request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmounted {
    pub dir: String,
    pub materialized: u64,
    pub lazy: bool,
    /// Dead mounts removed (when the daemon that served them is gone).
    pub stale: u64,
}

pub fn encode_frame<T: Serialize>(version: Version, kind: u16, msg: Option<&T>) -> Vec<u8> {
    let body = match msg {
        Some(m) => postcard::to_stdvec(m).expect("postcard encoding of protocol types"),
        None => Vec::new(),
    };
    let header = Header {
        proto: PROTO,
        version,
        kind,
        len: body.len() as u32,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&body);
    out
}

/// Writes one frame (blocking).
pub fn write_frame<T: Serialize>(
    w: &mut impl Write,
    version: Version,
    kind: u16,
    msg: Option<&T>,
) -> io::Result<()> {
    w.write_all(&encode_frame(version, kind, msg))
}

/// Reads one frame (blocking): the header and the raw body.
pub fn read_frame(r: &mut impl Read) -> Result<(Header, Vec<u8>), ProtoError> {
    let mut hb = [0u8; HEADER_LEN];
    r.read_exact(&mut hb)?;
    let header = Header::decode(&hb)?;
    let mut body = vec![0u8; header.len as usize];
    r.read_exact(&mut body)?;
    Ok((header, body))
}

pub fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ProtoError> {
    Ok(postcard::from_bytes(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: Version = Version {
        major: 1,
        minor: 2,
        patch: 3,
        stamp: 42,
    };

    #[test]
    fn frame_round_trip() {
        let req = Request::Compile(CompileRequest {
            argv: vec![Bytes(b"rustc".to_vec()), Bytes(b"-vV".to_vec())],
            cwd: b"/tmp".to_vec(),
            cwd_id: Some((1, 2)),
            env: vec![(Bytes(b"A".to_vec()), Bytes(b"".to_vec()))],
            stderr_tty: false,
            umask: 0o022,
        });
        let bytes = encode_frame(V, KIND_MESSAGE, Some(&req));
        let (h, body) = read_frame(&mut &bytes[..]).unwrap();
        assert_eq!(h.version, V);
        assert_eq!(h.proto, PROTO);
        assert_eq!(decode::<Request>(&body).unwrap(), req);
    }

    #[test]
    fn garbage_is_refused() {
        let garbage = [0xffu8; 64];
        assert!(matches!(
            read_frame(&mut &garbage[..]),
            Err(ProtoError::BadMagic)
        ));
        let mut huge = Header {
            proto: PROTO,
            version: V,
            kind: 0,
            len: 0,
        }
        .encode();
        huge[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_frame(&mut &huge[..]),
            Err(ProtoError::TooLarge(_))
        ));
        let truncated = &encode_frame(V, KIND_MESSAGE, Some(&Request::Status))[..HEADER_LEN];
        assert!(matches!(
            read_frame(&mut &truncated[..]),
            Err(ProtoError::Io(_))
        ));
        let bad_body = {
            let mut f = encode_frame::<Request>(V, KIND_MESSAGE, None);
            f[24..28].copy_from_slice(&3u32.to_le_bytes());
            f.extend_from_slice(&[0xff, 0xff, 0xff]);
            f
        };
        let (_, body) = read_frame(&mut &bad_body[..]).unwrap();
        assert!(decode::<Request>(&body).is_err());
    }

    #[test]
    fn versions_order_by_stamp_last() {
        let older = Version { stamp: 1, ..V };
        let newer = Version { stamp: 2, ..V };
        assert!(older < newer);
        let next_minor = Version {
            minor: 3,
            stamp: 0,
            ..V
        };
        assert!(newer < next_minor);
    }
}
