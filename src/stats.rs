//! Counters the daemon keeps, persisted in `stats.json`; shown by `zcfs stats`.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::compiler::Language;

/// Latency histogram over microseconds with geometric buckets (ratio 2^(1/8) ≈ 1.09), so
/// percentiles are exact to within 9%.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_us: u64,
}

const SUB: f64 = 8.0;

impl Histogram {
    fn bucket(us: u64) -> usize {
        if us <= 1 {
            0
        } else {
            ((us as f64).log2() * SUB).ceil() as usize
        }
    }

    fn upper(bucket: usize) -> u64 {
        2f64.powf(bucket as f64 / SUB).round() as u64
    }

    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let b = Self::bucket(us);
        if self.counts.len() <= b {
            self.counts.resize(b + 1, 0);
        }
        self.counts[b] += 1;
        self.total += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0..=1) in microseconds, as the upper bound of its bucket.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::upper(b));
            }
        }
        None
    }

    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.total,
            "p50_us": self.quantile(0.5),
            "p90_us": self.quantile(0.9),
            "p99_us": self.quantile(0.99),
            "mean_us": (self.total > 0).then(|| self.sum_us / self.total),
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LangStats {
    pub hits: u64,
    pub misses: u64,
    pub uncacheable: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct StatsData {
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
    pub uncacheable: BTreeMap<String, u64>,
    /// Internal errors by kind (each one fell back to running the compiler).
    pub error_reasons: BTreeMap<String, u64>,
    /// Misses whose result was not stored, by reason.
    pub not_stored: BTreeMap<String, u64>,
    pub stored: u64,
    pub failed_compiles: u64,
    pub languages: BTreeMap<String, LangStats>,
    pub bytes_stored: u64,
    pub bytes_restored: u64,
    pub bytes_reflinked: u64,
    /// Hits whose outputs were projected into a mount, and restored as real files.
    pub hits_projected: u64,
    pub hits_restored: u64,
    /// Hits served from an entry stored under another target dir or checkout (spec X2).
    pub hits_rebased: u64,
    /// Artifact bytes of hits and misses that were projected instead of written.
    pub bytes_projected: u64,
    /// Miss outputs turned into projections of their pack once stored, and their bytes.
    pub miss_outputs_projected: u64,
    pub miss_bytes_projected: u64,
    /// Miss outputs left as real files, by reason.
    pub miss_outputs_kept_real: BTreeMap<String, u64>,
    pub corrupt_packs: u64,
    /// Packs whose projections were copied up so that the store could evict them (M8).
    pub packs_released: u64,
    pub evicted_packs: u64,
    pub evicted_bytes: u64,
    /// Time the daemon spent on a hit, from request to reply.
    pub hit_service: Histogram,
    /// Time a wrapper saw for a hit, from its `main` to the reply.
    pub hit_latency: Histogram,
    /// Phases of the daemon's service time for hits: parsing and keying, finding and
    /// checking the manifest entry, delivering the outputs.
    pub hit_key: Histogram,
    pub hit_lookup: Histogram,
    pub hit_deliver: Histogram,
    /// The remote tier.
    pub remote: RemoteStats,
    /// Snapshots of cargo's unit records (docs/snapshot.md).
    pub snapshot: SnapshotStats,
    /// Unix seconds of the last reset.
    pub since: u64,
}

/// Counters of snapshots (`zcfs stats`, "snapshot").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SnapshotStats {
    /// Units whose records were projected before cargo ran (cargo found them Fresh unless
    /// its own checks said otherwise), and their files.
    pub projected: u64,
    pub files_projected: u64,
    /// Recorded units that were not projected and were left to cargo, by reason.
    pub left: BTreeMap<String, u64>,
    /// Units recorded after a build.
    pub recorded: u64,
    /// Units found after a build but not recorded, by reason.
    pub unrecorded: BTreeMap<String, u64>,
    /// Requests that failed (recorded in the log); the build went on without them.
    pub errors: u64,
}

/// Counters of the remote tier (`zcfs stats`, "remote").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RemoteStats {
    /// Hits served from something the remote supplied (an entry, a pack, or both).
    pub hits: u64,
    /// Local misses that asked the remote for the key's manifest, and found one.
    pub lookups: u64,
    pub manifest_found: u64,
    /// Entries learnt from remote manifests.
    pub entries_learnt: u64,
    pub packs_downloaded: u64,
    pub bytes_down: u64,
    /// Results uploaded, found already there (not sent again), failed, dropped (queue full).
    pub uploads: u64,
    pub uploads_existing: u64,
    pub uploads_failed: u64,
    pub uploads_dropped: u64,
    pub bytes_up: u64,
    /// Errors by kind: timeout, connect, auth, server, throttled, too large, protocol,
    /// io, corrupt, dangling (a manifest naming a pack the remote lacks), skipped (the
    /// breaker was open).
    pub errors: BTreeMap<String, u64>,
    /// Time compiles waited on the remote: manifest lookups and pack downloads.
    pub wait_manifest: Histogram,
    pub wait_pack: Histogram,
    /// Time an upload took (in the background).
    pub upload_time: Histogram,
}

impl RemoteStats {
    pub fn error(&mut self, reason: &str) {
        *self.errors.entry(reason.to_string()).or_default() += 1;
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "hits": self.hits,
            "lookups": self.lookups,
            "manifest_found": self.manifest_found,
            "entries_learnt": self.entries_learnt,
            "packs_downloaded": self.packs_downloaded,
            "bytes_down": self.bytes_down,
            "uploads": self.uploads,
            "uploads_existing": self.uploads_existing,
            "uploads_failed": self.uploads_failed,
            "uploads_dropped": self.uploads_dropped,
            "bytes_up": self.bytes_up,
            "errors": self.errors,
            "wait_manifest": self.wait_manifest.summary(),
            "wait_pack": self.wait_pack.summary(),
            "upload_time": self.upload_time.summary(),
        })
    }
}

/// Where a hit's service time went.
#[derive(Debug, Clone, Copy, Default)]
pub struct HitPhases {
    pub key: Duration,
    pub lookup: Duration,
    pub deliver: Duration,
}

pub struct Stats {
    data: Mutex<StatsData>,
    dirty: Mutex<bool>,
}

impl Stats {
    pub fn load(path: &Path) -> Stats {
        let data = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<StatsData>(&b).ok())
            .unwrap_or_else(|| StatsData {
                since: crate::util::unix_now(),
                ..StatsData::default()
            });
        Stats {
            data: Mutex::new(data),
            dirty: Mutex::new(false),
        }
    }

    pub fn update(&self, f: impl FnOnce(&mut StatsData)) {
        f(&mut self.data.lock());
        *self.dirty.lock() = true;
    }

    fn lang(data: &mut StatsData, lang: Language) -> &mut LangStats {
        data.languages.entry(lang.name().to_string()).or_default()
    }

    pub fn hit(
        &self,
        lang: Language,
        phases: HitPhases,
        r: &crate::deliver::Report,
        rebased: bool,
    ) {
        self.update(|d| {
            d.hits += 1;
            Self::lang(d, lang).hits += 1;
            d.hit_service
                .record(phases.key + phases.lookup + phases.deliver);
            d.hit_key.record(phases.key);
            d.hit_lookup.record(phases.lookup);
            d.hit_deliver.record(phases.deliver);
            if r.projected {
                d.hits_projected += 1;
                d.bytes_projected += r.bytes;
                d.bytes_restored += r.written_bytes;
            } else {
                d.hits_restored += 1;
                d.bytes_restored += r.bytes;
            }
            d.bytes_reflinked += r.reflinked_bytes;
            d.hits_rebased += rebased as u64;
        });
    }

    pub fn miss(&self, lang: Language) {
        self.update(|d| {
            d.misses += 1;
            Self::lang(d, lang).misses += 1;
        });
    }

    pub fn uncacheable(&self, lang: Language, reason: &str) {
        self.update(|d| {
            *d.uncacheable.entry(reason.to_string()).or_default() += 1;
            Self::lang(d, lang).uncacheable += 1;
        });
    }

    pub fn error(&self, lang: Language, reason: &str) {
        self.update(|d| {
            d.errors += 1;
            *d.error_reasons.entry(reason.to_string()).or_default() += 1;
            Self::lang(d, lang).errors += 1;
        });
    }

    pub fn not_stored(&self, reason: &str) {
        self.update(|d| *d.not_stored.entry(reason.to_string()).or_default() += 1);
    }

    pub fn snapshot(&self) -> StatsData {
        self.data.lock().clone()
    }

    pub fn zero(&self) {
        self.update(|d| {
            *d = StatsData {
                since: crate::util::unix_now(),
                ..StatsData::default()
            }
        });
    }

    /// Writes the stats if they changed.
    pub fn flush(&self, path: &Path) {
        let mut dirty = self.dirty.lock();
        if !*dirty {
            return;
        }
        let bytes = serde_json::to_vec(&*self.data.lock()).expect("stats encode");
        match crate::fsutil::write_atomic(path, &bytes) {
            Ok(()) => *dirty = false,
            Err(e) => tracing::warn!("cannot write {}: {e}", path.display()),
        }
    }
}

/// The JSON document of `zcfs stats --json`.
pub fn to_json(d: &StatsData, cache_size: u64, packs: u64, max_size: u64) -> serde_json::Value {
    serde_json::json!({
        "hits": d.hits,
        "misses": d.misses,
        "errors": d.errors,
        "uncacheable": d.uncacheable,
        "error_reasons": d.error_reasons,
        "not_stored": d.not_stored,
        "stored": d.stored,
        "failed_compiles": d.failed_compiles,
        "languages": d.languages,
        "bytes_stored": d.bytes_stored,
        "bytes_restored": d.bytes_restored,
        "bytes_reflinked": d.bytes_reflinked,
        "hits_projected": d.hits_projected,
        "hits_restored": d.hits_restored,
        "hits_rebased": d.hits_rebased,
        "bytes_projected": d.bytes_projected,
        "miss_outputs_projected": d.miss_outputs_projected,
        "miss_bytes_projected": d.miss_bytes_projected,
        "miss_outputs_kept_real": d.miss_outputs_kept_real,
        "corrupt_packs": d.corrupt_packs,
        "evicted_packs": d.evicted_packs,
        "evicted_bytes": d.evicted_bytes,
        "packs_released": d.packs_released,
        "hit_latency": d.hit_latency.summary(),
        "hit_service": d.hit_service.summary(),
        "hit_phases": {
            "key": d.hit_key.summary(),
            "lookup": d.hit_lookup.summary(),
            "deliver": d.hit_deliver.summary(),
        },
        "cache": { "size": cache_size, "packs": packs, "max_size": max_size },
        "remote": d.remote.to_json(),
        "snapshot": d.snapshot,
        "since": d.since,
    })
}

/// The human-readable form of `zcfs stats`.
pub fn to_text(v: &serde_json::Value) -> String {
    use crate::config::human_size;
    use std::fmt::Write;
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let mut s = String::new();
    let hits = n("hits");
    let misses = n("misses");
    let rate = if hits + misses > 0 {
        format!(
            " ({:.1}% of cacheable)",
            100.0 * hits as f64 / (hits + misses) as f64
        )
    } else {
        String::new()
    };
    let _ = writeln!(s, "Hits                 {hits}{rate}");
    let _ = writeln!(s, "Misses               {misses}");
    let _ = writeln!(s, "  stored             {}", n("stored"));
    let _ = writeln!(s, "  compile failed     {}", n("failed_compiles"));
    let section = |s: &mut String, title: &str, key: &str| {
        if let Some(map) = v[key].as_object().filter(|m| !m.is_empty()) {
            let total: u64 = map.values().filter_map(|x| x.as_u64()).sum();
            let _ = writeln!(s, "{title:<21}{total}");
            for (k, c) in map {
                let _ = writeln!(s, "  {k:<19}{}", c.as_u64().unwrap_or(0));
            }
        }
    };
    section(&mut s, "Not stored", "not_stored");
    section(&mut s, "Uncacheable", "uncacheable");
    let _ = writeln!(s, "Errors               {}", n("errors"));
    if let Some(map) = v["error_reasons"].as_object() {
        for (k, c) in map {
            let _ = writeln!(s, "  {k:<19}{}", c.as_u64().unwrap_or(0));
        }
    }
    if let Some(langs) = v["languages"].as_object() {
        for (lang, l) in langs {
            let _ = writeln!(
                s,
                "Language {lang:<12}hits {} misses {} uncacheable {} errors {}",
                l["hits"], l["misses"], l["uncacheable"], l["errors"]
            );
        }
    }
    let lat = |s: &mut String, title: &str, key: &str| {
        let h = &v[key];
        if h["count"].as_u64().unwrap_or(0) > 0 {
            let ms = |k: &str| {
                h[k].as_u64()
                    .map(|us| format!("{:.2} ms", us as f64 / 1000.0))
            };
            let _ = writeln!(
                s,
                "{title:<21}p50 {}  p90 {}  p99 {}  ({} hits)",
                ms("p50_us").unwrap_or_default(),
                ms("p90_us").unwrap_or_default(),
                ms("p99_us").unwrap_or_default(),
                h["count"]
            );
        }
    };
    let snap = &v["snapshot"];
    let sn = |k: &str| snap[k].as_u64().unwrap_or(0);
    if sn("projected") + sn("recorded") + sn("errors") > 0
        || snap["left"].as_object().is_some_and(|m| !m.is_empty())
    {
        let _ = writeln!(s, "Snapshot units projected {}", sn("projected"));
        for (title, key) in [
            ("  left to cargo", "left"),
            ("  not recorded", "unrecorded"),
        ] {
            if let Some(map) = snap[key].as_object().filter(|m| !m.is_empty()) {
                let total: u64 = map.values().filter_map(|x| x.as_u64()).sum();
                let _ = writeln!(s, "{title:<21}{total}");
                for (k, c) in map {
                    let _ = writeln!(s, "    {k:<38} {}", c.as_u64().unwrap_or(0));
                }
            }
        }
        let _ = writeln!(s, "  recorded           {}", sn("recorded"));
        if sn("errors") > 0 {
            let _ = writeln!(s, "  errors             {}", sn("errors"));
        }
    }
    lat(&mut s, "Hit latency", "hit_latency");
    lat(&mut s, "Hit service time", "hit_service");
    let _ = writeln!(s, "Bytes stored         {}", human_size(n("bytes_stored")));
    let _ = writeln!(
        s,
        "Bytes restored       {}",
        human_size(n("bytes_restored"))
    );
    let _ = writeln!(
        s,
        "Hits projected       {} (restored as files {}, from another location {})",
        n("hits_projected"),
        n("hits_restored"),
        n("hits_rebased")
    );
    let _ = writeln!(
        s,
        "Bytes not written    {} (hits {}, miss outputs {} in {} files)",
        human_size(n("bytes_projected") + n("miss_bytes_projected")),
        human_size(n("bytes_projected")),
        human_size(n("miss_bytes_projected")),
        n("miss_outputs_projected")
    );
    section(&mut s, "Miss outputs kept   ", "miss_outputs_kept_real");
    if let Some(mounts) = v["mounts"].as_array() {
        for m in mounts {
            let _ = writeln!(
                s,
                "Mount {}: {} projections ({}), real files {}",
                m["dir"].as_str().unwrap_or("?"),
                m["projections"],
                human_size(m["projected_bytes"].as_u64().unwrap_or(0)),
                human_size(m["real_bytes"].as_u64().unwrap_or(0)),
            );
        }
    }
    let w = &v["watch"];
    if let Some(mode) = w["mode"].as_str() {
        let wn = |k: &str| w[k].as_u64().unwrap_or(0);
        let _ = writeln!(
            s,
            "Watcher              {mode}{}: {} dirs, {} facts; answered {}, learned {}, not watchable {}, events {}, resets {}",
            if w["active"].as_bool() == Some(false) && mode != "off" {
                " (inactive)"
            } else {
                ""
            },
            wn("dirs"),
            wn("facts"),
            wn("answered"),
            wn("learned"),
            wn("unwatchable"),
            wn("events"),
            wn("resets"),
        );
    }
    if n("corrupt_packs") > 0 {
        let _ = writeln!(s, "Corrupt packs        {}", n("corrupt_packs"));
    }
    if n("evicted_packs") > 0 {
        let _ = writeln!(
            s,
            "Evicted              {} packs, {}",
            n("evicted_packs"),
            human_size(n("evicted_bytes"))
        );
    }
    remote_text(&mut s, &v["remote"]);
    let c = &v["cache"];
    let _ = writeln!(
        s,
        "Cache size           {} of {} ({} packs)",
        human_size(c["size"].as_u64().unwrap_or(0)),
        human_size(c["max_size"].as_u64().unwrap_or(0)),
        c["packs"]
    );
    s
}

/// The remote section of `zcfs stats`, when the remote was used.
fn remote_text(s: &mut String, r: &serde_json::Value) {
    use crate::config::human_size;
    use std::fmt::Write;
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    let errors: u64 = r["errors"]
        .as_object()
        .map(|m| m.values().filter_map(|x| x.as_u64()).sum())
        .unwrap_or(0);
    if n("lookups") + n("uploads") + n("uploads_existing") + n("uploads_failed") + errors == 0
        && r["location"].is_null()
    {
        return;
    }
    if let Some(loc) = r["location"].as_str() {
        let _ = writeln!(
            s,
            "Remote               {loc} ({}, breaker {})",
            r["mode"].as_str().unwrap_or("?"),
            r["breaker"].as_str().unwrap_or("?")
        );
    } else {
        let _ = writeln!(s, "Remote");
    }
    let _ = writeln!(
        s,
        "  hits               {} (lookups {}, manifests found {})",
        n("hits"),
        n("lookups"),
        n("manifest_found")
    );
    let _ = writeln!(
        s,
        "  downloaded         {} packs, {}",
        n("packs_downloaded"),
        human_size(n("bytes_down"))
    );
    let _ = writeln!(
        s,
        "  uploaded           {} ({}), already there {}, failed {}, dropped {}",
        n("uploads"),
        human_size(n("bytes_up")),
        n("uploads_existing"),
        n("uploads_failed"),
        n("uploads_dropped")
    );
    if let Some(map) = r["errors"].as_object().filter(|m| !m.is_empty()) {
        let list: Vec<String> = map.iter().map(|(k, c)| format!("{k} {c}")).collect();
        let _ = writeln!(s, "  errors             {}", list.join(", "));
    }
    for (title, key) in [
        ("waited (manifests)", "wait_manifest"),
        ("waited (packs)", "wait_pack"),
    ] {
        let h = &r[key];
        if h["count"].as_u64().unwrap_or(0) > 0 {
            let ms = |k: &str| {
                h[k].as_u64()
                    .map(|us| format!("{:.2} ms", us as f64 / 1000.0))
                    .unwrap_or_default()
            };
            let _ = writeln!(
                s,
                "  {title:<19}p50 {}  p99 {}  ({})",
                ms("p50_us"),
                ms("p99_us"),
                h["count"]
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_bucket() {
        let mut h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5).unwrap();
        assert!((500..=560).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99).unwrap();
        assert!((990..=1090).contains(&p99), "{p99}");
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn json_has_the_documented_keys() {
        let s = Stats::load(Path::new("/nonexistent"));
        s.hit(
            Language::RUST,
            HitPhases {
                key: Duration::from_micros(100),
                lookup: Duration::from_micros(100),
                deliver: Duration::from_micros(100),
            },
            &crate::deliver::Report {
                bytes: 10,
                projected: true,
                ..Default::default()
            },
            false,
        );
        s.miss(Language::RUST);
        s.uncacheable(Language::RUST, "probe");
        s.error(Language::RUST, "corrupt pack");
        let v = to_json(&s.snapshot(), 1, 2, 3);
        assert_eq!(v["hits"], 1);
        assert_eq!(v["misses"], 1);
        assert_eq!(v["errors"], 1);
        assert_eq!(v["uncacheable"]["probe"], 1);
        assert_eq!(v["languages"]["rust"]["hits"], 1);
        assert_eq!(v["hits_projected"], 1);
        assert_eq!(v["bytes_projected"], 10);
        assert!(v["hit_service"]["p50_us"].as_u64().is_some());
        let text = to_text(&v);
        assert!(text.contains("Hits"), "{text}");
        s.zero();
        assert_eq!(s.snapshot().hits, 0);
    }
}
