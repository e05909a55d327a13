//! The `<target>.json` beside a unit's hash file: cargo's serialized fingerprint. cargo
//! reads it only to explain why a unit is dirty; zcfs reads two of its fields.
//!
//! - `deps`: `[package hash, extern name, public, fingerprint hash]` per dependency. The
//!   last number is the dependency's own hash file ([`super::units`]), so these entries link
//!   a build dir's units into their graph. A unit may be projected only with everything
//!   below it.
//! - `local`: what cargo checks on the filesystem for the unit:
//!   - `CheckDepInfo`: the `dep-` file, relative to the build root;
//!   - `RerunIfChanged`: a build-script run's `output`, relative to the build root, and its
//!     declared paths;
//!   - `RerunIfEnvChanged`;
//!   - `Precalculated`: an old-style script or a doc unit, whose string holds a package's
//!     newest mtime.
//!
//! Everything else in the file is cargo's business; its hash covers it.

use serde_json::Value;

/// A dependency edge: the extern name and the dependency's fingerprint hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepEdge {
    pub name: String,
    pub hash: u64,
}

/// One `local` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    DepInfo {
        /// Relative to the build root.
        dep_info: String,
        /// `-Zchecksum-freshness` (nightly): such records are not modelled.
        checksum: bool,
    },
    RerunIfChanged {
        /// The run's `output`, relative to the build root.
        output: String,
        paths: Vec<String>,
    },
    RerunIfEnvChanged {
        var: String,
        val: Option<String>,
    },
    Precalculated(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FingerprintJson {
    pub deps: Vec<DepEdge>,
    pub local: Vec<Local>,
}

/// The largest `.json` read.
pub const MAX_SIZE: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("cargo fingerprint JSON: {0}")]
    Syntax(String),
    #[error("cargo fingerprint JSON: unexpected {0}")]
    Shape(&'static str),
    #[error("cargo fingerprint JSON larger than {MAX_SIZE} bytes")]
    TooLarge,
}

fn shape(what: &'static str) -> JsonError {
    JsonError::Shape(what)
}

/// Parses a fingerprint `.json`. Any shape other than cargo 1.95's is an error.
pub fn parse(bytes: &[u8]) -> Result<FingerprintJson, JsonError> {
    if bytes.len() as u64 > MAX_SIZE {
        return Err(JsonError::TooLarge);
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| JsonError::Syntax(e.to_string()))?;
    let deps = v
        .get("deps")
        .and_then(Value::as_array)
        .ok_or(shape("deps"))?
        .iter()
        .map(|d| match d.as_array().map(Vec::as_slice) {
            Some([_, name, _, hash]) => Ok(DepEdge {
                name: name.as_str().ok_or(shape("dep name"))?.to_string(),
                hash: hash.as_u64().ok_or(shape("dep hash"))?,
            }),
            _ => Err(shape("dep entry")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let local = v
        .get("local")
        .and_then(Value::as_array)
        .ok_or(shape("local"))?
        .iter()
        .map(local_item)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FingerprintJson { deps, local })
}

fn str_field(v: &Value, k: &'static str) -> Result<String, JsonError> {
    Ok(v.get(k)
        .and_then(Value::as_str)
        .ok_or(shape(k))?
        .to_string())
}

fn local_item(item: &Value) -> Result<Local, JsonError> {
    let obj = item.as_object().ok_or(shape("local item"))?;
    let [(kind, body)] = obj.iter().collect::<Vec<_>>()[..] else {
        return Err(shape("local item"));
    };
    Ok(match kind.as_str() {
        "CheckDepInfo" => Local::DepInfo {
            dep_info: str_field(body, "dep_info")?,
            checksum: body
                .get("checksum")
                .and_then(Value::as_bool)
                .ok_or(shape("checksum"))?,
        },
        "RerunIfChanged" => Local::RerunIfChanged {
            output: str_field(body, "output")?,
            paths: body
                .get("paths")
                .and_then(Value::as_array)
                .ok_or(shape("paths"))?
                .iter()
                .map(|p| p.as_str().map(str::to_string).ok_or(shape("path")))
                .collect::<Result<_, _>>()?,
        },
        "RerunIfEnvChanged" => Local::RerunIfEnvChanged {
            var: str_field(body, "var")?,
            val: match body.get("val") {
                Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                _ => return Err(shape("val")),
            },
        },
        "Precalculated" => {
            Local::Precalculated(body.as_str().ok_or(shape("precalculated"))?.into())
        }
        _ => return Err(shape("local kind")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cargo_195s_fields() {
        let j = br#"{"rustc":7458672600737419911,"features":"[]","declared_features":"[]","target":344688610408133831,"profile":8731458305071235362,"path":10763286916239946207,"deps":[[1,"util",false,5833351829037043127]],"local":[{"CheckDepInfo":{"dep_info":"debug/.fingerprint/dq-e8ede66cf7cfdb4d/dep-lib-dq","checksum":false}},{"RerunIfChanged":{"output":"debug/build/util-9ee6/output","paths":["data.txt"]}},{"RerunIfEnvChanged":{"var":"UTIL_GREETING","val":null}},{"Precalculated":"1796642121.900715612s (build.rs)"}],"rustflags":[],"config":8247474407144887393,"compile_kind":0}"#;
        let f = parse(j).unwrap();
        assert_eq!(
            f.deps,
            vec![DepEdge {
                name: "util".into(),
                hash: 5833351829037043127
            }]
        );
        assert_eq!(
            f.local,
            vec![
                Local::DepInfo {
                    dep_info: "debug/.fingerprint/dq-e8ede66cf7cfdb4d/dep-lib-dq".into(),
                    checksum: false
                },
                Local::RerunIfChanged {
                    output: "debug/build/util-9ee6/output".into(),
                    paths: vec!["data.txt".into()]
                },
                Local::RerunIfEnvChanged {
                    var: "UTIL_GREETING".into(),
                    val: None
                },
                Local::Precalculated("1796642121.900715612s (build.rs)".into()),
            ]
        );
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            &b"{"[..],
            b"[]",
            b"{\"deps\":[],\"local\":[{\"Other\":{}}]}",
            b"{\"deps\":[[1,\"x\",false]],\"local\":[]}",
            b"{\"deps\":[[1,\"x\",false,-1]],\"local\":[]}",
            b"{\"deps\":[],\"local\":[{\"CheckDepInfo\":{},\"RerunIfChanged\":{}}]}",
            b"{\"deps\":[],\"local\":[{\"RerunIfEnvChanged\":{\"var\":\"V\",\"val\":3}}]}",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            parse(b"{\"deps\":[],\"local\":[]}").unwrap(),
            FingerprintJson::default()
        );
    }
}
