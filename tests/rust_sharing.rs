//! Entries served under another target dir or checkout (spec X2, docs/sharing.md): what is
//! served there must be byte for byte what a plain build there produces. Each test builds
//! in one place, builds again in another through zcfs, then compares every artifact with a
//! plain cargo build (no zcfs) at that same place.

mod common;

use common::{Build, Env, artifacts, copy_dir};
use std::path::{Path, PathBuf};

/// A workspace where `dep` is path-free and two crates read a path as a value that
/// decides what they compile to (the parity of its length), without the path itself
/// reaching their outputs: `gen` its `OUT_DIR` (under the target dir), the binary `app` its
/// `CARGO_MANIFEST_DIR` (under the checkout). `genapp` prints what `dep` and `gen` give.
fn workspace(at: &Path) -> PathBuf {
    let package = |name: &str, deps: &str| {
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
             [dependencies]\n{deps}"
        )
    };
    let files: Vec<(&str, String)> =
        vec![
        (
            "Cargo.toml",
            "[workspace]\nmembers = [\"dep\", \"gen\", \"app\", \"genapp\"]\nresolver = \"2\"\n"
                .into(),
        ),
        ("dep/Cargo.toml", package("dep", "")),
        ("dep/src/lib.rs", "pub fn twice(x: usize) -> usize { x * 2 }\n".into()),
        ("gen/Cargo.toml", package("gen", "")),
        ("gen/build.rs", "fn main() {}\n".into()),
        (
            "gen/src/lib.rs",
            "pub const OUT_PARITY: usize = env!(\"OUT_DIR\").len() % 2;\n".into(),
        ),
        ("app/Cargo.toml", package("app", "")),
        (
            "app/src/main.rs",
            "fn main() {\n    println!(\"{}\", env!(\"CARGO_MANIFEST_DIR\").len() % 2);\n}\n"
                .into(),
        ),
        (
            "genapp/Cargo.toml",
            package("genapp", "gen = { path = \"../gen\" }\ndep = { path = \"../dep\" }\n"),
        ),
        (
            "genapp/src/main.rs",
            "fn main() {\n    println!(\"{} {}\", dep::twice(3), gen::OUT_PARITY);\n}\n".into(),
        ),
    ];
    for (rel, content) in files {
        let p = at.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    at.to_path_buf()
}

/// Rebuilds `dir`'s `target_dir` with plain cargo (no zcfs) and asserts every artifact is
/// byte-identical to what the zcfs build left there.
fn assert_same_as_plain(env: &Env, dir: &Path, target_dir: &Path, args: &[&str], profile: &str) {
    let served = artifacts(&target_dir.join(profile));
    assert!(!served.is_empty());
    if env.mounted {
        let out = env
            .command(common::ZCFS)
            .args(["unmount", target_dir.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(target_dir).unwrap();
    let out = env.cargo_plain(dir, args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plain = artifacts(&target_dir.join(profile));
    let differ: Vec<String> = plain
        .iter()
        .filter(|(k, v)| served.get(*k) != Some(*v))
        .map(|(k, _)| k.display().to_string())
        .chain(
            served
                .keys()
                .filter(|k| !plain.contains_key(*k))
                .map(|k| format!("{} (not made by cargo)", k.display())),
        )
        .collect();
    assert!(
        differ.is_empty(),
        "served artifacts differ from a plain build: {differ:?}"
    );
}

fn build(env: &Env, dir: &Path, args: &[&str]) -> Build {
    let b = env.cargo_in(dir, args);
    b.assert_ok();
    if env.mounted {
        assert!(
            b.stats["hits_projected"].as_u64() == b.stats["hits"].as_u64(),
            "every hit projected: {}",
            b.stats
        );
    }
    b
}

scenarios_with_snapshots! {
    /// Another checkout, whose path length has the other parity: what reads its
    /// directories as values or holds them in its outputs misses; everything served is what
    /// cargo would have built there.
    fn second_checkout_gets_only_byte_identical_artifacts(mounted: bool) {
        let env = Env::for_mode(mounted);
        let one = workspace(&env.tmp.path().join("one/share"));
        let two = env.tmp.path().join("checkout-two/share");
        copy_dir(&one, &two);
        let args = ["build", "--release"];
        build(&env, &one, &args);
        let b = build(&env, &two, &args);
        assert!(b.misses >= 2, "gen and app read their paths: {}", b.stderr);
        assert_same_as_plain(&env, &two, &two.join("target"), &args, "release");
    }

    /// Another target dir in the same checkout (a name of the other parity): the crates
    /// that do not read the target dir are shared, `gen` is not, and everything served is
    /// what cargo builds there.
    fn second_target_dir_shares_only_what_does_not_read_it(mounted: bool) {
        let env = Env::for_mode(mounted);
        let ws = workspace(&env.tmp.path().join("ws"));
        build(&env, &ws, &["build", "--release"]);
        let other = ws.join("target-b2");
        let args = ["build", "--release", "--target-dir", "target-b2"];
        let b = build(&env, &ws, &args);
        assert!(b.hits >= 2, "dep and app are shared: {}", b.stderr);
        assert!(b.misses >= 2, "gen reads OUT_DIR, genapp links it: {}", b.stderr);
        assert_same_as_plain(&env, &ws, &other, &args, "release");
    }

    /// Debug sections compressed by the linker hide the cwd from the search: the binary
    /// binds to its checkout.
    fn compressed_debug_sections_bind_to_the_checkout(mounted: bool) {
        let mut env = Env::for_mode(mounted);
        env.var(
            "RUSTFLAGS",
            "-C link-arg=-Wl,--compress-debug-sections=zlib",
        )
        .var("CARGO_INCREMENTAL", "0");
        let one = env.standalone("zdebug", &[("src/main.rs", "fn main() { println!(\"hi\") }\n")]);
        let two = env.tmp.path().join("elsewhere/zdebug");
        copy_dir(&one, &two);
        build(&env, &one, &["build"]);
        let b = build(&env, &two, &["build"]);
        assert_eq!(b.hits, 0, "{}", b.stderr);
        assert_same_as_plain(&env, &two, &two.join("target"), &["build"], "debug");
    }

    /// A proc macro reads the crate's `CARGO_MANIFEST_DIR` with `std::env::var` (as many do,
    /// to find files) and decides what it expands to: no env-dep records that read. The
    /// macro crate lives outside both checkouts (the same build for both), so only the
    /// keyed variable, which names the checkout, can keep the binary from being shared.
    fn a_proc_macro_reading_the_manifest_dir_binds_to_the_checkout(mounted: bool) {
        let env = Env::for_mode(mounted);
        let pm = env.tmp.path().join("shared/pm");
        std::fs::create_dir_all(pm.join("src")).unwrap();
        std::fs::write(
            pm.join("Cargo.toml"),
            "[package]\nname = \"pm\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
             [lib]\nproc-macro = true\n",
        )
        .unwrap();
        std::fs::write(
            pm.join("src/lib.rs"),
            "use proc_macro::TokenStream;\n\
             #[proc_macro]\n\
             pub fn parity(_: TokenStream) -> TokenStream {\n\
                 let dir = std::env::var(\"CARGO_MANIFEST_DIR\").unwrap();\n\
                 (dir.len() % 2).to_string().parse().unwrap()\n\
             }\n",
        )
        .unwrap();
        let one = env.tmp.path().join("one/user");
        std::fs::create_dir_all(one.join("src")).unwrap();
        std::fs::write(
            one.join("Cargo.toml"),
            format!(
                "[package]\nname = \"user\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
                 [dependencies]\npm = {{ path = \"{}\" }}\n[workspace]\n",
                pm.display()
            ),
        )
        .unwrap();
        std::fs::write(
            one.join("src/main.rs"),
            "fn main() { println!(\"{}\", pm::parity!()); }\n",
        )
        .unwrap();
        let two = env.tmp.path().join("checkout-two/user");
        copy_dir(&one, &two);
        let args = ["build", "--release"];
        build(&env, &one, &args);
        let b = build(&env, &two, &args);
        assert!(b.hits >= 1, "the macro crate is shared: {}", b.stderr);
        assert!(b.misses >= 1, "the binary is not: {}", b.stderr);
        let out = std::process::Command::new(two.join("target/release/user"))
            .output()
            .unwrap();
        let expect = two.to_str().unwrap().len() % 2;
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expect.to_string());
        assert_same_as_plain(&env, &two, &two.join("target"), &args, "release");
    }
}
