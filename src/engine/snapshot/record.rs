//! Recording the units `zcfs cargo` found in a build dir after a build.

use super::*;

/// Where a unit's file is now.
enum Src {
    Projected(crate::projection::Projection),
    /// A real file (opened again when stored: a build's units may own more files than
    /// the daemon may hold open), with its permissions.
    Real(u16),
}

struct FileNow {
    rel: String,
    digest: Digest,
    src: Src,
}

impl Engine {
    pub(in crate::engine) fn snapshot_record(
        &self,
        at: SnapshotAt,
        units: Vec<SnapUnit>,
        refused: Vec<(String, String)>,
    ) -> Result<serde_json::Value> {
        let t0 = std::time::Instant::now();
        // Outputs of misses become projections once stored: reference those, never copy.
        self.wait_published(Duration::from_secs(10));
        let (build_dir, m, inner) = self.snapshot_mount(&at)?;
        let core = &*m.core;
        let path = index_path(self, &at);
        let compiles = self.compiles.load(std::sync::atomic::Ordering::SeqCst);
        let mut idx = Index::load(&path);
        let t_load = t0.elapsed();
        let mut unrecorded: BTreeMap<String, u64> = BTreeMap::new();
        for (_, r) in &refused {
            *unrecorded.entry(r.clone()).or_default() += 1;
        }

        // Every unit's files and identity, new or not: dependents name their dependencies'.
        // Files are read through the core only for units whose stats changed since the
        // daemon last did (or that turn out to be new, below).
        let mut now: HashMap<String, (Digest, Vec<FileNow>)> = HashMap::new();
        let mut seen_stats = StatsCache::new();
        {
            let cache = self.snapshot_stats.lock();
            for u in &units {
                if let Some(v) = cache.get(&(path.clone(), u.key.clone())) {
                    seen_stats.insert((path.clone(), u.key.clone()), *v);
                }
            }
        }
        for u in &units {
            let cache_key = (path.clone(), u.key.clone());
            if let Some((sd, own)) = seen_stats.get(&cache_key)
                && *sd == u.stats_digest
            {
                now.insert(u.key.clone(), (*own, Vec::new()));
                continue;
            }
            match unit_files(core, &inner, u) {
                Ok(files) => {
                    let id = identity(u, &files);
                    seen_stats.insert(cache_key, (u.stats_digest, id));
                    now.insert(u.key.clone(), (id, files));
                }
                Err(e) => {
                    debug!("snapshot: {} not recorded: {e}", u.key);
                    *unrecorded
                        .entry("unit files unreadable".into())
                        .or_default() += 1;
                }
            }
        }
        let own_ids: HashMap<String, Digest> =
            now.iter().map(|(k, (id, _))| (k.clone(), *id)).collect();
        // A unit's identity covers the identities of the units it was built against: the
        // same files built against other dependencies are another record.
        let by_key: HashMap<&str, &SnapUnit> = units.iter().map(|u| (u.key.as_str(), u)).collect();
        let mut full: HashMap<String, Option<Digest>> = HashMap::new();
        for u in &units {
            full_identity(&u.key, &by_key, &now, &mut full, &mut HashSet::new());
        }
        for (k, id) in &full {
            match (id, now.get_mut(k)) {
                (Some(id), Some(entry)) => entry.0 = *id,
                (None, Some(_)) => {
                    now.remove(k);
                }
                _ => {}
            }
        }
        {
            let mut cache = self.snapshot_stats.lock();
            if cache.len() + seen_stats.len() > STATS_CACHE_MAX {
                cache.clear();
            }
            cache.extend(seen_stats);
        }
        let t_ids = t0.elapsed();
        let tools = self.tools_digest(&at).map_err(anyhow::Error::msg)?;
        let produced = self.produced.lock().clone();
        let mut need = Vec::new();
        let mut known = 0u64;
        let mut new: Vec<(&SnapUnit, UnitRecord)> = Vec::new();
        let fs = self.fs();
        for u in &units {
            let Some(id) = now.get(&u.key).map(|(id, _)| *id) else {
                continue;
            };
            let id = &id;
            if idx.has(&u.key, id) {
                known += 1;
                continue;
            }
            let Some(inputs) = &u.inputs else {
                need.push(u.key.clone());
                continue;
            };
            let deps: Option<Vec<(String, Digest)>> = u
                .deps
                .iter()
                .map(|d| now.get(d).map(|(i, _)| (d.clone(), *i)))
                .collect();
            let Some(deps) = deps else {
                *unrecorded
                    .entry("depends on a unit left to cargo".into())
                    .or_default() += 1;
                continue;
            };
            if now[&u.key].1.is_empty() && !u.files.is_empty() {
                // Known by its stats but new to this index: read its files now.
                match unit_files(core, &inner, u) {
                    Ok(files) if identity(u, &files) == own_ids[&u.key] => {
                        if let Some(e) = now.get_mut(&u.key) {
                            e.1 = files;
                        }
                    }
                    r => {
                        debug!("snapshot: {} changed while recorded ({:?})", u.key, r.err());
                        *unrecorded
                            .entry("changed while recorded".into())
                            .or_default() += 1;
                        continue;
                    }
                }
            }
            let entries = match entry_inputs(&now[&u.key].1, &produced, &build_dir) {
                Ok(e) => e,
                Err(reason) => {
                    debug!("snapshot: {} not recorded: {reason}", u.key);
                    *unrecorded.entry(reason.into()).or_default() += 1;
                    continue;
                }
            };
            match record_inputs(&fs, core, &inner, inputs, u.started) {
                Ok((mut host, build)) => {
                    let (files, absent) = entries;
                    host.extend(files);
                    host.sort_by(|a, b| a.path.cmp(&b.path));
                    host.dedup_by(|a, b| a.path == b.path);
                    let record = UnitRecord {
                        identity: *id,
                        hashes: u.hashes.clone(),
                        files: Vec::new(),
                        dirs: u.dirs.clone(),
                        inputs: host,
                        absent,
                        tools,
                        build_inputs: build,
                        deps,
                        env: u
                            .env
                            .iter()
                            .map(|(k, v)| (k.0.clone(), v.as_ref().map(|v| v.0.clone())))
                            .collect(),
                        recorded: crate::util::unix_now(),
                    };
                    debug!(
                        "snapshot: {} recorded with {} inputs, {} in the build dir",
                        u.key,
                        record.inputs.len(),
                        record.build_inputs.len()
                    );
                    new.push((u, record));
                }
                Err(reason) => {
                    debug!("snapshot: {} not recorded: {reason}", u.key);
                    *unrecorded.entry(reason).or_default() += 1;
                }
            }
        }
        let mut recorded = 0u64;
        if !new.is_empty() {
            // Real files go into packs; projections are referenced.
            let mut reals: Vec<(String, Digest)> = Vec::new();
            for (u, _) in &new {
                for f in &now[&u.key].1 {
                    if matches!(f.src, Src::Real(_)) {
                        reals.push((f.rel.clone(), f.digest));
                    }
                }
            }
            let mut stored: HashMap<String, (Digest, u32)> = HashMap::new();
            for batch in reals.chunks(PACK_BATCH) {
                let pack = self.snapshot_pack(core, &inner, batch)?;
                for (i, (rel, _)) in batch.iter().enumerate() {
                    stored.insert(rel.clone(), (pack, i as u32));
                }
            }
            for (u, mut record) in new {
                for f in &now[&u.key].1 {
                    let (pack, index, perm) = match &f.src {
                        Src::Projected(p) => (p.pack.id, p.index as u32, p.meta.perm),
                        Src::Real(perm) => {
                            let (pack, index) = stored[f.rel.as_str()];
                            (pack, index, *perm)
                        }
                    };
                    record.files.push(SnapFile {
                        rel: f.rel.clone(),
                        pack,
                        index,
                        perm,
                        digest: f.digest,
                    });
                }
                if idx.add(&u.key, record) && !is_extra(&u.key) {
                    recorded += 1;
                }
            }
            let pruned = idx.prune(|p| self.store.has_pack(p));
            if pruned > 0 {
                debug!("snapshot: {pruned} records dropped, their packs are gone");
            }
            idx.save(&path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if need.is_empty() {
            // Everything found is recorded (or refused for good): the next build that
            // compiles nothing need not look again.
            self.snapshot_recorded_at
                .lock()
                .insert(path.clone(), compiles);
        }
        self.stats.update(|d| {
            d.snapshot.recorded += recorded;
            for (r, n) in &unrecorded {
                *d.snapshot.unrecorded.entry(r.clone()).or_default() += n;
            }
        });
        debug!(
            "snapshot record: index loaded at {t_load:?}, identities at {t_ids:?}, done at {:?}",
            t0.elapsed()
        );
        if recorded > 0 {
            info!(
                "snapshot of {}: {recorded} units recorded, {known} known",
                build_dir.display()
            );
        }
        Ok(serde_json::json!({
            "recorded": recorded,
            "known": known,
            "need_inputs": need,
            "unrecorded": unrecorded,
        }))
    }

    /// Stores real files of new records as one pack; checks that each was stored with
    /// the digest its record's identity was computed from. Returns the pack's id.
    fn snapshot_pack(
        &self,
        core: &dyn MountCore,
        inner: &Path,
        files: &[(String, Digest)],
    ) -> Result<Digest> {
        let mut open: Vec<(String, File)> = Vec::with_capacity(files.len());
        for (rel, _) in files {
            let p = inner.join(checked_rel(rel).map_err(anyhow::Error::msg)?);
            let file = match core.path_target(&p)? {
                PathTarget::Real { at, is_file: true } => at.open()?,
                _ => anyhow::bail!("{rel} changed while it was recorded"),
            };
            open.push((rel.rsplit('/').next().unwrap_or("file").to_string(), file));
        }
        let sources: Vec<pack::Source<'_>> = open
            .iter()
            .map(|(name, file)| pack::Source {
                name: name.clone(),
                file,
            })
            .collect();
        let temp = self.store.pack_temp()?;
        let w = pack::write(
            temp.as_file(),
            &sources,
            vec![],
            vec![],
            b"{\"compiler\":\"zcfs snapshot\"}".to_vec(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (e, (rel, digest)) in w.header.entries.iter().zip(files) {
            if e.digest != *digest {
                anyhow::bail!("{rel} changed while it was recorded");
            }
        }
        self.store.publish(temp, &w)?;
        Ok(w.id)
    }
}

/// The inputs and must-stay-absent paths of the compile entries whose packs a unit's
/// projected files come from (those outside the build dir: the units' own files are
/// checked by their records). A projected file whose entry is unknown refuses the unit.
fn entry_inputs(
    files: &[FileNow],
    produced: &HashMap<Digest, Arc<Produced>>,
    build_dir: &Path,
) -> Result<(Vec<HostInput>, AbsentGroups), &'static str> {
    let inside = |p: &[u8]| Path::new(&*crate::os::os_str(p)).starts_with(build_dir);
    let mut host = Vec::new();
    let mut absent = Vec::new();
    let mut seen = HashSet::new();
    for f in files {
        let Src::Projected(p) = &f.src else {
            if compiler_output(&f.rel) {
                // Not served or stored by zcfs: a compile zcfs does not cache (a compiler
                // script, clippy-driver), which only a real compile may produce.
                return Err("compile not cached");
            }
            continue;
        };
        if !seen.insert(p.pack.id) {
            continue;
        }
        let e = produced.get(&p.pack.id).ok_or("compile entry unknown")?;
        for (path, digest) in &e.files {
            if !inside(path) {
                host.push(HostInput {
                    path: path.clone(),
                    dir: false,
                    digest: *digest,
                });
            }
        }
        absent.extend(e.absent.iter().filter(|a| !inside(a)).cloned());
    }
    Ok((host, group_by_dir(absent)))
}

/// Whether a unit's file (relative to the build dir) is written by rustc: its files in
/// `deps/` and `examples/` and a build script's binary, dependency files aside (zcfs may
/// write those as real files when it rewrites their paths).
fn compiler_output(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if name.ends_with(".d") {
        return false;
    }
    let parts: Vec<&str> = rel.split('/').collect();
    let dir = parts.len().checked_sub(2).map(|i| parts[i]);
    matches!(dir, Some("deps" | "examples"))
        || (parts.contains(&"build")
            && (name == "build-script-build" || name.starts_with("build_script_build-")))
}

/// A unit's identity with its dependencies' (memoized in `full`; `None`: a dependency is
/// missing or the graph has a cycle).
fn full_identity(
    key: &str,
    units: &HashMap<&str, &SnapUnit>,
    own: &HashMap<String, (Digest, Vec<FileNow>)>,
    full: &mut HashMap<String, Option<Digest>>,
    visiting: &mut HashSet<String>,
) -> Option<Digest> {
    if let Some(d) = full.get(key) {
        return *d;
    }
    if !visiting.insert(key.to_string()) {
        return None;
    }
    let result = (|| {
        let u = units.get(key)?;
        let (mine, _) = own.get(key)?;
        let mut h = crate::hash::KeyHasher::new("zcfs snapshot unit with deps");
        h.digest("own", mine);
        for d in &u.deps {
            let id = full_identity(d, units, own, full, visiting)?;
            h.field("dep", d.as_bytes());
            h.digest("id", &id);
        }
        Some(h.finish())
    })();
    visiting.remove(key);
    full.insert(key.to_string(), result);
    result
}

/// The digest of a unit's identity: its fingerprint hashes and its files' contents.
fn identity(u: &SnapUnit, files: &[FileNow]) -> Digest {
    let mut h = crate::hash::KeyHasher::new("zcfs snapshot unit");
    h.field("key", u.key.as_bytes());
    for (t, hash) in &u.hashes {
        h.field("target", t.as_bytes());
        h.field("hash", &hash.to_le_bytes());
    }
    for f in files {
        h.field("file", f.rel.as_bytes());
        h.digest("digest", &f.digest);
    }
    h.finish()
}

/// The unit's files as they are in the mount now (the daemon reads them through the core).
fn unit_files(core: &dyn MountCore, inner: &Path, u: &SnapUnit) -> Result<Vec<FileNow>, String> {
    let mut out = Vec::with_capacity(u.files.len());
    for rel in &u.files {
        let p = inner.join(checked_rel(rel)?);
        let (digest, src) = file_now(core, &p)?;
        out.push(FileNow {
            rel: rel.clone(),
            digest,
            src,
        });
    }
    Ok(out)
}

fn file_now(core: &dyn MountCore, p: &Path) -> Result<(Digest, Src), String> {
    match core
        .path_target(p)
        .map_err(|e| format!("{}: {e}", p.display()))?
    {
        PathTarget::Projected { .. } => {
            let proj = core
                .projection_at(p)
                .ok_or_else(|| format!("{}: projection not readable", p.display()))?;
            Ok((proj.digest(), Src::Projected(proj)))
        }
        PathTarget::Real { at, is_file: true } => {
            let file = at.open().map_err(|e| format!("{}: {e}", p.display()))?;
            let meta = file.metadata().map_err(|e| e.to_string())?;
            if !meta.is_file() {
                return Err(format!("{}: not a regular file", p.display()));
            }
            let d = crate::hash::hash_file(&file, meta.len()).map_err(|e| e.to_string())?;
            let perm = (crate::os::file_mode(&meta) & 0o7777) as u16;
            Ok((d, Src::Real(perm)))
        }
        _ => Err(format!("{}: not a regular file", p.display())),
    }
}

/// The inputs of a new record, by content; none may have changed after cargo started the
/// unit (it would then not be the content the unit was built from).
fn record_inputs(
    fs: &dyn FsView,
    core: &dyn MountCore,
    inner: &Path,
    inputs: &[SnapInput],
    started: NanoTime,
) -> Result<RecordedInputs, String> {
    let mut host = Vec::new();
    let mut build = Vec::new();
    for i in inputs {
        match i {
            SnapInput::Host(b) => {
                let p = os_path(&b.0);
                if !p.is_absolute() {
                    return Err("record not understood".into());
                }
                let (digest, dir, mtime) = input_state(fs, &p).map_err(str::to_string)?;
                if mtime > started {
                    return Err("input changed during the build".into());
                }
                host.push(HostInput {
                    path: b.0.clone(),
                    dir,
                    digest,
                });
            }
            SnapInput::Build(rel) => {
                let (digest, _) = file_now(core, &inner.join(checked_rel(rel)?))
                    .map_err(|_| "generated input unreadable".to_string())?;
                build.push((rel.clone(), digest));
            }
        }
    }
    Ok((host, build))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_outputs_are_told_from_cargos_own_files() {
        assert!(compiler_output("debug/deps/libutil-0123456789abcdef.rlib"));
        assert!(compiler_output("debug/deps/app-0123456789abcdef"));
        assert!(compiler_output(
            "x86_64-unknown-linux-gnu/release/examples/ex-0123456789abcdef"
        ));
        assert!(compiler_output(
            "debug/build/zt-0123456789abcdef/build_script_build-0123456789abcdef"
        ));
        assert!(compiler_output(
            "debug/build/zt-0123456789abcdef/build-script-build"
        ));
        assert!(!compiler_output("debug/deps/util-0123456789abcdef.d"));
        assert!(!compiler_output(
            "debug/.fingerprint/util-0123456789abcdef/lib-util"
        ));
        assert!(!compiler_output("debug/build/zt-0123456789abcdef/output"));
        assert!(!compiler_output(
            "debug/build/zt-0123456789abcdef/out/gen.rs"
        ));
    }
}
