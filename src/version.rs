//! This build's version: the package version plus a build stamp (the mtime of the running
//! executable), so that a rebuilt binary replaces a daemon of the same version.

use std::sync::OnceLock;

use crate::proto::Version;

pub const PKG_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The version of this process. `ZCFS_DEBUG_FAKE_VERSION=x.y.z` overrides the package
/// version (and zeroes the stamp); it exists for the version-replacement tests.
pub fn current() -> Version {
    static V: OnceLock<Version> = OnceLock::new();
    *V.get_or_init(|| {
        if let Some(fake) = std::env::var("ZCFS_DEBUG_FAKE_VERSION")
            .ok()
            .and_then(|s| parse(&s))
        {
            return Version { stamp: 0, ..fake };
        }
        // Linux: the running file itself, even if it was replaced on disk since.
        let exe = if cfg!(target_os = "linux") {
            Some(std::path::PathBuf::from("/proc/self/exe"))
        } else {
            std::env::current_exe().ok()
        };
        let stamp = exe
            .and_then(|e| std::fs::metadata(e).ok())
            .map(|m| crate::fsutil::mtime_ns(&m).max(0) as u64)
            .unwrap_or(0);
        Version {
            stamp,
            ..parse(PKG_VERSION).expect("package version is x.y.z")
        }
    })
}

fn parse(s: &str) -> Option<Version> {
    let core = s.split(['-', '+']).next()?;
    let mut it = core.split('.').map(|p| p.parse::<u16>().ok());
    Some(Version {
        major: it.next()??,
        minor: it.next()??,
        patch: it.next()??,
        stamp: 0,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses() {
        let v = super::parse("1.2.3-beta").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 2, 3));
        assert!(super::parse("1.2").is_none());
        assert!(super::current().major < 100);
    }
}
