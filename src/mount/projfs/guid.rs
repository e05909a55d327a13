//! The virtualization instance id of a mounted directory. ProjFS ties placeholders to the
//! id that created them: a provider that starts with another id finds the directory
//! "temporarily unavailable" (EdenFS), so the id is made once per directory and kept in
//! the mount's state directory.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::Path;

use super::api::Guid;

const FILE: &str = "projfs-instance-id";

/// 16 random bytes (from the standard library's randomly seeded hasher keys), as a
/// version 4 GUID.
pub fn random() -> Guid {
    let mut g = [0u8; 16];
    for half in g.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    g[6] = (g[6] & 0x0f) | 0x40;
    g[8] = (g[8] & 0x3f) | 0x80;
    g
}

/// The id kept in `state`, made and kept there (durably) the first time.
pub fn load_or_create(state: &Path) -> io::Result<Guid> {
    let path = state.join(FILE);
    match std::fs::read(&path) {
        Ok(b) if b.len() == 16 => {
            let mut g = [0u8; 16];
            g.copy_from_slice(&b);
            return Ok(g);
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is damaged; ProjFS placeholders of this directory cannot be served \
                     with another id (remove the file and the directory's placeholders)",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let g = random();
    crate::fsutil::write_replacing(&path, &g, true)?;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_made_once_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let a = load_or_create(d.path()).unwrap();
        let b = load_or_create(d.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[6] >> 4, 4, "version 4");
        assert_ne!(random(), random());
        std::fs::write(d.path().join(FILE), b"short").unwrap();
        assert!(
            load_or_create(d.path()).is_err(),
            "a damaged id is not replaced"
        );
    }
}
