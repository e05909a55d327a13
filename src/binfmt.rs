//! What a build output may hide from a byte search. Path bindings (docs/sharing.md) decide
//! whether an entry may be served under another directory by searching its outputs for the
//! bytes of the paths it was built under; that search is blind to compressed data. This
//! module looks inside the containers compilers write (ar archives, ELF objects and
//! executables) and names what it cannot see through:
//!
//! - ELF sections with `SHF_COMPRESSED` (`-Zdebuginfo-compression`,
//!   `-Wl,--compress-debug-sections`) or named `.zdebug*` (the older GNU form);
//! - a `.rustc` section (dylib and proc-macro metadata) that is not in the uncompressed
//!   form rustc 1.95 writes (`rust\0\0\0<v>`, a 64-bit length, the raw metadata, which
//!   starts with the same magic); older rustc versions compressed it with snappy;
//! - thin archives (their members live elsewhere) and anything that claims to be ELF or an
//!   archive but does not parse;
//! - MSVC's program databases (`.pdb`): paged files whose pages need not be in order.
//!
//! Every offset and size is checked: the bytes come from a compiler's output and may be
//! anything.

/// Why bytes may hide content from a search, or `None` if a search sees all of it.
pub fn hidden_content(bytes: &[u8]) -> Option<String> {
    hidden(bytes, 0)
}

const MAX_DEPTH: u32 = 2;

fn hidden(bytes: &[u8], depth: u32) -> Option<String> {
    if bytes.starts_with(b"!<thin>\n") {
        return Some("thin archive".into());
    }
    if bytes.starts_with(b"!<arch>\n") {
        if depth >= MAX_DEPTH {
            return Some("nested archive".into());
        }
        return archive(bytes, depth);
    }
    if bytes.starts_with(b"\x7fELF") {
        return elf(bytes).err();
    }
    if bytes.starts_with(PDB_MAGIC) {
        return Some("PDB: its streams lie in pages out of order".into());
    }
    None
}

/// The start of an MSF 7.00 file (MSVC's program database). Its streams are split into
/// pages stored in any order, so a string may straddle two pages far apart.
const PDB_MAGIC: &[u8] = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS";

/// Walks an ar archive (System V/GNU, with BSD `#1/len` names accepted) and checks members.
fn archive(bytes: &[u8], depth: u32) -> Option<String> {
    let mut pos = 8usize;
    while pos < bytes.len() {
        let Some(h) = bytes.get(pos..pos.saturating_add(60)) else {
            return Some("truncated archive member header".into());
        };
        if &h[58..60] != b"`\n" {
            return Some("bad archive member header".into());
        }
        let size: usize = match std::str::from_utf8(&h[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            Some(s) => s,
            None => return Some("bad archive member size".into()),
        };
        let start = pos + 60;
        let Some(end) = start.checked_add(size).filter(|e| *e <= bytes.len()) else {
            return Some("archive member out of bounds".into());
        };
        let mut data = &bytes[start..end];
        let name = &h[..16];
        if let Some(len) = name.strip_prefix(b"#1/") {
            // BSD: the name is the first `len` bytes of the data.
            let n: usize = match std::str::from_utf8(len)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                Some(n) if n <= data.len() => n,
                _ => return Some("bad archive member name".into()),
            };
            data = &data[n..];
        }
        if let Some(why) = hidden(data, depth + 1) {
            let shown = String::from_utf8_lossy(name).trim().to_string();
            return Some(format!("{why} (archive member {shown})"));
        }
        pos = end + (size & 1);
    }
    None
}

struct Elf<'a> {
    b: &'a [u8],
    wide: bool,
    big: bool,
}

impl Elf<'_> {
    fn uint(&self, at: usize, n: usize) -> Result<u64, String> {
        let s = at
            .checked_add(n)
            .and_then(|end| self.b.get(at..end))
            .ok_or_else(|| "ELF field out of bounds".to_string())?;
        let mut v = 0u64;
        for i in 0..n {
            let byte = if self.big { s[i] } else { s[n - 1 - i] };
            v = (v << 8) | byte as u64;
        }
        Ok(v)
    }
    fn word(&self, at: usize) -> Result<u64, String> {
        self.uint(at, if self.wide { 8 } else { 4 })
    }
}

fn usize_of(v: u64) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| "ELF value out of range".to_string())
}

/// Checks an ELF file's sections; `Err(why)` if one may hide content.
fn elf(b: &[u8]) -> Result<(), String> {
    let class = *b.get(4).ok_or("truncated ELF header")?;
    let data = *b.get(5).ok_or("truncated ELF header")?;
    let e = Elf {
        b,
        wide: match class {
            1 => false,
            2 => true,
            _ => return Err("unknown ELF class".into()),
        },
        big: match data {
            1 => false,
            2 => true,
            _ => return Err("unknown ELF byte order".into()),
        },
    };
    // Offsets of e_shoff, e_shentsize, e_shnum, e_shstrndx.
    let (shoff_at, rest_at) = if e.wide { (0x28, 0x3a) } else { (0x20, 0x2e) };
    let shoff = usize_of(e.word(shoff_at)?)?;
    let shentsize = usize_of(e.uint(rest_at, 2)?)?;
    let mut shnum = usize_of(e.uint(rest_at + 2, 2)?)?;
    let mut shstrndx = usize_of(e.uint(rest_at + 4, 2)?)?;
    if shoff == 0 {
        return Ok(());
    }
    let min_ent = if e.wide { 0x40 } else { 0x28 };
    if shentsize < min_ent {
        return Err("bad ELF section header size".into());
    }
    // Field offsets inside a section header.
    let (flags_at, offset_at, size_at, link_at) = if e.wide {
        (0x08, 0x18, 0x20, 0x28)
    } else {
        (0x08, 0x10, 0x14, 0x18)
    };
    // The offset of field `off` of section header `i`.
    let field = |i: usize, off: usize| -> Result<usize, String> {
        i.checked_mul(shentsize)
            .and_then(|o| o.checked_add(shoff))
            .and_then(|o| o.checked_add(off))
            .ok_or_else(|| "ELF section header out of bounds".to_string())
    };
    // Extended numbering: the real count and string-table index live in section 0.
    if shnum == 0 {
        shnum = usize_of(e.word(field(0, size_at)?)?)?;
    }
    if shstrndx == 0xffff {
        shstrndx = usize_of(e.uint(field(0, link_at)?, 4)?)?;
    }
    if shnum > b.len() / shentsize {
        return Err("ELF section count out of bounds".into());
    }
    let section = |i: usize| -> Result<(u64, &[u8]), String> {
        let flags = e.word(field(i, flags_at)?)?;
        let sh_type = e.uint(field(i, 4)?, 4)?;
        let off = usize_of(e.word(field(i, offset_at)?)?)?;
        let size = usize_of(e.word(field(i, size_at)?)?)?;
        // SHT_NOBITS (.bss) has no bytes in the file.
        let bytes: &[u8] = if sh_type == 8 {
            &[]
        } else {
            off.checked_add(size)
                .and_then(|end| b.get(off..end))
                .ok_or_else(|| "ELF section out of bounds".to_string())?
        };
        Ok((flags, bytes))
    };
    let names = if shstrndx < shnum {
        section(shstrndx)?.1
    } else {
        &[][..]
    };
    const SHF_COMPRESSED: u64 = 0x800;
    for i in 0..shnum {
        let (flags, bytes) = section(i)?;
        let name_off = usize_of(e.uint(field(i, 0)?, 4)?)?;
        let name = names
            .get(name_off..)
            .map(|n| &n[..n.iter().position(|c| *c == 0).unwrap_or(n.len())])
            .unwrap_or(b"");
        let shown = || String::from_utf8_lossy(name).into_owned();
        if flags & SHF_COMPRESSED != 0 {
            return Err(format!("compressed section {}", shown()));
        }
        if name.starts_with(b".zdebug") {
            return Err(format!("compressed section {}", shown()));
        }
        if name == b".rustc" && !plain_rustc_metadata(bytes) {
            return Err("compressed .rustc metadata".into());
        }
    }
    Ok(())
}

/// The uncompressed `.rustc` section form: magic, a 64-bit length, the raw metadata (which
/// starts with the same magic).
fn plain_rustc_metadata(b: &[u8]) -> bool {
    const MAGIC: &[u8] = b"rust\0\0\0";
    b.starts_with(MAGIC) && b.get(16..).is_some_and(|raw| raw.starts_with(MAGIC))
}

/// The names of an ar archive's members (System V/GNU with its long-name table, or BSD),
/// read header by header with `pread` from a file that need not be ours: member data is
/// skipped, never read, except the long-name table (capped). `Ok(None)`: not an archive.
pub fn ar_member_names(file: &std::fs::File) -> std::io::Result<Option<Vec<Vec<u8>>>> {
    use crate::os::FileAt;
    use std::io::{Error, ErrorKind};
    let len = file.metadata()?.len();
    let mut magic = [0u8; 8];
    if len < 8 || file.read_exact_at(&mut magic, 0).is_err() || &magic != b"!<arch>\n" {
        return Ok(None);
    }
    let bad = |what: &str| Error::new(ErrorKind::InvalidData, format!("archive: {what}"));
    let mut names = Vec::new();
    let mut long_names: Vec<u8> = Vec::new();
    let mut pos = 8u64;
    while pos < len {
        let mut h = [0u8; 60];
        file.read_exact_at(&mut h, pos)
            .map_err(|_| bad("truncated member header"))?;
        if &h[58..60] != b"`\n" {
            return Err(bad("bad member header"));
        }
        let size: u64 = std::str::from_utf8(&h[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| bad("bad member size"))?;
        let data = pos + 60;
        let end = data
            .checked_add(size)
            .filter(|e| *e <= len)
            .ok_or_else(|| bad("member out of bounds"))?;
        let field = &h[..16];
        let trimmed = {
            let n = field.iter().rposition(|c| *c != b' ').map_or(0, |i| i + 1);
            &field[..n]
        };
        match trimmed {
            b"/" | b"/SYM64/" | b"__.SYMDEF" | b"__.SYMDEF SORTED" => {}
            b"//" => {
                if size > 16 << 20 {
                    return Err(bad("long-name table too large"));
                }
                long_names = vec![0u8; size as usize];
                file.read_exact_at(&mut long_names, data)?;
            }
            n if n.len() > 1 && n[0] == b'/' && n[1..].iter().all(u8::is_ascii_digit) => {
                let off: usize = std::str::from_utf8(&n[1..])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("bad long-name offset"))?;
                let rest = long_names
                    .get(off..)
                    .ok_or_else(|| bad("long-name offset out of range"))?;
                let end_name = rest.iter().position(|c| *c == b'\n').unwrap_or(rest.len());
                let name = &rest[..end_name];
                names.push(name.strip_suffix(b"/").unwrap_or(name).to_vec());
            }
            n if n.starts_with(b"#1/") => {
                let nlen: u64 = std::str::from_utf8(&n[3..])
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .filter(|l| *l <= size && *l <= 4096)
                    .ok_or_else(|| bad("bad BSD name"))?;
                let mut name = vec![0u8; nlen as usize];
                file.read_exact_at(&mut name, data)?;
                let n = name.iter().position(|c| *c == 0).unwrap_or(name.len());
                name.truncate(n);
                names.push(name);
            }
            n => names.push(n.strip_suffix(b"/").unwrap_or(n).to_vec()),
        }
        pos = end + (size & 1);
    }
    Ok(Some(names))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal little-endian ELF64 with the given sections (name, flags, content).
    pub fn elf64(sections: &[(&str, u64, &[u8])]) -> Vec<u8> {
        let mut names = vec![0u8];
        let mut offs = Vec::new();
        for (n, _, _) in sections {
            offs.push(names.len() as u32);
            names.extend_from_slice(n.as_bytes());
            names.push(0);
        }
        let shstr_name = names.len() as u32;
        names.extend_from_slice(b".shstrtab\0");
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        let mut data_offs = Vec::new();
        for (_, _, content) in sections {
            data_offs.push(b.len() as u64);
            b.extend_from_slice(content);
        }
        let names_off = b.len() as u64;
        b.extend_from_slice(&names);
        let shoff = b.len() as u64;
        let shnum = sections.len() + 2;
        let mut sh = |name: u32, flags: u64, off: u64, size: u64| {
            let mut h = vec![0u8; 64];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&1u32.to_le_bytes());
            h[8..16].copy_from_slice(&flags.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&off.to_le_bytes());
            h[0x20..0x28].copy_from_slice(&size.to_le_bytes());
            b.extend_from_slice(&h);
        };
        sh(0, 0, 0, 0);
        for (i, (_, flags, content)) in sections.iter().enumerate() {
            sh(offs[i], *flags, data_offs[i], content.len() as u64);
        }
        sh(shstr_name, 0, names_off, names.len() as u64);
        b[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        b[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        b[0x3c..0x3e].copy_from_slice(&(shnum as u16).to_le_bytes());
        b[0x3e..0x40].copy_from_slice(&((shnum - 1) as u16).to_le_bytes());
        b
    }

    fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = b"!<arch>\n".to_vec();
        for (name, data) in members {
            let h = format!(
                "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                name,
                0,
                0,
                0,
                644,
                data.len()
            );
            b.extend_from_slice(h.as_bytes());
            b.extend_from_slice(data);
            if data.len() % 2 == 1 {
                b.push(b'\n');
            }
        }
        b
    }

    #[test]
    fn member_names_of_gnu_and_bsd_archives() {
        let dir = tempfile::tempdir().unwrap();
        let long = "a_member_name_longer_than_sixteen_bytes.o";
        let table = format!("{long}/\n");
        let b = ar(&[
            ("/", b"\0\0\0\0"),
            ("//", table.as_bytes()),
            ("short.o/", b"abc"),
            ("/0", b"x"),
            ("#1/8", b"bsd.o\0\0\0data"),
        ]);
        let p = dir.path().join("lib.a");
        std::fs::write(&p, &b).unwrap();
        let names = ar_member_names(&std::fs::File::open(&p).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            names,
            vec![
                b"short.o".to_vec(),
                long.as_bytes().to_vec(),
                b"bsd.o".to_vec()
            ]
        );
        std::fs::write(&p, b"not an archive").unwrap();
        assert!(
            ar_member_names(&std::fs::File::open(&p).unwrap())
                .unwrap()
                .is_none()
        );
        std::fs::write(&p, &b[..b.len() - 3]).unwrap();
        assert!(ar_member_names(&std::fs::File::open(&p).unwrap()).is_err());
    }

    #[test]
    fn program_databases_hide_their_strings() {
        let mut pdb = PDB_MAGIC.to_vec();
        pdb.extend_from_slice(&[0u8; 64]);
        assert!(hidden_content(&pdb).unwrap().contains("PDB"));
    }

    #[test]
    fn plain_outputs_hide_nothing() {
        let meta = b"rust\0\0\0\x0a\x10\0\0\0\0\0\0\0rust\0\0\0\x0araw metadata";
        let so = elf64(&[
            (".text", 6, b"code"),
            (".rustc", 0, meta),
            (".debug_str", 0x30, b"/w/src"),
        ]);
        assert_eq!(hidden_content(&so), None);
        let rlib = ar(&[("lib.rmeta/", b"rust\0\0\0\x0ameta"), ("x.o/", &so)]);
        assert_eq!(hidden_content(&rlib), None);
        assert_eq!(hidden_content(b"x.d: src/lib.rs\n"), None);
    }

    #[test]
    fn compressed_sections_and_metadata_are_named() {
        let z = elf64(&[(".debug_info", 0x800, b"\x01\0\0\0zlib...")]);
        assert!(hidden_content(&z).unwrap().contains(".debug_info"));
        let gnu = elf64(&[(".zdebug_info", 0, b"ZLIB....")]);
        assert!(hidden_content(&gnu).is_some());
        let snappy = elf64(&[(".rustc", 0, b"rust\0\0\0\x06\xff\x06\0\0sNaPpY")]);
        assert!(hidden_content(&snappy).unwrap().contains(".rustc"));
        let rlib = ar(&[("lib.rmeta/", b"rust\0\0\0\x0ameta"), ("y.o/", &z)]);
        assert!(hidden_content(&rlib).unwrap().contains("archive member"));
        assert!(hidden_content(b"!<thin>\n").is_some());
    }

    #[test]
    fn malformed_containers_count_as_hiding_and_never_panic() {
        let good = elf64(&[(".text", 6, b"code")]);
        for cut in 0..good.len() {
            // Any prefix parses or is refused, without panicking.
            let _ = hidden_content(&good[..cut]);
        }
        let mut bad = good.clone();
        bad[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(hidden_content(&bad).is_some());
        let mut bad = good.clone();
        let shoff = u64::from_le_bytes(good[0x28..0x30].try_into().unwrap()) as usize;
        bad[shoff + 64 + 0x20..shoff + 64 + 0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(hidden_content(&bad).is_some());
        // Found by the fuzzer: a section table offset near the end of the address space.
        let mut bad = good.clone();
        bad[0x28..0x30].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
        bad[0x3c..0x3e].copy_from_slice(&0u16.to_le_bytes());
        bad[0x3e..0x40].copy_from_slice(&0xffffu16.to_le_bytes());
        assert!(hidden_content(&bad).is_some());
        let mut a = ar(&[("x.o/", b"data")]);
        a[8 + 48..8 + 58].copy_from_slice(b"9999999999");
        assert!(hidden_content(&a).is_some());
    }
}
