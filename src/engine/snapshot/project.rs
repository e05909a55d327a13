//! Verifying recorded units before a build and projecting those that hold.

use super::*;

impl Engine {
    pub(in crate::engine) fn snapshot_project(
        &self,
        at: SnapshotAt,
        env: Vec<(crate::proto::Bytes, crate::proto::Bytes)>,
    ) -> Result<serde_json::Value> {
        let env: HashMap<Vec<u8>, Vec<u8>> = env.into_iter().map(|(k, v)| (k.0, v.0)).collect();
        let (build_dir, m, inner) = self.snapshot_mount(&at)?;
        let core = &*m.core;
        // The stamp, before anything is looked at.
        let stamp = core.now()?;
        let t0 = std::time::Instant::now();
        let idx = Index::load(&index_path(self, &at));
        let mut left: BTreeMap<&'static str, u64> = BTreeMap::new();
        if idx.units.is_empty() {
            return Ok(serde_json::json!({ "projected": 0, "snapshot": false }));
        }

        // Units cargo already has, and the fingerprints those depend on.
        let mut present: HashSet<&str> = HashSet::new();
        let mut real_deps: HashSet<u64> = HashSet::new();
        let profiles: HashSet<&str> = idx
            .units
            .keys()
            .filter_map(|k| k.rsplit_once('/').map(|(p, _)| p))
            .collect();
        for p in profiles {
            let fp = inner.join(p).join(".fingerprint");
            let Ok(names) = core.list_dir(&fp) else {
                continue;
            };
            for n in names {
                let dir = fp.join(&n);
                let Ok(files) = core.list_dir(&dir) else {
                    continue;
                };
                if files.is_empty() {
                    continue;
                }
                if let Some(k) = idx
                    .units
                    .get_key_value(&format!("{p}/{}", n.to_string_lossy()))
                    .map(|(k, _)| k.as_str())
                {
                    present.insert(k);
                }
                for f in files {
                    if f.to_string_lossy().ends_with(".json")
                        && let Some(b) = read_core_file(core, &dir.join(&f), 16 << 20)
                    {
                        match crate::snapshot::fingerprint_json::parse(&b) {
                            Ok(j) => real_deps.extend(j.deps.iter().map(|d| d.hash)),
                            // A unit whose dependencies cannot be told: project nothing.
                            Err(_) => {
                                return Ok(serde_json::json!({
                                    "projected": 0,
                                    "left": { "a record cargo has is not understood": idx.units.len() },
                                }));
                            }
                        }
                    }
                }
            }
        }

        // Each absent unit's newest record that verifies now, with the records of its
        // dependencies it was built against.
        let tools = self.tools_digest(&at);
        let fs = self.fs();
        let mut cx = Resolve {
            idx: &idx,
            present: &present,
            fs: &fs,
            env: &env,
            tools: tools.ok(),
            stamp,
            checked: HashMap::new(),
            packs: HashMap::new(),
            listings: HashMap::new(),
            state: HashMap::new(),
            visiting: HashSet::new(),
        };
        for key in idx.units.keys() {
            if is_extra(key) {
                // Not a unit: projected only where cargo has none (it checks it itself).
                let rel = inner.join(checked_rel(key).map_err(anyhow::Error::msg)?);
                if core.path_target(&rel).is_ok() {
                    continue;
                }
            }
            if !present.contains(key.as_str()) {
                self.resolve(&mut cx, key);
            }
        }
        let packs = std::mem::take(&mut cx.packs);
        let t_verify = t0.elapsed();
        let checked_inputs = cx.checked.len();
        let mut chosen: HashMap<&str, (&UnitRecord, NanoTime)> = HashMap::new();
        for (k, st) in cx.state {
            match st {
                Ok(c) => {
                    chosen.insert(k, c);
                }
                Err(why) => *left.entry(why).or_default() += 1,
            }
        }
        // Never under a unit cargo already has (it would look older than its dependency),
        // and then not above anything dropped.
        loop {
            let mut drop: Vec<(&str, &'static str)> = Vec::new();
            for (key, (r, _)) in &chosen {
                if r.hashes.iter().any(|(_, h)| real_deps.contains(h)) {
                    drop.push((key, "a unit cargo has depends on it"));
                } else if !r.deps.iter().all(|(k, _)| chosen.contains_key(k.as_str())) {
                    drop.push((key, "depends on a unit left to cargo"));
                }
            }
            if drop.is_empty() {
                break;
            }
            for (k, w) in drop {
                chosen.remove(k);
                *left.entry(w).or_default() += 1;
            }
        }
        if chosen.is_empty() {
            self.count_snapshot(0, 0, &left);
            return Ok(serde_json::json!({ "projected": 0, "left": left }));
        }
        // One time for everything projected: the newest input, older than the stamp.
        let t = chosen.values().map(|(_, t)| *t).max().unwrap_or(0);

        // Directories the mount lacks are made by the client (through the mount, so the
        // kernel learns of them), which then asks again.
        let mut dirs: Vec<&str> = chosen
            .values()
            .flat_map(|(r, _)| r.dirs.iter().map(String::as_str))
            .collect();
        dirs.sort();
        dirs.dedup();
        let mut need: Vec<&str> = Vec::new();
        for d in dirs {
            let rel = checked_rel(d).map_err(anyhow::Error::msg)?;
            match core.path_target(&inner.join(rel)) {
                Ok(PathTarget::Dir) => {}
                Err(e) if crate::os::is_not_found(&e) => need.push(d),
                _ => anyhow::bail!("{d} in the build dir is not a directory"),
            }
        }
        if !need.is_empty() {
            let rels: Vec<PathBuf> = need.iter().map(|d| inner.join(d)).collect();
            if let Err(e) = core.make_dirs(&rels) {
                // Made by the client through the mount instead, which then asks again.
                debug!("snapshot: directories left to the client: {e}");
                return Ok(serde_json::json!({ "projected": 0, "need_dirs": need }));
            }
        }

        let mut items = Vec::new();
        let mut bytes = 0u64;
        for (r, _) in chosen.values() {
            for f in &r.files {
                let pack = packs
                    .get(&f.pack)
                    .cloned()
                    .flatten()
                    .context("a verified pack is gone")?;
                bytes += pack
                    .header
                    .entries
                    .get(f.index as usize)
                    .map_or(0, |e| e.size);
                items.push(ProjectItem {
                    path: inner.join(checked_rel(&f.rel).map_err(anyhow::Error::msg)?),
                    pack,
                    index: f.index as usize,
                    perm: f.perm,
                    mtime: t,
                });
            }
        }
        let t1 = std::time::Instant::now();
        core.project(&items)
            .map_err(|e| anyhow::anyhow!("projecting the snapshot: {e}"))?;
        debug!(
            "snapshot: {checked_inputs} inputs verified in {t_verify:?}, {} files projected in {:?}",
            items.len(),
            t1.elapsed()
        );
        for id in packs.keys() {
            self.store.touch(id);
        }
        let n = chosen.keys().filter(|k| !is_extra(k)).count() as u64;
        self.count_snapshot(n, items.len() as u64, &left);
        info!(
            "snapshot of {}: {n} units projected ({} files, {bytes} bytes) at {t}, stamp {stamp}",
            build_dir.display(),
            items.len()
        );
        Ok(serde_json::json!({
            "projected": n,
            "files": items.len(),
            "bytes": bytes,
            "present": present.len(),
            "left": left,
        }))
    }

    /// Chooses the record of `key` to project: the newest that verifies and whose
    /// dependencies resolve to the records it was built against (their identity), with its
    /// generated inputs supplied by them. Returns the chosen identity.
    fn resolve<'a>(&self, cx: &mut Resolve<'a, '_>, key: &'a str) -> Option<Digest> {
        if let Some(st) = cx.state.get(key) {
            return st.as_ref().ok().map(|(r, _)| r.identity);
        }
        if cx.present.contains(key) || !cx.visiting.insert(key) {
            return None;
        }
        let idx = cx.idx;
        let mut why = "no record";
        let mut pick = None;
        let records = idx.units.get(key).map(Vec::as_slice).unwrap_or(&[]);
        // Records whose variables all agree with the client's first (a variable it lacks
        // agrees with one recorded unset); then those it cannot tell apart.
        let agrees = |r: &UnitRecord| r.env.iter().all(|(k, v)| cx.env.get(k) == v.as_ref());
        let order: Vec<&UnitRecord> = records
            .iter()
            .filter(|r| agrees(r))
            .chain(records.iter().filter(|r| !agrees(r)))
            .collect();
        'records: for r in order {
            if cx.tools != Some(r.tools) {
                why = "a compiler or linker changed";
                continue;
            }
            // cargo checks these itself (with its `[env]` config, which this process does
            // not see): a variable the client has decides between records, one it lacks
            // is cargo's to judge.
            if r.env
                .iter()
                .any(|(k, v)| cx.env.get(k).is_some_and(|now| v.as_ref() != Some(now)))
            {
                why = "variable changed";
                continue;
            }
            let t = match self.verify_record(
                cx.fs,
                r,
                cx.stamp,
                &mut cx.checked,
                &mut cx.packs,
                &mut cx.listings,
            ) {
                Ok(t) => t,
                Err(w) => {
                    why = w;
                    continue;
                }
            };
            let mut supplied: HashMap<&str, Digest> = HashMap::new();
            for (k, id) in &r.deps {
                let dep = idx.units.get_key_value(k).map(|(k, _)| k.as_str());
                let got = dep.and_then(|d| self.resolve(cx, d));
                if got != Some(*id) {
                    debug!(
                        "snapshot: a record of {key} needs {k} {} (have {:?})",
                        id.short(),
                        got.map(|g| g.short())
                    );
                    why = "depends on a unit left to cargo";
                    continue 'records;
                }
                if let Some(Ok((d, _))) = dep.and_then(|d| cx.state.get(d)) {
                    supplied.extend(d.files.iter().map(|f| (f.rel.as_str(), f.digest)));
                }
            }
            if !r
                .build_inputs
                .iter()
                .all(|(rel, d)| supplied.get(rel.as_str()) == Some(d))
            {
                why = "generated input not supplied";
                continue;
            }
            pick = Some((r, t));
            break;
        }
        cx.visiting.remove(key);
        let id = pick.map(|(r, _)| r.identity);
        cx.state.insert(key, pick.ok_or(why));
        id
    }

    fn count_snapshot(&self, units: u64, files: u64, left: &BTreeMap<&'static str, u64>) {
        self.stats.update(|d| {
            d.snapshot.projected += units;
            d.snapshot.files_projected += files;
            for (r, n) in left {
                *d.snapshot.left.entry(r.to_string()).or_default() += n;
            }
        });
    }

    /// Whether a record holds now: every input as recorded and older than the stamp, every
    /// pack there. Returns its newest input's mtime.
    fn verify_record(
        &self,
        fs: &dyn FsView,
        r: &UnitRecord,
        stamp: NanoTime,
        checked: &mut HashMap<Vec<u8>, InputState>,
        packs: &mut HashMap<Digest, Option<Arc<Pack>>>,
        listings: &mut Listings,
    ) -> Result<NanoTime, &'static str> {
        let mut newest: NanoTime = 0;
        for i in &r.inputs {
            let state = checked
                .entry(i.path.clone())
                .or_insert_with(|| input_state(fs, &os_path(&i.path)));
            let state = (*state)?;
            let (digest, dir, mtime) = state;
            if digest != i.digest || dir != i.dir {
                return Err("input changed");
            }
            if mtime >= stamp {
                return Err("input newer than the build's start");
            }
            newest = newest.max(mtime);
        }
        for (dir, names) in &r.absent {
            if !absent_in(fs, &os_path(dir), names, listings) {
                debug!(
                    "snapshot: a name that must stay absent is in {}",
                    os_path(dir).display()
                );
                return Err("a path that must stay absent exists");
            }
        }
        for f in &r.files {
            checked_rel(&f.rel).map_err(|_| "record not understood")?;
            let pack = packs
                .entry(f.pack)
                .or_insert_with(|| self.store.open_pack(&f.pack).ok())
                .as_ref()
                .ok_or("pack gone")?;
            match pack.header.entries.get(f.index as usize) {
                Some(e) if e.digest == f.digest => {}
                _ => return Err("record not understood"),
            }
        }
        for d in &r.dirs {
            checked_rel(d).map_err(|_| "record not understood")?;
        }
        Ok(newest)
    }
}

/// What a projection's choice of records carries along.
struct Resolve<'a, 'f> {
    idx: &'a Index,
    present: &'a HashSet<&'a str>,
    fs: &'f dyn FsView,
    env: &'a HashMap<Vec<u8>, Vec<u8>>,
    /// The tools' digest now (`None`: unreadable, nothing holds).
    tools: Option<Digest>,
    stamp: NanoTime,
    checked: HashMap<Vec<u8>, InputState>,
    packs: HashMap<Digest, Option<Arc<Pack>>>,
    listings: Listings,
    /// Per unit: the record chosen and its newest input, or why none was.
    state: HashMap<&'a str, Result<(&'a UnitRecord, NanoTime), &'static str>>,
    visiting: HashSet<&'a str>,
}

/// Whether none of `names` is in `dir`, known for sure: from the directory's listing, or
/// because the directory is not there; otherwise (a listing the view will not give, such as
/// a path through `..`) name by name. An error is no answer: this fails closed.
fn absent_in(fs: &dyn FsView, dir: &Path, names: &[Vec<u8>], listings: &mut Listings) -> bool {
    use crate::os::OsStrExt;
    let key = dir.as_os_str().as_bytes().to_vec();
    if !listings.contains_key(&key) {
        let l = match fs.list_dir(dir) {
            Ok(l) => Some(l),
            Err(_) if fs.absent(dir) => None,
            Err(_) => {
                return names
                    .iter()
                    .all(|n| fs.absent(&dir.join(&*crate::os::os_str(n))));
            }
        };
        listings.insert(key.clone(), l);
    }
    match &listings[&key] {
        None => true,
        Some(l) => names.iter().all(|n| !l.contains(&*crate::os::os_str(n))),
    }
}

/// A small file in the mount, read through the core (capped).
fn read_core_file(core: &dyn MountCore, p: &Path, max: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    match core.path_target(p).ok()? {
        PathTarget::Projected { size, .. } if size <= max => core.projected_bytes(p),
        PathTarget::Real { at, is_file: true } => {
            let mut v = Vec::new();
            at.open().ok()?.take(max + 1).read_to_end(&mut v).ok()?;
            (v.len() as u64 <= max).then_some(v)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_names_are_checked_by_listing_and_fail_closed() {
        use crate::os::OsStrExt;
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("src");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("lib.rs"), "").unwrap();
        let hashes = crate::fsview::hashcache::HashCache::new();
        let fs = crate::fsview::HostFs { hashes: &hashes };
        let names = |v: &[&str]| v.iter().map(|n| n.as_bytes().to_vec()).collect::<Vec<_>>();
        let mut l = Listings::new();
        assert!(absent_in(&fs, &d, &names(&["foo.rs", "mod.rs"]), &mut l));
        assert!(!absent_in(&fs, &d, &names(&["foo.rs", "lib.rs"]), &mut l));
        // A directory that is not there holds nothing.
        assert!(absent_in(&fs, &d.join("foo"), &names(&["mod.rs"]), &mut l));
        // Through `..` (a path the kernel resolves through `foo`).
        std::fs::create_dir(d.join("foo")).unwrap();
        let up = d.join("foo/..");
        assert!(!absent_in(
            &fs,
            &up,
            &names(&["lib.rs"]),
            &mut Listings::new()
        ));
        // A file where a directory is expected: nothing can be under it.
        assert!(absent_in(
            &fs,
            &d.join("lib.rs"),
            &names(&["x"]),
            &mut Listings::new()
        ));
        // Grouping.
        let g = group_by_dir(vec![
            d.join("a.h").as_os_str().as_bytes().to_vec(),
            d.join("b.h").as_os_str().as_bytes().to_vec(),
            t.path().join("c.h").as_os_str().as_bytes().to_vec(),
        ]);
        assert_eq!(g.len(), 2);
        assert_eq!(g.iter().map(|(_, n)| n.len()).sum::<usize>(), 3);
    }
}
