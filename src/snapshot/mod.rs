//! Snapshots of cargo's own unit records (issue 22, docs/snapshot.md): what cargo wrote in
//! its build dir for each unit, so that a later build from an empty target can be given
//! the records of every unit whose inputs still verify, and cargo finds them Fresh.
//!
//! Here: the readers of cargo's records, tested against what cargo 1.95 writes (`units`:
//! fingerprint directories and their layout; `dep_file`: a rustc unit's recorded inputs;
//! `script_output`: what a build-script run declared; `fingerprint_json`: the units'
//! dependency graph and what cargo checks for each; `plan`: which records may be offered,
//! and why the others may not); `survey`, a build dir's units as `zcfs cargo` finds them
//! after a build; `index`, the daemon's stored records. Recording and projecting are the
//! daemon's (`crate::engine::snapshot`) and `zcfs cargo`'s (`crate::cli::snapshot`).

pub mod dep_file;
pub mod fingerprint_json;
pub mod index;
pub mod plan;
pub mod script_output;
pub mod survey;
pub mod units;
