//! What a build dir holds, unit by unit, as `zcfs cargo` reads it after cargo ran (through
//! the mount, like any process): for each unit cargo finished, the files it owns, the units
//! it was built against, when cargo started it, and on request the inputs its freshness
//! depends on. The daemon then records the units it does not know yet
//! (`crate::engine::snapshot`).
//!
//! A unit `<profile>/<package>-<h>` owns:
//! - its fingerprint directory `<profile>/.fingerprint/<package>-<h>/`;
//! - the files of `<profile>/deps/` and `<profile>/examples/` whose name carries `-<h>`
//!   (`libutil-<h>.rlib`, `util-<h>.d`, `app-<h>`);
//! - the tree `<profile>/build/<package>-<h>/` (a build script and its `.d`, or a run's
//!   `output`, `root-output`, `stderr` and OUT_DIR).
//!
//! Uplifted copies (`<profile>/app`, `<profile>/libutil.rlib`, `<profile>/app.d`) are not
//! recorded: cargo links and writes them again for a Fresh unit.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use super::dep_file::{self, Base};
use super::fingerprint_json::{self, FingerprintJson, Local};
use super::plan::{self, Refusal};
use super::units::{self, Layout, UnitDir};
use crate::os::OsStrExt;
use crate::proto::{Bytes, SnapInput, SnapUnit};

/// The most files one unit may own (a build script's OUT_DIR included).
const MAX_FILES: usize = 100_000;
/// The largest `dep-` file read.
const DEP_FILE_MAX: u64 = 64 << 20;

/// A unit found in the build dir.
#[derive(Debug, Clone)]
pub struct Found {
    pub unit: SnapUnit,
    pub package: String,
    /// What cargo checks for it (from its `.json`).
    pub local: Vec<Local>,
}

#[derive(Debug, Default)]
pub struct Survey {
    pub units: Vec<Found>,
    /// Units that are not recorded, with the reason (as `zcfs stats` counts it).
    pub refused: Vec<(String, String)>,
}

/// Profile directories of a build dir, relative to it: `debug`, `release`, `<triple>/debug`.
pub fn profiles(build_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(build_dir) else {
        return out;
    };
    for e in rd.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.starts_with('.') || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let p = e.path();
        if is_profile(&p) {
            out.push(name);
        } else if let Ok(inner) = fs::read_dir(&p) {
            for f in inner.flatten() {
                if let Some(n) = f.file_name().to_str()
                    && f.file_type().is_ok_and(|t| t.is_dir())
                    && is_profile(&f.path())
                {
                    out.push(format!("{name}/{n}"));
                }
            }
        }
    }
    out.sort();
    out
}

fn is_profile(dir: &Path) -> bool {
    dir.join(".fingerprint").is_dir() || matches!(units::layout(dir), Ok(Layout::PerUnit))
}

/// Why a record is refused, as `zcfs stats` shows it.
pub fn refusal_reason(r: &Refusal) -> &'static str {
    match r {
        Refusal::Unfinished => "unfinished unit",
        Refusal::NotUnderstood(_) => "record not understood",
        Refusal::NoJson => "record not understood",
        Refusal::Precalculated => "untracked build script or doc unit",
        Refusal::Checksums => "checksum freshness",
        Refusal::BelowRefused(_) => "depends on a unit left to cargo",
    }
}

/// The units of a build dir, without their inputs.
pub fn survey(build_dir: &Path) -> Survey {
    let mut s = Survey::default();
    let mut found: Vec<(String, UnitDir, HashMap<String, FingerprintJson>)> = Vec::new();
    let mut by_hash: HashMap<u64, String> = HashMap::new();
    for profile in profiles(build_dir) {
        let pdir = build_dir.join(&profile);
        if matches!(units::layout(&pdir), Ok(Layout::PerUnit)) {
            s.refused
                .push((profile, "cargo's per-unit build-dir layout".into()));
            continue;
        }
        let read = match units::read_units(&pdir) {
            Ok(r) => r,
            Err(e) => {
                s.refused.push((profile, format!("unreadable: {e}")));
                continue;
            }
        };
        let mut ok_units = Vec::new();
        for r in read {
            match r {
                Ok(u) => ok_units.push(u),
                Err(e) => {
                    tracing::debug!("snapshot: {e}");
                    s.refused
                        .push((profile.clone(), "record not understood".into()));
                }
            }
        }
        let mut json = HashMap::new();
        for u in &ok_units {
            for t in &u.targets {
                let p = u.path.join(format!("{}.json", t.name));
                if let Ok(Some(b)) = crate::util::read_capped(&p, fingerprint_json::MAX_SIZE)
                    && let Ok(j) = fingerprint_json::parse(&b)
                {
                    json.insert(format!("{}-{}/{}", u.package, u.unit_hash, t.name), j);
                }
            }
        }
        let verdicts: HashMap<String, Option<Refusal>> =
            plan::verdicts(&ok_units, &json).into_iter().collect();
        for u in ok_units {
            let name = format!("{}-{}", u.package, u.unit_hash);
            let key = format!("{profile}/{name}");
            let refusal = u.targets.iter().find_map(|t| {
                verdicts
                    .get(&format!("{name}/{}", t.name))
                    .cloned()
                    .unwrap_or(Some(Refusal::NoJson))
            });
            if let Some(r) = refusal {
                s.refused.push((key, refusal_reason(&r).into()));
                continue;
            }
            if u.targets.is_empty() {
                s.refused.push((key, "record not understood".into()));
                continue;
            }
            for t in &u.targets {
                if let Some(h) = t.hash {
                    by_hash.insert(h, key.clone());
                }
            }
            let mine: HashMap<String, FingerprintJson> = u
                .targets
                .iter()
                .filter_map(|t| {
                    let id = format!("{name}/{}", t.name);
                    json.get(&id).map(|j| (t.name.clone(), j.clone()))
                })
                .collect();
            found.push((profile.clone(), u, mine));
        }
    }
    // Files by unit hash in each profile's deps/ and examples/.
    let mut owned: HashMap<(String, String), Vec<String>> = HashMap::new();
    for profile in found
        .iter()
        .map(|(p, ..)| p.clone())
        .collect::<std::collections::BTreeSet<_>>()
    {
        for sub in ["deps", "examples"] {
            let Ok(rd) = fs::read_dir(build_dir.join(&profile).join(sub)) else {
                continue;
            };
            for e in rd.flatten() {
                let Some(n) = e.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                for h in unit_hashes_in_name(&n) {
                    owned
                        .entry((profile.clone(), h.to_string()))
                        .or_default()
                        .push(format!("{profile}/{sub}/{n}"));
                }
            }
        }
    }
    // Outputs without the unit's hash (a cdylib's `libcdy.so`, its `cdy.d`): named by the
    // hashless dep-info file of the unit's crate, when one unit of the profile has that
    // crate name.
    let mut by_crate: HashMap<(String, String), Vec<String>> = HashMap::new();
    for (profile, u, _) in &found {
        for c in crate_names(u) {
            by_crate
                .entry((profile.clone(), c))
                .or_default()
                .push(u.unit_hash.clone());
        }
    }
    for ((profile, krate), hashes) in &by_crate {
        let [hash] = hashes.as_slice() else { continue };
        let deps_dir = build_dir.join(profile).join("deps");
        let d = deps_dir.join(format!("{krate}.d"));
        if let Ok(Some(text)) = crate::util::read_capped(&d, DEP_FILE_MAX) {
            for t in make_targets(&text) {
                if let Ok(rel) = Path::new(&t).strip_prefix(&deps_dir)
                    && let Some(n) = rel.to_str().filter(|n| !n.contains('/'))
                {
                    owned
                        .entry((profile.clone(), hash.clone()))
                        .or_default()
                        .push(format!("{profile}/deps/{n}"));
                }
            }
        }
    }
    for (profile, u, json) in found {
        let name = format!("{}-{}", u.package, u.unit_hash);
        let key = format!("{profile}/{name}");
        match unit_spec(build_dir, &profile, &u, &json, &by_hash, &owned) {
            Ok(unit) => s.units.push(Found {
                unit,
                package: u.package.clone(),
                local: json.into_values().flat_map(|j| j.local).collect(),
            }),
            Err(reason) => s.refused.push((key, reason)),
        }
    }
    // A unit whose dependency is not recorded would not be offered either.
    loop {
        let keys: std::collections::HashSet<String> =
            s.units.iter().map(|f| f.unit.key.clone()).collect();
        let before = s.units.len();
        let mut kept = Vec::new();
        for f in std::mem::take(&mut s.units) {
            if f.unit.deps.iter().all(|d| keys.contains(d)) {
                kept.push(f);
            } else {
                s.refused
                    .push((f.unit.key, "depends on a unit left to cargo".into()));
            }
        }
        s.units = kept;
        if s.units.len() == before {
            break;
        }
    }
    if let Some(f) = rustc_info(build_dir) {
        s.units.push(f);
    }
    s
}

/// The key of cargo's cache of rustc's answers (`.rustc_info.json` at the build dir's root),
/// recorded like a unit: cargo checks it itself (rustc's path, mtime and environment), and
/// without it a build from an empty target probes rustc again (three runs).
pub const RUSTC_INFO: &str = ".rustc_info.json";

fn rustc_info(build_dir: &Path) -> Option<Found> {
    let p = build_dir.join(RUSTC_INFO);
    let m = fs::symlink_metadata(&p).ok().filter(|m| m.is_file())?;
    let files = vec![RUSTC_INFO.to_string()];
    Some(Found {
        unit: SnapUnit {
            key: RUSTC_INFO.to_string(),
            hashes: Vec::new(),
            stats_digest: stats_digest(build_dir, &files).ok()?,
            files,
            dirs: Vec::new(),
            deps: Vec::new(),
            started: crate::fsutil::mtime_ns(&m),
            // Nothing outside it: recorded without asking `cargo metadata` (which may
            // rewrite it).
            inputs: Some(Vec::new()),
            env: Vec::new(),
        },
        package: String::new(),
        local: Vec::new(),
    })
}

/// The crate names a unit's targets may compile under: from each hash file's name
/// (`lib-cdy`, `test-bin-app`), every tail after a `-`, with `-` read as `_`.
fn crate_names(u: &UnitDir) -> Vec<String> {
    let mut out = Vec::new();
    for t in &u.targets {
        let parts: Vec<&str> = t.name.split('-').collect();
        for i in 1..parts.len() {
            out.push(parts[i..].join("_"));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The targets of a make-style dependency file's rules (rustc's `.d`), unescaped.
fn make_targets(text: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        // The first `:` not escaped and followed by a space or the end ends the target.
        let b = line.as_bytes();
        let mut target: Vec<u8> = Vec::new();
        let mut i = 0;
        let mut done = false;
        while i < b.len() {
            match b[i] {
                b'\\' if i + 1 < b.len() => {
                    target.push(b[i + 1]);
                    i += 2;
                    continue;
                }
                b':' if i + 1 == b.len() || b[i + 1] == b' ' => {
                    done = true;
                    break;
                }
                c => target.push(c),
            }
            i += 1;
        }
        if done && !target.is_empty() {
            out.push(String::from_utf8_lossy(&target).into_owned());
        }
    }
    out
}

/// The unit hashes a file name in `deps/` carries: each `-<16 hex>` followed by the end or
/// a `.`.
fn unit_hashes_in_name(name: &str) -> Vec<&str> {
    let b = name.as_bytes();
    let mut out = Vec::new();
    for (i, &c) in b.iter().enumerate() {
        if c != b'-' || i + 17 > b.len() {
            continue;
        }
        let h = &name[i + 1..i + 17];
        let ends = i + 17 == b.len() || b[i + 17] == b'.';
        if ends && h.bytes().all(|x| matches!(x, b'0'..=b'9' | b'a'..=b'f')) {
            out.push(h);
        }
    }
    out
}

fn unit_spec(
    build_dir: &Path,
    profile: &str,
    u: &UnitDir,
    json: &HashMap<String, FingerprintJson>,
    by_hash: &HashMap<u64, String>,
    owned: &HashMap<(String, String), Vec<String>>,
) -> Result<SnapUnit, String> {
    let name = format!("{}-{}", u.package, u.unit_hash);
    let mut files = Vec::new();
    let mut dirs = vec![
        profile.to_string(),
        format!("{profile}/.fingerprint"),
        format!("{profile}/.fingerprint/{name}"),
    ];
    walk(
        build_dir,
        &format!("{profile}/.fingerprint/{name}"),
        &mut files,
        &mut dirs,
    )?;
    if let Some(v) = owned.get(&(profile.to_string(), u.unit_hash.clone())) {
        for rel in v {
            let m = fs::symlink_metadata(build_dir.join(rel)).map_err(|e| format!("{rel}: {e}"))?;
            if !m.is_file() {
                return Err("a unit file that is not a regular file".into());
            }
            if let Some(parent) = Path::new(rel).parent().and_then(|p| p.to_str()) {
                dirs.push(parent.to_string());
            }
            files.push(rel.clone());
        }
    }
    let build = format!("{profile}/build/{name}");
    if build_dir.join(&build).is_dir() {
        dirs.push(format!("{profile}/build"));
        dirs.push(build.clone());
        walk(build_dir, &build, &mut files, &mut dirs)?;
    }
    if files.len() > MAX_FILES {
        return Err("too many files".into());
    }
    files.sort();
    files.dedup();
    let stats_digest = stats_digest(build_dir, &files)?;
    // Parents first (a parent is a prefix, so it sorts before its children).
    dirs.sort();
    dirs.dedup();
    let mut deps = Vec::new();
    for j in json.values() {
        for d in &j.deps {
            match by_hash.get(&d.hash) {
                Some(k) => deps.push(k.clone()),
                None => return Err("depends on a unit left to cargo".into()),
            }
        }
    }
    deps.sort();
    deps.dedup();
    let started = [
        build_dir.join(profile).join(".fingerprint").join(&name),
        build_dir.join(&build),
    ]
    .iter()
    .find_map(|d| fs::metadata(d.join("invoked.timestamp")).ok())
    .map(|m| crate::fsutil::mtime_ns(&m))
    .ok_or("no start time")?;
    Ok(SnapUnit {
        key: format!("{profile}/{name}"),
        hashes: u
            .targets
            .iter()
            .map(|t| (t.name.clone(), t.hash.unwrap_or_default()))
            .collect(),
        files,
        dirs,
        deps,
        started,
        stats_digest,
        inputs: None,
        env: Vec::new(),
    })
}

/// A digest of the files' stats (not following links), in order.
fn stats_digest(root: &Path, files: &[String]) -> Result<crate::hash::Digest, String> {
    let mut h = crate::hash::KeyHasher::new("zcfs snapshot stats");
    for rel in files {
        let m = fs::symlink_metadata(root.join(rel)).map_err(|e| format!("{rel}: {e}"))?;
        let st = crate::os::file_stat(&m);
        h.field("file", rel.as_bytes());
        h.field("size", &st.size.to_le_bytes());
        h.field("ino", &st.ino.to_le_bytes());
        h.field("dev", &st.dev.to_le_bytes());
        h.field("mtime", &st.mtime.to_le_bytes());
        h.field("ctime", &st.ctime.to_le_bytes());
    }
    Ok(h.finish())
}

/// The regular files and directories under `rel` (relative to `root`); anything else (a
/// symlink, a FIFO) refuses the unit.
fn walk(
    root: &Path,
    rel: &str,
    files: &mut Vec<String>,
    dirs: &mut Vec<String>,
) -> Result<(), String> {
    let rd = fs::read_dir(root.join(rel)).map_err(|e| format!("{rel}: {e}"))?;
    for e in rd {
        let e = e.map_err(|e| format!("{rel}: {e}"))?;
        let Some(n) = e.file_name().to_str().map(str::to_string) else {
            return Err("a file name that is not UTF-8".into());
        };
        let child = format!("{rel}/{n}");
        let t = e.file_type().map_err(|e| format!("{child}: {e}"))?;
        if t.is_dir() {
            dirs.push(child.clone());
            walk(root, &child, files, dirs)?;
        } else if t.is_file() {
            files.push(child);
        } else {
            return Err("a unit file that is not a regular file".into());
        }
        if files.len() > MAX_FILES {
            return Err("too many files".into());
        }
    }
    Ok(())
}

/// Package roots by package name, from `cargo metadata`'s JSON (with dependencies).
pub fn package_roots(metadata: &serde_json::Value) -> HashMap<String, Vec<PathBuf>> {
    let mut out: HashMap<String, Vec<PathBuf>> = HashMap::new();
    for p in metadata["packages"].as_array().into_iter().flatten() {
        let (Some(name), Some(manifest)) = (p["name"].as_str(), p["manifest_path"].as_str()) else {
            continue;
        };
        if let Some(root) = Path::new(manifest).parent() {
            out.entry(name.to_string())
                .or_default()
                .push(root.to_path_buf());
        }
    }
    out
}

/// A variable a unit read, and its value then (`None`: unset).
pub type EnvRead = (Bytes, Option<Bytes>);

/// The inputs of a unit's freshness: the files of its `dep-` files and the paths its
/// build-script run declared (paths in the build dir relative to it), and the variables it
/// read or declared.
pub fn inputs(
    f: &Found,
    build_dir: &Path,
    roots: &HashMap<String, Vec<PathBuf>>,
) -> Result<(Vec<SnapInput>, Vec<EnvRead>), String> {
    let mut env: Vec<EnvRead> = Vec::new();
    // Paths relative to the package root, per candidate root: chosen below.
    let mut relative: Vec<PathBuf> = Vec::new();
    let mut fixed: Vec<PathBuf> = Vec::new();
    for l in &f.local {
        match l {
            Local::DepInfo { dep_info, .. } => {
                let p = build_dir.join(dep_info);
                let bytes = crate::util::read_capped(&p, DEP_FILE_MAX)
                    .map_err(|e| format!("dep file: {e}"))?
                    .ok_or("dep file too large")?;
                let d = dep_file::parse(&bytes).map_err(|_| "record not understood")?;
                env.extend(
                    d.env
                        .iter()
                        .map(|(k, v)| (Bytes(k.clone()), v.clone().map(Bytes))),
                );
                for e in &d.files {
                    let path = PathBuf::from(&*crate::os::os_str(&e.path));
                    match e.base {
                        Base::Package if path.is_absolute() => fixed.push(path),
                        Base::Package => relative.push(path),
                        Base::BuildRoot => fixed.push(build_dir.join(path)),
                    }
                }
            }
            Local::RerunIfChanged { paths, .. } => {
                for p in paths {
                    let p = PathBuf::from(p);
                    if p.is_absolute() {
                        fixed.push(p);
                    } else {
                        relative.push(p);
                    }
                }
            }
            Local::RerunIfEnvChanged { var, val } => env.push((
                Bytes(var.as_bytes().to_vec()),
                val.as_ref().map(|v| Bytes(v.as_bytes().to_vec())),
            )),
            Local::Precalculated(_) => return Err("untracked build script or doc unit".into()),
        }
    }
    if !relative.is_empty() {
        let root = choose_root(
            roots.get(&f.package).map(Vec::as_slice).unwrap_or(&[]),
            &relative,
        )?;
        fixed.extend(relative.iter().map(|r| root.join(r)));
    }
    let mut out: BTreeMap<Vec<u8>, SnapInput> = BTreeMap::new();
    for p in fixed {
        let folded = lexical(&p);
        let input = match folded.strip_prefix(build_dir) {
            Ok(rel) => {
                SnapInput::Build(rel.to_str().ok_or("a path that is not UTF-8")?.to_string())
            }
            // Hashed as cargo names it (a symlink on the way is followed, then `..`).
            Err(_) if p.is_absolute() => SnapInput::Host(Bytes(p.as_os_str().as_bytes().to_vec())),
            Err(_) => return Err("a relative input path".into()),
        };
        out.insert(folded.as_os_str().as_bytes().to_vec(), input);
    }
    env.sort_by(|a, b| a.0.0.cmp(&b.0.0));
    env.dedup();
    Ok((out.into_values().collect(), env))
}

/// `p` without `.` components and with `..` folded where it follows a normal component.
fn lexical(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// The package root among same-named packages (two versions of one crate) under which
/// every relative input exists: exactly one, or the unit is not recorded.
fn choose_root(candidates: &[PathBuf], relative: &[PathBuf]) -> Result<PathBuf, String> {
    match candidates {
        [] => Err("package root unknown".into()),
        [one] => Ok(one.clone()),
        many => {
            let fits: Vec<&PathBuf> = many
                .iter()
                .filter(|r| relative.iter().all(|p| r.join(p).exists()))
                .collect();
            match fits.as_slice() {
                [one] => Ok((*one).clone()),
                _ => Err("package root ambiguous".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_hashes_in_deps_names() {
        assert_eq!(
            unit_hashes_in_name("libutil-b881d5b3461a9762.rlib"),
            vec!["b881d5b3461a9762"]
        );
        assert_eq!(
            unit_hashes_in_name("app-b881d5b3461a9762"),
            vec!["b881d5b3461a9762"]
        );
        assert!(unit_hashes_in_name("libutil-b881d5b3461a976.rlib").is_empty());
        assert!(unit_hashes_in_name("libutil-b881d5b3461a9762x.rlib").is_empty());
        assert!(unit_hashes_in_name("libutil.rlib").is_empty());
    }

    #[test]
    fn make_targets_are_the_rules_left_sides() {
        let d = b"/t/debug/deps/libcdy.so: src/lib.rs\n\n/t/debug/deps/cdy.d: src/lib.rs\n\nsrc/lib.rs:\n\n# env-dep:ZT=1\n/t/a\\ b.d: x\n";
        assert_eq!(
            make_targets(d),
            vec![
                "/t/debug/deps/libcdy.so",
                "/t/debug/deps/cdy.d",
                "src/lib.rs",
                "/t/a b.d"
            ]
        );
    }

    #[test]
    fn lexical_folds_inner_dot_dots() {
        assert_eq!(lexical(Path::new("/a/b/../c/./d")), PathBuf::from("/a/c/d"));
        assert_eq!(lexical(Path::new("/../a")), PathBuf::from("/../a"));
    }

    #[test]
    fn a_package_root_is_chosen_only_when_one_fits() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        let b = t.path().join("b");
        fs::create_dir_all(a.join("src")).unwrap();
        fs::create_dir_all(b.join("src")).unwrap();
        fs::write(a.join("src/lib.rs"), "").unwrap();
        fs::write(b.join("src/lib.rs"), "").unwrap();
        fs::write(b.join("src/extra.rs"), "").unwrap();
        let rel = |s: &[&str]| s.iter().map(PathBuf::from).collect::<Vec<_>>();
        let both = vec![a.clone(), b.clone()];
        assert_eq!(
            choose_root(&both, &rel(&["src/lib.rs", "src/extra.rs"])),
            Ok(b.clone())
        );
        assert!(choose_root(&both, &rel(&["src/lib.rs"])).is_err());
        assert!(choose_root(&[], &rel(&["src/lib.rs"])).is_err());
        assert_eq!(choose_root(std::slice::from_ref(&a), &rel(&["x"])), Ok(a));
    }
}
