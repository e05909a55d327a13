//! Which recorded units a projection may offer cargo, and why the others may not
//! (docs/snapshot.md, "Refuse, and count why"). This decides on the records alone; whether
//! their inputs still verify is asked later, of the files.
//!
//! A target record is refused when:
//! - cargo left its hash file empty (the build did not finish it);
//! - its directory holds names cargo 1.95 does not write;
//! - its `.json` is missing or of another shape;
//! - cargo tracks it by a precalculated string (a build-script run that declared no
//!   `rerun-if-*`, or a doc unit). For a path package that string holds the package's newest
//!   mtime, which a fresh checkout changes. Projecting such a run would also skip the
//!   script's untracked inputs (`git rev-parse`, undeclared files), which a build from an
//!   empty target re-reads;
//! - it records checksums (`-Zchecksum-freshness`, not modelled);
//! - any unit it depends on is refused, transitively: a dependent projected over a rebuilt
//!   dependency would look newer than it.

use std::collections::{HashMap, HashSet};

use super::fingerprint_json::{FingerprintJson, Local};
use super::units::UnitDir;

/// Why a target record is not offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unfinished,
    NotUnderstood(String),
    NoJson,
    Precalculated,
    Checksums,
    /// Depends on a refused record (its name, `<unit dir>/<target>`).
    BelowRefused(String),
}

/// One target record's verdict: `<unit dir>/<target>` and `None` if it may be offered.
pub type Verdicts = Vec<(String, Option<Refusal>)>;

/// The verdict for every target record of `units`; `json` gives each record's parsed
/// `.json` by `<unit dir>/<target>` (absent or unparsable: no entry).
pub fn verdicts(units: &[UnitDir], json: &HashMap<String, FingerprintJson>) -> Verdicts {
    let dir_name = |u: &UnitDir| format!("{}-{}", u.package, u.unit_hash);
    let mut by_hash: HashMap<u64, String> = HashMap::new();
    let mut out: Vec<(String, Option<Refusal>)> = Vec::new();
    let mut deps: Vec<Vec<u64>> = Vec::new();
    for u in units {
        for t in &u.targets {
            let id = format!("{}/{}", dir_name(u), t.name);
            let j = json.get(&id);
            let refusal = if t.hash.is_none() {
                Some(Refusal::Unfinished)
            } else if let Some(n) = u.unknown.first() {
                Some(Refusal::NotUnderstood(n.clone()))
            } else {
                match j {
                    None => Some(Refusal::NoJson),
                    Some(j) if j.local.iter().any(|l| matches!(l, Local::Precalculated(_))) => {
                        Some(Refusal::Precalculated)
                    }
                    Some(j)
                        if j.local
                            .iter()
                            .any(|l| matches!(l, Local::DepInfo { checksum: true, .. })) =>
                    {
                        Some(Refusal::Checksums)
                    }
                    Some(_) => None,
                }
            };
            if let Some(h) = t.hash {
                by_hash.insert(h, id.clone());
            }
            deps.push(
                j.map(|j| j.deps.iter().map(|d| d.hash).collect())
                    .unwrap_or_default(),
            );
            out.push((id, refusal));
        }
    }
    // Refusals flow up to dependents until nothing changes (a dependency named by a hash
    // no record has is refused too: the records do not hold the whole graph).
    let mut refused: HashSet<String> = out
        .iter()
        .filter(|(_, r)| r.is_some())
        .map(|(id, _)| id.clone())
        .collect();
    loop {
        let mut changed = false;
        for (i, (_, r)) in out.iter_mut().enumerate() {
            if r.is_some() {
                continue;
            }
            let below = deps[i].iter().find_map(|h| match by_hash.get(h) {
                Some(id) if refused.contains(id) => Some(id.clone()),
                Some(_) => None,
                None => Some(format!("a unit with fingerprint {h:016x}")),
            });
            if let Some(b) = below {
                *r = Some(Refusal::BelowRefused(b));
                changed = true;
            }
        }
        if !changed {
            break;
        }
        refused.extend(
            out.iter()
                .filter(|(_, r)| r.is_some())
                .map(|(id, _)| id.clone()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::fingerprint_json::DepEdge;
    use crate::snapshot::units::TargetRecord;

    fn unit(pkg: &str, hash: &str, targets: &[(&str, Option<u64>)]) -> UnitDir {
        UnitDir {
            path: std::path::PathBuf::from(format!("/t/{pkg}-{hash}")),
            package: pkg.into(),
            unit_hash: hash.into(),
            targets: targets
                .iter()
                .map(|(n, h)| TargetRecord {
                    name: n.to_string(),
                    hash: *h,
                    dep_file: true,
                    json: true,
                    output: false,
                })
                .collect(),
            unknown: Vec::new(),
        }
    }

    fn fj(deps: &[u64], local: Local) -> FingerprintJson {
        FingerprintJson {
            deps: deps
                .iter()
                .map(|&hash| DepEdge {
                    name: "d".into(),
                    hash,
                })
                .collect(),
            local: vec![local],
        }
    }

    fn dep_info() -> Local {
        Local::DepInfo {
            dep_info: "x".into(),
            checksum: false,
        }
    }

    #[test]
    fn refusals_flow_to_dependents() {
        const H: &str = "0000000000000000";
        let units = vec![
            unit("a", H, &[("lib-a", Some(1))]),
            unit(
                "legacy",
                H,
                &[("run-build-script-build-script-build", Some(2))],
            ),
            unit("legacy2", H, &[("lib-legacy", Some(3))]),
            unit("app", H, &[("bin-app", Some(4))]),
            unit("solo", H, &[("bin-solo", Some(5))]),
            unit("half", H, &[("lib-half", None)]),
            unit("orphan", H, &[("lib-orphan", Some(7))]),
        ];
        let id = |p: &str, t: &str| format!("{p}-{H}/{t}");
        let mut json = HashMap::new();
        json.insert(id("a", "lib-a"), fj(&[], dep_info()));
        json.insert(
            id("legacy", "run-build-script-build-script-build"),
            fj(&[], Local::Precalculated("1796642121.9s (build.rs)".into())),
        );
        json.insert(id("legacy2", "lib-legacy"), fj(&[2], dep_info()));
        json.insert(id("app", "bin-app"), fj(&[1, 3], dep_info()));
        json.insert(id("solo", "bin-solo"), fj(&[1], dep_info()));
        json.insert(id("orphan", "lib-orphan"), fj(&[99], dep_info()));
        let v: HashMap<String, Option<Refusal>> = verdicts(&units, &json).into_iter().collect();
        assert_eq!(v[&id("a", "lib-a")], None);
        assert_eq!(v[&id("solo", "bin-solo")], None);
        assert_eq!(
            v[&id("legacy", "run-build-script-build-script-build")],
            Some(Refusal::Precalculated)
        );
        assert_eq!(
            v[&id("legacy2", "lib-legacy")],
            Some(Refusal::BelowRefused(id(
                "legacy",
                "run-build-script-build-script-build"
            )))
        );
        assert_eq!(
            v[&id("app", "bin-app")],
            Some(Refusal::BelowRefused(id("legacy2", "lib-legacy")))
        );
        assert_eq!(v[&id("half", "lib-half")], Some(Refusal::Unfinished));
        assert!(matches!(
            v[&id("orphan", "lib-orphan")],
            Some(Refusal::BelowRefused(_))
        ));
        // No JSON, or checksums: not offered.
        json.remove(&id("a", "lib-a"));
        let v: HashMap<String, Option<Refusal>> = verdicts(&units, &json).into_iter().collect();
        assert_eq!(v[&id("a", "lib-a")], Some(Refusal::NoJson));
        assert!(matches!(
            v[&id("solo", "bin-solo")],
            Some(Refusal::BelowRefused(_))
        ));
        json.insert(
            id("a", "lib-a"),
            fj(
                &[],
                Local::DepInfo {
                    dep_info: "x".into(),
                    checksum: true,
                },
            ),
        );
        let v: HashMap<String, Option<Refusal>> = verdicts(&units, &json).into_iter().collect();
        assert_eq!(v[&id("a", "lib-a")], Some(Refusal::Checksums));
    }
}
