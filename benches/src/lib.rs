//! `vigil-benches` holds vigil's criterion benchmarks (`cargo bench -p vigil-benches`) and the helpers they
//! share: the fixture frames they measure on.

use std::path::PathBuf;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The first frame of a fixture clip, decoded once.
pub fn fixture_frame(rel: &str) -> Option<vigil_frame::Frame> {
    let mut src =
        vigil_capture::open(&root().join("fixtures").join(rel), vigil_capture::Timing::Media).ok()?;
    src.next_frame().ok().flatten()
}
