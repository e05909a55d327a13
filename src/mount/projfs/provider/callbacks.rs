//! ProjFS's callbacks into the provider (`cb_*`): what a name is, its bytes, directory
//! listings, and the notifications that change the model after the fact (queued, applied in
//! order by one thread). The daemon's own accesses are refused.

use super::*;

impl Provider {
    fn own(&self, pid: u32) -> bool {
        if pid == self.own_pid {
            self.counters.own_refused.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// `GetPlaceholderInfoCallback`: what a projected name is.
    pub fn cb_placeholder_info(&self, path: &str, pid: u32) -> Result<Placeholder, Status> {
        if self.own(pid) {
            return Err(Status::NotFound);
        }
        let path = RelPath::parse(path).map_err(|_| Status::NotFound)?;
        let mut m = self.model.lock();
        let e = m.get(&path).cloned().ok_or(Status::NotFound)?;
        m.handed.insert(e.proj.pack.id, e.proj.pack.clone());
        self.counters.placeholders.fetch_add(1, Ordering::Relaxed);
        Ok(Placeholder {
            name: e.path.name().to_string(),
            info: e.info(),
            content_id: e.content_id().encode(),
        })
    }

    /// `GetFileDataCallback`: streams `len` bytes at `offset` of the content `content_id`
    /// (whatever path ProjFS names) in aligned chunks.
    pub fn cb_file_data(
        &self,
        content_id: &[u8],
        offset: u64,
        len: u64,
        pid: u32,
        sink: &mut dyn DataSink,
    ) -> Result<(), Status> {
        if self.own(pid) {
            return Err(Status::NotFound);
        }
        self.counters.data_requests.fetch_add(1, Ordering::Relaxed);
        let c = ContentId::decode(content_id).ok_or(Status::Invalid)?;
        let pack = self.model.lock().handed.get(&c.pack).cloned();
        let pack = pack.ok_or(Status::Io)?;
        let entry = pack
            .header
            .entries
            .get(c.index as usize)
            .ok_or(Status::Invalid)?;
        if entry.size != c.size {
            return Err(Status::Invalid);
        }
        let bytes = pack.payload(c.index as usize);
        let end = offset.checked_add(len).ok_or(Status::Invalid)?;
        if end > bytes.len() as u64 {
            return Err(Status::Invalid);
        }
        let align = sink.alignment().max(1);
        let chunk = (DATA_CHUNK / align).max(1) * align;
        let mut at = offset;
        while at < end {
            let n = ((end - at) as usize).min(chunk);
            sink.write(at, &bytes[at as usize..at as usize + n])
                .map_err(|e| {
                    debug!("writing file data: {e}");
                    Status::Io
                })?;
            at += n as u64;
        }
        self.counters.bytes_served.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    /// `StartDirectoryEnumerationCallback`.
    pub fn cb_start_enum(&self, id: Guid, dir: &str, pid: u32) -> Result<(), Status> {
        let dir = RelPath::parse(dir).map_err(|_| Status::NotFound)?;
        let entries = if self.own(pid) {
            Vec::new()
        } else {
            self.listing(&dir)
        };
        self.counters.enumerations.fetch_add(1, Ordering::Relaxed);
        self.enums.lock().insert(
            id,
            Enumeration {
                dir,
                entries,
                next: 0,
                pattern: None,
            },
        );
        Ok(())
    }

    /// The projected children of `dir`, in ProjFS's order.
    pub(super) fn listing(&self, dir: &RelPath) -> Vec<(String, FileInfo)> {
        let mut v: Vec<(String, FileInfo)> = {
            let m = self.model.lock();
            m.dirs
                .get(&dir.fold())
                .map(|d| {
                    d.values()
                        .map(|e| (e.path.name().to_string(), e.info()))
                        .collect()
                })
                .unwrap_or_default()
        };
        v.sort_by(|a, b| self.api.compare_names(&a.0, &b.0));
        v
    }

    /// `GetDirectoryEnumerationCallback`: as many entries as fit, from where the last call
    /// stopped (or from the start with `restart`), that match `pattern`.
    pub fn cb_get_enum(
        &self,
        id: Guid,
        pattern: Option<&str>,
        restart: bool,
        pid: u32,
        sink: &mut dyn DirSink,
    ) -> Result<(), Status> {
        let (dir, fresh) = {
            let enums = self.enums.lock();
            let e = enums.get(&id).ok_or(Status::Invalid)?;
            (e.dir.clone(), restart)
        };
        let refreshed = if fresh && pid != self.own_pid {
            Some(self.listing(&dir))
        } else {
            None
        };
        let mut enums = self.enums.lock();
        let e = enums.get_mut(&id).ok_or(Status::Invalid)?;
        if let Some(list) = refreshed {
            e.entries = list;
        }
        if restart {
            e.next = 0;
            e.pattern = None;
        }
        if e.pattern.is_none() {
            e.pattern = Some(pattern.unwrap_or("*").to_string());
        }
        let pat = e.pattern.clone().unwrap_or_default();
        let mut added = 0;
        while e.next < e.entries.len() {
            let (name, info) = &e.entries[e.next];
            if !self.api.name_matches(name, &pat) {
                e.next += 1;
                continue;
            }
            if !sink.add(name, info) {
                if added == 0 {
                    return Err(Status::BufferTooSmall);
                }
                return Ok(());
            }
            added += 1;
            e.next += 1;
        }
        Ok(())
    }

    /// `EndDirectoryEnumerationCallback`.
    pub fn cb_end_enum(&self, id: Guid) {
        self.enums.lock().remove(&id);
    }

    /// `NotificationCallback`: queued, applied in order (never refused: zcfs does not veto
    /// what tools do in their target dir).
    pub fn cb_notify(&self, path: &str, n: Notification, is_dir: bool, pid: u32) {
        if pid == self.own_pid {
            return;
        }
        self.counters.notifications.fetch_add(1, Ordering::Relaxed);
        let Ok(path) = RelPath::parse(path) else {
            return;
        };
        let mut q = self.queue.lock();
        q.items.push_back((path, n, is_dir));
        q.queued += 1;
        self.queue_cv.notify_all();
    }

    /// Applies one notification to the model (the queue's thread).
    pub(super) fn apply(&self, path: &RelPath, n: &Notification, is_dir: bool) {
        let mut m = self.model.lock();
        match n {
            Notification::PreConvertToFull
            | Notification::Overwritten
            | Notification::ClosedModified
            | Notification::Created => {
                if let Some(e) = m.remove(path) {
                    drop(m);
                    self.counters.copy_ups.fetch_add(1, Ordering::Relaxed);
                    self.journal(Record::Drop { id: e.proj.id });
                }
            }
            Notification::Linked(_) => {}
            Notification::Deleted => {
                let gone: Vec<RelPath> = if is_dir {
                    let unmarked: Vec<String> = m
                        .marked_paths
                        .iter()
                        .filter(|(_, d)| d.starts_with_folded(path))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in unmarked {
                        m.marked.remove(&k);
                        m.marked_paths.remove(&k);
                    }
                    m.under(path)
                } else {
                    vec![path.clone()]
                };
                let mut ids = Vec::new();
                for p in gone {
                    if let Some(e) = m.remove(&p) {
                        ids.push(e.proj.id);
                    }
                }
                drop(m);
                for id in ids {
                    self.journal(Record::Drop { id });
                }
            }
            Notification::Renamed(to) => {
                let moves: Vec<(RelPath, RelPath)> = if is_dir {
                    // By components: the spelling under `path` may differ in case (and in
                    // byte length) from the notification's.
                    let depth = path.components().count();
                    m.under(path)
                        .into_iter()
                        .filter_map(|p| {
                            let rest: Vec<&str> = p.components().skip(depth).collect();
                            RelPath::parse(&format!("{}/{}", to.as_str(), rest.join("/")))
                                .ok()
                                .map(|t| (p, t))
                        })
                        .collect()
                } else {
                    vec![(path.clone(), to.clone())]
                };
                let mut records = Vec::new();
                // A file renamed over a projection replaces it.
                if !is_dir && let Some(old) = m.remove(to) {
                    records.push(Record::Drop { id: old.proj.id });
                }
                for (from, to) in moves {
                    if let Some(mut e) = m.remove(&from) {
                        e.path = to.clone();
                        records.push(Record::Drop { id: e.proj.id });
                        records.push(Self::put_record(&e));
                        m.insert(e);
                    }
                }
                drop(m);
                for r in records {
                    self.journal(r);
                }
            }
        }
    }
}
