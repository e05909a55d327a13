//! Entries served at other places: registry crates under another `CARGO_HOME` (R21), the
//! path-free units of another checkout (R4).

use super::*;

/// A local registry (cargo's `local-registry` source) holding the crate `zdep` 0.1.0:
/// cargo unpacks its crates under `$CARGO_HOME/registry/src`, as it does crates.io's.
fn local_registry(dir: &Path) -> PathBuf {
    let src = dir.join("zdep-src");
    std::fs::create_dir_all(src.join("src")).unwrap();
    std::fs::write(
        src.join("Cargo.toml"),
        "[package]\nname = \"zdep\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         description = \"d\"\nlicense = \"MIT\"\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        src.join("src/lib.rs"),
        "pub fn twice(x: u32) -> u32 { x * 2 }\npub fn at() -> &'static str { file!() }\n",
    )
    .unwrap();
    let out = std::process::Command::new("cargo")
        .args(["package", "--no-verify", "--allow-dirty", "--offline"])
        .current_dir(&src)
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    common::ok(&out);
    let reg = dir.join("registry");
    std::fs::create_dir_all(reg.join("index/zd/ep")).unwrap();
    let krate = reg.join("zdep-0.1.0.crate");
    std::fs::copy(src.join("target/package/zdep-0.1.0.crate"), &krate).unwrap();
    let sum = std::process::Command::new("sha256sum")
        .arg(&krate)
        .output()
        .unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout);
    let sum = sum.split_whitespace().next().unwrap();
    std::fs::write(
        reg.join("index/zd/ep/zdep"),
        format!(
            "{{\"name\":\"zdep\",\"vers\":\"0.1.0\",\"deps\":[],\"cksum\":\"{sum}\",\"features\":{{}},\"yanked\":false}}\n"
        ),
    )
    .unwrap();
    reg
}

/// A `CARGO_HOME` whose crates.io is the local registry.
fn cargo_home(dir: &Path, registry: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[source.crates-io]\nreplace-with = \"zreg\"\n[source.zreg]\nlocal-registry = \"{}\"\n",
            registry.display()
        ),
    )
    .unwrap();
    dir.to_path_buf()
}

/// R21: another `CARGO_HOME` (another user, another runner image). Registry crates are
/// compiled from sources under it, by absolute paths: rustc writes those paths into the
/// rlib, so they are shared only where the home is remapped (`--remap-path-prefix`, as
/// docs/remote.md recommends); then the key, the entry and the dep-info all follow the
/// home, and every unit is a remote hit.
#[test]
fn r21_another_cargo_home_shares_registry_crates() {
    let dir = tempfile::tempdir().unwrap();
    let server = servers::dir_store(dir.path());
    let reg = local_registry(dir.path());
    let home = |m: &mut Env, name: &str| {
        let h = cargo_home(&dir.path().join(name), &reg);
        m.var("CARGO_HOME", h.to_str().unwrap());
        m.var(
            "RUSTFLAGS",
            &format!("--remap-path-prefix={}=/cargo-home", h.display()),
        );
    };
    let mut a = on(&server);
    home(&mut a, "home-a");
    let app = a.standalone(
        "regapp",
        &[(
            "src/main.rs",
            "fn main() { println!(\"{} {}\", zdep::twice(21), zdep::at()); }\n",
        )],
    );
    std::fs::write(
        app.join("Cargo.toml"),
        "[package]\nname = \"regapp\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         [dependencies]\nzdep = \"0.1\"\n[workspace]\n",
    )
    .unwrap();
    let cold = a.build_with(a.cargo_command(&app, &["build", "--release"]));
    cold.assert_ok();
    assert_eq!(cold.misses, 2, "{}", cold.stderr);
    flush(&a);
    let a_art = artifacts(&app.join("target/release"));
    std::fs::remove_dir_all(app.join("target")).unwrap();

    let mut b = on(&server);
    home(&mut b, "home-b");
    let warm = b.build_with(b.cargo_command(&app, &["build", "--release"]));
    warm.assert_ok();
    assert_eq!(warm.hits, 2, "{}", warm.stderr);
    assert_eq!(n(&remote(&warm), "hits"), 2);
    let b_art = artifacts(&app.join("target/release"));
    for (k, v) in &a_art {
        let got = &b_art[k];
        if k.extension().is_some_and(|e| e == "d") {
            // The dep-info is A's with A's home replaced by B's, byte for byte.
            let (home_a, home_b) = (dir.path().join("home-a"), dir.path().join("home-b"));
            let want = String::from_utf8_lossy(v)
                .replace(home_a.to_str().unwrap(), home_b.to_str().unwrap());
            let text = String::from_utf8_lossy(got);
            assert_eq!(text, want, "{}", k.display());
            assert!(!text.contains("home-a"), "{text}");
        } else {
            assert!(got == v, "{} differs", k.display());
        }
    }
    let out = std::process::Command::new(app.join("target/release/regapp"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "42 /cargo-home/registry/src/zreg-ae0e1ca5a9dd1f3d/zdep-0.1.0/src/lib.rs\n".replace(
            "zreg-ae0e1ca5a9dd1f3d",
            &registry_dir_name(&dir.path().join("home-b"))
        )
    );
}

/// The directory cargo unpacked the local registry's crates into, under a home.
fn registry_dir_name(home: &Path) -> String {
    std::fs::read_dir(home.join("registry/src"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned()
}

/// R4: a machine with its checkout elsewhere gets from the remote exactly the units one
/// machine shares between its own two checkouts (those whose outputs hold no path), and
/// what it is served is what the compiler makes there.
#[test]
fn r4_another_checkout_gets_the_path_free_units() {
    let dir = tempfile::tempdir().unwrap();
    let server = servers::dir_store(dir.path());
    // Locally: one cache, two checkouts.
    let local = Env::new();
    build(&local, &["build", "--release"]);
    let second = local.tmp.path().join("second");
    common::copy_dir(&local.ws, &second.join("ws"));
    common::copy_dir(&local.tmp.path().join("outside"), &second.join("outside"));
    let there = local.build_with(local.cargo_command(&second.join("ws"), &["build", "--release"]));
    there.assert_ok();
    let shared = there.hits;
    assert!(shared >= 1, "some units hold no path: {}", there.stderr);

    let a = on(&server);
    let cold = build(&a, &["build", "--release"]);
    flush(&a);
    let b = on(&server);
    assert_ne!(a.ws, b.ws);
    let warm = build(&b, &["build", "--release"]);
    assert_eq!(warm.hits, shared, "{}", warm.stderr);
    assert_eq!(warm.misses, cold.misses - shared);
    assert_eq!(n(&remote(&warm), "hits"), shared);
    let served = artifacts(&b.target().join("release"));
    std::fs::remove_dir_all(b.target()).unwrap();
    let plain = b.cargo_plain(&b.ws, &["build", "--release"]);
    common::ok(&plain);
    assert_same_but_compiled(
        &served,
        &artifacts(&b.target().join("release")),
        warm.misses,
    );
}
