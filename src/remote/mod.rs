//! The remote tier: results shared through stores teams already run (a shared directory,
//! S3, WebDAV/HTTP caches, Redis). See `docs/remote.md`.
//!
//! Layout (names computed from hex digests only, never from remote data):
//!
//! ```text
//! <prefix>/zcfs2/p/<aa>/<pack id>   the exact bytes of the local pack
//! <prefix>/zcfs2/m/<aa>/<key>       a manifest, as the local store encodes it
//! ```
//!
//! Everything read from a remote is untrusted: sizes are capped before reading, manifests
//! decoded defensively and trimmed, packs verified byte for byte against the id they were
//! asked for before they enter the local store (by the engine, `engine/remote.rs`).
//! Failures never fail a compile: they are counted, and a breaker stops calling a remote
//! that keeps failing.

pub mod backend;
pub mod breaker;
mod dir;
mod http;
mod redis;
mod s3;
mod sigv4;
pub mod uploads;
mod webdav;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::warn;

pub use crate::config::{RemoteConfig, RemoteMode, RemoteTimeouts};
use crate::hash::Digest;
use crate::store::manifest::{self, Entry, Manifest};
pub use backend::{Backend, ErrorKind, Put, RemoteError, Size};
use breaker::Breaker;

/// The layout's version: changes with the pack format, the manifest encoding or the key's
/// derivation (a reader of one never sees objects of another).
pub const LAYOUT: &str = "zcfs2";
/// The formats [`LAYOUT`] stands for (a test fails when one changes without it).
pub const LAYOUT_FORMATS: (&[u8; 8], u32, &[u8; 8]) = (
    crate::store::pack::MAGIC,
    crate::store::pack::FORMAT_VERSION,
    manifest::MAGIC,
);
/// Remote manifests larger than this are not read (and uploads drop old entries to fit).
pub const MAX_MANIFEST: u64 = 8 << 20;

/// A URL with any credentials and query values hidden, for logs, stats and `zcfs config`.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if !u.username().is_empty() {
                let _ = u.set_username("***");
            }
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            let keep_query = u
                .query_pairs()
                .all(|(k, _)| matches!(&*k, "endpoint" | "region" | "style" | "prefix"));
            if !keep_query {
                u.set_query(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(unparsable URL)".to_string(),
    }
}

/// Why a call did not reach the remote or did not succeed.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The breaker is open: the remote was not asked.
    Skipped,
    /// Reads or writes are off (mode, or turned off after an auth failure).
    Off,
    Error(RemoteError),
}

impl Failure {
    /// The reason counted in stats (`None`: not an error).
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Failure::Skipped => Some("skipped"),
            Failure::Off => None,
            Failure::Error(e) => Some(e.kind.name()),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Skipped => write!(f, "skipped (breaker open)"),
            Failure::Off => write!(f, "off"),
            Failure::Error(e) => write!(f, "{e}"),
        }
    }
}

pub struct Remote {
    backend: Box<dyn Backend>,
    /// The URL, redacted.
    pub location: String,
    pub scheme: &'static str,
    /// `<prefix>/zcfs2/`.
    root: String,
    pub configured: RemoteMode,
    reads_off: AtomicBool,
    writes_off: AtomicBool,
    pub read: Breaker,
    pub write: Breaker,
    pub max_object: u64,
}

impl Remote {
    /// Builds the remote a configuration names, without contacting it. `Ok(None)`: none
    /// configured (or mode off).
    pub fn open(
        cfg: &RemoteConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Remote>, String> {
        let Some(raw) = cfg.url.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        if cfg.mode == RemoteMode::Off {
            return Ok(None);
        }
        let url = url::Url::parse(raw).map_err(|e| format!("invalid remote URL: {e}"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "credentials do not belong in the remote URL (they would show in logs and \
                 process listings): use ZCFS_REMOTE_USERNAME/ZCFS_REMOTE_PASSWORD, \
                 ZCFS_REMOTE_TOKEN, or AWS_* for S3"
                    .into(),
            );
        }
        let t = cfg.timeouts;
        let roots: http::Roots = match &cfg.ca_file {
            Some(p) => Some(std::sync::Arc::new(http::load_roots(p)?)),
            None => None,
        };
        let client = || http::Http::new(t, &roots);
        let (scheme, backend, prefix): (&'static str, Box<dyn Backend>, String) = match url.scheme()
        {
            "file" => {
                if url
                    .host_str()
                    .is_some_and(|h| !h.is_empty() && h != "localhost")
                {
                    return Err("file:// URLs name a local path: file:///path".into());
                }
                let path = url
                    .to_file_path()
                    .map_err(|()| "invalid file:// path".to_string())?;
                ("file", Box::new(dir::Dir::new(path)), String::new())
            }
            "s3" => {
                let loc = s3::S3Location::parse(&url, env)?;
                let prefix = url.path().trim_matches('/').to_string();
                ("s3", Box::new(s3::S3::new(&loc, env, client())?), prefix)
            }
            "webdav+http" | "webdav+https" | "http" | "https" => {
                let dav = url.scheme().starts_with("webdav+");
                // The url crate cannot turn a custom scheme into a special one: parse
                // the plain http(s) URL again.
                let base = url::Url::parse(raw.trim_start_matches("webdav+"))
                    .map_err(|e| format!("invalid remote URL: {e}"))?;
                if base.query().is_some() {
                    return Err("an http(s) remote URL takes no query".into());
                }
                let name = if dav { "webdav" } else { "http" };
                (
                    name,
                    Box::new(webdav::WebDav::new(&base, dav, env, client())),
                    String::new(),
                )
            }
            "rediss" => {
                return Err(
                    "rediss:// (Redis over TLS) is not supported yet: use redis:// on a \
                            trusted network, or S3 or WebDAV over https"
                        .into(),
                );
            }
            "redis" | "redis+unix" | "unix" => {
                let mut prefix = String::new();
                let mut plain = url.clone();
                let mut rest = Vec::new();
                for (k, v) in url.query_pairs() {
                    if k == "prefix" {
                        prefix = v.trim_matches('/').to_string();
                    } else {
                        rest.push((k.to_string(), v.to_string()));
                    }
                }
                plain.set_query(None);
                if !rest.is_empty() {
                    plain.query_pairs_mut().extend_pairs(rest);
                }
                (
                    "redis",
                    Box::new(redis::Redis::new(plain.as_str(), env, t)?),
                    prefix,
                )
            }
            other => {
                return Err(format!(
                    "unsupported remote scheme {other:?} (file, s3, webdav+http(s), http(s), \
                         redis, redis+unix)"
                ));
            }
        };
        if prefix.split('/').any(|c| c == ".." || c == ".") {
            return Err("the remote prefix must not contain . or .. components".into());
        }
        let root = if prefix.is_empty() {
            format!("{LAYOUT}/")
        } else {
            format!("{prefix}/{LAYOUT}/")
        };
        Ok(Some(Remote {
            backend,
            location: redact(raw),
            scheme,
            root,
            configured: cfg.mode,
            reads_off: AtomicBool::new(false),
            writes_off: AtomicBool::new(cfg.mode != RemoteMode::Rw),
            read: Breaker::new(cfg.breaker_open, Duration::from_secs(300)),
            write: Breaker::new(cfg.breaker_open, Duration::from_secs(300)),
            max_object: cfg.max_object,
        }))
    }

    pub fn pack_name(&self, id: &Digest) -> String {
        let hex = id.to_hex();
        format!("{}p/{}/{hex}", self.root, &hex[..2])
    }

    pub fn manifest_name(&self, key: &Digest) -> String {
        let hex = key.to_hex();
        format!("{}m/{}/{hex}", self.root, &hex[..2])
    }

    pub fn can_read(&self) -> bool {
        !self.reads_off.load(Ordering::Relaxed)
    }

    pub fn can_write(&self) -> bool {
        !self.writes_off.load(Ordering::Relaxed)
    }

    /// The mode in effect (writes turn off after an auth failure, reads too after one on a
    /// read).
    pub fn mode(&self) -> RemoteMode {
        match (self.can_read(), self.can_write()) {
            (true, true) => RemoteMode::Rw,
            (true, false) => RemoteMode::Ro,
            _ => RemoteMode::Off,
        }
    }

    /// Runs one call under the breaker of its direction and books its outcome.
    fn call<T>(
        &self,
        write: bool,
        f: impl FnOnce(&dyn Backend) -> Result<T, RemoteError>,
    ) -> Result<T, Failure> {
        let (off, breaker) = if write {
            (&self.writes_off, &self.write)
        } else {
            (&self.reads_off, &self.read)
        };
        if off.load(Ordering::Relaxed) {
            return Err(Failure::Off);
        }
        if !breaker.allow() {
            return Err(Failure::Skipped);
        }
        match f(&*self.backend) {
            Ok(v) => {
                breaker.success();
                Ok(v)
            }
            Err(e) => {
                if e.kind.trips_breaker() {
                    if breaker.failure() {
                        warn!(
                            "remote {}: {} failing ({e}); skipped for {:?}",
                            self.location,
                            if write { "writes" } else { "reads" },
                            breaker.retry_in().unwrap_or_default()
                        );
                    }
                } else {
                    breaker.neutral();
                }
                if e.kind == ErrorKind::Auth {
                    self.auth_failed(write, &e);
                }
                Err(Failure::Error(e))
            }
        }
    }

    fn auth_failed(&self, write: bool, e: &RemoteError) {
        let first = !self.writes_off.swap(true, Ordering::Relaxed);
        if write {
            if first {
                warn!(
                    "remote {}: writes refused ({e}); read-only from now on",
                    self.location
                );
            }
        } else if !self.reads_off.swap(true, Ordering::Relaxed) {
            warn!(
                "remote {}: reads refused ({e}); the remote is off until the daemon restarts",
                self.location
            );
        }
    }

    /// The manifest stored under a key: decoded, trimmed to the local limit, with what
    /// only holds on the machine that recorded it removed. An undecodable one is an error
    /// of kind `corrupt`.
    pub fn get_manifest(&self, key: &Digest) -> Result<Option<Manifest>, Failure> {
        let name = self.manifest_name(key);
        let mut bytes = Vec::new();
        let got = self.call(false, |b| {
            b.get(&name, MAX_MANIFEST, Size::Small, &mut bytes)
        })?;
        if got.is_none() {
            return Ok(None);
        }
        match Manifest::decode(&bytes) {
            Some(m) => Ok(Some(portable(m))),
            None => Err(Failure::Error(RemoteError::new(
                ErrorKind::Corrupt,
                "undecodable manifest",
            ))),
        }
    }

    /// Streams a pack into `out` (capped at `max_object`). `Ok(None)`: not there.
    pub fn get_pack(
        &self,
        id: &Digest,
        out: &mut dyn std::io::Write,
    ) -> Result<Option<u64>, Failure> {
        let name = self.pack_name(id);
        self.call(false, |b| b.get(&name, self.max_object, Size::Large, out))
    }

    /// Uploads a pack unless the remote has it (HEAD first: most stores cannot say so
    /// otherwise, and a present pack is not sent again). `replace`: the remote's copy was
    /// found damaged; overwrite it (the name is the content's digest, so any writer of it
    /// writes the same bytes).
    pub fn put_pack(&self, id: &Digest, bytes: &[u8], replace: bool) -> Result<Put, Failure> {
        let name = self.pack_name(id);
        if replace {
            return self.call(true, |b| b.put(&name, bytes, Size::Large, false));
        }
        if self.call(true, |b| b.head(&name))? {
            return Ok(Put::Existed);
        }
        self.call(true, |b| b.put(&name, bytes, Size::Large, true))
    }

    /// Adds an entry to the remote manifest of a key (read, merge, write: a concurrent
    /// writer may win; that loses an entry, which costs a miss, never a wrong hit).
    /// `Put::Existed`: the remote already had it.
    /// Entries naming a pack in `unusable` (found damaged or missing on the remote) are
    /// dropped on the way.
    pub fn put_entry(
        &self,
        key: &Digest,
        entry: &Entry,
        unusable: &dyn Fn(&Digest) -> bool,
    ) -> Result<Put, Failure> {
        let name = self.manifest_name(key);
        let entry = portable_entry(entry.clone());
        let mut m = match self.get_manifest(key) {
            Ok(Some(m)) => m,
            Ok(None) => Manifest::default(),
            // A corrupt remote manifest is replaced.
            Err(Failure::Error(e)) if e.kind == ErrorKind::Corrupt => Manifest::default(),
            Err(f) => return Err(f),
        };
        let before = m.entries.len();
        m.entries
            .retain(|e| e.pack == entry.pack || !unusable(&e.pack));
        if m.entries.len() == before
            && m.entries
                .iter()
                .any(|e| e.inputs == entry.inputs && e.pack == entry.pack)
        {
            return Ok(Put::Existed);
        }
        m.add(entry);
        let mut bytes = m.encode();
        while bytes.len() as u64 > MAX_MANIFEST && m.entries.len() > 1 {
            m.entries.pop();
            bytes = m.encode();
        }
        self.call(true, |b| b.put(&name, &bytes, Size::Small, false))
    }

    /// Asks the remote something small, past the breaker: for `zcfs remote status`.
    pub fn probe(&self) -> Result<Duration, RemoteError> {
        let t = std::time::Instant::now();
        self.backend.head(&format!("{}probe", self.root))?;
        Ok(t.elapsed())
    }
}

/// A manifest as another machine may use it: at most the local limit of entries, and
/// directory stamps (inode numbers, times) dropped: they only mean something where they
/// were taken, and the names they vouch for are then checked one by one.
pub fn portable(mut m: Manifest) -> Manifest {
    m.entries.truncate(manifest::MAX_ENTRIES);
    m.entries = m.entries.into_iter().map(portable_entry).collect();
    m
}

pub fn portable_entry(mut e: Entry) -> Entry {
    for g in &mut e.inputs.absent_under {
        g.stamp = None;
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_names_the_formats_it_was_made_for() {
        // Changing the pack or manifest format means a new LAYOUT (and updating this).
        assert_eq!(LAYOUT, "zcfs2");
        assert_eq!(LAYOUT_FORMATS, (b"ZCFSPAK1", 1, b"ZCFSMAN4"));
    }

    #[test]
    fn urls_open_or_say_why_not() {
        let env = |_: &str| None;
        let open = |u: &str| {
            Remote::open(
                &RemoteConfig {
                    url: Some(u.into()),
                    ..Default::default()
                },
                &env,
            )
        };
        for (u, scheme) in [
            ("file:///srv/cache", "file"),
            ("s3://bucket/team/a?endpoint=http://127.0.0.1:9000", "s3"),
            ("webdav+http://127.0.0.1:8080/cache", "webdav"),
            ("https://cache.example/zcfs", "http"),
            ("redis://127.0.0.1:6379/2?prefix=ci", "redis"),
            ("redis+unix:///run/redis.sock", "redis"),
        ] {
            let r = open(u).unwrap().unwrap();
            assert_eq!(r.scheme, scheme, "{u}");
        }
        let r = open("s3://bucket/team/a/?endpoint=http://127.0.0.1:9000")
            .unwrap()
            .unwrap();
        assert_eq!(
            r.pack_name(&Digest([0xab; 32])),
            format!("team/a/zcfs2/p/ab/{}", Digest([0xab; 32]).to_hex())
        );
        let r = open("redis://h/0?prefix=ci").unwrap().unwrap();
        assert!(
            r.manifest_name(&Digest([1; 32]))
                .starts_with("ci/zcfs2/m/01/")
        );
        for bad in [
            "gopher://x",
            "not a url",
            "http://user:secret@host/x",
            "s3://",
            "file://otherhost/x",
            "s3://Bad_Bucket/x",
            "rediss://h/0",
        ] {
            let e = open(bad).err().unwrap_or_else(|| panic!("{bad} opened"));
            assert!(!e.contains("secret"), "{e}");
        }
        assert!(open("").unwrap().is_none());
        let off = Remote::open(
            &RemoteConfig {
                url: Some("file:///x".into()),
                mode: RemoteMode::Off,
                ..Default::default()
            },
            &env,
        );
        assert!(off.unwrap().is_none());
    }

    #[test]
    fn redaction_hides_credentials_and_unknown_parameters() {
        assert_eq!(redact("http://u:pw@h/x"), "http://***:***@h/x");
        assert_eq!(
            redact("s3://b/p?endpoint=http://h:1&region=r"),
            "s3://b/p?endpoint=http://h:1&region=r"
        );
        assert!(!redact("redis://h/?password=pw").contains("pw"));
    }

    #[test]
    fn stamps_do_not_travel() {
        let mut e = Entry {
            inputs: Default::default(),
            pack: Digest([1; 32]),
            created: 1,
        };
        e.inputs.absent_under.push(manifest::AbsentUnder {
            dir: b"inc".to_vec(),
            stamp: Some((1, 2, 3)),
            names: vec![b"a.h".to_vec()],
            memo_id: 0,
        });
        let m = portable(Manifest {
            entries: vec![e; 40],
        });
        assert_eq!(m.entries.len(), manifest::MAX_ENTRIES);
        assert!(
            m.entries
                .iter()
                .all(|e| e.inputs.absent_under[0].stamp.is_none())
        );
    }
}
