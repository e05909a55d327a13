//! Delivery as real files: each output is cloned (FICLONERANGE) or copied from its pack into
//! a temp file in the out-dir, given its mode and mtime, and renamed into place.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use super::{Deliver, Delivered, Delivery, Report};
use crate::fsutil::{CopyMethod, mtime_ns, set_times};
use crate::os::FileStat;

pub struct Restore;

struct Temp {
    path: PathBuf,
    file: File,
    dest: PathBuf,
}

impl Drop for Temp {
    fn drop(&mut self) {
        // Only still present if the delivery failed before the rename.
        let _ = fs::remove_file(&self.path);
    }
}

impl Deliver for Restore {
    fn name(&self) -> &'static str {
        "restore"
    }

    fn deliver(&self, d: &Delivery<'_>) -> io::Result<Report> {
        let mut report = Report::default();
        let mut temps = Vec::with_capacity(d.outputs.len());
        for o in &d.outputs {
            let entry = d
                .pack
                .header
                .entries
                .get(o.index)
                .ok_or_else(|| io::Error::other("delivered entry out of range"))?;
            let (Some(dir), Some(name)) = (o.path.parent(), o.path.file_name()) else {
                return Err(io::Error::other("output path without a file name"));
            };
            let tmp_path = dir.join(format!(
                ".{}.zcfs-{:08x}",
                name.to_string_lossy(),
                rand_u32()
            ));
            let file =
                crate::os::private_file(OpenOptions::new().read(true).write(true).create_new(true))
                    .open(&tmp_path)?;
            let temp = Temp {
                path: tmp_path,
                file,
                dest: o.path.clone(),
            };
            if let Some(bytes) = &o.bytes {
                (&temp.file).write_all(bytes)?;
                report.bytes += bytes.len() as u64;
            } else {
                let method = d.pack.copy_entry_to(o.index, &temp.file)?;
                report.bytes += entry.size;
                if method == CopyMethod::Reflink {
                    report.reflinked_bytes += entry.size;
                }
            }
            crate::os::set_file_mode(&temp.file, o.mode.unwrap_or(entry.mode))?;
            temps.push(temp);
        }
        // One mtime for the whole delivery: the kernel stamped each temp as it was written,
        // so the newest of those stamps is the kernel clock's "now" (spec M4), raised to
        // the newest input (M5).
        let mut mtime = d.mtime_floor;
        for t in &temps {
            mtime = mtime.max(mtime_ns(&t.file.metadata()?));
        }
        for t in &temps {
            set_times(&t.file, mtime)?;
        }
        for t in &temps {
            fs::rename(&t.path, &t.dest)?;
        }
        for (t, o) in temps.iter().zip(&d.outputs) {
            let entry = &d.pack.header.entries[o.index];
            report.files.push(Delivered {
                path: t.dest.clone(),
                stat: FileStat::of_file(&t.file, &t.file.metadata()?)?,
                digest: o
                    .bytes
                    .as_deref()
                    .map_or(entry.digest, crate::hash::Digest::of),
            });
        }
        Ok(report)
    }
}

fn rand_u32() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let c = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::process::id().wrapping_mul(2_654_435_761) ^ c.wrapping_mul(40503)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pack::{self, Pack};
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn restores_content_mode_and_one_kernel_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |name: &str, data: &[u8], mode: u32| {
            let p = dir.path().join(name);
            File::create(&p).unwrap().write_all(data).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            File::open(&p).unwrap()
        };
        let bin = mk("bin", &vec![9u8; 70000], 0o755);
        let d = mk("d", b"x.d: src/lib.rs\n", 0o644);
        let pack_path = dir.path().join("p.pack");
        let out = File::create(&pack_path).unwrap();
        pack::write(
            &out,
            &[
                pack::Source {
                    name: "app-1".into(),
                    file: &bin,
                },
                pack::Source {
                    name: "app-1.d".into(),
                    file: &d,
                },
            ],
            vec![],
            vec![],
            vec![],
        )
        .unwrap();
        let p = std::sync::Arc::new(Pack::open(&pack_path).unwrap());
        let out_dir = dir.path().join("target/debug/deps");
        // A stale file at the destination is replaced.
        fs::create_dir_all(&out_dir).unwrap();
        fs::write(out_dir.join("app-1"), b"stale").unwrap();

        let before = crate::fsutil::KernelClock::open(&dir.path().join("clock"))
            .unwrap()
            .now()
            .unwrap();
        let r = Restore
            .deliver(&Delivery::in_dir(&p, &out_dir, 0, &[]))
            .unwrap();
        assert_eq!(r.bytes, 70000 + 16);
        let m1 = fs::metadata(out_dir.join("app-1")).unwrap();
        let m2 = fs::metadata(out_dir.join("app-1.d")).unwrap();
        assert_eq!(fs::read(out_dir.join("app-1")).unwrap(), vec![9u8; 70000]);
        assert_eq!(m1.mode() & 0o777, 0o755);
        assert_eq!(m2.mode() & 0o777, 0o644);
        assert_eq!(mtime_ns(&m1), mtime_ns(&m2), "one mtime per delivery");
        assert!(
            mtime_ns(&m1) >= before,
            "not older than the kernel clock before"
        );
        // No temp files left.
        assert_eq!(fs::read_dir(&out_dir).unwrap().count(), 2);

        // The floor wins when it is newer.
        let floor = mtime_ns(&m1) + 5_000_000_000;
        Restore
            .deliver(&Delivery::in_dir(&p, &out_dir, floor, &[]))
            .unwrap();
        assert_eq!(
            mtime_ns(&fs::metadata(out_dir.join("app-1")).unwrap()),
            floor
        );

        // A replaced entry gets the given bytes, the recorded mode and the same mtime.
        let r = Restore
            .deliver(&Delivery::in_dir(
                &p,
                &out_dir,
                0,
                &[(1, b"y.d: src/lib.rs\n".to_vec())],
            ))
            .unwrap();
        assert_eq!(
            fs::read(out_dir.join("app-1.d")).unwrap(),
            b"y.d: src/lib.rs\n"
        );
        assert_eq!(
            r.files[1].digest,
            crate::hash::Digest::of(b"y.d: src/lib.rs\n")
        );
        let m1 = fs::metadata(out_dir.join("app-1")).unwrap();
        let m2 = fs::metadata(out_dir.join("app-1.d")).unwrap();
        assert_eq!(m2.mode() & 0o777, 0o644);
        assert_eq!(mtime_ns(&m1), mtime_ns(&m2));
    }
}
