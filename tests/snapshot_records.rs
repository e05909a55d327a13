//! Issue 22's readers of cargo's unit records, against what the installed cargo writes: a
//! workspace with a library whose build script generates code and declares its inputs, a
//! binary, a proc-macro and tests, built plainly (no zcfs). Every fingerprint directory must
//! read as a unit, every `dep-` file must parse and encode back to the same bytes, and the
//! paths it records must name the files the build read. A cargo whose records differ from
//! what zcfs models fails here.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use std::time::{Duration, SystemTime};

use zcfs::snapshot::dep_file::{self, Base};
use zcfs::snapshot::fingerprint_json::{self, Local};
use zcfs::snapshot::script_output;
use zcfs::snapshot::units::{self, Layout, UnitDir};

fn write(dir: &Path, rel: &str, content: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn workspace(ws: &Path) {
    write(
        ws,
        "Cargo.toml",
        "[workspace]\nmembers = [\"util\", \"pm\", \"app\"]\nresolver = \"2\"\n",
    );
    write(
        ws,
        "util/Cargo.toml",
        "[package]\nname = \"util\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    write(
        ws,
        "util/build.rs",
        "fn main() {\n    println!(\"cargo::rerun-if-changed=data.txt\");\n    println!(\"cargo::rerun-if-env-changed=UTIL_GREETING\");\n    let n = std::fs::read_to_string(\"data.txt\").unwrap();\n    let out = std::path::Path::new(&std::env::var(\"OUT_DIR\").unwrap()).join(\"gen.rs\");\n    std::fs::write(out, format!(\"pub const N: u32 = {};\", n.trim())).unwrap();\n}\n",
    );
    write(ws, "util/data.txt", "42\n");
    write(
        ws,
        "util/src/lib.rs",
        "include!(concat!(env!(\"OUT_DIR\"), \"/gen.rs\"));\nmod inner;\npub fn n() -> u32 { inner::id(N) }\npub fn who() -> &'static str { option_env!(\"UTIL_WHO\").unwrap_or(\"nobody\") }\n",
    );
    write(ws, "util/src/inner.rs", "pub fn id(x: u32) -> u32 { x }\n");
    write(
        ws,
        "pm/Cargo.toml",
        "[package]\nname = \"pm\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[lib]\nproc-macro = true\n",
    );
    write(
        ws,
        "pm/src/lib.rs",
        "use proc_macro::TokenStream;\n#[proc_macro]\npub fn seven(_: TokenStream) -> TokenStream { \"7\".parse().unwrap() }\n",
    );
    write(
        ws,
        "app/Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[dependencies]\nutil = { path = \"../util\" }\npm = { path = \"../pm\" }\n",
    );
    write(
        ws,
        "app/src/main.rs",
        "fn main() { println!(\"{} {} {}\", util::n(), pm::seven!(), util::who()); }\n#[test]\nfn t() { assert_eq!(util::n(), 42); }\n",
    );
}

fn cargo(ws: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(args).current_dir(ws);
    common::scrub(&mut cmd);
    // The variables the test workspace reads: unset, as the assertions expect.
    for v in ["UTIL_WHO", "UTIL_GREETING"] {
        cmd.env_remove(v);
    }
    cmd
}

/// Every input a unit's records name, resolved for a package under `ws` and the build
/// root `build_root`: the files of its `dep-` files, and for a build-script run the paths
/// it declared.
fn inputs(u: &UnitDir, ws: &Path, build_root: &Path, profile: &Path) -> Vec<std::path::PathBuf> {
    let pkg_root = ws.join(&u.package);
    let mut out = Vec::new();
    for tr in &u.targets {
        if tr.dep_file {
            let bytes = std::fs::read(u.path.join(format!("dep-{}", tr.name))).unwrap();
            let d = dep_file::parse(&bytes).unwrap();
            out.extend(d.files.iter().map(|f| f.resolve(&pkg_root, build_root)));
        }
        if tr.name.starts_with("run-") {
            let run = profile
                .join("build")
                .join(format!("{}-{}", u.package, u.unit_hash));
            let text = std::fs::read(run.join("output")).unwrap();
            let d = script_output::parse(&text, None).unwrap();
            out.extend(d.rerun_if_changed.iter().map(|p| pkg_root.join(p)));
        }
    }
    out
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

fn set_mtime(p: &Path, t: SystemTime) {
    std::fs::File::open(p)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(t))
        .unwrap();
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            files_under(&e.path(), out);
        } else if e.file_type().unwrap().is_file() {
            out.push(e.path());
        }
    }
}

#[test]
fn cargo_unit_records_read_as_modelled() {
    let t = tempfile::tempdir().unwrap();
    let ws = t.path().canonicalize().unwrap().join("ws");
    workspace(&ws);
    let o = cargo(&ws, &["build", "--all-targets", "--offline", "-q"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let build_root = ws.join("target");
    let profile = build_root.join("debug");
    assert_eq!(units::layout(&profile).unwrap(), Layout::Legacy);
    let all = units::read_units(&profile).unwrap();
    // util: lib + test, build-script compile, build-script run; pm: lib + test; app: bin +
    // test.
    assert!(all.len() >= 6, "{all:?}");
    let mut by_target: HashMap<String, u64> = HashMap::new();
    let mut dep_files = 0;
    for u in all {
        let u = u.unwrap();
        assert!(
            u.unknown.is_empty(),
            "{}: {:?}",
            u.path.display(),
            u.unknown
        );
        let pkg_root = ws.join(&u.package);
        for tr in &u.targets {
            let hash = tr.hash.unwrap_or_else(|| panic!("{}: empty hash", tr.name));
            by_target.insert(format!("{}/{}", u.package, tr.name), hash);
            if tr.name.starts_with("run-") {
                assert!(!tr.dep_file, "a build-script run has no dep file");
                continue;
            }
            assert!(tr.dep_file, "{}: no dep file", tr.name);
            let p = u.path.join(format!("dep-{}", tr.name));
            let bytes = std::fs::read(&p).unwrap();
            let d = dep_file::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(dep_file::encode(&d), bytes, "{}", p.display());
            dep_files += 1;
            assert!(!d.files.is_empty());
            for f in &d.files {
                let at = f.resolve(&pkg_root, &build_root);
                assert!(
                    at.is_file(),
                    "{}: {} is not there",
                    p.display(),
                    at.display()
                );
                assert!(f.checksum.is_none(), "stable cargo records no checksum");
                if f.base == Base::BuildRoot {
                    // util's generated file, relative to the build root (not the profile).
                    let rel = String::from_utf8_lossy(&f.path);
                    assert!(rel.starts_with("debug/build/util-"), "{rel}");
                    assert!(rel.ends_with("/out/gen.rs"), "{rel}");
                }
            }
            // The variable read through `option_env!` is recorded, unset; OUT_DIR (set by
            // cargo on the command) is not.
            if u.package == "util" && tr.name == "lib-util" {
                assert_eq!(d.env, vec![(b"UTIL_WHO".to_vec(), None)]);
                assert!(d.files.iter().any(|f| f.path == b"src/inner.rs"));
            }
        }
        // The run's recorded stdout, in `build/<package>-<its unit hash>/`.
        if u.targets.iter().any(|t| t.name.starts_with("run-")) {
            let run = profile
                .join("build")
                .join(format!("{}-{}", u.package, u.unit_hash));
            let d =
                script_output::parse(&std::fs::read(run.join("output")).unwrap(), None).unwrap();
            assert_eq!(
                d.rerun_if_changed,
                vec![std::path::PathBuf::from("data.txt")]
            );
            assert_eq!(d.rerun_if_env_changed, vec!["UTIL_GREETING".to_string()]);
            assert!(run.join("root-output").is_file() && run.join("out/gen.rs").is_file());
        }
    }
    assert!(dep_files >= 5, "{by_target:?}");
    // The `.json` beside each hash file: its `deps` name other units by their hash files'
    // numbers (the graph is closed), its `local` names the dep file or the run's output.
    let hashes: std::collections::HashSet<u64> = by_target.values().copied().collect();
    let mut edges = 0;
    for u in units::read_units(&profile).unwrap() {
        let u = u.unwrap();
        for tr in u.targets.iter().filter(|t| t.json) {
            let p = u.path.join(format!("{}.json", tr.name));
            let j = fingerprint_json::parse(&std::fs::read(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            for d in &j.deps {
                assert!(hashes.contains(&d.hash), "{}: {d:?}", p.display());
                edges += 1;
            }
            let dir = u.path.file_name().unwrap().to_string_lossy().into_owned();
            if tr.name.starts_with("run-") {
                assert_eq!(
                    j.local,
                    vec![
                        Local::RerunIfChanged {
                            output: format!("debug/build/{}-{}/output", u.package, u.unit_hash),
                            paths: vec!["data.txt".into()],
                        },
                        Local::RerunIfEnvChanged {
                            var: "UTIL_GREETING".into(),
                            val: None,
                        },
                    ]
                );
            } else {
                assert_eq!(
                    j.local,
                    vec![Local::DepInfo {
                        dep_info: format!("debug/.fingerprint/{dir}/dep-{}", tr.name),
                        checksum: false,
                    }],
                    "{}",
                    p.display()
                );
            }
        }
    }
    // app's bin: util, pm, and util's run through util; at least those.
    assert!(edges >= 5, "{edges}");
    for t in [
        "util/lib-util",
        "util/build-script-build-script-build",
        "util/run-build-script-build-script-build",
        "pm/lib-pm",
        "app/bin-app",
        "app/test-bin-app",
    ] {
        assert!(by_target.contains_key(t), "{t} missing: {by_target:?}");
    }
    // The hash file holds the same number cargo records for the unit in its dependents'
    // JSON (`deps`: [package hash, extern name, public, hash]).
    let app_json = std::fs::read_dir(profile.join(".fingerprint"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with("app-")
                && p.join("bin-app.json").is_file()
        })
        .unwrap()
        .join("bin-app.json");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(app_json).unwrap()).unwrap();
    let util_dep = json["deps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d[1] == "util")
        .unwrap_or_else(|| panic!("{}", json["deps"]));
    assert_eq!(util_dep[3].as_u64(), Some(by_target["util/lib-util"]));
    // The plan's rule, applied by hand with these readers: the same sources checked out
    // afresh at another path (new mtimes, the newest one only the records name: a module
    // and a declared build-script input), the records copied, every recorded file given
    // T = the newest input the records name outside the build root. cargo must then find every unit Fresh. A
    // reader that missed an input would leave T older than it, and cargo would rebuild.
    let ws2 = t.path().canonicalize().unwrap().join("elsewhere/ws");
    workspace(&ws2);
    let base = SystemTime::now() - Duration::from_secs(60);
    let mut sources = Vec::new();
    files_under(&ws2, &mut sources);
    for f in &sources {
        set_mtime(f, base);
    }
    set_mtime(&ws2.join("util/data.txt"), base + Duration::from_secs(30));
    set_mtime(
        &ws2.join("util/src/inner.rs"),
        base + Duration::from_secs(20),
    );
    let o = Command::new("cp")
        .arg("-a")
        .arg(&build_root)
        .arg(ws2.join("target"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let build_root2 = ws2.join("target");
    let profile2 = build_root2.join("debug");
    let mut newest = SystemTime::UNIX_EPOCH;
    for u in units::read_units(&profile2).unwrap() {
        for i in inputs(&u.unwrap(), &ws2, &build_root2, &profile2) {
            // Files under the build root (OUT_DIR) are records too: they get T.
            if !i.starts_with(&build_root2) {
                newest = newest.max(mtime(&i));
            }
        }
    }
    assert_eq!(newest, base + Duration::from_secs(30));
    let mut recorded = Vec::new();
    files_under(&build_root2, &mut recorded);
    for f in &recorded {
        set_mtime(f, newest);
    }
    let o = cargo(&ws2, &["build", "--all-targets", "--offline", "-v"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        !err.contains("Compiling") && !err.contains("Running") && err.contains("Fresh util"),
        "{err}"
    );
    // Without the module's mtime in T, cargo would rebuild: the rule is what makes it
    // Fresh, not the copy.
    set_mtime(
        &ws2.join("util/src/inner.rs"),
        newest + Duration::from_secs(1),
    );
    let o = cargo(&ws2, &["build", "--all-targets", "--offline", "-v"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Dirty util"), "{err}");
}

/// The plan's refusals on cargo's own records: a build script that declares nothing
/// (cargo tracks it by its package's newest mtime) is refused, and so is everything above
/// it; a unit beside it is offered.
#[test]
fn an_untracked_build_script_and_its_dependents_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let ws = t.path().canonicalize().unwrap().join("ws");
    write(
        &ws,
        "Cargo.toml",
        "[workspace]\nmembers = [\"legacy\", \"uses\", \"free\"]\nresolver = \"2\"\n",
    );
    for (name, deps) in [
        ("legacy", ""),
        ("uses", "legacy = { path = \"../legacy\" }\n"),
        ("free", ""),
    ] {
        write(
            &ws,
            &format!("{name}/Cargo.toml"),
            &format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[dependencies]\n{deps}"
            ),
        );
        write(
            &ws,
            &format!("{name}/src/lib.rs"),
            "pub fn f() -> u32 { 1 }\n",
        );
    }
    write(&ws, "legacy/build.rs", "fn main() {}\n");
    let o = cargo(&ws, &["build", "--offline", "-q"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let profile = ws.join("target/debug");
    let units: Vec<UnitDir> = units::read_units(&profile)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut json = HashMap::new();
    for u in &units {
        for tr in u.targets.iter().filter(|t| t.json) {
            let bytes = std::fs::read(u.path.join(format!("{}.json", tr.name))).unwrap();
            json.insert(
                format!("{}-{}/{}", u.package, u.unit_hash, tr.name),
                fingerprint_json::parse(&bytes).unwrap(),
            );
        }
    }
    let verdicts = zcfs::snapshot::plan::verdicts(&units, &json);
    let of = |target: &str| {
        verdicts
            .iter()
            .filter(|(id, _)| id.ends_with(&format!("/{target}")))
            .map(|(_, r)| r.clone())
            .collect::<Vec<_>>()
    };
    use zcfs::snapshot::plan::Refusal;
    assert_eq!(
        of("run-build-script-build-script-build"),
        vec![Some(Refusal::Precalculated)]
    );
    assert!(matches!(
        of("lib-legacy")[..],
        [Some(Refusal::BelowRefused(_))]
    ));
    assert!(matches!(
        of("lib-uses")[..],
        [Some(Refusal::BelowRefused(_))]
    ));
    assert_eq!(of("build-script-build-script-build"), vec![None]);
    assert_eq!(of("lib-free"), vec![None]);
}
